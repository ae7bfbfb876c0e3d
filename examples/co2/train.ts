/**
 * Trains the bundled example's models on data/co2_weekly.csv and writes them to models/:
 * - co2_linear.onnx: a direct multi-horizon linear autoregression (52 weeks in, the next 12 weeks out);
 * - co2_seasonal_naive.onnx: the seasonal-naive baseline (each week's value one year of 52 weeks earlier);
 * - co2_quantile.onnx: the linear model plus a quantile output (levels 0.1, 0.5, 0.9) from the empirical
 *   quantiles of its out-of-sample errors at each step;
 * - backtest.json: how the linear model and both baselines did on the last 20% of the series, and how often
 *   the quantile model's 80% interval held the measured value there.
 *
 * Runs at install (`npm run train:example`, part of `prepare`), so the models are built from the data in the
 * repository rather than shipped as binaries. Output is deterministic: the same data gives the same bytes.
 *
 *   tsx examples/co2/train.ts [--data FILE.csv] [--out DIR] [--quiet]
 */
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { parse } from 'csv-parse/sync';
import { linearModel, quantileModel, seasonalNaiveWeights } from '../../tools/onnx-builder.js';
import {
  backtest,
  fitLinearAutoregression,
  forecastAt,
  intervalCoverage,
  interpolateGaps,
  residualOffsets,
  residualsByStep,
  type IntervalCoverage,
  type Backtest,
  type ErrorMetrics,
  type LinearForecaster,
  type MethodMetrics,
} from './autoregression.js';

export const LOOKBACK = 52;
export const HORIZON = 12;
/** Weeks in a seasonal cycle, for the seasonal-naive forecast. */
export const PERIOD = 52;
/** Share of the series held out at the end for the backtest. */
export const TEST_FRACTION = 0.2;
/** Ridge penalty relative to the mean diagonal of the normal matrix: small, only to steady the solve. */
export const RIDGE = 1e-4;
/** Levels of the quantile model's output: an 80% interval and the median. */
export const QUANTILES = [0.1, 0.5, 0.9] as const;
/** Share of the training period, at its end, whose forecast errors calibrate the held-out quantiles. */
export const CALIBRATION_FRACTION = 0.25;
const WEEK_MS = 7 * 24 * 3600 * 1000;

const HERE = dirname(fileURLToPath(import.meta.url));

export interface WeeklySeries {
  readonly times: readonly number[];
  /** NaN where the source cell is empty. */
  readonly values: Float64Array;
}

/** Reads a `ts,co2` CSV of consecutive weeks (empty cells are gaps) and checks the spacing training relies on. */
export async function readWeeklySeries(path: string, column = 'co2'): Promise<WeeklySeries> {
  const records = parse(await readFile(path), { columns: true, skip_empty_lines: true }) as Record<string, string>[];
  const times: number[] = [];
  const values = new Float64Array(records.length);
  records.forEach((record, i) => {
    const line = i + 2;
    const ts = record['ts'];
    const cell = record[column];
    if (ts === undefined || cell === undefined) throw new Error(`${path}: needs columns ts and ${column}`);
    const t = Date.parse(ts);
    if (Number.isNaN(t)) throw new Error(`${path}:${line}: ts "${ts}" is not an ISO-8601 time`);
    const previous = times[times.length - 1];
    if (previous !== undefined && t - previous !== WEEK_MS) {
      throw new Error(`${path}:${line}: ${ts} is not one week after the previous row; training needs consecutive weeks`);
    }
    times.push(t);
    const v = cell.trim() === '' ? NaN : Number(cell);
    if (cell.trim() !== '' && !Number.isFinite(v)) throw new Error(`${path}:${line}: ${column} "${cell}" is not a number`);
    values[i] = v;
  });
  if (records.length < LOOKBACK + HORIZON) {
    throw new Error(`${path}: ${records.length} rows; training needs at least ${LOOKBACK + HORIZON}`);
  }
  return { times, values };
}

export interface TrainOptions {
  readonly dataPath?: string;
  readonly outDir?: string;
  readonly log?: (line: string) => void;
}

export interface TrainResult {
  /** Fitted on the whole series: the model written to co2_linear.onnx. */
  readonly forecaster: LinearForecaster;
  /** The forecast from the latest 52 weeks, in float64: what the server should return (within float32). */
  readonly latestWindow: Float64Array;
  readonly latestForecast: Float64Array;
  readonly backtest: Backtest;
  /** How often the 0.1-0.9 interval held the measured value in the backtest (calibrated before the split). */
  readonly coverage: IntervalCoverage;
  /** Row-major [12, 3] offsets from the point forecast of the served quantile model. */
  readonly quantileOffsets: Float64Array;
  readonly files: { readonly linear: string; readonly seasonalNaive: string; readonly quantile: string; readonly backtest: string };
}

