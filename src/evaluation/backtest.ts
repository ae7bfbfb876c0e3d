/**
 * Rolling-origin backtest of a model on its own dataset (SPEC "Evaluation"): for each origin t (a grid step
 * holding a row), the window a request at t would have got goes through the model, and its forecast of the
 * next H steps is scored against the stored values, beside the naive and seasonal-naive baselines read from
 * the same history. Origins go through the forecaster in low-priority runs sized to take about a
 * millisecond each; windows are built straight into the run's tensor, and every result folds into fixed
 * sums, so memory does not grow with the number of origins.
 */
import { performance } from 'node:perf_hooks';
import { ForecastdError } from '../errors.js';
import { snapshotFrequency } from '../datasets/snapshot-frequency.js';
import type { DatasetSnapshot, FillMissing } from '../datasets/types.js';
import type { Frequency } from '../forecast/frequency.js';
import { horizonOf } from '../forecast/layout.js';
import type { AbortSignalLike } from '../runtime/cancellation.js';
import type { BackgroundResult, BatchingForecaster } from '../runtime/forecaster.js';
import { allocateTensorData } from '../runtime/session.js';
import type { FloatArray } from '../runtime/types.js';
import { StepGrid, defaultSeasonLength, emptyRowCounts, plainWindowStart, windowAt } from './grid.js';
import { MetricAccumulator } from './metrics.js';
import type { MetricSummary } from './metrics.js';

export type { BaselineMetrics, IntervalMetrics, MetricSummary, QuantileMetrics, VariableMetrics } from './metrics.js';

export interface BacktestOptions {
  /** The data to walk; origins are its own rows. */
  readonly snapshot: DatasetSnapshot;
  /** For messages. Default "the dataset". */
  readonly datasetName?: string;
  /** How windows fill gaps, as the model's requests do. Default 'none'. */
  readonly fillMissing?: FillMissing;
  /** The step of the time axis; default inferred from the snapshot. null: origins and steps are rows. */
  readonly frequency?: Frequency | null;
  /** Scored origins wanted, newest first. Default 200. */
  readonly origins?: number;
  /** Only origins at or after this time (epoch ms). */
  readonly since?: number | null;
  /** m for the seasonal-naive baseline and MASE; default from the frequency. */
  readonly seasonLength?: number | null;
  /**
   * Quantile levels of the forecaster's first extra output ([B, H, Q] or [B, H, V', Q]), strictly
   * increasing in (0, 1); null for a point model.
   */
  readonly quantiles?: readonly number[] | null;
  /** Aborting stops the backtest between runs; it rejects with the reason. */
  readonly signal?: AbortSignalLike;
}

/** A backtest's result: the fields of `GET /v1/models/:name/evaluation` after model, dataset and status. */
export interface BacktestResult extends MetricSummary {
  /** Scored origins. */
  readonly origins: number;
  /** Origins whose window could not be built (a gap it may not fill, too little history). */
  readonly skipped: number;
  /** Oldest and newest scored origin, ISO 8601. */
  readonly first_origin: string;
  readonly last_origin: string;
  readonly horizon: number;
  readonly season_length: number;
  /** (origin, step) pairs left out because the dataset holds no value there. */
  readonly skipped_pairs: number;
  /**
   * The forecasts of a few recent origins beside what happened, oldest origin first: at most
   * PAST_FORECAST_ORIGINS origins, each at least a horizon older than the next, so that their forecasts lie
   * side by side over the latest history; one entry per origin and scored variable.
   */
  readonly past_forecasts: PastForecast[];
  /** When it finished, ISO 8601, and how long it took. */
  readonly computed_at: string;
  readonly duration_ms: number;
}

/** One origin's forecast of one variable, beside the stored values it was scored against. */
export interface PastForecast {
  /** The origin, ISO 8601: the forecast was made from the rows up to it. */
  readonly origin: string;
  /** The dataset column forecast. */
  readonly variable: string;
  /** The H forecast steps, ISO 8601. */
  readonly timestamps: string[];
  /** The model's forecast at each step. */
  readonly forecast: number[];
  /** The stored value at each step; null where the dataset holds none. */
  readonly actual: (number | null)[];
}

