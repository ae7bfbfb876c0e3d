// The GRU and 1-D convolution forecasters of tools/onnx-builder.ts (bench:http's "gru" and "conv" models) run in
// the addon exactly as their float64 references in JavaScript say they should.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { InferenceSession } from '../../src/runtime/session.js';
import type { OutputTensor } from '../../src/runtime/types.js';
import {
  convModel,
  convReference,
  convWeights,
  decodeModel,
  gruModel,
  gruReference,
  gruWeights,
  seededRandom,
} from '../../tools/onnx-builder.js';

/** |actual - expected| ≤ tolerance × max(1, |expected|) for every value. */
function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance: number): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i] as number;
    expect(Math.abs((actual[i] as number) - e), `index ${i}`).toBeLessThanOrEqual(tolerance * Math.max(1, Math.abs(e)));
  }
}

function only(outputs: OutputTensor[]): OutputTensor {
  expect(outputs).toHaveLength(1);
  return outputs[0] as OutputTensor;
}

/** `count` windows of `length` values: half around zero, half on the CO2 series' scale (300 to 420 ppm). */
function windows(seed: number, count: number, length: number): Float32Array[] {
  const random = seededRandom(seed);
  return Array.from({ length: count }, (_, i) =>
    Float32Array.from({ length }, () => (i % 2 === 0 ? random() * 10 - 5 : 300 + random() * 120)),
  );
}

function stack(rows: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(rows.reduce((n, r) => n + r.length, 0));
  let offset = 0;
  for (const r of rows) {
    out.set(r, offset);
    offset += r.length;
  }
  return out;
}

/** One-window runs of `session` agree with `reference` on `count` windows of `lookback` values (one variable). */
async function expectWindowByWindow(
  session: InferenceSession,
  lookback: number,
  seed: number,
  reference: (window: Float32Array) => ArrayLike<number>,
): Promise<void> {
  for (const window of windows(seed, 6, lookback)) {
    const out = only(await session.run({ window: { data: window, shape: [1, lookback, 1] } }));
    expect(out.shape).toEqual([1, 12]);
    expectClose(out.data as Float32Array, reference(window), 1e-4);
  }
}

/** One batched run of `count` two-variable windows: every item agrees with `reference`. */
async function expectBatchItems(
  session: InferenceSession,
  shape: { readonly lookback: number; readonly horizon: number },
  seed: number,
  count: number,
  reference: (window: Float32Array) => ArrayLike<number>,
): Promise<void> {
  const batch = windows(seed, count, shape.lookback * 2);
  const out = only(await session.run({ window: { data: stack(batch), shape: [batch.length, shape.lookback, 2] } }));
  expect(out.shape).toEqual([batch.length, shape.horizon]);
  batch.forEach((window, b) => {
    const row = (out.data as Float32Array).subarray(b * shape.horizon, (b + 1) * shape.horizon);
    expectClose(row, reference(window), 1e-4);
  });
}

// The bench's shapes (bench/http/models.ts) and a smaller one with two variables.
const BENCH_GRU = { lookback: 64, hidden: 128, horizon: 12, seed: 3 };
const SMALL_GRU = { lookback: 10, variables: 2, hidden: 8, horizon: 3, seed: 5 };
const BENCH_CONV = { lookback: 64, channels: [64, 64], kernel: 5, horizon: 12, seed: 4 };
const SMALL_CONV = { lookback: 9, variables: 2, channels: [4, 3, 5], kernel: 3, horizon: 2, seed: 6 };

const sessions: InferenceSession[] = [];
async function load(bytes: Uint8Array): Promise<InferenceSession> {
  const session = await InferenceSession.load(bytes);
  sessions.push(session);
  return session;
}

let benchGru: InferenceSession;
let benchConv: InferenceSession;
beforeAll(async () => {
  benchGru = await load(gruModel(BENCH_GRU));
  benchConv = await load(convModel(BENCH_CONV));
});

afterAll(() => {
  for (const s of sessions) s.dispose();
});

