import type { ErrorCode } from '../errors.js';
import type { AbortSignalLike } from '../runtime/cancellation.js';
import type { FloatArray } from '../runtime/types.js';

/** What a prediction response says about its model, where known (SPEC: errors still carry these). */
export interface ModelIdentity {
  readonly name: string;
  /** params.version, else the ONNX model_version if non-zero; null = omitted from responses. */
  readonly version: string | null;
  /** null until the model has passed the contract (or when params.lookback was not given). */
  readonly lookback: number | null;
}

/** Why a prediction for a known model failed: an error code, or the model has not finished loading. */
export type FailureReason = ErrorCode | 'MODEL_LOADING';

export type PredictOutcome =
  | { readonly kind: 'success'; readonly model: ModelIdentity; readonly values: FloatArray }
  | { readonly kind: 'not_found'; readonly name: string }
  | {
      readonly kind: 'failure';
      readonly model: ModelIdentity;
      readonly reason: FailureReason;
      readonly message: string;
    };

export type EntryStatus = 'Initializing' | 'Ready' | 'Refreshing' | 'Error';

export interface ModelListing {
  readonly name: string;
  readonly from: string;
  readonly datasets: readonly string[];
  readonly status: EntryStatus;
  /** The last load or reload failure; null when none. */
  readonly error: string | null;
}

export interface DatasetListing {
  readonly name: string;
  readonly from: string;
  readonly rows: number;
  /** ISO 8601 (UTC) time of the oldest and newest row; null while there are none. */
  readonly first_ts: string | null;
  readonly last_ts: string | null;
  readonly status: EntryStatus;
  readonly error: string | null;
  /** ISO 8601 (UTC) time of the last successful refresh check (even one that found nothing new); null before. */
  readonly refreshed_at: string | null;
}

/** What the HTTP layer serves. The server's registry implements it; the HTTP layer knows nothing else. */
export interface ServingBackend {
  /**
   * Never rejects: every failure is an outcome. `signal` aborts when the client went away (the server passes
   * a Cancellation, which costs far less per request than an AbortSignal).
   */
  predict(name: string, signal?: AbortSignalLike): Promise<PredictOutcome>;
  /** Names of the models that can answer now, in pod order (POST /v1/predict without a list). */
  readyModelNames(): string[];
  models(): readonly ModelListing[];
  datasets(): readonly DatasetListing[];
  /** No model or dataset is still Initializing. */
  ready(): boolean;
}
