/**
 * The API's response shapes as the dashboard reads them, after SPEC. Fields the server may not give (a build
 * without forecast timestamps or quantiles, a dataset without a frequency) are optional, and the page leaves
 * out what they would show. No DOM here: the chart layout and its tests use these types too.
 */

export type EntryStatus = 'Initializing' | 'Ready' | 'Refreshing' | 'Error';

/** GET /v1/models/:name/evaluation, the parts the page shows (results are absent before one finished). */
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

export interface PastForecast {
  readonly origin: string;
  readonly variable: string;
  readonly timestamps: readonly string[];
  readonly forecast: readonly number[];
  readonly actual: readonly (number | null)[];
}

export interface ModelListing {
  readonly name: string;
  readonly from: string;
  readonly datasets: readonly string[];
  readonly status: EntryStatus;
  readonly error: string | null;
  /** The latest evaluation's mean absolute error and skill against the seasonal-naive baseline. */
  readonly mae: number | null;
  readonly skill: number | null;
}

export interface DatasetListing {
  readonly name: string;
  readonly from: string;
  readonly rows: number;
  readonly first_ts: string | null;
  readonly last_ts: string | null;
  readonly status: EntryStatus;
  readonly error: string | null;
  readonly refreshed_at?: string | null;
  readonly frequency?: string | null;
}

export interface DatasetRows {
  readonly name: string;
  readonly columns: readonly string[];
  readonly timestamps: readonly string[];
  readonly values: readonly (readonly (number | null)[])[];
}

export interface Prediction {
  readonly status: string;
  readonly error_message?: string;
  readonly model_name: string;
  readonly model_version?: string;
  readonly lookback?: number;
  readonly prediction?: readonly number[];
  readonly timestamps?: readonly string[];
  readonly quantiles?: Readonly<Record<string, readonly number[]>>;
  readonly duration_ms: number;
}
