/**
 * Series that clients send to be forecast (KServe's TimeSeries forecast API, SPEC "POST
 * /v1/timeseries/forecast"): reading a request into typed inputs, checking it against a model (horizon,
 * quantile levels, variables, length), turning each input into a model window, and the start time of its
 * forecast. No HTTP here: problems carry the API's error `type` and the `param` path; the HTTP layer picks
 * the status code.
 */
import { addSteps, DURATIONS, fixedFrequency, inCalendarRange, monthsFrom } from './frequency.js';
import type { Frequency } from './frequency.js';
import { parseTimestamp } from './timestamps.js';
import type { ParsedTimestamp } from './timestamps.js';

/** At most this many inputs in one request. */
export const MAX_INPUTS = 1000;
/** At most this many values (every number of every series) in one request. */
export const MAX_VALUES = 200_000;

export type SeriesErrorType =
  | 'invalid_request'
  | 'invalid_series'
  | 'invalid_horizon'
  | 'invalid_quantile'
  | 'invalid_frequency'
  | 'model_not_found'
  | 'model_not_ready'
  | 'queue_full'
  | 'timeout'
  | 'inference_error';

export interface SeriesProblem {
  readonly problem: true;
  readonly type: SeriesErrorType;
  readonly message: string;
  /** Where in the request, e.g. "inputs[1].series"; null when it is not about one field. */
  readonly param: string | null;
}

export function seriesProblem(type: SeriesErrorType, message: string, param: string | null): SeriesProblem {
  return { problem: true, type, message, param };
}

export type SeriesType = 'univariate_time_series' | 'multivariate_time_series';

type Step = { readonly kind: 'fixed'; readonly ms: number } | { readonly kind: 'months'; readonly months: number };

const { SECOND, MINUTE, HOUR, DAY } = DURATIONS;

/** Frequencies in both of KServe's spellings; exact, case-sensitive. */
const STEPS: ReadonlyMap<string, Step> = new Map<string, Step>([
  ['second', { kind: 'fixed', ms: SECOND }],
  ['minute', { kind: 'fixed', ms: MINUTE }],
  ['hour', { kind: 'fixed', ms: HOUR }],
  ['day', { kind: 'fixed', ms: DAY }],
  ['week', { kind: 'fixed', ms: 7 * DAY }],
  ['month', { kind: 'months', months: 1 }],
  ['quarter', { kind: 'months', months: 3 }],
  ['year', { kind: 'months', months: 12 }],
  ['S', { kind: 'fixed', ms: SECOND }],
  ['T', { kind: 'fixed', ms: MINUTE }],
  ['H', { kind: 'fixed', ms: HOUR }],
  ['D', { kind: 'fixed', ms: DAY }],
  ['W', { kind: 'fixed', ms: 7 * DAY }],
  ['M', { kind: 'months', months: 1 }],
  ['Q', { kind: 'months', months: 3 }],
  ['Y', { kind: 'months', months: 12 }],
]);

export const FREQUENCY_NAMES: readonly string[] = [...STEPS.keys()];

/** A multivariate series packed into one array: `rows` steps of `width` values, row-major. */
export interface PackedRows {
  readonly packed: 'rows';
  readonly rows: number;
  readonly width: number;
  readonly data: Float64Array;
}

/** A series as parsed: JSON values, or packed by the body parser (numbers only). */
export type SeriesData = readonly unknown[] | Float64Array | PackedRows;

function isPackedRows(value: unknown): value is PackedRows {
  return isObject(value) && value['packed'] === 'rows' && value['data'] instanceof Float64Array;
}

/** Time steps in a series. */
function stepsOf(series: SeriesData): number {
  return isPackedRows(series) ? series.rows : series.length;
}

export interface ClientInput {
  readonly index: number;
  readonly type: SeriesType;
  readonly name: string;
  /** As sent (echoed back). */
  readonly frequency: string;
  readonly step: Step;
  readonly start: ParsedTimestamp | null;
  /** start_timestamp as sent (for messages); null without one. */
  readonly startText: string | null;
  /** The series as parsed: checked value by value in seriesWindow. */
  readonly series: SeriesData;
  /** Time steps in the series. */
  readonly steps: number;
  /** Values in the series (multivariate: every value of every step). */
  readonly values: number;
}

