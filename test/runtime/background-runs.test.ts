import { afterAll, describe, expect, it } from 'vitest';
import { ForecastdError } from '../../src/errors.js';
import { BatchingForecaster } from '../../src/runtime/forecaster.js';
import { allocateTensorData, InferenceSession } from '../../src/runtime/session.js';
import { linearModel, linearReference, seededRandom, uniformWeights } from '../../tools/onnx-builder.js';

/** Low-priority runs (evaluation's): they run on the slots requests leave and never ahead of a waiting request. */

const L = 4;
const H = 2;
const weights = uniformWeights(seededRandom(2), L * H, 0.5);
const bytes = linearModel({ lookback: L, horizon: H, weights });
const sessions: InferenceSession[] = [];

afterAll(() => {
  for (const s of sessions) s.dispose();
});

async function make(maxConcurrentRuns: number): Promise<BatchingForecaster> {
  const session = await InferenceSession.load(bytes, { intraOpThreads: 1 });
  sessions.push(session);
  return new BatchingForecaster(session, { maxConcurrentRuns });
}

describe('BatchingForecaster.runBackground', () => {
  it('returns every output of the windows it was given, as the model computes them', async () => {
    const f = await make(1);
    const data = allocateTensorData('float32', 3 * L);
    data.set([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    const result = await f.runBackground(data, 3);
    expect(result.outputs).toHaveLength(1);
    const got = Array.from(result.outputs[0]!);
    const expected = [0, 1, 2].flatMap((k) => Array.from(linearReference({ horizon: H, weights }, data.subarray(k * L, (k + 1) * L))));
    got.forEach((v, i) => expect(v).toBeCloseTo(expected[i]!, 5));
    expect(result.inferenceMs).toBeGreaterThanOrEqual(0);
    await f.close();
  });

  it('starts only after the requests waiting for the run slot', async () => {
    const f = await make(1);
    const order: string[] = [];
    const window = Float32Array.from([1, 2, 3, 4]);
    const first = f.predict(window).then(() => order.push('request 1'));
    // The slot is taken by request 1; the low-priority run and request 2 both wait for it.
    const background = f.runBackground(allocateTensorData('float32', L), 1).then(() => order.push('background'));
    const second = f.predict(window).then(() => order.push('request 2'));
    await Promise.all([first, background, second]);
    expect(order).toEqual(['request 1', 'request 2', 'background']);
    await f.close();
  });

  it('refuses data of the wrong size or type, and drops runs not started when the forecaster closes', async () => {
    const f = await make(1);
    await expect(f.runBackground(allocateTensorData('float32', L + 1), 1)).rejects.toThrow(
      new ForecastdError('ERR_INVALID_ARGUMENT', `the run's data must be float32 with ${L} values (1 windows), got ${L + 1}`),
    );
    await expect(f.runBackground(new Float64Array(L), 1)).rejects.toThrow(/must be float32/);
    const busy = f.predict(Float32Array.from([1, 2, 3, 4]));
    const waiting = f.runBackground(allocateTensorData('float32', L), 1);
    const closed = f.close();
    await expect(waiting).rejects.toMatchObject({ code: 'ERR_DISPOSED' });
    await busy;
    await closed;
    await expect(f.runBackground(allocateTensorData('float32', L), 1)).rejects.toMatchObject({ code: 'ERR_DISPOSED' });
  });
});
