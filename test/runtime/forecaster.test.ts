import { afterAll, describe, expect, it, vi } from 'vitest';
import { ForecastdError } from '../../src/errors.js';
import { BatchingForecaster, type BatchInfo, type ForecasterOptions, type Prediction } from '../../src/runtime/forecaster.js';
import { InferenceSession } from '../../src/runtime/session.js';
import type { FloatArray } from '../../src/runtime/types.js';
import type { WindowSource } from '../../src/runtime/window.js';
import {
  linearModel,
  linearReference,
  mlpModel,
  mlpReference,
  mlpWeights,
  multiOutputModel,
  nonFiniteModel,
  seededRandom,
  slowModel,
  slowReference,
  uniformWeights,
  type MlpShape,
  type SlowModelOptions,
} from '../../tools/onnx-builder.js';

const sessions: InferenceSession[] = [];
async function load(bytes: Uint8Array): Promise<InferenceSession> {
  const session = await InferenceSession.load(bytes, { intraOpThreads: 1 });
  sessions.push(session);
  return session;
}
afterAll(() => {
  for (const s of sessions) s.dispose();
});

/** A forecaster that records every batch it runs. */
function forecaster(session: InferenceSession, options: ForecasterOptions = {}) {
  const batches: BatchInfo[] = [];
  const f = new BatchingForecaster(session, { ...options, onBatch: (b) => batches.push(b) });
  return { f, batches, sizes: () => batches.map((b) => b.size) };
}

type Outcome = { ok: true; value: Prediction } | { ok: false; error: unknown };
function outcome(p: Promise<Prediction>): Promise<Outcome> {
  return p.then(
    (value) => ({ ok: true, value }),
    (error: unknown) => ({ ok: false, error }),
  );
}

function errorOf(o: Outcome): ForecastdError {
  if (o.ok) throw new Error('expected a failure, got a prediction');
  expect(o.error).toBeInstanceOf(ForecastdError);
  return o.error as ForecastdError;
}

function valuesOf(o: Outcome): FloatArray {
  if (!o.ok) throw new Error(`expected a prediction, got ${String(o.error)}`);
  return o.value.values;
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance: number): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i] as number;
    const e = expected[i] as number;
    expect(Math.abs(a - e), `index ${i}: ${a} vs ${e}`).toBeLessThanOrEqual(tolerance * Math.max(1, Math.abs(e)));
  }
}

function randomWindows(count: number, length: number, seed: number): Float32Array[] {
  const random = seededRandom(seed);
  return Array.from({ length: count }, () => uniformWeights(random, length, 5));
}

// A linear model over 8 rows x 2 columns predicting 3 steps, with arbitrary weights.
const LOOKBACK = 8;
const VARIABLES = 2;
const HORIZON = 3;
const linearParams = {
  horizon: HORIZON,
  weights: uniformWeights(seededRandom(11), LOOKBACK * VARIABLES * HORIZON, 1),
  bias: [0.5, -0.25, 2],
};
const linearOptions = { lookback: LOOKBACK, variables: VARIABLES, ...linearParams };

const MLP: MlpShape = { lookback: 16, hidden: [32, 32], horizon: 4, seed: 3 };
const mlpLayers = mlpWeights(MLP);

// Slow enough that a run takes many milliseconds, small enough that the reference stays quick.
const SLOW: SlowModelOptions = { size: 384, depth: 1000, horizon: 2, seed: 5 };

