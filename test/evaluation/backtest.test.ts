import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type ForecastdServer } from '../../src/server/start.js';
import { linearModel, quantileModel, seasonalNaiveWeights, seededRandom, uniformWeights } from '../../tools/onnx-builder.js';
import { PodDir, until } from '../server/fixtures.js';
import { close, DAY, oracleBacktest, type OracleOptions, type OracleResult, type Series } from './oracle.js';

/**
 * The evaluation route against an independent backtest (onnxruntime-node on hand-built windows, metrics in
 * plain loops) on a univariate, a multivariate and a quantile model, over a daily series with missing rows
 * and empty cells (skipped origins and pairs), with `since` and with a season longer than the lookback.
 */

const START = Date.UTC(2024, 0, 1);
const DAYS = 120;
const MISSING_ROWS = new Set([40, 41, 77]);
const EMPTY_A = new Set([60]);
const EMPTY_B = new Set([95]);

function makeSeries(): { csv: string; a: Series; ab: Series } {
  const random = seededRandom(11);
  const lines = ['ts,a,b'];
  const times: number[] = [];
  const rowsA: number[][] = [];
  const rowsAB: number[][] = [];
  for (let d = 0; d < DAYS; d++) {
    if (MISSING_ROWS.has(d)) continue;
    const a = Number((10 + 3 * Math.sin((2 * Math.PI * d) / 7) + 0.05 * d + random() - 0.5).toFixed(6));
    const b = Number((5 + 2 * Math.cos((2 * Math.PI * d) / 7) - 0.02 * d + random() - 0.5).toFixed(6));
    const cellA = EMPTY_A.has(d) ? '' : String(a);
    const cellB = EMPTY_B.has(d) ? '' : String(b);
    const t = START + d * DAY;
    lines.push(`${new Date(t).toISOString()},${cellA},${cellB}`);
    times.push(t);
    const va = EMPTY_A.has(d) ? Number.NaN : a;
    const vb = EMPTY_B.has(d) ? Number.NaN : b;
    rowsA.push([va]);
    rowsAB.push([va, vb]);
  }
  return { csv: lines.join('\n') + '\n', a: { times, rows: rowsA }, ab: { times, rows: rowsAB } };
}

const L = 8;
const H = 3;
const random = seededRandom(7);
const uniBytes = linearModel({ lookback: L, horizon: H, weights: uniformWeights(random, L * H, 0.3), bias: uniformWeights(random, H, 0.5) });
const multiBytes = linearModel({
  lookback: L,
  variables: 2,
  horizon: H * 2,
  outputShape: [H, 2],
  weights: uniformWeights(random, L * 2 * H * 2, 0.2),
  bias: uniformWeights(random, H * 2, 0.5),
});
const multiFirstBytes = linearModel({ lookback: L, variables: 2, horizon: H, weights: uniformWeights(random, L * 2 * H, 0.2) });
const offsets = Float32Array.from({ length: H * 3 }, (_, i) => [-1.2, 0.05, 0.9][i % 3]! * (1 + Math.floor(i / 3) * 0.3));
const quantBytes = quantileModel({ lookback: L, horizon: H, weights: uniformWeights(random, L * H, 0.3), levels: 3, offsets });
const SN_LOOKBACK = 14;
const seasonalBytes = linearModel({ lookback: SN_LOOKBACK, horizon: H, weights: seasonalNaiveWeights(SN_LOOKBACK, H, 7) });
const SINCE = Date.UTC(2024, 2, 1);

const POD = `
version: v1beta1
kind: Spicepod
name: evaluation
datasets:
  - from: file:data/series.csv
    name: uni
    params:
      columns: [a]
  - from: file:data/series.csv
    name: multi
    params:
      columns: [a, b]
models:
  - from: file:models/uni.onnx
    name: uni
    datasets: [uni]
    params:
      evaluation:
        origins: 40
  - from: file:models/uni.onnx
    name: uni_since
    datasets: [uni]
    params:
      evaluation:
        origins: 1000
        since: 2024-03-01
  - from: file:models/uni.onnx
    name: uni_season10
    datasets: [uni]
    params:
      fill_missing: previous
      evaluation:
        season_length: 10
  - from: file:models/multi.onnx
    name: multi
    datasets: [multi]
    params:
      fill_missing: previous
  - from: file:models/multi_first.onnx
    name: multi_first
    datasets: [multi]
    params:
      fill_missing: previous
  - from: file:models/quant.onnx
    name: quant
    datasets: [uni]
    params:
      quantiles: [0.1, 0.5, 0.9]
      quantile_output: quantiles
  - from: file:models/seasonal.onnx
    name: seasonal
    datasets: [uni]
  - from: file:models/uni.onnx
    name: off
    datasets: [uni]
    params:
      evaluation:
        origins: 0
`;

type Json = Record<string, unknown>;


function closeAll(actual: unknown, expected: readonly (number | null)[], what: string): void {
  expect(Array.isArray(actual), what).toBe(true);
  const list = actual as unknown[];
  expect(list.length, what).toBe(expected.length);
  expected.forEach((x, i) => close(list[i], x, `${what}[${i}]`));
}

