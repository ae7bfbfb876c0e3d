/**
 * The process-wide ONNX Runtime library: chosen once (an option, $FORECASTD_ORT_LIBRARY, or the library
 * bundled in onnxruntime-node), loaded by the addon with dlopen, shared by every session and worker thread.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { isMainThread } from 'node:worker_threads';

import { ForecastdError } from '../errors.js';
import { loadAddon, type AddonTypes, type NativeConnectionGate, type NativeRuntimeState, type OpenFileLimit } from './addon.js';
import { availableCpus } from './cpus.js';
import type { RuntimeInfo, RuntimeLogEntry, RuntimeOptions } from './types.js';

/** The library file onnxruntime-node ships for each platform, under bin/napi-v6/<platform>/<arch>/. */
const BUNDLED_LIBRARY_FILE: Readonly<Partial<Record<NodeJS.Platform, string>>> = {
  linux: 'libonnxruntime.so.1',
  darwin: 'libonnxruntime.1.dylib',
};

/** ONNX Runtime's provider names whose short form is not simply the lower-cased prefix. */
const PROVIDER_ALIASES: Readonly<Record<string, string>> = {
  TensorrtExecutionProvider: 'tensorrt',
  NvTensorRTRTXExecutionProvider: 'nvtensorrtrtx',
};

/** "CPUExecutionProvider" -> "cpu", "CUDAExecutionProvider" -> "cuda", "DmlExecutionProvider" -> "dml". */
export function normalizeProviderName(ortName: string): string {
  const alias = PROVIDER_ALIASES[ortName];
  if (alias !== undefined) return alias;
  return ortName.replace(/ExecutionProvider$/, '').toLowerCase();
}

/**
 * ONNX Runtime's name for `name` among `available` (ORT names): accepts the short form ("cuda") or the full
 * name ("CUDAExecutionProvider"), any case. undefined when the library lacks it.
 */
export function ortProviderName(name: string, available: readonly string[]): string | undefined {
  const wanted = name.toLowerCase();
  return available.find((p) => p.toLowerCase() === wanted || normalizeProviderName(p) === wanted);
}

/** Where the default library is looked for, in order. */
export function defaultLibraryCandidates(): string[] {
  const fromEnv = process.env['FORECASTD_ORT_LIBRARY'];
  if (fromEnv !== undefined && fromEnv !== '') return [path.resolve(fromEnv)];
  const file = BUNDLED_LIBRARY_FILE[process.platform];
  let packageDir: string;
  try {
    packageDir = path.dirname(createRequire(import.meta.url).resolve('onnxruntime-node/package.json'));
  } catch {
    return [`onnxruntime-node/bin/napi-v6/${process.platform}/${process.arch}/${file ?? '<no library for this platform>'}`];
  }
  return [path.join(packageDir, 'bin', 'napi-v6', process.platform, process.arch, file ?? '<no library for this platform>')];
}

let info: RuntimeInfo | undefined;
let ortProviders: readonly string[] = [];
let logHandler: ((entry: RuntimeLogEntry) => void) | undefined;
let hooked = false;

/**
 * Where ONNX Runtime's warnings and errors go in this thread (e.g. "some nodes were not assigned to the preferred
 * execution providers"): a logger's function. Without one they are emitted as process warnings (type
 * "OnnxRuntimeWarning"). Lines reach JavaScript after runs and loads complete, on the thread that ran them.
 */
export function setRuntimeLogHandler(handler: ((entry: RuntimeLogEntry) => void) | undefined): void {
  if (handler !== undefined && typeof handler !== 'function') {
    throw new ForecastdError('ERR_INVALID_ARGUMENT', 'the runtime log handler must be a function');
  }
  logHandler = handler;
}

function deliverLog(entries: readonly RuntimeLogEntry[]): void {
  for (const entry of entries) {
    if (logHandler === undefined) {
      process.emitWarning(`ONNX Runtime ${entry.level}: ${entry.message}`, { type: 'OnnxRuntimeWarning' });
      continue;
    }
    try {
      logHandler(entry);
    } catch {
      // A failing logger must not fail the run that produced the line.
    }
  }
}

/** Once per thread, after the library is loaded: receive its log lines, and stop native work at process exit. */
function hookEnvironment(addon: AddonTypes): void {
  if (hooked) return;
  hooked = true;
  addon.setLogListener(deliverLog);
  deliverLog(addon.takeRuntimeLog());
  // Runs and loads still inside ONNX Runtime when the process exits would race its static destructors (a crash):
  // the 'exit' event comes before those, so the addon stops its threads here (bounded; see stopForExit).
  if (isMainThread) process.on('exit', (code) => addon.stopForExit(code));
}

function toRuntimeInfo(state: NativeRuntimeState, runSpinMicros: number, ioPollMicros: number): RuntimeInfo {
  ortProviders = state.availableProviders;
  return Object.freeze({
    libraryPath: state.libraryPath,
    version: state.version,
    apiVersion: state.apiVersion,
    runThreads: state.runThreads,
    runSpinMicros,
    ioPollMicros,
    availableProviders: Object.freeze(state.availableProviders.map(normalizeProviderName)),
  });
}

