/**
 * The library's way to forecast a client's own series, without the HTTP server: a BatchingForecaster over
 * a quantile-aware model, taking a series as numbers (or rows of numbers), cutting the newest lookback
 * steps, and answering with the forecast, its timestamps and its quantiles. Concurrent forecast() calls
 * share batched runs exactly as the server's requests do.
 */
import { ForecastdError } from '../errors.js';
import { addSteps, inCalendarRange, monthsFrom } from '../forecast/frequency.js';
import type { Frequency } from '../forecast/frequency.js';
import { checkQuantileSize, forecastLayout, quantileCrossings, quantileLevel } from '../forecast/layout.js';
import type { ForecastLayout } from '../forecast/layout.js';
import { parseTimestamp } from '../forecast/timestamps.js';
import { BatchingForecaster } from './forecaster.js';
import type { ForecasterOptions, PredictOptions } from './forecaster.js';
import { InferenceSession } from './session.js';
import type { FloatArray, SessionOptions } from './types.js';

export interface SeriesForecasterOptions extends Omit<ForecasterOptions, 'extraOutputs' | 'variables'> {
  /** Levels of the model's quantile output, strictly increasing in (0, 1) (params.quantiles). */
  readonly quantiles?: readonly number[];
  /** The output holding them, [B, H, Q] or [B, H, V, Q] (params.quantile_output). */
  readonly quantileOutput?: string;
  /** Values per time step when the model's input does not fix it (a symbolic V). Default: the model's V, else 1. */
  readonly variables?: number;
  /** Session options when loading from a path or bytes. */
  readonly session?: SessionOptions;
}

/**
 * A step: milliseconds, a calendar step `{ months }` (1 month, 3 a quarter, 12 a year) counted from the
 * start and clamped to month ends, or a Frequency (e.g. one inferred with inferFrequency).
 */
export type SeriesStep = number | { readonly months: number } | Frequency;

export interface SeriesForecastRequest {
  /** Oldest first: numbers (one variable) or rows of `variables` numbers. At least lookback steps; the newest are used. */
  readonly series: readonly number[] | readonly (readonly number[])[];
  /** Steps to return, 1..horizon; default the model's horizon. */
  readonly horizon?: number;
  /** Time of series[0] (epoch ms, Date, or ISO 8601 text; without a zone it is UTC), for timestamps. */
  readonly start?: number | Date | string;
  /** The series' step, for timestamps. */
  readonly step?: SeriesStep;
  /** Levels to return (each among the model's); default all of them. */
  readonly quantiles?: readonly number[];
}

export interface SeriesForecastResult {
  /** horizon x outputVariables values, step-major (as output 0). */
  readonly values: FloatArray;
  readonly horizon: number;
  /** Values per forecast step. */
  readonly outputVariables: number;
  /** Epoch ms of each forecast step; null without `start` and `step`. */
  readonly timestamps: Float64Array | null;
  /** Per level (keyed as written, "0.1"), laid out as `values`; empty without a quantile output. */
  readonly quantiles: Readonly<Record<string, FloatArray>>;
  /** Steps (of each variable) where a higher level came out below a lower one. */
  readonly quantileCrossings: number;
}

function variablesOf(session: InferenceSession): number | null {
  const shape = session.inputs[0]?.shape;
  if (shape === undefined || shape.length === 2) return 1;
  const v = shape[2];
  return typeof v === 'number' ? v : null;
}

function frequencyOf(step: SeriesStep, start: number, offsetMs: number): Frequency {
  if (typeof step === 'number') {
    if (!(step > 0) || !Number.isFinite(step)) throw new ForecastdError('ERR_INVALID_ARGUMENT', `step must be a positive number of ms, got ${step}`);
    return { kind: 'fixed', ms: step };
  }
  if ('kind' in step) return step;
  if (!Number.isSafeInteger(step.months) || step.months < 1) {
    throw new ForecastdError('ERR_INVALID_ARGUMENT', `step.months must be a positive integer, got ${step.months}`);
  }
  return monthsFrom(start, step.months, offsetMs);
}