/** Origins whose forecasts a backtest keeps (PastForecast): with H steps each, at most 5 x H values per variable. */
export const PAST_FORECAST_ORIGINS = 5;

export type EvaluationStatus = 'Computing' | 'Ready' | 'Off' | 'Error';

/** GET /v1/models/:name/evaluation: which model, where its evaluation stands, and the last results if any. */
export type EvaluationReport = {
  readonly model: string;
  readonly dataset: string | null;
  readonly status: EvaluationStatus;
  readonly error?: string;
} & Partial<BacktestResult>;

/**
 * What a backtest needs of a forecaster: its shape and settings and low-priority runs. A model's
 * BatchingForecaster is one; an ensemble's members behind one combining run are another.
 */
export type BacktestForecaster = Pick<BatchingForecaster, 'shape' | 'extraOutputs' | 'settings' | 'runBackground'>;

/** Largest run of windows, whatever the measured cost says. */
const MAX_RUN_WINDOWS = 4096;
/** What each run should cost (SPEC: about 1 ms), so that requests never wait long behind one. */
const RUN_TARGET_MS = 1;
/** Grid steps read between yields to the event loop while the MASE scale is summed. */
const SCALE_STEPS_PER_TURN = 20_000;

/**
 * Why a model with this forecaster cannot be backtested (no horizon, or a per-step width other than the
 * dataset's columns or 1), or null when it can.
 */
export function backtestProblem(forecaster: BacktestForecaster): string | null {
  const shape = forecaster.shape;
  const layout = horizonOf({ name: shape.outputName, type: shape.outputType, shape: ['batch', ...shape.outputItemShape] });
  if (typeof layout === 'string') return layout.replace('forecast timestamps, quantiles and client series need', 'evaluation needs');
  if (layout.outputVariables !== shape.variables && layout.outputVariables !== 1) {
    return `output '${shape.outputName}' forecasts ${layout.outputVariables} values per step; evaluation needs one per input column (${shape.variables}) or one (scored against the first column)`;
  }
  return null;
}

/**
 * Runs the backtest. Rejects with ERR_INVALID_ARGUMENT when the model cannot be evaluated (see
 * backtestProblem) or the options are wrong, ERR_WINDOW when no origin could be scored, and with a run's
 * error when the model fails.
 */