describe('BatchingForecaster results', () => {
  it('batched results equal one-by-one results and the reference', async () => {
    const session = await load(linearModel(linearOptions));
    const windows = randomWindows(40, LOOKBACK * VARIABLES, 1);

    const single = forecaster(session, { variables: VARIABLES, maxBatchSize: 1, maxConcurrentRuns: 1 });
    const oneByOne: FloatArray[] = [];
    for (const w of windows) oneByOne.push((await single.f.predict(w)).values);
    expect(single.sizes().every((s) => s === 1)).toBe(true);

    const batched = forecaster(session, { variables: VARIABLES, maxConcurrentRuns: 1 });
    const results = await Promise.all(windows.map((w) => batched.f.predict(w)));
    // Callers in one tick share the run that the free slot starts.
    expect(batched.sizes()).toEqual([40]);

    results.forEach((r, i) => {
      const window = windows[i] as Float32Array;
      expect(r.values).toBeInstanceOf(Float32Array);
      expect(r.values.length).toBe(HORIZON);
      expectClose(r.values, oneByOne[i] as FloatArray, 1e-6);
      expectClose(r.values, linearReference(linearParams, window), 1e-5);
    });
    expect(results[5]?.batchSize).toBe(40);
    // Items of one run share its output buffer: each gets a view, not a copy.
    expect(results[5]?.values.buffer).toBe(results[6]?.values.buffer);
    expect(results[5]?.values.byteOffset).toBe(5 * HORIZON * 4);
  });

  it('runs a float64 [B, L] model, accepting float64 windows and window sources', async () => {
    const weights = uniformWeights(seededRandom(2), 6 * 2, 1);
    const session = await load(linearModel({ lookback: 6, rank: 2, dtype: 'float64', horizon: 2, weights }));
    const { f, sizes } = forecaster(session, { maxConcurrentRuns: 1 });
    expect(f.shape).toMatchObject({ rank: 2, inputType: 'float64', outputType: 'float64', lookback: 6, variables: 1 });

    const copies: number[] = [];
    const source = (values: number[]): WindowSource => ({
      length: values.length,
      copyInto(target, offset) {
        copies.push(offset);
        for (let i = 0; i < values.length; i++) target[offset + i] = values[i] as number;
      },
    });
    const a = [1, 2, 3, 4, 5, 6];
    const b = [-1, 0.5, 7, 2, 2, 9];
    const c = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6];
    const [ra, rb, rc] = await Promise.all([
      f.predict(Float64Array.from(a)),
      f.predict(source(b)),
      f.predict(source(c)),
    ]);
    expect(sizes()).toEqual([3]);
    // Each source copied itself exactly once, straight into its row of the batch tensor.
    expect(copies).toEqual([6, 12]);
    for (const [r, w] of [[ra, a], [rb, b], [rc, c]] as const) {
      expect(r?.values).toBeInstanceOf(Float64Array);
      expectClose(r?.values ?? [], linearReference({ horizon: 2, weights }, w), 1e-12);
    }
  });

  it('returns output 0 flattened row-major and ignores the other outputs', async () => {
    const weights = uniformWeights(seededRandom(4), 4 * 6, 1);
    const session = await load(multiOutputModel({ lookback: 4, horizon: 6, weights, outputShape: [3, 2] }));
    const { f } = forecaster(session);
    expect(f.shape.outputItemShape).toEqual([3, 2]);
    const window = Float32Array.from([1, 2, 3, 4]);
    const r = await f.predict(window);
    expectClose(r.values, linearReference({ horizon: 6, weights }, window), 1e-5);
  });

  it('rejects a window of the wrong length as a bad argument', async () => {
    const session = await load(linearModel(linearOptions));
    const { f, batches } = forecaster(session, { variables: VARIABLES });
    await expect(f.predict(new Float32Array(LOOKBACK))).rejects.toMatchObject({
      code: 'ERR_INVALID_ARGUMENT',
      message: 'the window has 8 values but the model takes 16 (lookback 8 x 2 variables)',
    });
    expect(batches).toEqual([]);
  });

  it('checks the model contract when built', async () => {
    const session = await load(linearModel(linearOptions));
    expect(() => new BatchingForecaster(session, { variables: 3 })).toThrow(
      expect.objectContaining({
        code: 'ERR_MODEL_CONTRACT',
        message: "input 'window' has shape [batch, 8, 2] but the dataset gives 3 value columns",
      }),
    );
  });
});