export class SeriesForecaster {
  readonly forecaster: BatchingForecaster;
  readonly layout: ForecastLayout;
  readonly #ownsSession: boolean;

  private constructor(forecaster: BatchingForecaster, layout: ForecastLayout, ownsSession: boolean) {
    this.forecaster = forecaster;
    this.layout = layout;
    this.#ownsSession = ownsSession;
  }

  /**
   * Loads a model (a path, its bytes, or a session the caller keeps owning) and checks it: output 0 must
   * have a horizon ([B, H] or [B, H, V']), and a quantile output must match the levels.
   */
  static async load(model: string | Uint8Array | InferenceSession, options: SeriesForecasterOptions = {}): Promise<SeriesForecaster> {
    const owns = !(model instanceof InferenceSession);
    const session = model instanceof InferenceSession ? model : await InferenceSession.load(model, options.session ?? {});
    try {
      const levels = options.quantiles ?? null;
      const quantileOutput = options.quantileOutput ?? null;
      if ((levels === null) !== (quantileOutput === null)) {
        throw new ForecastdError('ERR_INVALID_ARGUMENT', 'quantiles and quantileOutput go together: give both or neither');
      }
      if (levels !== null) {
        levels.forEach((l, i) => {
          if (!(l > 0 && l < 1) || (i > 0 && !(l > (levels[i - 1] as number)))) {
            throw new ForecastdError('ERR_INVALID_ARGUMENT', `quantiles must be strictly increasing levels in (0, 1), got [${levels.join(', ')}]`);
          }
        });
      }
      const point = session.outputs[0];
      const layout = point === undefined ? null : forecastLayout(point, session.outputs, levels, quantileOutput);
      if (layout === null) {
        const shape = point === undefined ? 'none' : `[${point.shape.join(', ')}]`;
        throw new ForecastdError('ERR_MODEL_CONTRACT', `output 0 has shape ${shape}; forecasting a series needs [batch, horizon] or [batch, horizon, variables]`);
      }
      const variables = options.variables ?? variablesOf(session) ?? 1;
      const { quantiles: _q, quantileOutput: _o, session: _s, ...forecasterOptions } = options;
      const forecaster = new BatchingForecaster(session, {
        ...forecasterOptions,
        variables,
        ...(quantileOutput === null ? {} : { extraOutputs: [quantileOutput] }),
      });
      return new SeriesForecaster(forecaster, layout, owns);
    } catch (error) {
      if (owns) session.dispose();
      throw error;
    }
  }

  get lookback(): number {
    return this.forecaster.shape.lookback;
  }

  get variables(): number {
    return this.forecaster.shape.variables;
  }

  get horizon(): number {
    return this.layout.horizon;
  }

  /** The model's quantile levels; empty without a quantile output. */
  get levels(): readonly number[] {
    return this.layout.quantiles?.levels ?? [];
  }

