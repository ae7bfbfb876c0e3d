import { MODEL_NOT_FOUND, predictFailure } from './errors.js';
import type { ApiStatus, HttpFailure } from './errors.js';
import { formatFloatArray } from './float-format.js';
import type { EntryEvaluation, ForecastExtras, ModelDetails } from './types.js';
import type { FloatArray } from '../runtime/types.js';
import type { DatasetListing, ModelIdentity, ModelListing, PredictOutcome } from './types.js';

/**
 * Every response body forecastd writes is shaped here. Prediction bodies are written by hand: the field
 * order is fixed by the API and float32 values need their own shortest form, which JSON.stringify lacks.
 */

const SUCCESS: HttpFailure = { httpStatus: 200, status: 'Success', retryAfter: null };

/** HTTP status, body `status` word and Retry-After of a prediction outcome. */
export function predictHttp(outcome: PredictOutcome): HttpFailure {
  switch (outcome.kind) {
    case 'success':
      return SUCCESS;
    case 'not_found':
      return MODEL_NOT_FOUND;
    case 'failure':
      return predictFailure(outcome.reason);
  }
}

/** The error message of an outcome, null on success. */
export function predictErrorMessage(outcome: PredictOutcome): string | null {
  switch (outcome.kind) {
    case 'success':
      return null;
    case 'not_found':
      return `Model ${outcome.name} not found`;
    case 'failure':
      return outcome.message;
  }
}

/** A model's last success body up to `"duration_ms":`, and the values it was shaped from. */
interface ShapedSuccess {
  /** `{"status":"Success",…,"prediction":`: the same for every answer of this model version. */
  readonly prefix: string;
  values: FloatArray;
  head: string;
  /** Answers shaped from these values so far (a cache hit answers the same values again). */
  answers: number;
  /** The whole body with `"duration_ms":0`, encoded once (the answer of a repeated cache hit), made on reuse. */
  encodedAtZero: Buffer | null;
}

/**
 * Per model identity (one object per loaded version), the last success body shaped. With the prediction
 * cache on, every hit returns the same values array, so its body is shaped once, not on every request.
 */
const lastSuccess = new WeakMap<ModelIdentity, ShapedSuccess>();

/** `,"model_name":…` and, where known, `,"model_version":…` and `,"lookback":…`, in the documented order. */
function identityFields(model: ModelIdentity): string {
  let out = ',"model_name":' + JSON.stringify(model.name);
  if (model.variant !== undefined) out += ',"variant":' + JSON.stringify(model.variant);
  if (model.version !== null) out += ',"model_version":' + JSON.stringify(model.version);
  if (model.lookback !== null) out += ',"lookback":' + model.lookback;
  return out;
}

function shapedSuccess(model: ModelIdentity, values: FloatArray): ShapedSuccess {
  const last = lastSuccess.get(model);
  if (last !== undefined && last.values === values) return last;
  const prefix = last?.prefix ?? '{"status":"Success"' + identityFields(model) + ',"prediction":';
  const head = prefix + formatFloatArray(values) + ',"duration_ms":';
  if (last === undefined) {
    const shaped = { prefix, values, head, answers: 0, encodedAtZero: null };
    lastSuccess.set(model, shaped);
    return shaped;
  }
  last.values = values;
  last.head = head;
  last.answers = 0;
  last.encodedAtZero = null;
  return last;
}

/**
 * The body of GET /v1/models/:name/predict: predictBody's text, except that values answered again within their
 * first millisecond (a repeated cache hit) get bytes encoded once per prediction.
 */
export function predictResponseBody(outcome: PredictOutcome, durationMs: number): string | Buffer {
  if (outcome.kind !== 'success' || outcome.extras !== undefined || durationMs !== 0) return predictBody(outcome, durationMs);
  const shaped = shapedSuccess(outcome.model, outcome.values);
  // Values answered once (every answer with the cache off) are written as text: encoding them ahead would be
  // the same work plus a Buffer.
  if (++shaped.answers === 1) return shaped.head + '0}';
  shaped.encodedAtZero ??= Buffer.from(shaped.head + '0}');
  return shaped.encodedAtZero;
}

/**
 * One prediction body, fields in the documented order with absent ones omitted: status, error_message,
 * model_name, model_version, lookback, prediction, duration_ms.
 */
export function predictBody(outcome: PredictOutcome, durationMs: number): string {
  if (outcome.kind === 'success') {
    if (outcome.extras !== undefined) return successWithExtras(outcome.model, outcome.values, outcome.extras, durationMs);
    return shapedSuccess(outcome.model, outcome.values).head + durationMs + '}';
  }
  const { status } = predictHttp(outcome);
  let out = '{"status":"' + status + '"';
  const message = predictErrorMessage(outcome);
  if (message !== null) out += ',"error_message":' + JSON.stringify(message);
  out += outcome.kind === 'not_found' ? ',"model_name":' + JSON.stringify(outcome.name) : identityFields(outcome.model);
  return out + ',"duration_ms":' + durationMs + '}';
}