describe('gruModel', () => {
  it('declares [batch, L, V] in and [batch, H] out and uses the ONNX GRU operator', () => {
    expect(benchGru.inputs).toEqual([{ name: 'window', type: 'float32', shape: ['batch', 64, 1] }]);
    expect(benchGru.outputs).toEqual([{ name: 'forecast', type: 'float32', shape: ['batch', 12] }]);
    const ops = decodeModel(gruModel(BENCH_GRU)).graph?.node?.map((n) => n.opType);
    expect(ops).toEqual(['Transpose', 'GRU', 'Squeeze', 'Gemm']);
  });

  it('matches gruReference window by window at the bench shape', async () => {
    const weights = gruWeights(BENCH_GRU);
    await expectWindowByWindow(benchGru, BENCH_GRU.lookback, 1, (window) => gruReference(weights, window));
  });

  it('matches gruReference for every item of a batch, with two variables', async () => {
    const session = await load(gruModel(SMALL_GRU));
    const weights = gruWeights(SMALL_GRU);
    await expectBatchItems(session, SMALL_GRU, 2, 5, (window) => gruReference(weights, window));
  });

  it('depends on the order of the window, not only on its values', () => {
    const weights = gruWeights(SMALL_GRU);
    const window = windows(3, 1, SMALL_GRU.lookback * 2)[0] as Float32Array;
    const reversed = Float32Array.from(window).reverse();
    const a = gruReference(weights, window);
    const b = gruReference(weights, reversed);
    expect(Math.max(...a.map((v, i) => Math.abs(v - (b[i] as number))))).toBeGreaterThan(1e-3);
  });

  it('is deterministic for a seed', () => {
    expect(gruModel(SMALL_GRU)).toEqual(gruModel(SMALL_GRU));
    expect(gruModel(SMALL_GRU)).not.toEqual(gruModel({ ...SMALL_GRU, seed: 7 }));
  });
});

describe('convModel', () => {
  it('declares [batch, L, V] in and [batch, H] out and uses ONNX Conv', () => {
    expect(benchConv.inputs).toEqual([{ name: 'window', type: 'float32', shape: ['batch', 64, 1] }]);
    expect(benchConv.outputs).toEqual([{ name: 'forecast', type: 'float32', shape: ['batch', 12] }]);
    const ops = decodeModel(convModel(BENCH_CONV)).graph?.node?.map((n) => n.opType);
    expect(ops).toEqual(['Transpose', 'Conv', 'Relu', 'Conv', 'Relu', 'Flatten', 'Gemm']);
  });

  it('matches convReference window by window at the bench shape', async () => {
    const weights = convWeights(BENCH_CONV);
    await expectWindowByWindow(benchConv, BENCH_CONV.lookback, 4, (window) => convReference(weights, window));
  });

  it('matches convReference for every item of a batch, with two variables and three convolutions', async () => {
    const session = await load(convModel(SMALL_CONV));
    const weights = convWeights(SMALL_CONV);
    expect(weights.layers.map((l) => [l.outputs, l.inputs, l.kernel])).toEqual([
      [4, 2, 3],
      [3, 4, 3],
      [5, 3, 3],
    ]);
    await expectBatchItems(session, SMALL_CONV, 5, 4, (window) => convReference(weights, window));
  });

  it('pads with zeros at both ends ("same" padding), as a hand-computed one-channel case shows', () => {
    const weights = {
      layers: [{ inputs: 1, outputs: 1, kernel: 3, weights: new Float32Array([1, 2, 3]), bias: new Float32Array([0]) }],
      head: { inputs: 4, outputs: 4, weights: Float32Array.from({ length: 16 }, (_, i) => (i % 5 === 0 ? 1 : 0)), bias: new Float32Array(4) },
    };
    // y[t] = 1·x[t-1] + 2·x[t] + 3·x[t+1], zero outside: [2+3·2, 1+4+9, 2+6+12, 3+8] = [8, 14, 20, 11].
    expect(Array.from(convReference(weights, [1, 2, 3, 4]))).toEqual([8, 14, 20, 11]);
  });

  it('rejects an even kernel', () => {
    expect(() => convModel({ ...SMALL_CONV, kernel: 4 })).toThrow(/odd/);
  });
});
