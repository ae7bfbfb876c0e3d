import type { EvaluationReport, EvaluationStatus } from '../evaluation/backtest.js';

export type { EvaluationReport };

/**
 * A variants entry's evaluation (SPEC "Ensembles and variants"): each member's own evaluation side by side,
 * with its draw weight; the entry has no metrics of its own.
 */
export interface VariantsEvaluationReport {
  readonly model: string;
  readonly status: EvaluationStatus;
  readonly variants: Readonly<Record<string, EntryEvaluation & { readonly weight: number }>>;
}

/** What GET /v1/models/:name/evaluation answers for an entry of any kind. */
export type EntryEvaluation = EvaluationReport | VariantsEvaluationReport;
import type { FailureReason } from '../errors.js';
import type { AbortSignalLike } from '../runtime/cancellation.js';
import type { ForecastLayout } from '../forecast/layout.js';
import type { FloatArray } from '../runtime/types.js';
import type { DatasetListing, EntryStatus, ModelListing } from './api-bodies.js';

/** What a prediction response says about its model, where known (SPEC: errors still carry these). */
export interface ModelIdentity {
  readonly name: string;
  /** params.version, else the ONNX model_version if non-zero; null = omitted from responses. */
  readonly version: string | null;
  /** null until the model has passed the contract (or when params.lookback was not given). */
  readonly lookback: number | null;
  /** A variants entry's answer: the member that answered (printed after model_name). */
  readonly variant?: string;
}

/**
 * What a variants entry may draw by (SPEC "Drawing"), read from the request before it is answered: the API
 * key it was authorised with and the headers a `sticky: header:NAME` names (lower-case names).
 */
export interface DrawKeys {
  readonly apiKey: string | null;
  readonly headers: ReadonlyMap<string, string>;
}

/** A member of an ensemble or variants entry, as GET /v1/models/:name shows it. */
export interface CompositeMemberDetails {
  readonly name: string;
  /** Ensemble: its share of the combination (summing to 1); variants: its integer draw weight. */
  readonly weight: number;
  readonly status: EntryStatus;
}

export type { FailureReason } from '../errors.js';
export type { DatasetListing, EntryStatus, ModelListing } from './api-bodies.js';

/** What `?include=` asks of a prediction on the Spice routes. */
export interface IncludeOptions {
  readonly timestamps: boolean;
  readonly quantiles: boolean;
}

/** The fields `?include=` adds; null where the model or dataset cannot give it. */
export interface ForecastExtras {
  /** Epoch ms of each forecast step, continuing the dataset's time axis at its frequency. */
  readonly timestamps: Float64Array | null;
  /** Per level (in `levels` order) the values, laid out as `prediction`. */
  readonly quantiles: { readonly levels: readonly number[]; readonly type: 'float32' | 'float64'; readonly values: readonly FloatArray[] } | null;
}

export type PredictOutcome =
  | { readonly kind: 'success'; readonly model: ModelIdentity; readonly values: FloatArray; readonly extras?: ForecastExtras }
  | { readonly kind: 'not_found'; readonly name: string }
  | {
      readonly kind: 'failure';
      readonly model: ModelIdentity;
      readonly reason: FailureReason;
      /** In the user's terms: no absolute paths, database hosts or users, raw cells (SPEC). */
      readonly message: string;
      /** The full reason for the log line with the request id, when it says more than `message`. */
      readonly detail?: string;
    };

