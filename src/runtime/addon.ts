/**
 * Finds and loads the native addon (forecastd.node): a prebuild for this platform first, then the local
 * cmake-js build. The package root is found by walking up to forecastd's package.json, so this works from
 * src/runtime/addon.ts (tests) and from dist/runtime/addon.js (installed package) alike.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { ForecastdError } from '../errors.js';
import type {
  ExecutionMode,
  GraphOptimizationLevel,
  ModelMetadata,
  NumericTypedArray,
  OutputTensor,
  RunOutputs,
  RuntimeLogEntry,
  TensorInfo,
} from './types.js';

/** What configure() and runtimeState() return: the process-wide ONNX Runtime library as loaded. */
export interface NativeRuntimeState {
  readonly libraryPath: string;
  readonly version: string;
  readonly apiVersion: number;
  readonly runThreads: number;
  /** ONNX Runtime's own names, e.g. "CPUExecutionProvider". */
  readonly availableProviders: readonly string[];
}

/** The options object loadSession() reads; every field already validated by session.ts. */
export interface NativeSessionOptions {
  readonly intraOpThreads?: number;
  readonly interOpThreads?: number;
  readonly graphOptimizationLevel?: GraphOptimizationLevel;
  readonly executionMode?: ExecutionMode;
  /** ONNX Runtime's names, in priority order; "CPUExecutionProvider" needs no entry. */
  readonly executionProviders?: readonly string[];
}

/** A native Session object. Errors it rejects with carry a `code` (see src/errors.ts). */
export interface NativeSession {
  readonly inputs: readonly TensorInfo[];
  readonly outputs: readonly TensorInfo[];
  readonly metadata: ModelMetadata;
  run(
    inputNames: readonly string[],
    inputs: readonly NumericTypedArray[],
    shapes: readonly (readonly number[])[],
    outputNames: readonly string[],
  ): Promise<RunOutputs>;
  /** Drops this object's hold on the ORT session; runs in flight keep theirs. Safe to call twice. */
  dispose(): void;
}

/** The descriptor limit of the process (RLIMIT_NOFILE); -1 is unlimited. */
export interface OpenFileLimit {
  /** The soft limit before raiseOpenFileLimit() ran. */
  readonly before: number;
  readonly soft: number;
  readonly hard: number;
}

/** The connection gate of one server (native/connection_gate.cc). */
export interface NativeConnectionGate {
  /** Gates the uWebSockets.js listen socket on `port` of this thread's event loop; false when no single one is. */
  attach(port: number): boolean;
  /** Stops gating the listen socket (before it is closed); its connections are still counted as they close. */
  detach(): void;
  /**
   * The connections accepted through the gate and not closed yet, and those reset at once past the limit so
   * far. Also watches the listen socket again if the gate had stopped that for want of a descriptor.
   */
  check(): { readonly open: number; readonly refused: number };
  /** Stops gating and counting. */
  release(): void;
}

/** Exactly what forecastd.node exports (native/addon.cc). */
export interface AddonTypes {
  /**
   * Loads the ONNX Runtime library (first call in the process) or checks that `libraryPath` is the loaded one.
   * runThreads 0 = no preference; defaultRunThreads sizes the run pool on first load.
   */
  configure(libraryPath: string, runThreads: number, defaultRunThreads: number): NativeRuntimeState;
  /** The loaded library, or null before configure() succeeded anywhere in the process. */
  runtimeState(): NativeRuntimeState | null;
  /** The run threads' spin budget in microseconds, process-wide; sets it first when given (0 to 100000). */
  runSpin(microseconds?: number): number;
  /**
   * How long the JavaScript thread polls its event loop for I/O before sleeping while none of its runs is in
   * flight, in microseconds, process-wide; sets it first when given (0 to 100000).
   */
  ioPoll(microseconds?: number): number;
  /** Creates an ORT session on the addon's run threads. */
  loadSession(source: string | Uint8Array, options: NativeSessionOptions): Promise<NativeSession>;
  /**
   * A zero-filled typed array over memory the addon owns: run() holds such memory instead of copying it. An
   * ordinary typed array where external buffers are not allowed (then run() copies it).
   */
  allocateTensorData(elementType: 'float32' | 'float64', length: number): Float32Array | Float64Array;
  /** This environment's receiver of ONNX Runtime's log lines (called on this thread); undefined removes it. */
  setLogListener(listener: ((entries: RuntimeLogEntry[]) => void) | undefined): void;
  /** The log lines not delivered yet. */
  takeRuntimeLog(): RuntimeLogEntry[];
  /**
   * Raises the process's soft RLIMIT_NOFILE to its hard limit (where it is lower) and says what it was and
   * what it is now; -1 stands for unlimited.
   */
  raiseOpenFileLimit(): OpenFileLimit;
  /**
   * A gate that counts the connections a uWebSockets.js server holds, as its binary accepts and closes them,
   * and resets at once those past `max`. Throws where it cannot be installed; absent from addons built before it.
   */
  createConnectionGate?(max: number): NativeConnectionGate;
  /**
   * The values as a JSON array, each written as formatFloat32 writes it (the shortest decimal that reads back
   * as the same float32); null where a value lies next to a boundary that JavaScript's double-then-float reading
   * may see differently (a few in billions: the caller formats that array itself). A RangeError names the first
   * value that is not finite. Absent from addons built before it.
   */
  formatFloat32Json?(values: Float32Array): string | null;
  /**
   * The process is exiting (main thread's 'exit' event): stops the run pool, terminating running jobs and
   * waiting up to 2 s; past that, exits at once with `code` without ONNX Runtime's static destructors.
   */
  stopForExit(code: number): void;
  /** false when built for a runtime that forbids external ArrayBuffers (Electron): every output is a copy. */
  readonly externalBuffers: boolean;
  /** The Session class; instances come only from loadSession(). */
  readonly Session: abstract new (...args: never[]) => NativeSession;
}

