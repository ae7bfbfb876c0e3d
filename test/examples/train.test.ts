import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { decodeModel } from '../../tools/onnx-builder.js';
import {
  choleskySolve,
  fitLinearAutoregression,
  forecastAt,
  interpolateGaps,
} from '../../examples/co2/autoregression.js';
import { HORIZON, LOOKBACK, readWeeklySeries, train, type TrainResult } from '../../examples/co2/train.js';

const DATA = join(import.meta.dirname, '..', 'data', 'co2_weekly.csv');

async function forecastWithOrt(path: string, window: ArrayLike<number>): Promise<{ dims: readonly number[]; data: number[] }> {
  const session = await ort.InferenceSession.create(path);
  try {
    const out = await session.run({ window: new ort.Tensor('float32', Float32Array.from(window), [1, LOOKBACK, 1]) });
    const forecast = out['forecast'];
    if (!forecast) throw new Error('no forecast output');
    return { dims: forecast.dims, data: Array.from(forecast.data as Float32Array) };
  } finally {
    await session.release();
  }
}

describe('autoregression', () => {
  it('interpolates inner gaps linearly and holds the nearest value at the ends', () => {
    expect(Array.from(interpolateGaps([NaN, 1, NaN, NaN, 4, NaN]))).toEqual([1, 1, 2, 3, 4, 4]);
    expect(() => interpolateGaps([NaN, NaN])).toThrow(/no observed value/);
  });

  it('solves a symmetric positive definite system by Cholesky', () => {
    // A = [[4, 2], [2, 3]], x = [1, -2] => y = [0, -4]
    const x = choleskySolve(Float64Array.of(4, 2, 2, 3), Float64Array.of(0, -4), 2);
    expect(Math.abs((x[0] as number) - 1)).toBeLessThan(1e-12);
    expect(Math.abs((x[1] as number) + 2)).toBeLessThan(1e-12);
    expect(() => choleskySolve(Float64Array.of(1, 2, 2, 1), Float64Array.of(0, 0), 2)).toThrow(/positive definite/);
  });

  it('recovers a trend plus a period-4 pattern exactly, every step ahead', () => {
    const pattern = [0, 3, -1, 2];
    const series = Float64Array.from({ length: 200 }, (_, t) => 10 + 0.25 * t + (pattern[t % 4] as number));
    const observed = Array.from(series, () => true);
    const model = fitLinearAutoregression(series, observed, { lookback: 8, horizon: 5, ridge: 1e-10, targetEnd: 150 });
    for (let t = 150; t + 5 < 200; t++) {
      const forecast = forecastAt(model, series, t);
      for (let h = 0; h < 5; h++) expect(Math.abs((forecast[h] as number) - (series[t + h + 1] as number))).toBeLessThan(1e-5);
    }
  });

  it('never fits to a target marked unobserved', () => {
    // Values from index 100 on are garbage but unobserved: a fit that used them could not be exact.
    const pattern = [0, 3, -1, 2];
    const series = Float64Array.from({ length: 160 }, (_, t) => (t < 100 ? 10 + 0.25 * t + (pattern[t % 4] as number) : 1000 * Math.sin(t)));
    const observed = Array.from(series, (_, t) => t < 100);
    const model = fitLinearAutoregression(series, observed, { lookback: 8, horizon: 3, ridge: 1e-10 });
    for (let t = 7; t + 3 < 100; t++) {
      const forecast = forecastAt(model, series, t);
      for (let h = 0; h < 3; h++) expect(Math.abs((forecast[h] as number) - (series[t + h + 1] as number))).toBeLessThan(1e-5);
    }
  });
});

describe('readWeeklySeries', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'forecastd-co2-read-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads the real series with its 59 gaps as NaN', async () => {
    const series = await readWeeklySeries(DATA);
    expect(series.values.length).toBe(2284);
    expect(Array.from(series.values).filter(Number.isNaN).length).toBe(59);
    expect(new Date(series.times[0] as number).toISOString()).toBe('1958-03-29T00:00:00.000Z');
    expect(series.values[0]).toBe(316.1);
  });

  it('rejects rows that are not one week apart, naming the line', async () => {
    const path = join(dir, 'skip.csv');
    await writeFile(path, 'ts,co2\n2000-01-01T00:00:00Z,1\n2000-01-15T00:00:00Z,2\n');
    await expect(readWeeklySeries(path)).rejects.toThrow(/skip\.csv:3: 2000-01-15T00:00:00Z is not one week after/);
  });
});