describe('BatchingForecaster batching', () => {
  it('serves 100 concurrent callers with fewer runs than calls, every result correct', async () => {
    const session = await load(mlpModel(MLP));
    const { f, batches, sizes } = forecaster(session, { maxConcurrentRuns: 1 });
    const windows = randomWindows(100, MLP.lookback, 9);
    const results = await Promise.all(windows.map((w) => f.predict(w)));
    // The free slot takes 64 (the most one run holds); the other 36 wait for it and go in the next run.
    expect(sizes()).toEqual([64, 36]);
    expect(batches.every((b) => b.ok && b.queueMs.length === b.size)).toBe(true);
    results.forEach((r, i) => expectClose(r.values, mlpReference(mlpLayers, windows[i] as Float32Array), 1e-4));
    expect(results.map((r) => r.batchSize)).toEqual([...Array(64).fill(64), ...Array(36).fill(36)]);
  });

  it('batches the windows that arrived while a run was in flight', async () => {
    const session = await load(mlpModel(MLP));
    const { f, sizes } = forecaster(session, { maxConcurrentRuns: 1 });
    const windows = randomWindows(11, MLP.lookback, 25);
    const first = f.predict(windows[0] as Float32Array);
    await Promise.resolve(); // the free slot has taken the first window
    expect(f.inFlightRuns).toBe(1);
    const rest = windows.slice(1).map((w) => f.predict(w));
    expect(f.queueDepth).toBe(10);
    const results = await Promise.all([first, ...rest]);
    expect(sizes()).toEqual([1, 10]);
    results.forEach((r, i) => expectClose(r.values, mlpReference(mlpLayers, windows[i] as Float32Array), 1e-4));
  });

  it('while a run is in flight, windows from separate tasks of one event-loop turn share the free slot\'s batch', async () => {
    const session = await load(slowModel(SLOW));
    const { f, sizes } = forecaster(session, { maxConcurrentRuns: 2 });
    const windows = randomWindows(4, SLOW.size, 27);
    // Idle: the first window runs at once, alone.
    const first = f.predict(windows[0] as Float32Array);
    await Promise.resolve();
    expect(f.inFlightRuns).toBe(1);
    // Three tasks of the next turn (as three sockets' requests would be), each with its own microtask checkpoint.
    const inFlightSeen: number[] = [];
    const rest = await new Promise<Promise<Prediction>[]>((resolve) => {
      const predictions: Promise<Prediction>[] = [];
      for (const w of windows.slice(1)) {
        setImmediate(() => {
          inFlightSeen.push(f.inFlightRuns);
          predictions.push(f.predict(w as Float32Array));
          if (predictions.length === 3) resolve(predictions);
        });
      }
    });
    expect(inFlightSeen).toEqual([1, 1, 1]);
    const results = await Promise.all([first, ...rest]);
    // One batch of three on the free slot, not a batch of one followed by one of two (the two runs go in
    // parallel, so they may finish in either order).
    expect([...sizes()].sort()).toEqual([1, 3]);
    results.forEach((r, i) => expectClose(r.values, slowReference(SLOW, windows[i] as Float32Array), 1e-3));
  });

  it('runAhead: while runs are slow, one more run than maxConcurrentRuns goes in flight and takes its share', async () => {
    // Runs of many milliseconds: far above runAhead's threshold, and the first is still running when the rest come.
    const model = SLOW;
    const session = await load(slowModel(model));
    const windows = randomWindows(5, model.size, 31);
    const inFlightAfterFlush = async (options: ForecasterOptions) => {
      const { f, sizes } = forecaster(session, options);
      // One run first, so runAhead sees a slow model; no warmUp(): its calibration would make the split follow
      // measured costs, which another test covers.
      await f.predict(windows[0] as Float32Array);
      await new Promise((resolve) => setImmediate(resolve));
      // Idle: the first window runs at once; the next four come while it runs.
      const first = f.predict(windows[0] as Float32Array);
      await Promise.resolve();
      const rest = windows.slice(1).map((w) => f.predict(w));
      const seen = await new Promise<number>((resolve) => setImmediate(() => resolve(f.inFlightRuns)));
      const results = await Promise.all([first, ...rest]);
      results.forEach((r, i) => expectClose(r.values, slowReference(model, windows[i] as Float32Array), 1e-3));
      const batchSizes = [...sizes()].slice(1).sort();
      await f.close();
      return { seen, batchSizes, settings: f.settings };
    };
    const ahead = await inFlightAfterFlush({ maxConcurrentRuns: 2, runAhead: true });
    expect(ahead.settings).toMatchObject({ maxConcurrentRuns: 2, runAhead: true });
    // The slot free beside the busy one and the run ahead split the four windows.
    expect(ahead.seen).toBe(3);
    expect(ahead.batchSizes).toEqual([1, 2, 2]);
    const plain = await inFlightAfterFlush({ maxConcurrentRuns: 2 });
    expect(plain.settings).toMatchObject({ maxConcurrentRuns: 2, runAhead: false });
    expect(plain.seen).toBe(2);
    expect(plain.batchSizes).toEqual([1, 4]);
  });

  it('splits what arrives between the free run slots', async () => {
    const session = await load(mlpModel(MLP));
    const { f, sizes } = forecaster(session, { maxConcurrentRuns: 4 });
    const windows = randomWindows(10, MLP.lookback, 26);
    const results = await Promise.all(windows.map((w) => f.predict(w)));
    expect([...sizes()].sort()).toEqual([2, 2, 3, 3]);
    results.forEach((r, i) => expectClose(r.values, mlpReference(mlpLayers, windows[i] as Float32Array), 1e-4));
  });

  it('respects maxBatchSize', async () => {
    const session = await load(mlpModel(MLP));
    const { f, sizes } = forecaster(session, { maxConcurrentRuns: 1, maxBatchSize: 8 });
    const windows = randomWindows(30, MLP.lookback, 10);
    const results = await Promise.all(windows.map((w) => f.predict(w)));
    expect(sizes()).toEqual([8, 8, 8, 6]);
    results.forEach((r, i) => expectClose(r.values, mlpReference(mlpLayers, windows[i] as Float32Array), 1e-4));
  });

  it('close() runs a batch still waiting for maxQueueDelayMs at once', async () => {
    const session = await load(mlpModel(MLP));
    const { f, sizes } = forecaster(session, { maxConcurrentRuns: 2, maxQueueDelayMs: 60_000, maxBatchSize: 8 });
    const windows = randomWindows(20, MLP.lookback, 12);
    const pending = windows.map((w) => f.predict(w));
    // Two full batches left at once; the last four wait for company until close() says none will come.
    expect(f.inFlightRuns).toBe(2);
    expect(f.queueDepth).toBe(4);
    await f.close();
    const results = await Promise.all(pending);
    // onBatch reports completions: the batch of four starts in the first freed slot and may finish before
    // the second batch of eight.
    expect([...sizes()].sort((a, b) => a - b)).toEqual([4, 8, 8]);
    results.forEach((r, i) => expectClose(r.values, mlpReference(mlpLayers, windows[i] as Float32Array), 1e-4));
  });

  it('forces batches of 1 for a fixed-batch model', async () => {
    const session = await load(linearModel({ ...linearOptions, batch: 1 }));
    const { f, sizes } = forecaster(session, { variables: VARIABLES, maxBatchSize: 64, maxConcurrentRuns: 1 });
    expect(f.shape.batch).toBe(1);
    expect(f.settings.maxBatchSize).toBe(1);
    const windows = randomWindows(5, LOOKBACK * VARIABLES, 13);
    const results = await Promise.all(windows.map((w) => f.predict(w)));
    expect(sizes()).toEqual([1, 1, 1, 1, 1]);
    results.forEach((r, i) => expectClose(r.values, linearReference(linearParams, windows[i] as Float32Array), 1e-5));
  });

  it('with maxQueueDelayMs forms a full batch instead of starting runs at once', async () => {
    const session = await load(mlpModel(MLP));
    const windows = randomWindows(10, MLP.lookback, 14);

    const eager = forecaster(session, { maxConcurrentRuns: 4, maxBatchSize: 10 });
    await Promise.all(windows.map((w) => eager.f.predict(w)));
    // Without a delay, the four free slots share the windows at once.
    expect(eager.sizes().length).toBe(4);

    // A delay far longer than the test: the batch leaves because it is full, not because a timer fired.
    const patient = forecaster(session, { maxConcurrentRuns: 4, maxBatchSize: 10, maxQueueDelayMs: 60_000 });
    const results = await Promise.all(windows.map((w) => patient.f.predict(w)));
    expect(patient.sizes()).toEqual([10]);
    results.forEach((r, i) => expectClose(r.values, mlpReference(mlpLayers, windows[i] as Float32Array), 1e-4));
  });

  it('with maxQueueDelayMs runs a partial batch once the oldest window has waited that long', async () => {
    const session = await load(mlpModel(MLP));
    const { f, sizes } = forecaster(session, { maxConcurrentRuns: 4, maxQueueDelayMs: 5 });
    const windows = randomWindows(6, MLP.lookback, 15);
    const results = await Promise.all(windows.map((w) => f.predict(w)));
    expect(sizes()).toEqual([6]);
    results.forEach((r, i) => expectClose(r.values, mlpReference(mlpLayers, windows[i] as Float32Array), 1e-4));
  });
});