/** Turns an error thrown by the addon (it carries `code`) into a ForecastdError. */
function runtimeError(error: unknown): Error {
  if (error instanceof ForecastdError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const ortCode = (error as { ortCode?: unknown } | null)?.ortCode;
  return new ForecastdError('ERR_RUNTIME_LOAD', message, { cause: error, ...(typeof ortCode === 'string' ? { ortCode } : {}) });
}

/** An integer option from `min` to `max`, or ERR_INVALID_ARGUMENT naming it. */
function checkInteger(value: unknown, what: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new ForecastdError('ERR_INVALID_ARGUMENT', `${what} must be an integer from ${min} to ${max}, got ${String(value)}`);
  }
  return value;
}

function checkRunThreads(value: unknown): number {
  return value === undefined ? 0 : checkInteger(value, 'runThreads', 1, 1024);
}

const MAX_SPIN_MICROS = 100_000;

function checkSpin(value: unknown, what: string): number {
  return checkInteger(value, what, 0, MAX_SPIN_MICROS);
}

/**
 * A budget in microseconds asked for (runSpinMicros, ioPollMicros): the option, else the environment variable,
 * else undefined (keep the current one). ERR_INVALID_ARGUMENT naming the option or variable when out of range.
 */
export function microsecondsChoice(option: number | undefined, optionName: string, variable: string): number | undefined {
  if (option !== undefined) return checkSpin(option, optionName);
  const fromEnv = process.env[variable];
  if (fromEnv === undefined || fromEnv === '') return undefined;
  const value = /^\d+$/.test(fromEnv.trim()) ? Number(fromEnv.trim()) : NaN;
  if (!(value >= 0 && value <= MAX_SPIN_MICROS)) {
    throw new ForecastdError('ERR_INVALID_ARGUMENT', `${variable} must be an integer from 0 to ${MAX_SPIN_MICROS}, got "${fromEnv}"`);
  }
  return value;
}

/**
 * Chooses the ONNX Runtime library and the size of the addon's run thread pool, once per process. Calling it
 * again (or from a worker thread) with the same library, or with no library, returns the current state; asking
 * for a different library or pool size is an ERR_RUNTIME_LOAD error naming both. `runSpinMicros` and `ioPollMicros` may change on
 * any call.
 */
export function configureRuntime(options: RuntimeOptions = {}): RuntimeInfo {
  if (options.libraryPath !== undefined && (typeof options.libraryPath !== 'string' || options.libraryPath === '')) {
    throw new ForecastdError('ERR_INVALID_ARGUMENT', 'libraryPath must be a non-empty string');
  }
  const runThreads = checkRunThreads(options.runThreads);
  const spin = microsecondsChoice(options.runSpinMicros, 'runSpinMicros', 'FORECASTD_RUN_SPIN_US');
  const ioPoll = microsecondsChoice(options.ioPollMicros, 'ioPollMicros', 'FORECASTD_IO_POLL_US');
  const addon = loadAddon();
  const current = addon.runtimeState();
  let libraryPath: string;
  if (options.libraryPath !== undefined) {
    libraryPath = path.resolve(options.libraryPath);
    if (current === null && !existsSync(libraryPath)) {
      throw new ForecastdError('ERR_RUNTIME_LOAD', `the ONNX Runtime library ${libraryPath} does not exist`);
    }
  } else if (current !== null) {
    libraryPath = current.libraryPath;
  } else {
    const candidates = defaultLibraryCandidates();
    const found = candidates.find((c) => existsSync(c));
    if (found === undefined) {
      throw new ForecastdError(
        'ERR_RUNTIME_LOAD',
        [
          'cannot find the ONNX Runtime library. Looked for:',
          ...candidates.map((c) => `  ${c}`),
          'Install onnxruntime-node (npm install onnxruntime-node), or set FORECASTD_ORT_LIBRARY or',
          'configureRuntime({ libraryPath }) to a libonnxruntime of version 1.29 or newer.',
        ].join('\n'),
      );
    }
    libraryPath = found;
  }
  try {
    const state = addon.configure(libraryPath, runThreads, availableCpus());
    info = toRuntimeInfo(state, addon.runSpin(spin), addon.ioPoll(ioPoll));
  } catch (error) {
    throw runtimeError(error);
  }
  hookEnvironment(addon);
  return info;
}

/**
 * ONNX Runtime's name for the execution provider `name` ("cuda" or "CUDAExecutionProvider") in the loaded
 * library, or undefined when the library lacks it. Configures the defaults first if needed.
 */
export function availableProvider(name: string): string | undefined {
  runtimeInfo();
  return ortProviderName(name, ortProviders);
}

/**
 * Raises this process's soft descriptor limit (RLIMIT_NOFILE, often 1024) to its hard limit, which needs no
 * privilege, and says what it was and is (-1: unlimited). A server calls it once at start.
 */
export function raiseOpenFileLimit(): OpenFileLimit {
  return loadAddon().raiseOpenFileLimit();
}

/**
 * A connection gate (native/connection_gate.cc) bounding a uWebSockets.js server on this thread to `max`
 * connections as they are accepted. Throws, saying why, where the addon cannot load or cannot install it.
 */
export function createConnectionGate(max: number): NativeConnectionGate {
  const addon = loadAddon();
  if (addon.createConnectionGate === undefined) {
    throw new ForecastdError('ERR_RUNTIME_LOAD', 'the native addon was built without the connection gate; rebuild it (npm run build:native)');
  }
  return addon.createConnectionGate(max);
}

/** The loaded runtime; configures the defaults first if nothing chose a library yet. */
export function runtimeInfo(): RuntimeInfo {
  return info ?? configureRuntime();
}
