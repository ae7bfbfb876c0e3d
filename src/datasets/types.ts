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

/**
 * How a dataset is kept fresh: the `acceleration` settings of a pod's dataset entry, in the dataset's own
 * terms (the spicepod maps its YAML into this).
 */
export interface AccelerationConfig {
  /** Milliseconds; null = never refresh. */
  readonly refreshCheckIntervalMs: number | null;
  readonly refreshMode: RefreshMode;
  /**
   * refresh_mode append only: how far back from the newest time seen each refresh re-reads, merging the
   * re-read rows by timestamp (late commits, updates and filled NULLs inside it are picked up). Milliseconds;
   * null or absent: refreshCheckIntervalMs (0 when that is null too).
   */
  readonly refreshAppendOverlapMs?: number | null;
  /** Milliseconds; null = keep every row. */
  readonly retentionPeriodMs: number | null;
}

/** Hints a load may use to read less. */
export interface LoadOptions {
  /**
   * Rows older than this (epoch ms) are not wanted (retention_period): a source may leave them out, and a
   * database source filters them in its query. null or absent: every row is wanted.
   */
  readonly notBeforeMs?: number | null;
}

/** What a dataset needs from the place its rows live (a file, a PostgreSQL table). */
export interface DatasetSource {
  /** Human-readable origin for logs and /v1/datasets, e.g. "file:data/co2.csv". */
  readonly from: string;
  /**
   * Load every row (refresh_mode full, or the first load). Rows with equal times come in the order that
   * decides which wins: the last one.
   */
  loadAll(signal: AbortSignal, options?: LoadOptions): Promise<LoadedRows>;
  /**
   * Rows strictly newer than `afterMs` (refresh_mode append), in the same order as loadAll. Sources that
   * cannot do this omit it.
   */
  loadNewerThan?(afterMs: number, signal: AbortSignal, options?: LoadOptions): Promise<LoadedRows>;
  /**
   * A cheap change token (file mtime+size, ...). When it equals the last one seen, a refresh is skipped.
   * Sources without one omit it and are always reloaded on refresh.
   */
  changeToken?(signal: AbortSignal): Promise<string>;
  close?(): Promise<void>;
}