describe('BatchingForecaster run costs and lone runs', () => {
  /** The MLP in a one-thread session and in a two-thread one (the lone-run candidate). */
  async function sessionPair(): Promise<{ session: InferenceSession; wide: InferenceSession }> {
    const bytes = mlpModel(MLP);
    const session = await load(bytes);
    const wide = await InferenceSession.load(bytes, { intraOpThreads: 2 });
    sessions.push(wide);
    return { session, wide };
  }

  it('warmUp() calibrates: the run costs come from runs of 1 and 16 windows, measured on the run thread', async () => {
    const session = await load(mlpModel(MLP));
    const { f } = forecaster(session);
    expect(f.calibration).toBeNull();
    await f.warmUp();
    const c = f.calibration;
    expect(c).not.toBeNull();
    expect(c?.singleMs).toBeGreaterThan(0);
    expect(c?.fixedMs).toBeGreaterThanOrEqual(0);
    expect(c?.perWindowMs).toBeGreaterThanOrEqual(0);
    expect(c).toMatchObject({ loneSingleMs: null, loneRunThreads: 1 });
    expect(f.usesLoneRunSession).toBe(false);
    await f.close();
  });

  it('queued windows are split between free slots no finer than the measured efficient batch', async () => {
    // A tiny model: a run's fixed part (hand-over, operator start) outweighs its windows by far.
    const session = await load(linearModel(linearOptions));
    const { f, sizes } = forecaster(session, { maxConcurrentRuns: 4, variables: VARIABLES });
    await f.warmUp();
    const c = f.calibration;
    if (c === null || c.fixedMs === null || c.perWindowMs === null) throw new Error('warmUp() did not calibrate');
    const efficient = c.perWindowMs === 0 ? 64 : Math.min(64, Math.max(1, Math.ceil(c.fixedMs / c.perWindowMs)));
    const before = sizes().length;
    const windows = randomWindows(10, LOOKBACK * VARIABLES, 41);
    const results = await Promise.all(windows.map((w) => f.predict(w)));
    results.forEach((r, i) => expectClose(r.values, linearReference(linearParams, windows[i] as Float32Array), 1e-4));
    // What the rule gives for 10 windows and 4 free slots: as many runs as efficient batches fit, at least one.
    const runs = Math.max(1, Math.min(4, Math.floor(10 / efficient)));
    const expected: number[] = [];
    for (let left = 10, free = runs; left > 0; free--) {
      const size = Math.ceil(left / free);
      expected.push(size);
      left -= size;
    }
    expect([...sizes().slice(before)].sort((a, b) => a - b)).toEqual(expected.sort((a, b) => a - b));
    await f.close();
  });

  it('a lone-run session with more intra-op threads is timed against the main one and kept only where faster', async () => {
    const { session, wide } = await sessionPair();
    const { f } = forecaster(session, { loneRunSession: wide, loneRunSessionThreads: 2 });
    await f.warmUp();
    const c = f.calibration;
    expect(c?.loneSingleMs).toBeGreaterThan(0);
    // Kept only if clearly faster; whichever way it went, the choice and the calibration agree.
    if (f.usesLoneRunSession) expect(c?.loneSingleMs).toBeLessThan(0.9 * (c?.singleMs ?? 0));
    const faster = f.usesLoneRunSession;
    expect(f.loneRunThreads).toBe(faster ? 2 : 1);
    expect(c?.loneRunThreads).toBe(f.loneRunThreads);
    // Whichever session runs them, lone and concurrent windows get the same predictions.
    const windows = randomWindows(6, MLP.lookback, 43);
    const lone = await f.predict(windows[0] as Float32Array);
    expectClose(lone.values, mlpReference(mlpLayers, windows[0] as Float32Array), 1e-4);
    const together = await Promise.all(windows.map((w) => f.predict(w)));
    together.forEach((r, i) => expectClose(r.values, mlpReference(mlpLayers, windows[i] as Float32Array), 1e-4));
    await f.close();
  });

  it('a lone run uses the lone-run session; runs side by side, and the first of a split burst, do not', async () => {
    const { session, wide } = await sessionPair();
    const wideRuns = vi.spyOn(wide, 'run');
    const mainRuns = vi.spyOn(session, 'run');
    const { f, sizes } = forecaster(session, { maxConcurrentRuns: 2, loneRunSession: wide, loneRunSessionThreads: 2, loneRunSessionPolicy: 'always' });
    expect(f.usesLoneRunSession).toBe(true);
    expect(f.loneRunThreads).toBe(2);
    const windows = randomWindows(4, MLP.lookback, 47);
    const lone = await f.predict(windows[0] as Float32Array);
    expectClose(lone.values, mlpReference(mlpLayers, windows[0] as Float32Array), 1e-4);
    expect(wideRuns).toHaveBeenCalledTimes(1);
    expect(mainRuns).toHaveBeenCalledTimes(0);
    // Four windows at once on two free slots: two runs side by side, both on the one-thread session.
    const together = await Promise.all(windows.map((w) => f.predict(w)));
    together.forEach((r, i) => expectClose(r.values, mlpReference(mlpLayers, windows[i] as Float32Array), 1e-4));
    expect(sizes().slice(1)).toEqual([2, 2]);
    expect(wideRuns).toHaveBeenCalledTimes(1);
    expect(mainRuns).toHaveBeenCalledTimes(2);
    await f.close();
  });

  it('refuses a lone-run session of another model', async () => {
    const session = await load(mlpModel(MLP));
    const other = await load(mlpModel({ ...MLP, horizon: 5 }));
    expect(() => new BatchingForecaster(session, { loneRunSession: other })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringMatching(/loneRunSession must be the same model/) }),
    );
  });
});