describe('train', () => {
  let dir: string;
  let result: TrainResult;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'forecastd-co2-train-'));
    result = await train({ dataPath: DATA, outDir: dir });
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes a model whose ONNX Runtime forecast equals the fitted forecast on the latest 52 weeks', async () => {
    const { dims, data } = await forecastWithOrt(result.files.linear, result.latestWindow);
    expect(dims).toEqual([1, HORIZON]);
    expect(result.latestForecast.length).toBe(HORIZON);
    for (let h = 0; h < HORIZON; h++) {
      // float32 weights and sums over values near 370 ppm: agreement to a thousandth of a ppm.
      expect(Math.abs((data[h] as number) - (result.latestForecast[h] as number)), `step ${h + 1}`).toBeLessThan(1e-3);
    }
    // The forecast continues the series: within a few ppm of the last observed value, and rising over a year.
    const last = result.latestWindow[LOOKBACK - 1] as number;
    for (const v of data) expect(Math.abs(v - last)).toBeLessThan(5);
  });

  it('uses the raw latest window: the last 52 weeks of the data have no gaps', async () => {
    const series = await readWeeklySeries(DATA);
    const raw = Array.from(series.values.slice(series.values.length - LOOKBACK));
    expect(raw.some(Number.isNaN)).toBe(false);
    expect(Array.from(result.latestWindow)).toEqual(raw);
  });

  it('declares the served contract: input [batch, 52, 1], output [batch, 12], version 1, metadata', async () => {
    const proto = decodeModel(await readFile(result.files.linear));
    expect(Number(proto.modelVersion)).toBe(1);
    expect(proto.producerName).toBe('forecastd-train');
    const meta = Object.fromEntries(proto.metadataProps.map((p) => [p.key, p.value]));
    expect(meta['trained_on']).toBe(
      'co2_weekly.csv: 2284 weekly rows (59 gaps), 1958-03-29T00:00:00.000Z to 2001-12-29T00:00:00.000Z',
    );
    expect(meta['horizon']).toBe('12');
    const session = await ort.InferenceSession.create(result.files.linear);
    try {
      const input = session.inputMetadata[0];
      const output = session.outputMetadata[0];
      expect(input && input.isTensor ? [input.name, input.type, input.shape] : null).toEqual([
        'window',
        'float32',
        ['batch', LOOKBACK, 1],
      ]);
      expect(output && output.isTensor ? [output.name, output.type, output.shape] : null).toEqual([
        'forecast',
        'float32',
        ['batch', HORIZON],
      ]);
    } finally {
      await session.release();
    }
  });

  it('writes a seasonal-naive model that repeats the value 52 weeks before each step', async () => {
    const { data } = await forecastWithOrt(result.files.seasonalNaive, result.latestWindow);
    expect(data).toEqual(Array.from(Float32Array.from(result.latestWindow.slice(0, HORIZON))));
  });

  it('beats the naive last-value forecast on the held-out 20%, overall and at every step', () => {
    const { linear, naive, seasonalNaive, origins } = result.backtest;
    expect(origins).toBe(2284 - Math.floor(2284 * 0.8) - HORIZON + 1);
    expect(linear.overall.count).toBe(origins * HORIZON);
    expect(linear.overall.mae).toBeLessThan(naive.overall.mae);
    expect(linear.overall.rmse).toBeLessThan(naive.overall.rmse);
    expect(linear.overall.mae).toBeLessThan(seasonalNaive.overall.mae);
    linear.byStep.forEach((step, h) => expect(step.mae, `step ${h + 1}`).toBeLessThan(naive.byStep[h]?.mae ?? 0));
  });

  it('records the metrics in backtest.json', async () => {
    const report = JSON.parse(await readFile(result.files.backtest, 'utf8')) as {
      linear: { overall: { mae: number; count: number } };
      naive_last_value: { overall: { mae: number } };
      backtest: { split_ts: string; origins: number };
    };
    expect(report.linear.overall.mae).toBeCloseTo(result.backtest.linear.overall.mae, 4);
    expect(report.linear.overall.count).toBe(result.backtest.linear.overall.count);
    expect(report.naive_last_value.overall.mae).toBeCloseTo(result.backtest.naive.overall.mae, 4);
    expect(report.backtest).toEqual({ split_ts: '1993-04-03T00:00:00.000Z', origins: result.backtest.origins });
  });

  it('writes a quantile model whose 80% interval held about 80% of the held-out values', async () => {
    const { overall, byStep, count } = result.coverage;
    expect(count).toBe(result.backtest.linear.overall.count);
    // Calibrated before the split, scored after it: honest, so near but not exactly 80%.
    expect(overall).toBeGreaterThan(0.7);
    expect(overall).toBeLessThan(0.9);
    for (const share of byStep) expect(share).toBeGreaterThan(0.65);
    const session = await ort.InferenceSession.create(result.files.quantile);
    try {
      const out = await session.run({ window: new ort.Tensor('float32', Float32Array.from(result.latestWindow), [1, LOOKBACK, 1]) });
      expect(out['quantiles']?.dims).toEqual([1, HORIZON, 3]);
      const point = Array.from(out['forecast']!.data as Float32Array);
      const q = Array.from(out['quantiles']!.data as Float32Array);
      for (let h = 0; h < HORIZON; h++) {
        // Levels in order, around the point forecast, each the point plus that step's residual quantile.
        expect(q[h * 3]!).toBeLessThan(q[h * 3 + 1]!);
        expect(q[h * 3 + 1]!).toBeLessThan(q[h * 3 + 2]!);
        expect(q[h * 3]!).toBeLessThan(point[h]!);
        expect(q[h * 3 + 2]!).toBeGreaterThan(point[h]!);
        expect(Math.abs(q[h * 3 + 2]! - point[h]! - result.quantileOffsets[h * 3 + 2]!)).toBeLessThan(1e-3);
      }
    } finally {
      await session.release();
    }
    const report = JSON.parse(await readFile(result.files.backtest, 'utf8')) as { quantile: { interval_80: { coverage: number } } };
    expect(report.quantile.interval_80.coverage).toBeCloseTo(overall, 4);
  });

  it('is deterministic and leaves unchanged files untouched when run again', async () => {
    const before = await readFile(result.files.linear);
    const mtime = (await stat(result.files.linear)).mtimeMs;
    await train({ dataPath: DATA, outDir: dir });
    expect((await readFile(result.files.linear)).equals(before)).toBe(true);
    expect((await stat(result.files.linear)).mtimeMs).toBe(mtime);
  });
});

describe('bundled example', () => {
  it('ships the same series the tests use', async () => {
    const bundled = await readFile(join(import.meta.dirname, '..', '..', 'examples', 'co2', 'data', 'co2_weekly.csv'));
    expect(bundled.equals(await readFile(DATA))).toBe(true);
  });
});
