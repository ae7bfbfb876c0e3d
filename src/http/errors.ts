import type { FailureReason } from '../errors.js';

/**
 * Every HTTP status forecastd answers with, and the `status` word its body carries, decided here and only
 * here (SPEC "HTTP API").
 */
export type ApiStatus =
  | 'Success'
  | 'BadRequest'
  | 'InternalError'
  | 'NotFound'
  | 'MethodNotAllowed'
  | 'Unauthorized'
  | 'PayloadTooLarge';

export interface HttpFailure {
  readonly httpStatus: number;
  readonly status: ApiStatus;
  /** Seconds for a Retry-After header; null = none. */
  readonly retryAfter: number | null;
}

const STATUS_LINES: Readonly<Record<number, string>> = {
  200: '200 OK',
  304: '304 Not Modified',
  400: '400 Bad Request',
  401: '401 Unauthorized',
  404: '404 Not Found',
  405: '405 Method Not Allowed',
  413: '413 Payload Too Large',
  500: '500 Internal Server Error',
  503: '503 Service Unavailable',
  504: '504 Gateway Timeout',
};

/** The HTTP status line uWebSockets.js writes ("503 Service Unavailable"). */
export function statusLine(httpStatus: number): string {
  return STATUS_LINES[httpStatus] ?? String(httpStatus);
}

const UNAVAILABLE: HttpFailure = { httpStatus: 503, status: 'InternalError', retryAfter: 1 };
const TIMED_OUT: HttpFailure = { httpStatus: 504, status: 'InternalError', retryAfter: null };
const INTERNAL: HttpFailure = { httpStatus: 500, status: 'InternalError', retryAfter: null };

/** A prediction of a model that is not in the pod: 400 BadRequest "Model NAME not found". */
export const MODEL_NOT_FOUND: HttpFailure = { httpStatus: 400, status: 'BadRequest', retryAfter: null };

/**
 * A failed prediction for a known model: loading or a full queue is 503 with Retry-After (come back soon),
 * a request that waited past timeout_ms is 504, and everything else (model in Error, dataset not ready, too
 * few rows, a gap, non-finite output, inference failure) is 500.
 */
export function predictFailure(reason: FailureReason): HttpFailure {
  switch (reason) {
    case 'MODEL_LOADING':
    case 'ERR_QUEUE_FULL':
      return UNAVAILABLE;
    case 'ERR_TIMEOUT':
      return TIMED_OUT;
    default:
      return INTERNAL;
  }
}
