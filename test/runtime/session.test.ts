import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ForecastdError } from '../../src/errors.js';
import { addonCandidates } from '../../src/runtime/addon.js';
import { runtimeInfo } from '../../src/runtime/runtime.js';
import { InferenceSession } from '../../src/runtime/session.js';
import type { OutputTensor } from '../../src/runtime/types.js';
import {
  contractViolationModel,
  linearModel,
  linearReference,
  mlpModel,
  mlpReference,
  mlpWeights,
  multiOutputModel,
  seededRandom,
  slowModel,
  slowReference,
  uniformWeights,
} from '../../tools/onnx-builder.js';

const LOOKBACK = 6;
const VARIABLES = 2;
const HORIZON = 3;
const random = seededRandom(42);
const LINEAR = {
  horizon: HORIZON,
  weights: uniformWeights(random, LOOKBACK * VARIABLES * HORIZON, 1),
  bias: [0.5, -0.25, 1],
};
const MLP = { lookback: 8, hidden: [16, 16], horizon: 4, seed: 3 };

function windowOf(seed: number, length: number): Float32Array {
  return uniformWeights(seededRandom(seed), length, 10);
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance: number): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i] as number;
    expect(Math.abs((actual[i] as number) - e)).toBeLessThanOrEqual(tolerance * Math.max(1, Math.abs(e)));
  }
}

function only(outputs: OutputTensor[]): OutputTensor {
  expect(outputs).toHaveLength(1);
  return outputs[0] as OutputTensor;
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(Error);
    return error as Error;
  }
  throw new Error('expected the promise to reject');
}

let tmp: string;
let linear: InferenceSession;

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'forecastd-session-'));
  linear = await InferenceSession.load(
    linearModel({
      lookback: LOOKBACK,
      variables: VARIABLES,
      ...LINEAR,
      modelVersion: 7,
      producerName: 'forecastd-tests',
      domain: 'ai.forecastd.test',
      docString: 'a linear forecaster',
      graphName: 'linear_graph',
      graphDocString: 'flatten, matmul, add',
      metadata: { trained_on: 'co2_weekly', lookback: '6' },
    }),
  );
});

afterAll(async () => {
  linear.dispose();
  await rm(tmp, { recursive: true, force: true });
});

describe('runtime', () => {
  it('reports the bundled ONNX Runtime with normalised provider names', () => {
    const info = runtimeInfo();
    expect(info.version).toMatch(/^1\.(29|[3-9]\d)\.\d+/);
    expect(info.apiVersion).toBe(29);
    expect(info.libraryPath).toMatch(/onnxruntime-node.*libonnxruntime/);
    expect(info.availableProviders).toContain('cpu');
    expect(info.availableProviders.every((p) => /^[a-z0-9]+$/.test(p))).toBe(true);
    expect(info.runThreads).toBe(os.availableParallelism());
  });
});

describe('inspection', () => {
  it('lists inputs and outputs with symbolic dimensions by name', () => {
    expect(linear.inputs).toEqual([{ name: 'window', type: 'float32', shape: ['batch', LOOKBACK, VARIABLES] }]);
    expect(linear.outputs).toEqual([{ name: 'forecast', type: 'float32', shape: ['batch', HORIZON] }]);
  });

  it('shows unnamed symbolic dimensions as "?"', async () => {
    const session = await InferenceSession.load(
      linearModel({ lookback: 4, horizon: 2, weights: new Float32Array(8), batch: null, lookbackDim: null, rank: 2 }),
    );
    expect(session.inputs[0]?.shape).toEqual(['?', '?']);
    expect(session.outputs[0]?.shape).toEqual(['?', 2]);
    session.dispose();
  });

  it('reads the model metadata', () => {
    expect(linear.metadata).toEqual({
      producerName: 'forecastd-tests',
      graphName: 'linear_graph',
      domain: 'ai.forecastd.test',
      description: 'a linear forecaster',
      graphDescription: 'flatten, matmul, add',
      version: '7',
      custom: { trained_on: 'co2_weekly', lookback: '6' },
    });
  });

  it('reports element types of every output', async () => {
    const session = await InferenceSession.load(multiOutputModel({ lookback: 4, horizon: 2, weights: new Float32Array(8) }));
    expect(session.outputs.map((o) => [o.name, o.type, o.shape])).toEqual([
      ['forecast', 'float32', ['batch', 2]],
      ['window_sum', 'float32', ['batch']],
      ['window_argmax', 'int64', ['batch', 1]],
    ]);
    session.dispose();
  });
});

