import { describe, expect, it } from 'vitest';
import { ForecastdError } from '../../src/errors.js';
import { InferenceSession } from '../../src/runtime/session.js';
import { SeriesForecaster } from '../../src/runtime/series-forecaster.js';
import { linearReference, quantileModel, quantileReference, seededRandom, uniformWeights } from '../../tools/onnx-builder.js';

/** The library helper: a client series in, forecast, timestamps and quantiles out, with no HTTP server. */

const random = seededRandom(31);
const weights = uniformWeights(random, 4 * 3, 0.5);
const bias = uniformWeights(random, 3, 1);
const offsets = Float32Array.from([-1, 0, 1, -1.5, 0, 1.5, -2, 0, 2]);
const bytes = quantileModel({ lookback: 4, horizon: 3, weights, bias, offsets, levels: 3 });
const LEVELS = [0.1, 0.5, 0.9];

function close(a: ArrayLike<number>, b: ArrayLike<number>): void {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) expect(Math.abs((a[i] as number) - (b[i] as number))).toBeLessThan(1e-4);
}

describe('SeriesForecaster', () => {
  it('forecasts the newest lookback steps with timestamps and quantiles, cut to the horizon', async () => {
    const f = await SeriesForecaster.load(bytes, { quantiles: LEVELS, quantileOutput: 'quantiles' });
    try {
      expect([f.lookback, f.variables, f.horizon, f.levels]).toEqual([4, 1, 3, LEVELS]);
      const series = [9, 1.5, 2.25, 3, 4.75];
      const point = linearReference({ horizon: 3, weights, bias }, series.slice(-4));
      const q = quantileReference(point, offsets, 3);
      const result = await f.forecast({ series, horizon: 2, start: '2024-01-31T00:00:00Z', step: { months: 1 }, quantiles: [0.1, 0.9] });
      close(result.values, point.slice(0, 2));
      expect(result.values).toBeInstanceOf(Float32Array);
      expect([result.horizon, result.outputVariables, result.quantileCrossings]).toEqual([2, 1, 0]);
      // Five monthly points from Jan 31: the forecast starts Jun 30, then Jul 31.
      expect(Array.from(result.timestamps!, (t) => new Date(t).toISOString())).toEqual(['2024-06-30T00:00:00.000Z', '2024-07-31T00:00:00.000Z']);
      expect(Object.keys(result.quantiles)).toEqual(['0.1', '0.9']);
      close(result.quantiles['0.1']!, [q[0]!, q[3]!]);
      close(result.quantiles['0.9']!, [q[2]!, q[5]!]);
      const fixed = await f.forecast({ series, start: Date.UTC(2024, 0, 1), step: 3_600_000 });
      expect(new Date(fixed.timestamps![0]!).toISOString()).toBe('2024-01-01T05:00:00.000Z');
      expect(Object.keys(fixed.quantiles)).toEqual(['0.1', '0.5', '0.9']);
      expect((await f.forecast({ series })).timestamps).toBeNull();
    } finally {
      await f.close();
    }
  });

  it('concurrent forecasts share batched runs', async () => {
    const sizes: number[] = [];
    const f = await SeriesForecaster.load(bytes, { quantiles: LEVELS, quantileOutput: 'quantiles', maxConcurrentRuns: 1, onBatch: (b) => sizes.push(b.size) });
    try {
      const results = await Promise.all(Array.from({ length: 50 }, (_, i) => f.forecast({ series: [i, i + 1, i + 2, i + 3] })));
      expect(results).toHaveLength(50);
      expect(sizes).toEqual([50]);
      close(results[7]!.values, linearReference({ horizon: 3, weights, bias }, [7, 8, 9, 10]));
    } finally {
      await f.close();
    }
  });

  it('refuses bad requests and models without a horizon or with a mismatched quantile output', async () => {
    const f = await SeriesForecaster.load(bytes, { quantiles: LEVELS, quantileOutput: 'quantiles' });
    try {
      const message = async (p: Promise<unknown>): Promise<string> => {
        try {
          await p;
        } catch (error) {
          expect(error).toBeInstanceOf(ForecastdError);
          return (error as Error).message;
        }
        throw new Error('expected a rejection');
      };
      expect(await message(f.forecast({ series: [1, 2, 3] }))).toBe('the series has 3 steps; the model needs at least 4 (its lookback)');
      expect(await message(f.forecast({ series: [1, 2, 3, 4], horizon: 4 }))).toBe('horizon must be 1 to 3, got 4');
      expect(await message(f.forecast({ series: [1, 2, 3, 4], quantiles: [0.25] }))).toBe('quantile 0.25 is not one the model forecasts (0.1, 0.5, 0.9)');
      expect(await message(f.forecast({ series: [1, 2, NaN, 4] }))).toBe('series[2] holds NaN; every value must be a finite number');
      // Client input the model cannot take, refused as the caller's: beyond float32, repeated levels, years past 9999.
      expect(await message(f.forecast({ series: [1, 2, 1e39, 4] }))).toBe('series[2] holds 1e+39, beyond what a float32 model takes (at most ±3.4028234663852886e+38)');
      expect(await message(f.forecast({ series: [1, 2, 3, 4], quantiles: [0.1, 0.1] }))).toBe('quantiles[1] repeats the level 0.1; give each level once');
      expect(await message(f.forecast({ series: [1, 2, 3, 4], start: '9999-10-31T00:00:00Z', step: { months: 1 } }))).toBe(
        'start 9999-10-31T00:00:00Z: the forecast steps would leave the years 0000 to 9999',
      );
    } finally {
      await f.close();
    }
    await expect(SeriesForecaster.load(bytes, { quantiles: [0.1, 0.9], quantileOutput: 'quantiles' })).rejects.toThrow(
      "quantile output 'quantiles' has shape [batch, 3, 3], but output 'forecast' [batch, 3] with 2 quantile levels needs [batch, 3, 2]",
    );
    const session = await InferenceSession.load(bytes);
    try {
      // A session the caller passes stays the caller's: usable after the helper is closed.
      const f2 = await SeriesForecaster.load(session);
      expect(f2.levels).toEqual([]);
      await f2.close();
      expect(session.inputs[0]!.name).toBe('window');
    } finally {
      session.dispose();
    }
  });
});