/** GET /v1/models/:name: what the model is and what it forecasts. */
export interface ModelDetails {
  readonly name: string;
  readonly from: string;
  readonly datasets: readonly string[];
  readonly status: EntryStatus;
  readonly error: string | null;
  readonly version: string | null;
  readonly lookback: number | null;
  /** Steps forecast; null until loaded, or when output 0 has no horizon. */
  readonly horizon: number | null;
  /** Values per input time step; null until loaded. */
  readonly variables: number | null;
  /** Quantile levels; null for a model without a quantile output. */
  readonly quantiles: readonly number[] | null;
  /** The frequency of the model's dataset (ISO 8601 duration); null without one. */
  readonly frequency: string | null;
  /** The latest evaluation's MAE and skill; null before one finished. */
  readonly mae: number | null;
  readonly skill: number | null;
  /** Ensembles and variants: what they are made of. */
  readonly composite?: {
    readonly kind: 'ensemble' | 'variants';
    /** Ensemble: mean, median or weighted. */
    readonly combine?: string;
    /** Variants: none, api_key or header:NAME. */
    readonly sticky?: string;
    readonly members: readonly CompositeMemberDetails[];
    /** inverse_mae ensembles: whether the weights in use are the members' inverse MAEs yet, or still equal. */
    readonly weightsFrom?: 'inverse_mae' | 'equal';
  };
}

/** One client series forecast: output 0's item slice, and the quantile output's (null without one). */
export interface SeriesForecast {
  readonly values: FloatArray;
  readonly quantiles: FloatArray | null;
}

/** A model looked up for client-sent series. */
export type SeriesModelLookup =
  | { readonly kind: 'not_found' }
  | { readonly kind: 'loading'; readonly message: string }
  | { readonly kind: 'failed'; readonly message: string }
  | { readonly kind: 'no_horizon'; readonly message: string }
  | {
      readonly kind: 'ready';
      readonly details: ModelDetails;
      readonly layout: ForecastLayout;
      readonly pointType: 'float32' | 'float64';
      /** A variants entry: the member drawn to answer this request. */
      readonly variant?: string;
      /**
       * Forecasts one window (lookback x variables values, row-major) on the version looked up. Rejects
       * with a ForecastdError (queue full, timeout, inference failure, non-finite output).
       */
      forecast(window: FloatArray, signal?: AbortSignalLike): Promise<SeriesForecast>;
    };

/** The newest rows of a dataset (GET /v1/datasets/:name/rows), oldest first; views into the held snapshot. */
export interface DatasetRows {
  /** Value column names in tensor order; empty while the dataset holds no data. */
  readonly columns: readonly string[];
  /** Epoch milliseconds, ascending. */
  readonly times: Float64Array;
  /** Row-major, times.length * columns.length; NaN is a missing value. */
  readonly values: Float64Array;
}

/** What the HTTP layer serves. The server's registry implements it; the HTTP layer knows nothing else. */
export interface ServingBackend {
  /**
   * Never rejects: every failure is an outcome. `signal` aborts when the client went away (the server passes
   * a Cancellation, which costs far less per request than an AbortSignal).
   */
  predict(name: string, signal?: AbortSignalLike, include?: IncludeOptions, keys?: DrawKeys): Promise<PredictOutcome>;
  /**
   * The outcome predict() would give when it needs no inference (no such model, a model or dataset not ready,
   * a cached prediction of the data held now); undefined when it needs a run. Counted as predict() counts it.
   */
  predictNow(name: string, include?: IncludeOptions, keys?: DrawKeys): PredictOutcome | undefined;
  /** undefined when the pod has no model of that name. */
  modelDetails(name: string): ModelDetails | undefined;
  /** The model's evaluation (GET /v1/models/:name/evaluation); undefined when the pod has no model of that name. */
  evaluation(name: string): EntryEvaluation | undefined;
  allModelDetails(): readonly ModelDetails[];
  seriesModel(name: string, keys?: DrawKeys): SeriesModelLookup;
  /** Request headers (lower-case) some variants entry draws by; empty when none does (nothing to read). */
  drawHeaders(): readonly string[];
  /** A variants entry: every call is its own draw, so calls naming it must not be merged. */
  drawsPerCall(name: string): boolean;
  /** Names of the models that can answer now, in pod order (POST /v1/predict without a list). */
  readyModelNames(): string[];
  models(): readonly ModelListing[];
  datasets(): readonly DatasetListing[];
  /** The newest `last` rows of a dataset; null when the pod has no dataset of that name. */
  datasetRows(name: string, last: number): DatasetRows | null;
  /** No model or dataset is still Initializing. */
  ready(): boolean;
}