describe('BatchingForecaster limits', () => {
  it('rejects only the windows beyond maxQueueSize', async () => {
    const session = await load(mlpModel(MLP));
    const { f } = forecaster(session, { maxConcurrentRuns: 1, maxBatchSize: 1, maxQueueSize: 3 });
    const windows = randomWindows(10, MLP.lookback, 16);
    const pending = windows.map((w) => outcome(f.predict(w)));
    await Promise.resolve(); // the free slot has taken its window
    expect(f.inFlightRuns).toBe(1);
    expect(f.queueDepth).toBe(3);
    const outcomes = await Promise.all(pending);
    // One runs at once, three wait, the other six are refused without disturbing them.
    outcomes.slice(0, 4).forEach((o, i) => expectClose(valuesOf(o), mlpReference(mlpLayers, windows[i] as Float32Array), 1e-4));
    for (const o of outcomes.slice(4)) {
      const err = errorOf(o);
      expect(err.code).toBe('ERR_QUEUE_FULL');
      expect(err.message).toBe('model queue is full (3 waiting); retry later');
    }
  });

  it('times out a late window with ERR_TIMEOUT while the others succeed', async () => {
    const session = await load(slowModel(SLOW));
    const { f, sizes } = forecaster(session, { maxConcurrentRuns: 1, maxBatchSize: 1 });
    const windows = randomWindows(4, SLOW.size, 17);
    const first = outcome(f.predict(windows[0] as Float32Array));
    // Queued behind a long run with a 1 ms budget: it expires while waiting and never runs.
    const late = outcome(f.predict(windows[1] as Float32Array, { timeoutMs: 1 }));
    const third = outcome(f.predict(windows[2] as Float32Array));
    const [a, b, c] = await Promise.all([first, late, third]);
    expectClose(valuesOf(a as Outcome), slowReference(SLOW, windows[0] as Float32Array), 1e-3);
    expectClose(valuesOf(c as Outcome), slowReference(SLOW, windows[2] as Float32Array), 1e-3);
    const err = errorOf(b as Outcome);
    expect(err.code).toBe('ERR_TIMEOUT');
    expect(err.message).toBe(
      'the prediction waited longer than its timeout (1 ms); the model is overloaded or too slow',
    );
    expect(sizes()).toEqual([1, 1]);
  });

  it('times out a window whose run is in flight and still answers its batch-mate', async () => {
    const session = await load(slowModel(SLOW));
    const windows = randomWindows(2, SLOW.size, 18);
    // The deadline is half of the quickest of three warm runs of the same batch here: it passes while the batch
    // is in flight, and not in the microtask between the call and the dispatch (a 1 ms deadline could, when the
    // test process is preempted on a busy machine).
    const probe = forecaster(session, { maxConcurrentRuns: 1 });
    await Promise.all(windows.map((w) => probe.f.predict(w)));
    let quickestMs = Number.POSITIVE_INFINITY;
    for (let i = 0; i < 3; i++) {
      const started = performance.now();
      await Promise.all(windows.map((w) => probe.f.predict(w)));
      quickestMs = Math.min(quickestMs, performance.now() - started);
    }
    await probe.f.close();
    const { f, batches } = forecaster(session, { maxConcurrentRuns: 1, timeoutMs: Math.max(1, Math.floor(quickestMs / 2)) });
    const timedOut = outcome(f.predict(windows[0] as Float32Array));
    const patient = outcome(f.predict(windows[1] as Float32Array, { timeoutMs: 60_000 }));
    expect(errorOf(await timedOut).code).toBe('ERR_TIMEOUT');
    expectClose(valuesOf(await patient), slowReference(SLOW, windows[1] as Float32Array), 1e-3);
    await f.close();
    expect(batches.map((b) => [b.size, b.ok])).toEqual([[2, true]]);
  });

  it('removes a queued window when its signal aborts, and drops the result of a running one', async () => {
    const session = await load(mlpModel(MLP));
    const { f, batches } = forecaster(session, { maxConcurrentRuns: 1, maxBatchSize: 1 });
    const windows = randomWindows(4, MLP.lookback, 19);
    const running = new AbortController();
    const queued = new AbortController();
    const first = outcome(f.predict(windows[0] as Float32Array, { signal: running.signal }));
    const second = outcome(f.predict(windows[1] as Float32Array));
    const third = outcome(f.predict(windows[2] as Float32Array, { signal: queued.signal }));
    const last = outcome(f.predict(windows[3] as Float32Array));
    await Promise.resolve(); // the free slot has taken the first window
    expect([f.inFlightRuns, f.queueDepth]).toEqual([1, 3]);
    queued.abort(new Error('client went away'));
    expect(f.queueDepth).toBe(2);
    running.abort(new Error('caller gave up'));
    const [a, b, c, d] = await Promise.all([first, second, third, last]);
    expect(a?.ok === false && (a.error as Error).message).toBe('caller gave up');
    expect(c?.ok === false && (c.error as Error).message).toBe('client went away');
    expectClose(valuesOf(b as Outcome), mlpReference(mlpLayers, windows[1] as Float32Array), 1e-4);
    expectClose(valuesOf(d as Outcome), mlpReference(mlpLayers, windows[3] as Float32Array), 1e-4);
    // The aborted run still finished (the runtime cannot stop it); the aborted queued window never ran.
    expect(batches.map((x) => [x.size, x.ok])).toEqual([[1, true], [1, true], [1, true]]);
    // A signal aborted before the call never queues.
    await expect(f.predict(windows[0] as Float32Array, { signal: AbortSignal.abort() })).rejects.toMatchObject({
      name: 'AbortError',
    });
  });
});