describe('results', () => {
  it('match a reference computed in JavaScript', async () => {
    const window = windowOf(1, LOOKBACK * VARIABLES);
    const out = only(await linear.run({ window: { data: window, shape: [1, LOOKBACK, VARIABLES] } }));
    expect(out.name).toBe('forecast');
    expect(out.type).toBe('float32');
    expect(out.shape).toEqual([1, HORIZON]);
    expect(out.data).toBeInstanceOf(Float32Array);
    expectClose(out.data as Float32Array, linearReference(LINEAR, window), 1e-5);
  });

  it('runs an MLP like its reference', async () => {
    const session = await InferenceSession.load(mlpModel(MLP));
    const window = windowOf(2, MLP.lookback);
    const out = only(await session.run({ window: { data: window, shape: [1, MLP.lookback, 1] } }));
    expectClose(out.data as Float32Array, mlpReference(mlpWeights(MLP), window), 1e-4);
    session.dispose();
  });

  it('gives a batch the same answers as its windows one by one', async () => {
    const session = await InferenceSession.load(mlpModel(MLP));
    const batch = 9;
    const data = windowOf(3, batch * MLP.lookback);
    const whole = only(await session.run({ window: { data, shape: [batch, MLP.lookback, 1] } }));
    expect(whole.shape).toEqual([batch, MLP.horizon]);
    for (let b = 0; b < batch; b++) {
      const window = data.slice(b * MLP.lookback, (b + 1) * MLP.lookback);
      const single = only(await session.run({ window: { data: window, shape: [1, MLP.lookback, 1] } }));
      const row = (whole.data as Float32Array).subarray(b * MLP.horizon, (b + 1) * MLP.horizon);
      expectClose(single.data as Float32Array, row, 1e-5);
      expectClose(row, mlpReference(mlpWeights(MLP), window), 1e-4);
    }
    session.dispose();
  });

  it('runs float64 models with Float64Array in and out', async () => {
    const params = { horizon: 2, weights: uniformWeights(seededRandom(9), 10, 1), bias: 0.125 };
    const session = await InferenceSession.load(linearModel({ lookback: 5, rank: 2, dtype: 'float64', ...params }));
    expect(session.inputs[0]?.type).toBe('float64');
    const window = Float64Array.from({ length: 5 }, (_, i) => Math.PI * (i + 1));
    const out = only(await session.run({ window: { data: window, shape: [1, 5] } }));
    expect(out.type).toBe('float64');
    expect(out.data).toBeInstanceOf(Float64Array);
    expectClose(out.data as Float64Array, linearReference(params, window), 1e-12);
    const wrong = await rejection(session.run({ window: { data: Float32Array.from(window), shape: [1, 5] } }));
    expect(wrong).toBeInstanceOf(TypeError);
    expect(wrong.message).toMatch(/float64.*Float64Array.*Float32Array/);
    session.dispose();
  });

  it('loads a model from a file path', async () => {
    const file = path.join(tmp, 'mlp.onnx');
    await writeFile(file, mlpModel(MLP));
    const session = await InferenceSession.load(file);
    const window = windowOf(4, MLP.lookback);
    const out = only(await session.run({ window: { data: window, shape: [1, MLP.lookback, 1] } }));
    expectClose(out.data as Float32Array, mlpReference(mlpWeights(MLP), window), 1e-4);
    session.dispose();
  });

  it('returns the outputs asked for, in that order, with int64 as BigInt64Array', async () => {
    const params = { horizon: 2, weights: uniformWeights(seededRandom(5), 8, 1) };
    const session = await InferenceSession.load(multiOutputModel({ lookback: 4, rank: 2, ...params }));
    const data = new Float32Array([1, 9, 3, 4, 8, 2, 1, 0]);
    const outs = await session.run({ window: { data, shape: [2, 4] } }, { outputs: ['window_argmax', 'window_sum'] });
    expect(outs.map((o) => o.name)).toEqual(['window_argmax', 'window_sum']);
    expect(outs[0]?.data).toEqual(new BigInt64Array([1n, 0n]));
    expect(outs[0]?.shape).toEqual([2, 1]);
    expect(Array.from(outs[1]?.data as Float32Array)).toEqual([17, 11]);
    session.dispose();
  });

  it('gives each run its own output memory', async () => {
    const a = only(await linear.run({ window: { data: windowOf(5, 12), shape: [1, LOOKBACK, VARIABLES] } }));
    const b = only(await linear.run({ window: { data: windowOf(6, 12), shape: [1, LOOKBACK, VARIABLES] } }));
    const before = Array.from(b.data as Float32Array);
    (a.data as Float32Array).fill(123);
    expect(Array.from(b.data as Float32Array)).toEqual(before);
  });

  it('honours intraOpThreads, interOpThreads, optimisation level and execution mode', async () => {
    const session = await InferenceSession.load(mlpModel(MLP), {
      intraOpThreads: 2,
      interOpThreads: 2,
      graphOptimizationLevel: 'disabled',
      executionMode: 'parallel',
    });
    const window = windowOf(7, MLP.lookback);
    const out = only(await session.run({ window: { data: window, shape: [1, MLP.lookback, 1] } }));
    expectClose(out.data as Float32Array, mlpReference(mlpWeights(MLP), window), 1e-4);
    session.dispose();
  });
});