export async function backtest(forecaster: BacktestForecaster, options: BacktestOptions): Promise<BacktestResult> {
  const started = performance.now();
  const problem = backtestProblem(forecaster);
  if (problem !== null) throw new ForecastdError('ERR_INVALID_ARGUMENT', problem);
  const { snapshot, signal } = options;
  const datasetName = options.datasetName ?? 'the dataset';
  const label = datasetName === 'the dataset' ? datasetName : `dataset ${datasetName}`;
  const fill = options.fillMissing ?? 'none';
  const frequency = options.frequency === undefined ? snapshotFrequency(snapshot) : options.frequency;
  const wanted = options.origins ?? 200;
  if (!Number.isSafeInteger(wanted) || wanted < 1) {
    throw new ForecastdError('ERR_INVALID_ARGUMENT', `origins must be a positive integer, got ${wanted}`);
  }
  const m = options.seasonLength ?? defaultSeasonLength(frequency);
  if (!Number.isSafeInteger(m) || m < 1) {
    throw new ForecastdError('ERR_INVALID_ARGUMENT', `season_length must be a positive integer, got ${m}`);
  }
  const since = options.since ?? null;
  const levels = options.quantiles ?? [];

  const shape = forecaster.shape;
  const L = shape.lookback;
  const V = shape.variables;
  const layout = horizonOf({ name: shape.outputName, type: shape.outputType, shape: ['batch', ...shape.outputItemShape] });
  if (typeof layout === 'string') throw new ForecastdError('ERR_INVALID_ARGUMENT', layout);
  const H = layout.horizon;
  const perStep = layout.outputVariables;
  const S = perStep; // scored variables: every column, or the first one
  const Q = levels.length;
  if (Q > 0 && forecaster.extraOutputs.length < 1) {
    throw new ForecastdError('ERR_INVALID_ARGUMENT', 'quantile levels were given but the forecaster reads no quantile output (extraOutputs)');
  }
  const grid = new StepGrid(snapshot, frequency);
  const width = snapshot.columns.length;
  if (width !== V) {
    throw new ForecastdError('ERR_INVALID_ARGUMENT', `${label} has ${width} value columns; the model takes ${V}`);
  }
  const { values } = snapshot;
  const round = shape.inputType === 'float32' ? Math.fround : (x: number): number => x;
  const accumulator = new MetricAccumulator(H, S, levels);
  const windowLength = L * V;
  const historyLength = m * S;
  const fixedBatch = shape.batch === 1;
  const concurrent = forecaster.settings.maxConcurrentRuns;
  // Scratch for a baseline history longer than the lookback.
  const longWindow = m > L ? new Float64Array(m * V) : null;
  const emptyRows = emptyRowCounts(snapshot);

  let scored = 0;
  let skipped = 0;
  let skippedPairs = 0;
  let firstOrigin = Number.POSITIVE_INFINITY;
  let lastOrigin = Number.NEGATIVE_INFINITY;
  let firstOriginStep = -1;
  // The next grid step to look at: step j's targets are steps j − 1 ... j − H, so the newest origin is step H.
  let j = H;
  let exhausted = false;
  let runSize = fixedBatch ? 1 : 16;
  // The origins whose forecasts are kept, newest first: grid step -> index in `kept`.
  const keptSlot = new Map<number, number>();
  let lastKeptStep = -1;
  const kept: PastForecast[][] = [];

  /** One run's worth of origins: their windows in the tensor, their baseline history and grid steps. */
  interface Chunk {
    readonly data: Float32Array | Float64Array;
    readonly history: Float64Array;
    readonly steps: Int32Array;
    /** The row of each origin. */
    readonly rows: Int32Array;
    readonly count: number;
  }

  const nextChunk = (): Chunk | null => {
    const size = Math.min(runSize, wanted - scored);
    if (size <= 0 || exhausted) return null;
    const data = allocateTensorData(shape.inputType, size * windowLength);
    const history = new Float64Array(size * historyLength);
    const steps = new Int32Array(size);
    const originRows = new Int32Array(size);
    let count = 0;
    while (count < size) {
      if (grid.beforeFirstRow(j)) {
        exhausted = true;
        break;
      }
      const step = j++;
      const row = grid.rowAt(step);
      if (row < 0) continue;
      // The origin's time is its row's (within a step's tolerance of the grid point for steps of a day or more).
      const t = snapshot.times[row] as number;
      if (since !== null && t < since) {
        exhausted = true;
        break;
      }
      try {
        const start = plainWindowStart(snapshot, row, L, grid.frequency, emptyRows);
        if (start >= 0) data.set(values.subarray(start * V, (row + 1) * V), count * windowLength);
        else windowAt(snapshot, row, L, fill, datasetName, frequency).copyInto(data, count * windowLength);
        if (longWindow !== null) {
          const longStart = plainWindowStart(snapshot, row, m, grid.frequency, emptyRows);
          if (longStart >= 0) longWindow.set(values.subarray(longStart * V, (row + 1) * V));
          else windowAt(snapshot, row, m, fill, datasetName, frequency).copyInto(longWindow, 0);
        }
      } catch (error) {
        if (error instanceof ForecastdError && error.code === 'ERR_WINDOW') {
          skipped++;
          continue;
        }
        throw error;
      }
      // history[back * S + c]: the value `back` steps before the origin, as the model's input type holds it.
      const h = count * historyLength;
      for (let back = 0; back < m; back++) {
        for (let c = 0; c < S; c++) {
          history[h + back * S + c] =
            longWindow === null
              ? (data[count * windowLength + (L - 1 - back) * V + c] as number)
              : round(longWindow[(m - 1 - back) * V + c] as number);
        }
      }
      if (keptSlot.size < PAST_FORECAST_ORIGINS && (lastKeptStep < 0 || step - lastKeptStep >= H)) {
        keptSlot.set(step, keptSlot.size);
        lastKeptStep = step;
      }
      steps[count] = step;
      originRows[count] = row;
      count++;
      scored++;
      if (t < firstOrigin) {
        firstOrigin = t;
        firstOriginStep = step;
      }
      if (t > lastOrigin) lastOrigin = t;
    }
    if (count === 0) return null;
    return { data: count === size ? data : data.subarray(0, count * windowLength), history, steps, rows: originRows, count };
  };

  const score = (chunk: Chunk, result: BackgroundResult): void => {
    const point = result.outputs[0] as FloatArray;
    const quantiles = Q > 0 ? (result.outputs[1] as FloatArray) : null;
    const itemSize = point.length / chunk.count;
    const quantileItem = quantiles === null ? 0 : quantiles.length / chunk.count;
    for (let k = 0; k < chunk.count; k++) {
      const origin = chunk.steps[k] as number;
      const originRow = chunk.rows[k] as number;
      const slot = keptSlot.get(origin);
      if (slot !== undefined) kept[slot] = pastForecasts(origin, originRow, point.subarray(k * itemSize, (k + 1) * itemSize));
      for (let s = 0; s < H; s++) {
        const row = grid.rowAt(origin - (s + 1), originRow + s + 1);
        let stored = row >= 0;
        for (let c = 0; stored && c < S; c++) if (Number.isNaN(values[row * width + c] as number)) stored = false;
        if (!stored) {
          skippedPairs++;
          continue;
        }
        const back = m * Math.ceil((s + 1) / m) - (s + 1);
        for (let c = 0; c < S; c++) {
          const forecast = point[k * itemSize + s * perStep + c] as number;
          if (!Number.isFinite(forecast)) {
            throw new ForecastdError(
              'ERR_NON_FINITE',
              `the forecast from ${new Date(grid.timeOf(origin)).toISOString()} holds ${String(forecast)} at step ${s + 1}`,
            );
          }
          const base = k * historyLength;
          const qBase = k * quantileItem + (s * perStep + c) * Q;
          accumulator.add(
            s,
            c,
            values[row * width + c] as number,
            forecast,
            chunk.history[base + c] as number,
            chunk.history[base + back * S + c] as number,
            quantiles === null ? null : (q) => quantiles[qBase + q] as number,
          );
        }
      }
    }
  };

  /** The forecast of each scored variable from `origin`, beside the stored values. */
  const pastForecasts = (origin: number, originRow: number, item: FloatArray): PastForecast[] => {
    const timestamps: string[] = [];
    const rows: number[] = [];
    for (let s = 0; s < H; s++) {
      timestamps.push(new Date(grid.timeOf(origin - (s + 1))).toISOString());
      rows.push(grid.rowAt(origin - (s + 1), originRow + s + 1));
    }
    return Array.from({ length: S }, (_, c) => ({
      origin: new Date(grid.timeOf(origin)).toISOString(),
      variable: snapshot.columns[c] as string,
      timestamps,
      forecast: Array.from({ length: H }, (_, s) => item[s * perStep + c] as number),
      actual: rows.map((row) => {
        const value = row >= 0 ? (values[row * width + c] as number) : Number.NaN;
        return Number.isNaN(value) ? null : value;
      }),
    }));
  };

  const checkAborted = (): void => {
    if (signal?.aborted === true) throw signal.reason;
  };

  // Up to `concurrent` runs are handed over at once; the forecaster starts them only on slots requests leave.
  const inFlight: Promise<void>[] = [];
  let failure: unknown = null;
  for (;;) {
    checkAborted();
    if (failure !== null) break;
    const chunk = nextChunk();
    if (chunk === null) break;
    const run = forecaster.runBackground(chunk.data, chunk.count).then(
      (result) => {
        if (!fixedBatch) {
          const perWindow = result.inferenceMs / chunk.count;
          runSize = perWindow > 0 ? Math.max(1, Math.min(MAX_RUN_WINDOWS, Math.round(RUN_TARGET_MS / perWindow))) : MAX_RUN_WINDOWS;
        }
        try {
          score(chunk, result);
        } catch (error) {
          failure ??= error;
        }
      },
      (error: unknown) => {
        failure ??= error;
      },
    );
    const tracked: Promise<void> = run.finally(() => {
      inFlight.splice(inFlight.indexOf(tracked), 1);
    });
    inFlight.push(tracked);
    if (inFlight.length >= concurrent) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  if (failure !== null) throw failure;
  checkAborted();
  if (scored === 0) {
    const where = since === null ? '' : ` at or after ${new Date(since).toISOString()}`;
    throw new ForecastdError(
      'ERR_WINDOW',
      `no origin in ${label}${where} could be scored: an origin needs a window of ${L} ${grid.stepName === 'row' ? 'rows' : `steps of ${grid.stepName}`} and ${H} steps after it` +
        (skipped > 0 ? ` (${skipped} origin${skipped === 1 ? '' : 's'} skipped: a gap the window may not fill, or too little history)` : ''),
    );
  }

  const scales = await maseScales(grid, firstOriginStep, m, S, signal);
  const summary = accumulator.finish(scales, m, snapshot.columns.slice(0, S));
  const { by_variable, quantiles, intervals, ...main } = summary;
  return {
    origins: scored,
    skipped,
    first_origin: new Date(firstOrigin).toISOString(),
    last_origin: new Date(lastOrigin).toISOString(),
    horizon: H,
    season_length: m,
    mae: main.mae,
    rmse: main.rmse,
    bias: main.bias,
    mase: main.mase,
    skill: main.skill,
    by_step: main.by_step,
    ...(by_variable === undefined ? {} : { by_variable }),
    skipped_pairs: skippedPairs,
    baselines: main.baselines,
    ...(quantiles === undefined ? {} : { quantiles }),
    ...(intervals === undefined ? {} : { intervals }),
    past_forecasts: kept.slice().reverse().flat(),
    computed_at: new Date().toISOString(),
    duration_ms: Math.round(performance.now() - started),
  };
}

/**
 * Per scored variable, Hyndman and Koehler's in-sample scale: the mean of |y_i − y_{i−m}| over stored values
 * at or before the first origin (i − m counted in grid steps); null with fewer than m pairs or a zero scale.
 */
async function maseScales(grid: StepGrid, firstStep: number, m: number, S: number, signal: AbortSignalLike | undefined): Promise<(number | null)[]> {
  const { values } = grid.snapshot;
  const width = grid.snapshot.columns.length;
  const sums = new Float64Array(S);
  const counts = new Float64Array(S);
  let steps = 0;
  for (let j = firstStep; !grid.beforeFirstRow(j + m); j++) {
    if (++steps % SCALE_STEPS_PER_TURN === 0) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (signal?.aborted === true) throw signal.reason;
    }
    const row = grid.rowAt(j);
    if (row < 0) continue;
    const earlier = grid.rowAt(j + m);
    if (earlier < 0) continue;
    for (let c = 0; c < S; c++) {
      const d = (values[row * width + c] as number) - (values[earlier * width + c] as number);
      if (Number.isNaN(d)) continue;
      sums[c] = (sums[c] as number) + Math.abs(d);
      counts[c] = (counts[c] as number) + 1;
    }
  }
  return Array.from({ length: S }, (_, c) => {
    const n = counts[c] as number;
    if (n < m || n === 0) return null;
    const scale = (sums[c] as number) / n;
    return scale === 0 ? null : scale;
  });
}