describe('BatchingForecaster failures', () => {
  it('rejects only the windows whose prediction is not finite', async () => {
    const session = await load(nonFiniteModel({ lookback: 4, horizon: 2, op: 'log' }));
    const { f, sizes } = forecaster(session, { maxConcurrentRuns: 1 });
    const windows = [
      [1, 2, 3, 4],
      [-1, -2, -3, -4],
      [1, -1, 2, -2],
      [Math.E, Math.E, Math.E, Math.E],
      [5, 5, 5, 5],
    ].map((w) => Float32Array.from(w));
    const outcomes = await Promise.all(windows.map((w) => outcome(f.predict(w))));
    // One run for all five: its failures stay with their own windows.
    expect(sizes()).toEqual([5]);
    expectClose(valuesOf(outcomes[0] as Outcome), [Math.log(2.5), Math.log(2.5)], 1e-6);
    expect(errorOf(outcomes[1] as Outcome)).toMatchObject({ code: 'ERR_NON_FINITE', message: 'prediction contains NaN at index 0' });
    expect(errorOf(outcomes[2] as Outcome)).toMatchObject({
      code: 'ERR_NON_FINITE',
      message: 'prediction contains -Infinity at index 0',
    });
    expectClose(valuesOf(outcomes[3] as Outcome), [1, 1], 1e-6);
    expectClose(valuesOf(outcomes[4] as Outcome), [Math.log(5), Math.log(5)], 1e-6);
  });

  it('rejects every window of a failed run with ERR_INFERENCE and the runtime message', async () => {
    // The model declares a symbolic lookback but its weights need 4 rows: 5 rows fail inside the MatMul.
    const weights = uniformWeights(seededRandom(20), 4, 1);
    const session = await load(linearModel({ lookback: 4, lookbackDim: 'time', horizon: 1, weights }));
    const { f, batches } = forecaster(session, { lookback: 5, maxConcurrentRuns: 1 });
    const outcomes = await Promise.all(randomWindows(3, 5, 21).map((w) => outcome(f.predict(w))));
    expect(batches.map((b) => [b.size, b.ok])).toEqual([[3, false]]);
    for (const o of outcomes) {
      const err = errorOf(o);
      expect(err.code).toBe('ERR_INFERENCE');
      expect(err.message).toMatch(/MatMul/);
    }
    // The forecaster keeps serving after a failed run.
    const good = await load(linearModel(linearOptions));
    const g = forecaster(good, { variables: VARIABLES });
    const w = randomWindows(1, LOOKBACK * VARIABLES, 22)[0] as Float32Array;
    expectClose((await g.f.predict(w)).values, linearReference(linearParams, w), 1e-5);
  });

  it('warmUp runs one inference and tolerates a non-finite answer to zeros', async () => {
    const session = await load(nonFiniteModel({ lookback: 4, horizon: 2, op: 'reciprocal' }));
    const { f, batches } = forecaster(session);
    await f.warmUp();
    expect(batches.map((b) => [b.size, b.ok])).toEqual([[1, true]]);
    // A real request for the same zeros is refused.
    await expect(f.predict(new Float32Array(4))).rejects.toMatchObject({
      code: 'ERR_NON_FINITE',
      message: 'prediction contains Infinity at index 0',
    });
  });
});