function compare(body: Json, oracle: OracleResult): void {
  expect(body.status).toBe('Ready');
  expect(body.origins).toBe(oracle.origins);
  expect(body.skipped).toBe(oracle.skipped);
  expect(body.skipped_pairs).toBe(oracle.skipped_pairs);
  expect(body.first_origin).toBe(oracle.first_origin);
  expect(body.last_origin).toBe(oracle.last_origin);
  close(body.mae, oracle.mae, 'mae');
  close(body.rmse, oracle.rmse, 'rmse');
  close(body.bias, oracle.bias, 'bias');
  close(body.mase, oracle.mase, 'mase');
  close(body.skill, oracle.skill, 'skill');
  const byStep = body.by_step as Json;
  closeAll(byStep.mae, oracle.by_step.mae, 'by_step.mae');
  closeAll(byStep.rmse, oracle.by_step.rmse, 'by_step.rmse');
  closeAll(byStep.bias, oracle.by_step.bias, 'by_step.bias');
  const baselines = body.baselines as Record<string, Json>;
  close(baselines.naive!.mae, oracle.naive.mae, 'naive.mae');
  close(baselines.naive!.rmse, oracle.naive.rmse, 'naive.rmse');
  closeAll((baselines.naive!.by_step as Json).mae, oracle.naive.by_step, 'naive.by_step.mae');
  close(baselines.seasonal_naive!.mae, oracle.seasonal.mae, 'seasonal_naive.mae');
  close(baselines.seasonal_naive!.rmse, oracle.seasonal.rmse, 'seasonal_naive.rmse');
  closeAll((baselines.seasonal_naive!.by_step as Json).mae, oracle.seasonal.by_step, 'seasonal_naive.by_step.mae');
  // Past forecasts: a few recent origins, a horizon apart, oldest first, beside what happened.
  const past = body.past_forecasts as Json[];
  expect(past.map((p) => [p.origin, p.variable, p.timestamps])).toEqual(oracle.past.map((p) => [p.origin, COLUMNS[p.c], p.timestamps]));
  expect(new Set(past.map((p) => p.origin)).size).toBe(Math.min(5, oracle.origins));
  oracle.past.forEach((p, i) => {
    closeAll(past[i]!.forecast, p.forecast, `past_forecasts[${i}].forecast`);
    expect(past[i]!.actual, `past_forecasts[${i}].actual`).toEqual(p.actual);
  });
}

const COLUMNS = ['a', 'b'];

