/**
 * The JSON bodies of the listing, rows and prediction routes as types: one home for what the server writes
 * and what the dashboard reads. It imports nothing, so that the dashboard's browser build (src/web) compiles
 * it too; the dashboard imports it type-only, so the page never loads it.
 */

export type EntryStatus = 'Initializing' | 'Ready' | 'Refreshing' | 'Error';

/** One entry of GET /v1/models. */
export interface ModelListing {
  readonly name: string;
  readonly from: string;
  readonly datasets: readonly string[];
  readonly status: EntryStatus;
  /** The last load or reload failure; null when none. */
  readonly error: string | null;
  /** The latest evaluation's MAE and skill (SPEC "Evaluation"); null before one finished. */
  readonly mae: number | null;
  readonly skill: number | null;
}

/** One entry of GET /v1/datasets. */
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
  /** The step of the time axis as an ISO 8601 duration, or null when the rows have no regular step. */
  readonly frequency: string | null;
  /** Rows that fill no step of the grid anchored at the newest row (ignored by windows); 0 without a frequency. */
  readonly off_grid_rows: number;
}

/** GET /v1/datasets/:name/rows: the newest rows, oldest first, a missing value as null. */
export interface DatasetRowsBody {
  readonly name: string;
  /** Value column names in tensor order. */
  readonly columns: readonly string[];
  /** ISO 8601 (UTC), as /v1/datasets prints first_ts and last_ts. */
  readonly timestamps: readonly string[];
  /** One array per row, its values in column order. */
  readonly values: readonly (readonly (number | null)[])[];
}

/**
 * One prediction (GET /v1/models/:name/predict, an entry of POST /v1/predict's `predictions`). Absent fields
 * are omitted: error_message on success, model_version and lookback where unknown, prediction on failure,
 * timestamps and quantiles unless `?include=` asked for them and the model or dataset can give them.
 */
export interface PredictionBody {
  readonly status: string;
  readonly error_message?: string;
  readonly model_name: string;
  /** A variants entry's answer: the member that answered. */
  readonly variant?: string;
  readonly model_version?: string;
  readonly lookback?: number;
  readonly prediction?: readonly number[];
  readonly timestamps?: readonly string[];
  /** Per quantile level (as its decimal text) the values, laid out as `prediction`. */
  readonly quantiles?: Readonly<Record<string, readonly number[]>>;
  readonly duration_ms: number;
}

/** GET /v1/models/:name/evaluation, the parts the dashboard shows (results are absent before one finished). */
export interface Evaluation {
  readonly model: string;
  readonly status: 'Computing' | 'Ready' | 'Off' | 'Error';
  readonly error?: string;
  readonly origins?: number;
  readonly first_origin?: string;
  readonly last_origin?: string;
  readonly mae?: number | null;
  readonly by_step?: { readonly mae: readonly (number | null)[] };
  readonly baselines?: {
    readonly naive: { readonly mae: number | null; readonly by_step: { readonly mae: readonly (number | null)[] } };
    readonly seasonal_naive: { readonly mae: number | null; readonly by_step: { readonly mae: readonly (number | null)[] } };
  };
  /** A few recent origins' forecasts beside what happened, oldest first, one entry per origin and variable. */
  readonly past_forecasts?: readonly PastForecast[];
}

/** One past forecast of an evaluation: what the model said at `origin`, and what happened. */
export interface PastForecast {
  readonly origin: string;
  readonly variable: string;
  readonly timestamps: readonly string[];
  readonly forecast: readonly number[];
  readonly actual: readonly (number | null)[];
}

/** GET /v1/models/:name of an ensemble or variants entry: what the dashboard shows of its members. */
export interface CompositeDetails {
  readonly name: string;
  readonly combine?: string;
  readonly sticky?: string;
  readonly members?: readonly { readonly name: string; readonly weight: number; readonly status: EntryStatus }[];
}