describe('concurrency', () => {
  it('keeps the event loop turning while a slow model runs', async () => {
    const spec = { size: 256, depth: 300, horizon: 2 };
    const session = await InferenceSession.load(slowModel(spec));
    const window = windowOf(8, spec.size);
    let ticks = 0;
    let running = true;
    const spin = (): void => {
      ticks++;
      if (running) setImmediate(spin);
    };
    setImmediate(spin);
    const runs = [1, 2, 3, 4].map(() => session.run({ window: { data: window, shape: [1, spec.size] } }));
    const results = await Promise.all(runs);
    running = false;
    // Runs on the JavaScript thread would settle before the first turn (ticks 0). How many turns pass beyond the
    // first depends on how much CPU the test process gets beside the run threads and other test files.
    expect(ticks).toBeGreaterThan(0);
    const reference = slowReference(spec, window);
    for (const result of results) expectClose(only(result).data as Float32Array, reference, 1e-3);
    session.dispose();
  });

  it('answers 200 concurrent runs correctly', async () => {
    const windows = Array.from({ length: 200 }, (_, i) => windowOf(100 + i, LOOKBACK * VARIABLES));
    const results = await Promise.all(
      windows.map((data) => linear.run({ window: { data, shape: [1, LOOKBACK, VARIABLES] } })),
    );
    results.forEach((result, i) => {
      expectClose(only(result).data as Float32Array, linearReference(LINEAR, windows[i] as Float32Array), 1e-5);
    });
  });

  it('lets runs in flight finish when the session is disposed', async () => {
    const spec = { size: 128, depth: 200, horizon: 1 };
    const session = await InferenceSession.load(slowModel(spec));
    const window = windowOf(9, spec.size);
    const runs = [0, 1, 2, 3, 4, 5].map(() => session.run({ window: { data: window, shape: [1, spec.size] } }));
    session.dispose();
    session.dispose();
    expect(session.disposed).toBe(true);
    const results = await Promise.all(runs);
    const reference = slowReference(spec, window);
    for (const result of results) expectClose(only(result).data as Float32Array, reference, 1e-3);
    const late = await rejection(session.run({ window: { data: window, shape: [1, spec.size] } }));
    expect(late).toBeInstanceOf(ForecastdError);
    expect((late as ForecastdError).code).toBe('ERR_DISPOSED');
    expect(late.message).toMatch(/disposed/);
  });
});

