/**
 * POST /v1/timeseries/forecast and GET /v1/timeseries/models (KServe's TimeSeries forecast API, SPEC):
 * from a parsed body to the status and bytes of the answer. Every input of a request is handed to the
 * model's batching forecaster in the same tick, so they (and those of concurrent requests) share runs.
 */
import { randomUUID } from 'node:crypto';
import { ForecastdError } from '../../errors.js';
import {
  checkRequestAgainstModel,
  forecastStart,
  parseForecastRequest,
  seriesProblem,
  seriesWindow,
  startProblem,
} from '../../forecast/client-series.js';
import type { ClientInput, ClientRequest, SeriesErrorType, SeriesModelShape, SeriesProblem } from '../../forecast/client-series.js';
import type { ForecastLayout } from '../../forecast/layout.js';
import { quantileLevel } from '../../forecast/layout.js';
import { formatTimestamp } from '../../forecast/timestamps.js';
import type { AbortSignalLike } from '../../runtime/cancellation.js';
import type { FloatArray } from '../../runtime/types.js';
import { formatFloat32, formatFloat64 } from '../float-format.js';
import type { DrawKeys, ModelDetails, SeriesForecast, ServingBackend } from '../types.js';

/** HTTP status of each error type (the `code` of an error body is this, as a string). */
const STATUS_OF: Readonly<Record<SeriesErrorType, number>> = {
  invalid_request: 400,
  invalid_series: 400,
  invalid_horizon: 400,
  invalid_quantile: 400,
  invalid_frequency: 400,
  model_not_found: 404,
  model_not_ready: 503,
  queue_full: 503,
  timeout: 504,
  inference_error: 500,
};

export interface KserveAnswer {
  readonly httpStatus: number;
  readonly body: string;
  /** Seconds for a Retry-After header; null = none. */
  readonly retryAfter: number | null;
}

/** `{"code", "message", "param", "type"}`. */
function errorObject(type: string, message: string, param: string | null, httpStatus: number): string {
  return JSON.stringify({ code: String(httpStatus), message, param, type });
}

/** The body every request-level error of these routes shares: `{"error": {"code", "message", "param", "type"}}`. */
export function kserveErrorBody(type: string, message: string, param: string | null, httpStatus: number): string {
  return `{"error":${errorObject(type, message, param, httpStatus)}}`;
}

function requestError(problem: SeriesProblem, httpStatus = STATUS_OF[problem.type], retryAfter: number | null = null): KserveAnswer {
  return { httpStatus, body: kserveErrorBody(problem.type, problem.message, problem.param, httpStatus), retryAfter };
}

/** The error type and status of a forecast that failed for one input. */
function inputFailure(error: unknown): { type: SeriesErrorType; message: string } {
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof ForecastdError) {
    if (error.code === 'ERR_QUEUE_FULL') return { type: 'queue_full', message };
    if (error.code === 'ERR_TIMEOUT') return { type: 'timeout', message };
  }
  return { type: 'inference_error', message };
}

type InputResult =
  | { readonly ok: true; readonly input: ClientInput; readonly forecast: SeriesForecast }
  | { readonly ok: false; readonly input: ClientInput; readonly problem: SeriesProblem };

/**
 * Answers one POST /v1/timeseries/forecast whose body parsed as `body`. Never rejects: anything unexpected
 * is the caller's to turn into a 500.
 */
export async function answerForecast(backend: ServingBackend, body: unknown, signal?: AbortSignalLike, keys?: DrawKeys): Promise<KserveAnswer> {
  const request = parseForecastRequest(body);
  if ('problem' in request) return requestError(request);
  const lookup = backend.seriesModel(request.model, keys);
  switch (lookup.kind) {
    case 'not_found':
      return requestError(seriesProblem('model_not_found', `Model ${request.model} not found`, 'model'));
    case 'loading':
      return requestError(seriesProblem('model_not_ready', lookup.message, 'model'), 503, 1);
    case 'failed':
      return requestError(seriesProblem('model_not_ready', lookup.message, 'model'), 500);
    case 'no_horizon':
      return requestError(seriesProblem('invalid_request', lookup.message, 'model'));
    case 'ready':
      break;
  }
  const { details, layout } = lookup;
  const shape: SeriesModelShape = {
    name: details.name,
    lookback: details.lookback ?? 0,
    variables: details.variables ?? 1,
    horizon: layout.horizon,
    quantiles: layout.quantiles?.levels ?? null,
  };
  const mismatch = checkRequestAgainstModel(request, shape);
  if (mismatch !== null) return requestError(mismatch);

  const ArrayType = lookup.pointType === 'float32' ? Float32Array : Float64Array;
  // Every window is handed over before the first await: one request's inputs share batched runs.
  const pending = request.inputs.map((input): Promise<InputResult> => {
    const late = startProblem(input, request.horizon);
    if (late !== null) return Promise.resolve({ ok: false, input, problem: late });
    const window = seriesWindow(input, shape, ArrayType);
    if ('problem' in window) return Promise.resolve({ ok: false, input, problem: window });
    return lookup.forecast(window, signal).then(
      (forecast): InputResult => ({ ok: true, input, forecast }),
      (error: unknown): InputResult => {
        const failure = inputFailure(error);
        return { ok: false, input, problem: seriesProblem(failure.type, failure.message, `inputs[${input.index}]`) };
      },
    );
  });
  const results = await Promise.all(pending);

  const failed = results.filter((r) => !r.ok);
  // Every input failed for the same reason of the model's (overloaded, too slow): that is the request's answer.
  if (failed.length === results.length) {
    const first = (failed[0] as Extract<InputResult, { ok: false }>).problem;
    if ((first.type === 'queue_full' || first.type === 'timeout') && failed.every((r) => !r.ok && r.problem.type === first.type)) {
      return requestError(seriesProblem(first.type, first.message, null), STATUS_OF[first.type], first.type === 'queue_full' ? 1 : null);
    }
  }
  return { httpStatus: 200, body: forecastBody(request, details, layout, lookup.pointType, results, lookup.variant ?? null), retryAfter: null };
}