describe('BatchingForecaster.close', () => {
  it('refuses new windows and resolves once the queued and running ones have finished', async () => {
    const session = await load(mlpModel(MLP));
    const { f, sizes } = forecaster(session, { maxConcurrentRuns: 1, maxBatchSize: 2 });
    const windows = randomWindows(5, MLP.lookback, 23);
    const settled: number[] = [];
    const pending = windows.map((w, i) => f.predict(w).then((r) => (settled.push(i), r)));
    const closed = f.close().then(() => [...settled]);
    await expect(f.predict(windows[0] as Float32Array)).rejects.toMatchObject({ code: 'ERR_DISPOSED' });
    await expect(f.warmUp()).rejects.toMatchObject({ code: 'ERR_DISPOSED' });
    const settledAtClose = await closed;
    expect(settledAtClose.sort()).toEqual([0, 1, 2, 3, 4]);
    expect(sizes()).toEqual([2, 2, 1]);
    expect(f.queueDepth).toBe(0);
    expect(f.inFlightRuns).toBe(0);
    const results = await Promise.all(pending);
    results.forEach((r, i) => expectClose(r.values, mlpReference(mlpLayers, windows[i] as Float32Array), 1e-4));
    expect(f.close()).toBe(f.close());
  });

  it('leaves no timer behind when idle', async () => {
    const session = await load(mlpModel(MLP));
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    const { f } = forecaster(session, { maxConcurrentRuns: 1, maxQueueDelayMs: 1, timeoutMs: 60_000 });
    const windows = randomWindows(3, MLP.lookback, 24);
    const pending = Promise.all(windows.map((w) => f.predict(w)));
    expect(timers()).toBeGreaterThan(before);
    await pending;
    expect(f.queueDepth + f.inFlightRuns).toBe(0);
    // Other tests' timers may expire meanwhile, but this forecaster must not add one.
    expect(timers()).toBeLessThanOrEqual(before);
  });
});