export interface ClientRequest {
  readonly model: string;
  readonly inputs: readonly ClientInput[];
  readonly horizon: number;
  /** Levels asked for, as sent; null when `quantiles` was not given. */
  readonly quantiles: readonly number[] | null;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function kind(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

/**
 * Reads a parsed JSON body into a ClientRequest, or the first problem with its shape (all request-level:
 * missing fields, wrong types, unknown enum values, limits). Unknown extra fields are ignored.
 */
export function parseForecastRequest(body: unknown): ClientRequest | SeriesProblem {
  if (!isObject(body)) return seriesProblem('invalid_request', `the request body must be a JSON object, not ${kind(body)}`, null);
  const model = body['model'];
  if (model === undefined) return seriesProblem('invalid_request', 'missing required field "model"', 'model');
  if (typeof model !== 'string' || model === '') return seriesProblem('invalid_request', `"model" must be a non-empty string, not ${kind(model)}`, 'model');
  const inputs = body['inputs'];
  if (inputs === undefined) return seriesProblem('invalid_request', 'missing required field "inputs"', 'inputs');
  if (!Array.isArray(inputs)) return seriesProblem('invalid_request', `"inputs" must be an array of time series, not ${kind(inputs)}`, 'inputs');
  if (inputs.length === 0) return seriesProblem('invalid_request', '"inputs" is empty; send at least one time series', 'inputs');
  if (inputs.length > MAX_INPUTS) {
    return seriesProblem('invalid_request', `"inputs" holds ${inputs.length} series; at most ${MAX_INPUTS} are allowed in one request`, 'inputs');
  }
  const options = body['options'];
  if (options === undefined) return seriesProblem('invalid_request', 'missing required field "options"', 'options');
  if (!isObject(options)) return seriesProblem('invalid_request', `"options" must be an object, not ${kind(options)}`, 'options');
  const horizon = options['horizon'];
  if (horizon === undefined) return seriesProblem('invalid_request', 'missing required field "options.horizon"', 'options.horizon');
  if (typeof horizon !== 'number' || !Number.isSafeInteger(horizon)) {
    return seriesProblem('invalid_horizon', `"options.horizon" must be an integer, not ${JSON.stringify(horizon)}`, 'options.horizon');
  }
  let quantiles: number[] | null = null;
  const q = options['quantiles'];
  if (q !== undefined && q !== null) {
    if (!Array.isArray(q)) return seriesProblem('invalid_request', `"options.quantiles" must be an array of levels, not ${kind(q)}`, 'options.quantiles');
    quantiles = [];
    for (let i = 0; i < q.length; i++) {
      const level: unknown = q[i];
      if (typeof level !== 'number' || !(level > 0 && level < 1)) {
        return seriesProblem('invalid_quantile', `options.quantiles[${i}] must be a number between 0 and 1, not ${JSON.stringify(level)}`, `options.quantiles[${i}]`);
      }
      // Each level is a key of the answer's "quantiles" object: a repeated one would write a key twice.
      if (quantiles.includes(level)) {
        return seriesProblem('invalid_quantile', `options.quantiles[${i}] repeats the level ${level}; give each level once`, `options.quantiles[${i}]`);
      }
      quantiles.push(level);
    }
  }

  const parsed: ClientInput[] = [];
  const names = new Map<string, number>();
  let total = 0;
  for (let i = 0; i < inputs.length; i++) {
    const at = `inputs[${i}]`;
    const input: unknown = inputs[i];
    if (!isObject(input)) return seriesProblem('invalid_request', `${at} must be an object, not ${kind(input)}`, at);
    const type = input['type'];
    if (type === undefined) return seriesProblem('invalid_request', `${at} has no "type"`, `${at}.type`);
    if (type !== 'univariate_time_series' && type !== 'multivariate_time_series') {
      return seriesProblem(
        'invalid_request',
        `${at}.type must be "univariate_time_series" or "multivariate_time_series", not ${JSON.stringify(type)}`,
        `${at}.type`,
      );
    }
    const name = input['name'];
    if (name === undefined) return seriesProblem('invalid_request', `${at} has no "name"`, `${at}.name`);
    if (typeof name !== 'string') return seriesProblem('invalid_request', `${at}.name must be a string, not ${kind(name)}`, `${at}.name`);
    const earlier = names.get(name);
    if (earlier !== undefined) {
      return seriesProblem('invalid_request', `${at}.name "${name}" is also the name of inputs[${earlier}]; names must be unique in a request`, `${at}.name`);
    }
    names.set(name, i);
    const series = input['series'];
    if (series === undefined) return seriesProblem('invalid_request', `${at} has no "series"`, `${at}.series`);
    if (!Array.isArray(series) && !(series instanceof Float64Array) && !isPackedRows(series)) {
      return seriesProblem('invalid_request', `${at}.series must be an array, not ${kind(series)}`, `${at}.series`);
    }
    const frequency = input['frequency'];
    if (frequency === undefined) return seriesProblem('invalid_request', `${at} has no "frequency"`, `${at}.frequency`);
    const step = typeof frequency === 'string' ? STEPS.get(frequency) : undefined;
    if (typeof frequency !== 'string' || step === undefined) {
      return seriesProblem(
        'invalid_frequency',
        `${at}.frequency must be one of ${FREQUENCY_NAMES.join(', ')} (case-sensitive), not ${JSON.stringify(frequency)}`,
        `${at}.frequency`,
      );
    }
    let start: ParsedTimestamp | null = null;
    const startText = input['start_timestamp'];
    if (startText !== undefined && startText !== null) {
      if (typeof startText !== 'string') {
        return seriesProblem('invalid_request', `${at}.start_timestamp must be an ISO 8601 string, not ${kind(startText)}`, `${at}.start_timestamp`);
      }
      start = parseTimestamp(startText);
      if (start === null) {
        return seriesProblem(
          'invalid_request',
          `${at}.start_timestamp ${JSON.stringify(startText)} is not an ISO 8601 date-time (e.g. 2024-01-31T00:00:00Z)`,
          `${at}.start_timestamp`,
        );
      }
    }
    let values = stepsOf(series);
    if (isPackedRows(series)) values = series.rows * series.width;
    else if (type === 'multivariate_time_series' && Array.isArray(series)) {
      values = 0;
      for (const row of series) values += Array.isArray(row) ? row.length : 1;
    }
    total += values;
    if (total > MAX_VALUES) {
      return seriesProblem('invalid_request', `the request holds more than ${MAX_VALUES} values; send fewer or shorter series`, 'inputs');
    }
    parsed.push({ index: i, type, name, frequency, step, start, startText: start === null ? null : (startText as string), series, steps: stepsOf(series), values });
  }
  return { model, inputs: parsed, horizon, quantiles };
}

/** What checking a request against a model needs to know of it. */
export interface SeriesModelShape {
  readonly name: string;
  readonly lookback: number;
  readonly variables: number;
  readonly horizon: number;
  /** Levels of the model's quantile output; null without one. */
  readonly quantiles: readonly number[] | null;
}

/** The horizon and quantiles asked for, against what the model gives (request-level problems). */
export function checkRequestAgainstModel(request: ClientRequest, model: SeriesModelShape): SeriesProblem | null {
  if (request.horizon < 1 || request.horizon > model.horizon) {
    return seriesProblem(
      'invalid_horizon',
      `"options.horizon" is ${request.horizon}; model ${model.name} forecasts 1 to ${model.horizon} steps`,
      'options.horizon',
    );
  }
  if (request.quantiles !== null && request.quantiles.length > 0) {
    const levels = model.quantiles;
    for (let i = 0; i < request.quantiles.length; i++) {
      const level = request.quantiles[i] as number;
      if (levels === null || !levels.includes(level)) {
        const offered = levels === null ? 'it has no quantile output' : `its levels are ${levels.join(', ')}`;
        return seriesProblem('invalid_quantile', `quantile ${level} is not one model ${model.name} forecasts: ${offered}`, `options.quantiles[${i}]`);
      }
    }
  }
  return null;
}

/**
 * The model window of one input: its newest `lookback` time steps as lookback x variables values, row-major,
 * oldest first; or the problem with this input alone (values that are not finite numbers, rows of the wrong
 * width, a univariate series for a multivariate model, fewer steps than the lookback).
 */
export function seriesWindow(
  input: ClientInput,
  model: SeriesModelShape,
  ArrayType: Float32ArrayConstructor | Float64ArrayConstructor,
): Float32Array | Float64Array | SeriesProblem {
  const at = `inputs[${input.index}].series`;
  const { lookback, variables } = model;
  const series = input.series;
  const steps = input.steps;
  if (input.type === 'univariate_time_series' && variables !== 1) {
    return seriesProblem(
      'invalid_series',
      `model ${model.name} takes ${variables} variables per time step; send a multivariate_time_series with rows of ${variables} values`,
      `inputs[${input.index}].type`,
    );
  }
  if (steps < lookback) {
    return seriesProblem(
      'invalid_series',
      `the series has ${steps} time step${steps === 1 ? '' : 's'}; model ${model.name} needs at least ${lookback} (its lookback)`,
      at,
    );
  }
  const window = new ArrayType(lookback * variables);
  const first = steps - lookback;
  const float32 = ArrayType === Float32Array;
  // Packed by the body parser: numbers only, so the shape and the range of each value are left to check.
  if (series instanceof Float64Array) {
    if (input.type === 'univariate_time_series') {
      for (let t = 0; t < series.length; t++) {
        const problem = valueProblem(series[t] as number, `${at}[${t}]`, model.name, float32);
        if (problem !== null) return problem;
      }
      window.set(series.subarray(first));
      return window;
    }
  } else if (isPackedRows(series) && input.type === 'multivariate_time_series') {
    if (series.width !== variables) {
      return seriesProblem(
        'invalid_series',
        `${at}[0] has ${series.width} value${series.width === 1 ? '' : 's'}; model ${model.name} takes ${variables} per time step`,
        `${at}[0]`,
      );
    }
    for (let k = 0; k < series.data.length; k++) {
      const problem = valueProblem(series.data[k] as number, `${at}[${Math.floor(k / variables)}][${k % variables}]`, model.name, float32);
      if (problem !== null) return problem;
    }
    window.set(series.data.subarray(first * variables));
    return window;
  }
  if (!Array.isArray(series)) {
    return seriesProblem('invalid_series', `${at} does not match ${input.type}`, at);
  }
  // Every value is checked, also those before the window: a broken series is refused whole, not in part.
  for (let t = 0; t < series.length; t++) {
    const item: unknown = series[t];
    if (input.type === 'univariate_time_series') {
      if (typeof item !== 'number') {
        return seriesProblem('invalid_series', `${at}[${t}] is ${item === null ? 'null' : kind(item)}; every value must be a number`, `${at}[${t}]`);
      }
      const problem = valueProblem(item, `${at}[${t}]`, model.name, float32);
      if (problem !== null) return problem;
      if (t >= first) window[t - first] = item;
      continue;
    }
    if (!Array.isArray(item)) {
      return seriesProblem('invalid_series', `${at}[${t}] is ${kind(item)}; a multivariate series is an array of rows, one per time step`, `${at}[${t}]`);
    }
    if (item.length !== variables) {
      return seriesProblem(
        'invalid_series',
        `${at}[${t}] has ${item.length} value${item.length === 1 ? '' : 's'}; model ${model.name} takes ${variables} per time step`,
        `${at}[${t}]`,
      );
    }
    for (let v = 0; v < variables; v++) {
      const value: unknown = item[v];
      if (typeof value !== 'number') {
        return seriesProblem('invalid_series', `${at}[${t}][${v}] is ${value === null ? 'null' : kind(value)}; every value must be a number`, `${at}[${t}][${v}]`);
      }
      const problem = valueProblem(value, `${at}[${t}][${v}]`, model.name, float32);
      if (problem !== null) return problem;
      if (t >= first) window[(t - first) * variables + v] = value;
    }
  }
  return window;
}

const FLOAT32_MAX = 3.4028234663852886e38;

/**
 * A value the model cannot take: not finite (JSON's 1e400 parses as Infinity), or beyond float32 for a
 * float32 model (where it would become Infinity); null when it is fine.
 */
function valueProblem(value: number, param: string, model: string, float32: boolean): SeriesProblem | null {
  if (!Number.isFinite(value)) return seriesProblem('invalid_series', `${param} is not a finite number; every value must be finite`, param);
  if (float32 && !Number.isFinite(Math.fround(value))) {
    return seriesProblem('invalid_series', `${param} is ${value}, beyond what model ${model} takes (float32, at most ±${FLOAT32_MAX})`, param);
  }
  return null;
}

/**
 * The problem with an input's start_timestamp when its forecast steps (through `horizon` steps after the
 * series) would leave the years 0000 to 9999; null when they stay inside, or there is no start.
 */
export function startProblem(input: ClientInput, horizon: number): SeriesProblem | null {
  const f = inputFrequency(input);
  if (input.start === null || f === null) return null;
  const last = addSteps(input.start.ms, f, input.steps + Math.max(horizon, 1) - 1, input.start.offsetMs);
  if (inCalendarRange(input.start.ms) && inCalendarRange(last)) return null;
  const param = `inputs[${input.index}].start_timestamp`;
  return seriesProblem('invalid_request', `${param} ${JSON.stringify(input.startText)}: its forecast steps would leave the years 0000 to 9999`, param);
}

/** The frequency of an input's steps, counted from its start (calendar steps keep the start's day). */
export function inputFrequency(input: ClientInput): Frequency | null {
  if (input.step.kind === 'fixed') return fixedFrequency(input.step.ms);
  if (input.start === null) return null;
  return monthsFrom(input.start.ms, input.step.months, input.start.offsetMs);
}

/** Epoch ms of the first forecast step: the input's start plus one step per point sent; null without a start. */
export function forecastStart(input: ClientInput): number | null {
  const f = inputFrequency(input);
  if (input.start === null || f === null) return null;
  return addSteps(input.start.ms, f, input.steps, input.start.offsetMs);
}