  /** Forecasts one series. Rejects with ERR_INVALID_ARGUMENT for a bad request, else as BatchingForecaster.predict. */
  async forecast(request: SeriesForecastRequest, options?: PredictOptions): Promise<SeriesForecastResult> {
    const { lookback, variables } = this.forecaster.shape;
    const layout = this.layout;
    const horizon = request.horizon ?? layout.horizon;
    if (!Number.isSafeInteger(horizon) || horizon < 1 || horizon > layout.horizon) {
      throw new ForecastdError('ERR_INVALID_ARGUMENT', `horizon must be 1 to ${layout.horizon}, got ${horizon}`);
    }
    const levels = this.levels;
    const wanted = request.quantiles ?? levels;
    for (let i = 0; i < wanted.length; i++) {
      if (wanted.indexOf(wanted[i] as number) < i) {
        throw new ForecastdError('ERR_INVALID_ARGUMENT', `quantiles[${i}] repeats the level ${wanted[i]}; give each level once`);
      }
    }
    for (const level of wanted) {
      if (!levels.includes(level)) {
        throw new ForecastdError('ERR_INVALID_ARGUMENT', `quantile ${level} is not one the model forecasts (${levels.length === 0 ? 'it has none' : levels.join(', ')})`);
      }
    }
    const series = request.series;
    if (series.length < lookback) {
      throw new ForecastdError('ERR_INVALID_ARGUMENT', `the series has ${series.length} steps; the model needs at least ${lookback} (its lookback)`);
    }
    const window = new (this.forecaster.shape.inputType === 'float32' ? Float32Array : Float64Array)(lookback * variables);
    const first = series.length - lookback;
    const float32 = this.forecaster.shape.inputType === 'float32';
    for (let t = first; t < series.length; t++) {
      const row = series[t];
      const values = typeof row === 'number' ? [row] : row;
      if (values === undefined || values.length !== variables) {
        throw new ForecastdError('ERR_INVALID_ARGUMENT', `series[${t}] has ${values?.length ?? 0} values; the model takes ${variables} per step`);
      }
      for (let v = 0; v < variables; v++) {
        const x = values[v];
        if (typeof x !== 'number' || !Number.isFinite(x)) throw new ForecastdError('ERR_INVALID_ARGUMENT', `series[${t}] holds ${String(x)}; every value must be a finite number`);
        if (float32 && !Number.isFinite(Math.fround(x))) {
          throw new ForecastdError('ERR_INVALID_ARGUMENT', `series[${t}] holds ${x}, beyond what a float32 model takes (at most ±3.4028234663852886e+38)`);
        }
        window[(t - first) * variables + v] = x;
      }
    }

    let timestamps: Float64Array | null = null;
    if (request.start !== undefined && request.step !== undefined) {
      const parsed =
        typeof request.start === 'string'
          ? parseTimestamp(request.start)
          : { ms: request.start instanceof Date ? request.start.getTime() : request.start, offsetMs: 0 };
      if (parsed === null || !Number.isFinite(parsed.ms)) throw new ForecastdError('ERR_INVALID_ARGUMENT', `start ${String(request.start)} is not a time`);
      const f = frequencyOf(request.step, parsed.ms, parsed.offsetMs);
      timestamps = new Float64Array(horizon);
      for (let k = 0; k < horizon; k++) timestamps[k] = addSteps(parsed.ms, f, series.length + k, parsed.offsetMs);
      if (!inCalendarRange(parsed.ms) || !inCalendarRange(timestamps[horizon - 1] as number)) {
        throw new ForecastdError('ERR_INVALID_ARGUMENT', `start ${String(request.start)}: the forecast steps would leave the years 0000 to 9999`);
      }
    }

    const prediction = await this.forecaster.predict(window, options);
    const width = layout.outputVariables;
    const values = prediction.values.slice(0, horizon * width);
    const quantiles: Record<string, FloatArray> = {};
    let crossings = 0;
    const q = prediction.extraOutputs[0];
    if (q !== undefined && layout.quantiles !== null) {
      checkQuantileSize(layout, q);
      for (let i = 0; i < q.length; i++) {
        const v = q[i] as number;
        if (v - v !== 0) throw new ForecastdError('ERR_NON_FINITE', `quantile output '${layout.quantiles.output}' contains ${String(v)} at index ${i}`);
      }
      const steps = layout.horizon * width;
      crossings = quantileCrossings(q, levels.length);
      for (const level of wanted) {
        quantiles[String(level)] = quantileLevel(q, levels.length, levels.indexOf(level), steps).subarray(0, horizon * width);
      }
    }
    return { values, horizon, outputVariables: width, timestamps, quantiles, quantileCrossings: crossings };
  }

  /** Drains queued forecasts, then frees the session if this object loaded it. */
  async close(): Promise<void> {
    await this.forecaster.close();
    if (this.#ownsSession) this.forecaster.session.dispose();
  }
}