describe('GET /v1/models/:name/evaluation', () => {
  const pod = new PodDir();
  const series = makeSeries();
  let server: ForecastdServer;
  let url: string;

  async function evaluation(name: string): Promise<{ status: number; body: Json }> {
    const res = await fetch(`${url}/v1/models/${name}/evaluation`);
    return { status: res.status, body: (await res.json()) as Json };
  }

  async function ready(name: string): Promise<Json> {
    return until(`evaluation of ${name}`, async () => {
      const { status, body } = await evaluation(name);
      expect(status).toBe(200);
      return body.status === 'Ready' || body.status === 'Error' || body.status === 'Off' ? body : undefined;
    });
  }

  const base = { lookback: L, horizon: H, origins: 200, since: null, seasonLength: 7 } as const;

  beforeAll(async () => {
    pod.write('data/series.csv', series.csv);
    pod.write('models/uni.onnx', uniBytes);
    pod.write('models/multi.onnx', multiBytes);
    pod.write('models/multi_first.onnx', multiFirstBytes);
    pod.write('models/quant.onnx', quantBytes);
    pod.write('models/seasonal.onnx', seasonalBytes);
    pod.write('spicepod.yaml', POD);
    server = await startServer({ spicepod: pod.dir, port: 0 });
    await server.loaded();
    url = `http://127.0.0.1:${server.port}`;
  });

  afterAll(async () => {
    await server?.close();
    pod.remove();
  });

  it('scores a univariate model as the independent backtest does, origins newest first, skipping windows with gaps', async () => {
    const body = await ready('uni');
    const options: OracleOptions = { ...base, outputVariables: 1, fill: 'none', origins: 40 };
    const oracle = await oracleBacktest(uniBytes, series.a, options);
    expect(oracle.skipped).toBeGreaterThan(0);
    expect(oracle.skipped_pairs).toBeGreaterThan(0);
    expect(body.model).toBe('uni');
    expect(body.dataset).toBe('uni');
    expect(body.horizon).toBe(H);
    expect(body.season_length).toBe(7);
    expect(body.by_variable).toBeUndefined();
    expect(body.quantiles).toBeUndefined();
    expect(typeof body.computed_at).toBe('string');
    expect(typeof body.duration_ms).toBe('number');
    compare(body, oracle);
  });

  it('takes only origins at or after `since`', async () => {
    const body = await ready('uni_since');
    const oracle = await oracleBacktest(uniBytes, series.a, { ...base, outputVariables: 1, fill: 'none', origins: 1000, since: SINCE });
    expect(Date.parse(body.first_origin as string)).toBeGreaterThanOrEqual(SINCE);
    // 2024-03-01 has an empty cell: the windows ending on it and the 7 days after have a gap (fill_missing
    // none), and so do the 7 windows after the missing row of 2024-03-18 (a day with no row is no origin).
    expect(body.first_origin).toBe('2024-03-09T00:00:00.000Z');
    expect(body.skipped).toBe(15);
    compare(body, oracle);
  });

  it('reads baselines and the MASE scale over a season longer than the lookback, with gaps filled', async () => {
    const body = await ready('uni_season10');
    const oracle = await oracleBacktest(uniBytes, series.a, { ...base, outputVariables: 1, fill: 'previous', seasonLength: 10 });
    expect(body.season_length).toBe(10);
    compare(body, oracle);
  });

  it('scores a multivariate model per variable and averages MASE and skill', async () => {
    const body = await ready('multi');
    const oracle = await oracleBacktest(multiBytes, series.ab, { ...base, outputVariables: 2, fill: 'previous' });
    compare(body, oracle);
    const byVariable = body.by_variable as Json[];
    expect(byVariable.map((v) => v.variable)).toEqual(['a', 'b']);
    byVariable.forEach((v, c) => {
      close(v.mae, oracle.by_variable[c]!.mae, `by_variable[${c}].mae`);
      close(v.mase, oracle.by_variable[c]!.mase, `by_variable[${c}].mase`);
      close(v.skill, oracle.by_variable[c]!.skill, `by_variable[${c}].skill`);
    });
  });

  it('scores a one-value-per-step model of two columns against the first column', async () => {
    const body = await ready('multi_first');
    const oracle = await oracleBacktest(multiFirstBytes, series.ab, { ...base, outputVariables: 1, fill: 'previous' });
    compare(body, oracle);
  });

  it('adds calibration and pinball per level and coverage per symmetric interval for a quantile model', async () => {
    const body = await ready('quant');
    const oracle = await oracleBacktest(quantBytes, series.a, {
      ...base,
      outputVariables: 1,
      fill: 'none',
      levels: [0.1, 0.5, 0.9],
      quantileOutput: 'quantiles',
    });
    compare(body, oracle);
    const quantiles = body.quantiles as Record<string, Json>;
    expect(Object.keys(quantiles)).toEqual(['0.1', '0.5', '0.9']);
    for (const level of ['0.1', '0.5', '0.9']) {
      close(quantiles[level]!.calibration, oracle.quantiles[level]!.calibration, `calibration ${level}`);
      close(quantiles[level]!.pinball, oracle.quantiles[level]!.pinball, `pinball ${level}`);
    }
    const intervals = body.intervals as Json[];
    expect(intervals).toHaveLength(1);
    expect(intervals[0]).toMatchObject({ lower: 0.1, upper: 0.9, nominal: 0.8 });
    close(intervals[0]!.coverage, oracle.intervals[0]!.coverage, 'coverage');
  });

  it('gives a seasonal-naive ONNX model a skill of 0 against the seasonal-naive baseline', async () => {
    const body = await ready('seasonal');
    expect(body.status).toBe('Ready');
    expect(Math.abs(body.skill as number)).toBeLessThanOrEqual(1e-6);
    close(body.mae, (body.baselines as Record<string, Json>).seasonal_naive!.mae as number, 'mae against seasonal naive');
  });

  it('says Off with the reason when evaluation is turned off, and 404 for an unknown model', async () => {
    const off = await evaluation('off');
    expect(off.status).toBe(200);
    expect(off.body).toEqual({ model: 'off', dataset: 'uni', status: 'Off', error: 'evaluation is turned off (params.evaluation.origins is 0)' });
    const missing = await evaluation('nope');
    expect(missing.status).toBe(404);
    expect(missing.body).toEqual({ status: 'NotFound', error_message: 'Model nope not found' });
  });

  it('shows mae and skill in the listings and the gauges in /metrics', async () => {
    const body = await ready('quant');
    const listing = (await (await fetch(`${url}/v1/models?status=true`)).json()) as Json[];
    const quant = listing.find((m) => m.name === 'quant')!;
    expect(quant.mae).toBe(body.mae);
    expect(quant.skill).toBe(body.skill);
    expect(listing.find((m) => m.name === 'off')).toMatchObject({ mae: null, skill: null });
    const details = (await (await fetch(`${url}/v1/models/quant`)).json()) as Json;
    expect(details.mae).toBe(body.mae);
    expect(details.skill).toBe(body.skill);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toContain(`forecastd_evaluation_mae{model="quant"} ${body.mae as number}`);
    expect(metrics).toContain(`forecastd_evaluation_skill{model="quant"} ${body.skill as number}`);
    const quantiles = body.quantiles as Record<string, Json>;
    expect(metrics).toContain(`forecastd_evaluation_quantile_calibration{model="quant",quantile="0.1"} ${quantiles['0.1']!.calibration as number}`);
    const interval = (body.intervals as Json[])[0]!;
    expect(metrics).toContain(`forecastd_evaluation_interval_coverage{model="quant",nominal="0.8"} ${interval.coverage as number}`);
    expect(metrics).not.toContain('forecastd_evaluation_mae{model="off"}');
  });
});