function splitTs(series: WeeklySeries, testStart: number): string {
  return new Date(series.times[testStart] as number).toISOString();
}

function round(value: number): number {
  return Number(value.toFixed(4));
}

function metricsJson(m: MethodMetrics): unknown {
  const one = (e: ErrorMetrics) => ({ mae: round(e.mae), rmse: round(e.rmse), count: e.count });
  return { overall: one(m.overall), by_step: m.byStep.map(one) };
}

/** Writes only when the bytes differ, so re-running leaves files (and watchers of them) alone. */
async function writeIfChanged(path: string, bytes: Uint8Array | string): Promise<void> {
  const next = typeof bytes === 'string' ? Buffer.from(bytes) : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const current = await readFile(path).catch(() => undefined);
  if (current && current.equals(next)) return;
  await writeFile(path, next);
}

export async function train(options: TrainOptions = {}): Promise<TrainResult> {
  const dataPath = resolve(options.dataPath ?? join(HERE, 'data', 'co2_weekly.csv'));
  const outDir = resolve(options.outDir ?? join(HERE, 'models'));
  const log = options.log ?? (() => {});
  const series = await readWeeklySeries(dataPath);
  const n = series.values.length;
  const observed = Array.from(series.values, (v) => !Number.isNaN(v));
  // Gaps are interpolated for windows only; samples whose target is a gap are left out of fitting and scoring.
  const filled = interpolateGaps(series.values);
  const gaps = observed.filter((o) => !o).length;
  const firstTs = new Date(series.times[0] as number).toISOString();
  const lastTs = new Date(series.times[n - 1] as number).toISOString();

  const testStart = Math.floor(n * (1 - TEST_FRACTION));
  const heldOut = fitLinearAutoregression(filled, observed, {
    lookback: LOOKBACK,
    horizon: HORIZON,
    ridge: RIDGE,
    targetEnd: testStart,
  });
  const scores = backtest(heldOut, filled, observed, testStart - 1, PERIOD);

  // Honest intervals: the held-out model's errors on the last quarter of its own training period set the
  // offsets; the backtest then counts how often the interval held values it never saw.
  const calibrationStart = Math.floor(testStart * (1 - CALIBRATION_FRACTION));
  const calibration = residualOffsets(residualsByStep(heldOut, filled, observed, calibrationStart, testStart), QUANTILES);
  const coverage = intervalCoverage(heldOut, calibration, QUANTILES.length, 0, QUANTILES.length - 1, filled, observed, testStart - 1);
  // The served model's offsets: the held-out model's out-of-sample errors over the whole backtest.
  const quantileOffsets = residualOffsets(residualsByStep(heldOut, filled, observed, testStart - 1, n), QUANTILES);

  const forecaster = fitLinearAutoregression(filled, observed, { lookback: LOOKBACK, horizon: HORIZON, ridge: RIDGE });
  const latestWindow = filled.slice(n - LOOKBACK);
  const latestForecast = forecastAt(forecaster, filled, n - 1);

  const source = basename(dataPath);
  const common = {
    lookback: LOOKBACK,
    variables: 1,
    horizon: HORIZON,
    rank: 3 as const,
    batch: 'batch',
    dtype: 'float32' as const,
    inputName: 'window',
    outputName: 'forecast',
    modelVersion: 1,
    producerName: 'forecastd-train',
  };
  const linearBytes = linearModel({
    ...common,
    weights: forecaster.weights,
    bias: forecaster.bias,
    graphName: 'co2_linear',
    docString:
      'Weekly CO2 at Mauna Loa (ppm): the next 12 weeks from the latest 52, by a direct multi-horizon linear ' +
      'autoregression fitted with ridge least squares.',
    metadata: {
      trained_on: `${source}: ${n} weekly rows (${gaps} gaps), ${firstTs} to ${lastTs}`,
      lookback: String(LOOKBACK),
      horizon: String(HORIZON),
      interval: '7d',
      method: 'direct multi-horizon linear autoregression, ridge least squares',
      backtest_mae: String(round(scores.linear.overall.mae)),
    },
  });
  const seasonalBytes = linearModel({
    ...common,
    weights: seasonalNaiveWeights(LOOKBACK, HORIZON, PERIOD),
    bias: 0,
    graphName: 'co2_seasonal_naive',
    docString: 'Seasonal-naive baseline: each of the next 12 weeks repeats the value 52 weeks before it.',
    metadata: {
      lookback: String(LOOKBACK),
      horizon: String(HORIZON),
      interval: '7d',
      method: `seasonal naive, period ${PERIOD}`,
      backtest_mae: String(round(scores.seasonalNaive.overall.mae)),
    },
  });
  const quantileBytes = quantileModel({
    ...common,
    weights: forecaster.weights,
    bias: forecaster.bias,
    offsets: quantileOffsets,
    levels: QUANTILES.length,
    graphName: 'co2_quantile',
    docString:
      'Weekly CO2 at Mauna Loa (ppm): the linear model\'s 12-week forecast as output 0, and output "quantiles" ' +
      '[batch, 12, 3] at levels 0.1, 0.5, 0.9: the forecast plus the empirical quantiles of its out-of-sample ' +
      'errors at each step.',
    metadata: {
      lookback: String(LOOKBACK),
      horizon: String(HORIZON),
      interval: '7d',
      quantiles: QUANTILES.join(','),
      method: 'linear autoregression + per-step empirical residual quantiles from the backtest',
      backtest_coverage_80: String(round(coverage.overall)),
    },
  });
  const report = {
    data: { file: source, rows: n, gaps, first_ts: firstTs, last_ts: lastTs },
    lookback: LOOKBACK,
    horizon: HORIZON,
    ridge: RIDGE,
    // The held-out fit used only targets before split_ts; every forecast scored has its targets from it on.
    backtest: { split_ts: new Date(series.times[testStart] as number).toISOString(), origins: scores.origins },
    units: 'ppm',
    linear: metricsJson(scores.linear),
    naive_last_value: metricsJson(scores.naive),
    seasonal_naive: metricsJson(scores.seasonalNaive),
    quantile: {
      levels: QUANTILES,
      calibration: { first_origin_ts: new Date(series.times[calibrationStart] as number).toISOString(), targets_before: splitTs(series, testStart) },
      interval_80: { coverage: round(coverage.overall), count: coverage.count, by_step: coverage.byStep.map(round) },
      served_offsets: Array.from({ length: HORIZON }, (_, h) => QUANTILES.map((_, q) => round(quantileOffsets[h * QUANTILES.length + q] as number))),
    },
  };

  await mkdir(outDir, { recursive: true });
  const files = {
    linear: join(outDir, 'co2_linear.onnx'),
    seasonalNaive: join(outDir, 'co2_seasonal_naive.onnx'),
    quantile: join(outDir, 'co2_quantile.onnx'),
    backtest: join(outDir, 'backtest.json'),
  };
  await writeIfChanged(files.linear, linearBytes);
  await writeIfChanged(files.seasonalNaive, seasonalBytes);
  await writeIfChanged(files.quantile, quantileBytes);
  await writeIfChanged(files.backtest, `${JSON.stringify(report, null, 2)}\n`);

  log(`trained on ${n} weeks of ${source} (${gaps} gaps interpolated), ${firstTs.slice(0, 10)} to ${lastTs.slice(0, 10)}`);
  log(`backtest: ${scores.origins} forecasts from ${report.backtest.split_ts.slice(0, 10)} on, errors in ppm`);
  log('step   linear MAE/RMSE   naive MAE/RMSE   seasonal MAE/RMSE');
  const cell = (e: ErrorMetrics | undefined) => (e ? `${e.mae.toFixed(3)}/${e.rmse.toFixed(3)}`.padEnd(17) : '');
  for (let h = 0; h < HORIZON; h++) {
    log(`${String(h + 1).padStart(4)}   ${cell(scores.linear.byStep[h])} ${cell(scores.naive.byStep[h])}${cell(scores.seasonalNaive.byStep[h])}`);
  }
  log(` all   ${cell(scores.linear.overall)} ${cell(scores.naive.overall)}${cell(scores.seasonalNaive.overall)}`);
  log(`quantile model: the 0.1-0.9 interval held ${(coverage.overall * 100).toFixed(1)}% of ${coverage.count} backtest values (80% intended)`);
  log(`wrote ${files.linear}, ${files.seasonalNaive}, ${files.quantile}, ${files.backtest}`);
  return { forecaster, latestWindow, latestForecast, backtest: scores, coverage, quantileOffsets, files };
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href;
if (invokedDirectly) {
  const { values } = parseArgs({
    options: { data: { type: 'string' }, out: { type: 'string' }, quiet: { type: 'boolean', default: false } },
  });
  train({
    ...(values.data !== undefined ? { dataPath: values.data } : {}),
    ...(values.out !== undefined ? { outDir: values.out } : {}),
    log: values.quiet ? () => {} : (line) => console.log(line),
  }).catch((error: unknown) => {
    console.error(`examples/co2/train.ts: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 1;
  });
}