function formatterOf(type: 'float32' | 'float64'): (v: number) => string {
  return type === 'float32' ? formatFloat32 : formatFloat64;
}

/** Values of `steps` x `width`, flat (`nested` false) or one row per step. */
function valuesJson(values: FloatArray, steps: number, width: number, nested: boolean, format: (v: number) => string): string {
  let out = '[';
  for (let h = 0; h < steps; h++) {
    if (h > 0) out += ',';
    if (!nested) {
      out += format(values[h] as number);
      continue;
    }
    out += '[';
    for (let v = 0; v < width; v++) {
      if (v > 0) out += ',';
      out += format(values[h * width + v] as number);
    }
    out += ']';
  }
  return out + ']';
}

function forecastBody(
  request: ClientRequest,
  details: ModelDetails,
  layout: ForecastLayout,
  pointType: 'float32' | 'float64',
  results: readonly InputResult[],
  variant: string | null,
): string {
  const horizon = request.horizon;
  const width = layout.outputVariables;
  const point = formatterOf(pointType);
  const quantile = formatterOf(layout.quantiles?.type ?? pointType);
  const levels = layout.quantiles?.levels ?? [];
  const steps = layout.horizon * width;
  let completed = 0;
  let promptTokens = 0;
  let completionTokens = 0;
  let outputs = '';
  for (let i = 0; i < results.length; i++) {
    const r = results[i] as InputResult;
    if (i > 0) outputs += ',';
    outputs += `{"type":"time_series_forecast","id":${JSON.stringify(randomUUID())}`;
    // A variants entry's answer names the member drawn to give it.
    if (variant !== null) outputs += `,"variant":${JSON.stringify(variant)}`;
    if (!r.ok) {
      const status = STATUS_OF[r.problem.type];
      outputs += `,"status":"error","content":[],"error":${errorObject(r.problem.type, r.problem.message, r.problem.param, status)}}`;
      continue;
    }
    completed++;
    promptTokens += r.input.values;
    completionTokens += horizon * width;
    const nested = r.input.type === 'multivariate_time_series' || width > 1;
    let content = `{"type":${JSON.stringify(r.input.type)},"name":${JSON.stringify(r.input.name)}`;
    content += `,"mean_forecast":${valuesJson(r.forecast.values, horizon, width, nested, point)}`;
    content += `,"frequency":${JSON.stringify(r.input.frequency)}`;
    const start = forecastStart(r.input);
    if (start !== null) content += `,"start_timestamp":"${formatTimestamp(start)}"`;
    if (request.quantiles !== null) {
      content += ',"quantiles":{';
      const q = r.forecast.quantiles;
      request.quantiles.forEach((level, k) => {
        const index = levels.indexOf(level);
        if (k > 0) content += ',';
        const values = q === null || index < 0 ? new Float64Array(0) : quantileLevel(q, levels.length, index, steps);
        content += `${JSON.stringify(String(level))}:${valuesJson(values, horizon, width, nested, quantile)}`;
      });
      content += '}';
    }
    outputs += `,"status":"completed","content":[${content}}]}`;
  }
  const status = completed === results.length ? 'completed' : completed === 0 ? 'error' : 'partial';
  return (
    `{"id":${JSON.stringify(randomUUID())},"created_at":${Math.floor(Date.now() / 1000)},"status":"${status}"` +
    `,"model":${JSON.stringify(details.name)},"outputs":[${outputs}]` +
    `,"usage":{"prompt_tokens":${promptTokens},"completion_tokens":${completionTokens},"total_tokens":${promptTokens + completionTokens}}}`
  );
}

/** GET /v1/timeseries/models: each model with what a client needs to send it series. */
export function timeseriesModelsBody(backend: ServingBackend): string {
  return JSON.stringify({
    models: backend.allModelDetails().map((m) => ({
      name: m.name,
      status: m.status,
      ready: (m.status === 'Ready' || m.status === 'Refreshing') && m.horizon !== null,
      lookback: m.lookback,
      horizon: m.horizon,
      variables: m.variables,
      quantiles: m.quantiles,
    })),
  });
}
