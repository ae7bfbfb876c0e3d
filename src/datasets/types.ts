/**
 * The in-memory ("accelerated") form of a dataset. A snapshot is immutable: a refresh builds a new one and
 * swaps it in with one assignment, so no prediction ever sees half a dataset.
 */
export interface DatasetSnapshot {
  /** Process-unique, strictly increasing on every change: a cache key for "the window is unchanged". */
  readonly version: number;
  /** Value column names in tensor order. */
  readonly columns: readonly string[];
  /** Row times, epoch milliseconds, ascending (sorted by the time column). */
  readonly times: Float64Array;
  /** Row-major values, rows * columns.length; NaN marks a missing value (a gap). */
  readonly values: Float64Array;
  readonly rows: number;
  /** Epoch ms when this snapshot was built. */
  readonly loadedAt: number;
}

/** Rows as a source produces them, before sorting. Same layout as a snapshot. */
export interface LoadedRows {
  readonly columns: readonly string[];
  readonly times: Float64Array;
  readonly values: Float64Array;
  readonly rows: number;
}

export type DatasetStatus = 'Initializing' | 'Ready' | 'Refreshing' | 'Error';
export type FillMissing = 'none' | 'previous' | 'linear';
export type TimeFormat = 'iso8601' | 'unix_seconds' | 'unix_millis';
export type RefreshMode = 'full' | 'append';

/** What a dataset needs from the place its rows live (a file, a PostgreSQL table). */
export interface DatasetSource {
  /** Human-readable origin for logs and /v1/datasets, e.g. "file:data/co2.csv". */
  readonly from: string;
  /** Load every row (refresh_mode full, or the first load). */
  loadAll(signal: AbortSignal): Promise<LoadedRows>;
  /** Rows strictly newer than `afterMs` (refresh_mode append). Sources that cannot do this omit it. */
  loadNewerThan?(afterMs: number, signal: AbortSignal): Promise<LoadedRows>;
  /**
   * A cheap change token (file mtime+size, ...). When it equals the last one seen, a refresh is skipped.
   * Sources without one omit it and are always reloaded on refresh.
   */
  changeToken?(signal: AbortSignal): Promise<string>;
  close?(): Promise<void>;
}