/** A success body with what `?include=` asked for, fields in order: prediction, timestamps, quantiles, duration_ms. */
function successWithExtras(model: ModelIdentity, values: FloatArray, extras: ForecastExtras, durationMs: number): string {
  let out = '{"status":"Success"' + identityFields(model) + ',"prediction":' + formatFloatArray(values);
  if (extras.timestamps !== null) {
    out += ',"timestamps":[';
    for (let i = 0; i < extras.timestamps.length; i++) {
      if (i > 0) out += ',';
      out += '"' + new Date(extras.timestamps[i] as number).toISOString() + '"';
    }
    out += ']';
  }
  if (extras.quantiles !== null) {
    const { levels, values: byLevel } = extras.quantiles;
    out += ',"quantiles":{';
    for (let k = 0; k < levels.length; k++) {
      if (k > 0) out += ',';
      out += JSON.stringify(String(levels[k])) + ':' + formatFloatArray(byLevel[k] as FloatArray);
    }
    out += '}';
  }
  return out + ',"duration_ms":' + durationMs + '}';
}

/** GET /v1/models/:name. */
export function modelDetailsJson(m: ModelDetails): string {
  return JSON.stringify({
    name: m.name,
    from: m.from,
    datasets: m.datasets,
    status: m.status,
    error: m.error,
    version: m.version,
    lookback: m.lookback,
    horizon: m.horizon,
    variables: m.variables,
    quantiles: m.quantiles,
    frequency: m.frequency,
    mae: m.mae,
    skill: m.skill,
    ...compositeFields(m),
  });
}

/** An ensemble's or variants entry's members with their weights, and its combine or sticky rule. */
function compositeFields(m: ModelDetails): Record<string, unknown> {
  const c = m.composite;
  if (c === undefined) return {};
  if (c.kind === 'variants') return { sticky: c.sticky, members: c.members };
  return c.weightsFrom === undefined ? { combine: c.combine, members: c.members } : { combine: c.combine, weights_from: c.weightsFrom, members: c.members };
}

/** GET /v1/models/:name/evaluation: the report's fields in SPEC order (it is built in that order). */
export function evaluationJson(report: EntryEvaluation): string {
  return JSON.stringify(report);
}

export interface TimedOutcome {
  readonly outcome: PredictOutcome;
  readonly durationMs: number;
}

/** POST /v1/predict: `{"duration_ms": N, "predictions": [...]}`, items in request order. */
export function predictManyBody(items: readonly TimedOutcome[], durationMs: number): string {
  let out = '{"duration_ms":' + durationMs + ',"predictions":[';
  for (let i = 0; i < items.length; i++) {
    const item = items[i]!;
    if (i > 0) out += ',';
    out += predictBody(item.outcome, item.durationMs);
  }
  return out + ']}';
}

/** The body every non-prediction error shares. */
export function errorBody(status: ApiStatus, message: string): string {
  return JSON.stringify({ status, error_message: message });
}

/** GET /v1/models as JSON; `withStatus` adds `status` and `error`. */
export function modelsJson(models: readonly ModelListing[], withStatus: boolean): string {
  return JSON.stringify(
    models.map((m) =>
      withStatus
        ? { name: m.name, from: m.from, datasets: m.datasets, status: m.status, error: m.error, mae: m.mae, skill: m.skill }
        : { name: m.name, from: m.from, datasets: m.datasets },
    ),
  );
}

/** One RFC 4180 field: quoted when it holds a comma, quote, or line break. */
function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? '"' + value.replace(/"/g, '""') + '"' : value;
}

/**
 * GET /v1/models?format=csv. A model's datasets share one field, comma-separated (quoted as the field
 * requires); `withStatus` adds the status and error columns.
 */
export function modelsCsv(models: readonly ModelListing[], withStatus: boolean): string {
  const header = withStatus ? 'name,from,datasets,status,error' : 'name,from,datasets';
  const lines = [header];
  for (const m of models) {
    const fields = [m.name, m.from, m.datasets.join(',')];
    if (withStatus) fields.push(m.status, m.error ?? '');
    lines.push(fields.map(csvField).join(','));
  }
  return lines.join('\r\n') + '\r\n';
}

/** GET /v1/datasets: the SPEC's fields in order. */
export function datasetsJson(datasets: readonly DatasetListing[]): string {
  return JSON.stringify(
    datasets.map((d) => ({
      name: d.name,
      from: d.from,
      rows: d.rows,
      first_ts: d.first_ts,
      last_ts: d.last_ts,
      status: d.status,
      error: d.error,
      refreshed_at: d.refreshed_at,
      frequency: d.frequency,
      off_grid_rows: d.off_grid_rows,
    })),
  );
}