describe('errors', () => {
  const feed = (data: Float32Array, shape: number[]) => ({ window: { data, shape } });

  it('rejects a typed array of the wrong type with TypeError', async () => {
    const error = await rejection(
      linear.run({ window: { data: new Float64Array(12), shape: [1, LOOKBACK, VARIABLES] } }),
    );
    expect(error).toBeInstanceOf(TypeError);
    expect(error.message).toBe('input window has element type float32 and needs a Float32Array, got Float64Array');
  });

  it('rejects a length that does not fit the shape with RangeError', async () => {
    const error = await rejection(linear.run(feed(new Float32Array(11), [1, LOOKBACK, VARIABLES])));
    expect(error).toBeInstanceOf(RangeError);
    expect(error.message).toBe('input window has 11 elements, but shape [1, 6, 2] needs 12');
  });

  it('rejects a shape that contradicts a concrete dimension or the rank with RangeError', async () => {
    const dim = await rejection(linear.run(feed(new Float32Array(12), [1, 12, 1])));
    expect(dim).toBeInstanceOf(RangeError);
    expect(dim.message).toMatch(/needs shape \[batch, 6, 2\], got \[1, 12, 1\]/);
    const rank = await rejection(linear.run(feed(new Float32Array(12), [1, 12])));
    expect(rank).toBeInstanceOf(RangeError);
    expect(rank.message).toMatch(/rank 3/);
    const negative = await rejection(linear.run(feed(new Float32Array(0), [-1, 6, 2])));
    expect(negative).toBeInstanceOf(RangeError);
  });

  it('rejects unknown and missing inputs and unknown outputs', async () => {
    const unknown = await rejection(
      linear.run({ window: { data: new Float32Array(12), shape: [1, 6, 2] }, extra: { data: new Float32Array(1), shape: [1] } }),
    );
    expect(unknown).toBeInstanceOf(TypeError);
    expect(unknown.message).toMatch(/no input named extra; its inputs are: window/);
    const twoInputs = await InferenceSession.load(contractViolationModel('two-inputs'));
    const missing = await rejection(twoInputs.run({ window: { data: new Float32Array(4), shape: [1, 4] } }));
    expect(missing).toBeInstanceOf(TypeError);
    expect(missing.message).toBe('missing input: offset');
    twoInputs.dispose();
    const output = await rejection(linear.run(feed(new Float32Array(12), [1, 6, 2]), { outputs: ['nope'] }));
    expect(output).toBeInstanceOf(TypeError);
    expect(output.message).toMatch(/no output named nope/);
  });

  it('reports a failure inside ONNX Runtime as ERR_INFERENCE with its message', async () => {
    // The lookback dimension is symbolic, so a window of the wrong length passes the shape check and fails in MatMul.
    const session = await InferenceSession.load(
      linearModel({ lookback: 4, horizon: 2, weights: new Float32Array(8), lookbackDim: 'lookback', rank: 2 }),
    );
    const error = await rejection(session.run({ window: { data: new Float32Array(5), shape: [1, 5] } }));
    expect(error).toBeInstanceOf(ForecastdError);
    expect((error as ForecastdError).code).toBe('ERR_INFERENCE');
    expect(error.message).toMatch(/GEMM|MatMul|dimension/i);
    // The session keeps working after a failed run.
    const ok = only(await session.run({ window: { data: new Float32Array(4), shape: [1, 4] } }));
    expect(Array.from(ok.data as Float32Array)).toEqual([0, 0]);
    session.dispose();
  });

  it('points the error stack at the caller', async () => {
    const error = await rejection(linear.run(feed(new Float32Array(3), [1, 6, 2])));
    expect(error.stack).toMatch(/session\.test\.ts/);
    const load = await rejection(InferenceSession.load(new Uint8Array([1, 2, 3])));
    expect(load.stack).toMatch(/session\.test\.ts/);
  });

  it('rejects missing, corrupt and non-ONNX models with ERR_MODEL_LOAD naming the file', async () => {
    const missingPath = path.join(tmp, 'absent.onnx');
    const missing = await rejection(InferenceSession.load(missingPath));
    expect(missing).toBeInstanceOf(ForecastdError);
    expect((missing as ForecastdError).code).toBe('ERR_MODEL_LOAD');
    expect(missing.message).toContain(missingPath);
    expect(missing.message).toMatch(/File doesn't exist/);

    const textPath = path.join(tmp, 'notes.onnx');
    await writeFile(textPath, 'this is not a model\n'.repeat(20));
    const text = await rejection(InferenceSession.load(textPath));
    expect((text as ForecastdError).code).toBe('ERR_MODEL_LOAD');
    expect(text.message).toContain(textPath);
    expect(text.message).toMatch(/protobuf parsing failed|failed/i);

    const truncated = mlpModel(MLP).subarray(0, 300);
    const bytes = await rejection(InferenceSession.load(truncated));
    expect((bytes as ForecastdError).code).toBe('ERR_MODEL_LOAD');
    expect(bytes.message).toMatch(/^cannot load model from 300 bytes: /);
  });

  it('rejects an execution provider the library cannot provide', async () => {
    const model = linearModel({ lookback: 4, horizon: 2, weights: new Float32Array(8) });
    const cuda = await rejection(InferenceSession.load(model, { executionProviders: ['cuda'] }));
    expect((cuda as ForecastdError).code).toBe('ERR_MODEL_LOAD');
    expect(cuda.message).toMatch(/CUDA/);
    expect(cuda.message).toMatch(/cpu/);
    const unknown = await rejection(InferenceSession.load(model, { executionProviders: ['npu9000'] }));
    expect((unknown as ForecastdError).code).toBe('ERR_MODEL_LOAD');
    expect(unknown.message).toMatch(/"npu9000" is not available .*available: .*cpu/);
    // The full ONNX Runtime name works as well as the short one.
    const cpu = await InferenceSession.load(model, { executionProviders: ['CPUExecutionProvider'] });
    cpu.dispose();
  });

  it('rejects bad session options with ERR_INVALID_ARGUMENT', async () => {
    const model = linearModel({ lookback: 4, horizon: 2, weights: new Float32Array(8) });
    for (const options of [
      { intraOpThreads: 0 },
      { intraOpThreads: 1.5 },
      { graphOptimizationLevel: 'max' as never },
      { executionMode: 'async' as never },
      { executionProviders: [] },
    ]) {
      const error = await rejection(InferenceSession.load(model, options));
      expect((error as ForecastdError).code).toBe('ERR_INVALID_ARGUMENT');
    }
  });
});

/** The built addon this process loaded (tests in this file run against the local build or a prebuild). */
function addonPath(): string {
  // The binary loadAddon() chose: $FORECASTD_ADDON when set (a sanitizer build, say), else the first one found.
  const chosen = process.env['FORECASTD_ADDON'];
  if (chosen !== undefined && chosen !== '') return path.resolve(chosen);
  const found = addonCandidates().find((candidate) => existsSync(candidate));
  if (found === undefined) throw new Error('the addon is not built: run npm run build:native');
  return found;
}

// Plain JavaScript for worker threads and child processes, which cannot import TypeScript: it drives the raw
// addon exactly as src/runtime does.
const RAW_CLIENT = `
const { workerData, parentPort } = require('node:worker_threads');
const addon = require(workerData.addonPath);
async function main() {
  const state = addon.configure(workerData.libraryPath, 0, 1);
  const session = await addon.loadSession(workerData.model, { executionProviders: [] });
  const outputs = await session.run(['window'], [workerData.window], [workerData.shape], ['forecast']);
  const slow = workerData.slowModel ? await addon.loadSession(workerData.slowModel, {}) : undefined;
  if (slow) for (let i = 0; i < 4; i++) slow.run(['window'], [new Float32Array(256)], [[1, 256]], ['forecast']);
  return { libraryPath: state.libraryPath, inputs: session.inputs, forecast: Array.from(outputs[0].data) };
}
main().then((result) => parentPort.postMessage(result), (error) => parentPort.postMessage({ error: String(error) }));
`;

describe('worker threads', () => {
  it('load and run models in a worker, sharing the process-wide runtime', async () => {
    const window = windowOf(10, LOOKBACK * VARIABLES);
    const worker = new Worker(RAW_CLIENT, {
      eval: true,
      workerData: {
        addonPath: addonPath(),
        libraryPath: runtimeInfo().libraryPath,
        model: linearModel({ lookback: LOOKBACK, variables: VARIABLES, ...LINEAR }),
        window,
        shape: [1, LOOKBACK, VARIABLES],
      },
    });
    const result = await new Promise<{ libraryPath: string; forecast: number[]; error?: string }>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    expect(result.error).toBeUndefined();
    expect(result.libraryPath).toBe(runtimeInfo().libraryPath);
    expectClose(result.forecast, linearReference(LINEAR, window), 1e-5);
    expect(await worker.terminate()).toBeDefined();
  });

  it('survives a worker terminated while its runs are in flight', async () => {
    const worker = new Worker(RAW_CLIENT, {
      eval: true,
      workerData: {
        addonPath: addonPath(),
        libraryPath: runtimeInfo().libraryPath,
        model: linearModel({ lookback: LOOKBACK, variables: VARIABLES, ...LINEAR }),
        slowModel: slowModel({ size: 256, depth: 400 }),
        window: new Float32Array(LOOKBACK * VARIABLES),
        shape: [1, LOOKBACK, VARIABLES],
      },
    });
    const first = await new Promise<{ error?: string }>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    expect(first.error).toBeUndefined();
    await worker.terminate();
    // This environment's runs are unaffected.
    const window = windowOf(11, LOOKBACK * VARIABLES);
    const out = only(await linear.run({ window: { data: window, shape: [1, LOOKBACK, VARIABLES] } }));
    expectClose(out.data as Float32Array, linearReference(LINEAR, window), 1e-5);
  });
});

describe('process lifetime', () => {
  it('lets a process exit on its own once its runs are done', async () => {
    const modelPath = path.join(tmp, 'exit.onnx');
    await writeFile(modelPath, linearModel({ lookback: 2, horizon: 1, weights: [1, 1], rank: 2 }));
    const script = `
      const addon = require(${JSON.stringify(addonPath())});
      addon.configure(${JSON.stringify(runtimeInfo().libraryPath)}, 0, 2);
      addon.loadSession(${JSON.stringify(modelPath)}, {})
        .then((s) => s.run(['window'], [new Float32Array([2, 3])], [[1, 2]], ['forecast']))
        .then((out) => console.log('forecast', out[0].data[0]));
    `;
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(stdout.trim()).toBe('forecast 5');
    expect(code).toBe(0);
  });
});
