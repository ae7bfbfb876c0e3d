import { execFileSync } from 'node:child_process';
import { copyFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ForecastdError } from '../../src/errors.js';
import { loadAddon } from '../../src/runtime/addon.js';
import {
  configureRuntime,
  defaultLibraryCandidates,
  normalizeProviderName,
  runtimeInfo,
} from '../../src/runtime/runtime.js';

// This file runs in its own process (vitest forks per file), so it sees the runtime before anything chose it.

let tmp: string;
let oldLibrary: string;
let notOrt: string;

function compileSharedLibrary(source: string, name: string): string {
  const file = path.join(tmp, name);
  execFileSync('cc', ['-shared', '-fPIC', '-x', 'c', '-', '-o', file], { input: source });
  return file;
}

function expectRuntimeError(action: () => unknown, ...patterns: RegExp[]): void {
  let caught: unknown;
  try {
    action();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(ForecastdError);
  expect((caught as ForecastdError).code).toBe('ERR_RUNTIME_LOAD');
  for (const pattern of patterns) expect((caught as Error).message).toMatch(pattern);
}

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'forecastd-runtime-'));
  // An ONNX Runtime older than the C API the addon needs: GetApi(29) returns NULL, as ORT 1.16 would.
  oldLibrary = compileSharedLibrary(
    `
    typedef struct { const void* (*GetApi)(unsigned); const char* (*GetVersionString)(void); } OrtApiBase;
    static const void* get_api(unsigned version) { return (void*)0; }
    static const char* version_string(void) { return "1.16.3"; }
    static const OrtApiBase base = { get_api, version_string };
    const OrtApiBase* OrtGetApiBase(void) { return &base; }
    `,
    'libonnxruntime-old.so',
  );
  notOrt = compileSharedLibrary('int forecastd_unrelated(void) { return 1; }', 'libunrelated.so');
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('normalizeProviderName', () => {
  it('maps ONNX Runtime names to short lower-case names', () => {
    expect(normalizeProviderName('CPUExecutionProvider')).toBe('cpu');
    expect(normalizeProviderName('CUDAExecutionProvider')).toBe('cuda');
    expect(normalizeProviderName('TensorrtExecutionProvider')).toBe('tensorrt');
    expect(normalizeProviderName('DmlExecutionProvider')).toBe('dml');
    expect(normalizeProviderName('CoreMLExecutionProvider')).toBe('coreml');
    expect(normalizeProviderName('WebGpuExecutionProvider')).toBe('webgpu');
  });
});

describe('configureRuntime', () => {
  it('starts unconfigured', () => {
    expect(loadAddon().runtimeState()).toBeNull();
  });

  it('reports a missing library file', () => {
    const missing = path.join(tmp, 'nowhere', 'libonnxruntime.so.1');
    expectRuntimeError(() => configureRuntime({ libraryPath: missing }), new RegExp(`${missing} does not exist`));
  });

  it('lists where it looked when FORECASTD_ORT_LIBRARY points nowhere', () => {
    const missing = path.join(tmp, 'env', 'libonnxruntime.so.1');
    process.env['FORECASTD_ORT_LIBRARY'] = missing;
    try {
      expect(defaultLibraryCandidates()).toEqual([missing]);
      expectRuntimeError(() => runtimeInfo(), /Looked for:/, new RegExp(missing), /FORECASTD_ORT_LIBRARY/);
    } finally {
      delete process.env['FORECASTD_ORT_LIBRARY'];
    }
  });

  it('names the path, its version and the minimum when the library is too old', () => {
    expectRuntimeError(
      () => configureRuntime({ libraryPath: oldLibrary }),
      new RegExp(oldLibrary),
      /version 1\.16\.3/,
      /needs 1\.29 or newer/,
    );
  });

  it('rejects a shared library that is not ONNX Runtime', () => {
    expectRuntimeError(() => configureRuntime({ libraryPath: notOrt }), /no OrtGetApiBase symbol/, new RegExp(notOrt));
  });

  it('rejects a bad runThreads', () => {
    expect(() => configureRuntime({ runThreads: 0 })).toThrow(/runThreads must be an integer/);
  });

  it('loads the default library once, then refuses a different one', () => {
    expect(loadAddon().runtimeState()).toBeNull();
    const info = configureRuntime({ runThreads: 3 });
    expect(info.libraryPath).toBe(defaultLibraryCandidates()[0]);
    expect(info.runThreads).toBe(3);
    expect(info.version).toMatch(/^1\.\d+\.\d+/);
    expect(runtimeInfo()).toEqual(info);
    // The same library again, or no preference, is fine.
    expect(configureRuntime({ libraryPath: info.libraryPath })).toEqual(info);
    expect(configureRuntime()).toEqual(info);
    // A copy of the same library at another path is still another choice.
    const copy = path.join(tmp, 'libonnxruntime.so.1');
    copyFileSync(info.libraryPath, copy);
    expectRuntimeError(
      () => configureRuntime({ libraryPath: copy }),
      new RegExp(`already loaded from ${info.libraryPath}`),
      new RegExp(copy),
    );
    expectRuntimeError(() => configureRuntime({ runThreads: 5 }), /already has 3 threads/);
  });
});

describe('the raw addon', () => {
  it('refuses to build a Session from JavaScript', () => {
    const { Session } = loadAddon();
    expect(() => Reflect.construct(Session, [])).toThrow(/created by loadSession/);
  });

  it('rejects malformed run arguments in native code too', async () => {
    const { loadSession } = loadAddon();
    const model = await writeModel();
    const session = await loadSession(model, {});
    expect(() => session.run(['window'], [new Float32Array(2)], [[1, 2, 3]], ['forecast'])).toThrow(RangeError);
    expect(() => session.run(['window'], [new Float64Array(2)], [[1, 2]], ['forecast'])).toThrow(TypeError);
    expect(() => session.run(['window'], [new Float32Array(3)], [[1, 2]], ['forecast'])).toThrow(RangeError);
    expect(() => session.run([], [], [], ['forecast'])).toThrow(/input window is missing/);
    expect(() => session.run(['window'], [new Float32Array(2)], [[1, 2]], [])).toThrow(/at least one output/);
    const out = await session.run(['window'], [new Float32Array([1, 2])], [[1, 2]], ['forecast']);
    expect(Array.from(out[0]?.data as Float32Array)).toEqual([3]);
    session.dispose();
    let disposed: unknown;
    try {
      session.run(['window'], [new Float32Array([1, 2])], [[1, 2]], ['forecast']);
    } catch (error) {
      disposed = error;
    }
    expect((disposed as { code?: string }).code).toBe('ERR_DISPOSED');
  });
});

async function writeModel(): Promise<string> {
  const { linearModel } = await import('../../tools/onnx-builder.js');
  const file = path.join(tmp, 'sum.onnx');
  await writeFile(file, linearModel({ lookback: 2, horizon: 1, weights: [1, 1], rank: 2 }));
  return file;
}