const ADDON_FILE = 'forecastd.node';

let cachedRoot: string | undefined;
let cachedAddon: AddonTypes | undefined;

/** The forecastd package root: the nearest ancestor folder whose package.json is named "forecastd". */
export function packageRoot(): string {
  if (cachedRoot !== undefined) return cachedRoot;
  const start = path.dirname(fileURLToPath(import.meta.url));
  for (let dir = start; ; dir = path.dirname(dir)) {
    const manifest = path.join(dir, 'package.json');
    if (existsSync(manifest)) {
      try {
        const parsed = JSON.parse(readFileSync(manifest, 'utf8')) as { name?: unknown };
        if (parsed.name === 'forecastd') {
          cachedRoot = dir;
          return dir;
        }
      } catch {
        // An unreadable package.json of some other package: keep walking up.
      }
    }
    if (path.dirname(dir) === dir) {
      throw new ForecastdError('ERR_RUNTIME_LOAD', `cannot find the forecastd package root above ${start}`);
    }
  }
}

/**
 * The addon binaries to try, in order: prebuilds/<platform>-<arch>/ (forecastd.node first), then the cmake-js
 * build in build/Release. A local build newer than the prebuild goes first: it is what was just compiled from
 * these sources, and an older prebuild must not shadow it.
 */
export function addonCandidates(root: string = packageRoot()): string[] {
  const prebuildDir = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
  const prebuilds: string[] = [];
  if (existsSync(prebuildDir)) {
    const files = readdirSync(prebuildDir)
      .filter((f) => f.endsWith('.node'))
      .sort((a, b) => (a === ADDON_FILE ? -1 : b === ADDON_FILE ? 1 : a.localeCompare(b)));
    for (const f of files) prebuilds.push(path.join(prebuildDir, f));
  }
  if (prebuilds.length === 0) prebuilds.push(path.join(prebuildDir, ADDON_FILE));
  const local = path.join(root, 'build', 'Release', ADDON_FILE);
  const newest = prebuilds.find((p) => existsSync(p));
  if (existsSync(local) && (newest === undefined || statSync(local).mtimeMs > statSync(newest).mtimeMs)) {
    return [local, ...prebuilds];
  }
  return [...prebuilds, local];
}

function glibcVersion(): string | undefined {
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
  return report?.header?.glibcVersionRuntime;
}

/**
 * Loads forecastd.node once per JavaScript environment (each worker thread gets its own instance).
 * $FORECASTD_ADDON names one binary to load instead of searching (a sanitizer or Electron build, for example).
 */
export function loadAddon(): AddonTypes {
  if (cachedAddon !== undefined) return cachedAddon;
  const root = packageRoot();
  const require = createRequire(import.meta.url);
  const failures: string[] = [];
  const chosen = process.env['FORECASTD_ADDON'];
  const candidates = chosen !== undefined && chosen !== '' ? [path.resolve(chosen)] : addonCandidates(root);
  for (const candidate of candidates) {
    if (!existsSync(candidate)) {
      failures.push(`  ${candidate}: not found`);
      continue;
    }
    try {
      cachedAddon = require(candidate) as AddonTypes;
      return cachedAddon;
    } catch (error) {
      failures.push(`  ${candidate}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  const glibc = glibcVersion();
  throw new ForecastdError(
    'ERR_RUNTIME_LOAD',
    [
      `cannot load the forecastd native addon for ${process.platform}-${process.arch} (Node.js ${process.version}` +
        `${glibc !== undefined ? `, glibc ${glibc}` : ''}). Tried:`,
      ...failures,
      'To fix it:',
      '  - install a C++17 compiler and CMake (Debian/Ubuntu: apt-get install g++ cmake), then run',
      `    "npm rebuild forecastd" in your project, or "npm run build:native" in ${root}`,
      '  - or use a platform the prebuilt binary supports (prebuilds/linux-x64: glibc 2.34+ and libstdc++ of GCC 12+)',
    ].join('\n'),
  );
}
