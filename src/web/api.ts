/** The API calls the dashboard makes, with the tab's API key. */

export type { CompositeDetails, DatasetListing, DatasetRowsBody, EntryStatus, Evaluation, ModelListing, PastForecast, PredictionBody } from '../http/api-bodies.js';
import type { CompositeDetails, DatasetListing, DatasetRowsBody, Evaluation, ModelListing, PredictionBody } from '../http/api-bodies.js';

/** The server refused the API key (or none was sent where one is needed). */
export class Unauthorized extends Error {}

/** A request that failed for another reason; the message says which and why. */
export class ApiError extends Error {}

const KEY_STORAGE = 'forecastd.apiKey';

/** The API key for this tab: sessionStorage keeps it until the tab closes, and never sends it anywhere else. */
export const apiKey = {
  get(): string | null {
    return sessionStorage.getItem(KEY_STORAGE);
  },
  set(key: string): void {
    sessionStorage.setItem(KEY_STORAGE, key);
  },
  clear(): void {
    sessionStorage.removeItem(KEY_STORAGE);
  },
};

async function request(path: string, key: string | null, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  if (key !== null) headers.set('X-API-Key', key);
  let response: Response;
  try {
    response = await fetch(path, { ...init, headers, cache: 'no-store' });
  } catch {
    throw new ApiError(`Cannot reach the server (${path})`);
  }
  if (response.status === 401) throw new Unauthorized('The server needs an API key');
  return response;
}

async function errorOf(path: string, response: Response): Promise<ApiError> {
  let reason = response.statusText;
  try {
    const body = (await response.json()) as { error_message?: unknown };
    if (typeof body.error_message === 'string') reason = body.error_message;
  } catch {
    // Not the shared error body: the status line says enough.
  }
  return new ApiError(`${path}: HTTP ${response.status}: ${reason}`);
}

async function getJson<T>(path: string, key: string | null): Promise<T> {
  const response = await request(path, key);
  if (!response.ok) throw await errorOf(path, response);
  return (await response.json()) as T;
}

export function models(key: string | null): Promise<ModelListing[]> {
  return getJson('/v1/models?status=true', key);
}

export function modelDetails(name: string, key: string | null): Promise<CompositeDetails> {
  return getJson(`/v1/models/${encodeURIComponent(name)}`, key);
}

export function evaluation(name: string, key: string | null): Promise<Evaluation> {
  return getJson(`/v1/models/${encodeURIComponent(name)}/evaluation`, key);
}

export function datasets(key: string | null): Promise<DatasetListing[]> {
  return getJson('/v1/datasets', key);
}

export function rows(name: string, last: number, key: string | null): Promise<DatasetRowsBody> {
  return getJson(`/v1/datasets/${encodeURIComponent(name)}/rows?last=${last}`, key);
}

/**
 * Every named model's forecast in one POST (200 whatever each item's outcome, so a failing model is an item
 * with its error, not a failed request), with forecast timestamps and quantiles where the server has them.
 */
export async function predictions(names: readonly string[], key: string | null): Promise<PredictionBody[]> {
  if (names.length === 0) return [];
  const path = '/v1/predict?include=timestamps,quantiles';
  const body = JSON.stringify({ predictions: names.map((model_name) => ({ model_name })) });
  const response = await request(path, key, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
  if (!response.ok) throw await errorOf(path, response);
  return ((await response.json()) as { predictions: PredictionBody[] }).predictions;
}

export async function metricsText(key: string | null): Promise<string> {
  const response = await request('/metrics', key);
  if (!response.ok) throw await errorOf('/metrics', response);
  return response.text();
}
