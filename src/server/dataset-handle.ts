import { Dataset, describeDataset } from '../datasets/dataset.js';
import type { DatasetListing } from '../http/types.js';
import { FileSource } from '../datasets/file-source.js';
import { createPostgresSource } from '../datasets/postgres.js';
import type { DatasetSnapshot, DatasetSource, DatasetStatus, FillMissing } from '../datasets/types.js';
import { snapshotFrequency } from '../datasets/snapshot-frequency.js';
import { windowFor } from '../datasets/window.js';
import type { Logger } from '../log.js';
import { userText } from './user-messages.js';
import type { MessageContext } from './user-messages.js';
import type { WindowSource } from '../runtime/window.js';
import type { DatasetConfig, Spicepod } from '../spicepod/types.js';

/**
 * How many of a PostgreSQL dataset's newest rows to load and keep, from the pod: when every ONNX model reading
 * it declares `params.lookback`, the largest one plus a margin (fill_missing looks back past the window for a
 * value to carry or interpolate from); otherwise null, every row. File datasets are read whole anyway and
 * keep every row, so /v1/datasets describes the file.
 */
export function rowsToKeep(config: DatasetConfig, pod: Spicepod): number | null {
  if (config.source.kind !== 'postgres') return null;
  const readers = pod.models.filter((m) => m.source.kind === 'onnx' && m.datasets[0] === config.name);
  if (readers.length === 0) return null;
  let largest = 0;
  for (const model of readers) {
    if (model.params.lookback === null) return null;
    largest = Math.max(largest, model.params.lookback);
  }
  return largest + Math.max(largest, ROWS_MARGIN);
}

/** Rows kept beyond the largest lookback, at least: room for fill_missing to find earlier values. */
const ROWS_MARGIN = 1000;

/** A data file that never settles is read anyway (complete lines only) after this many refresh intervals. */
const UNSETTLED_READ_INTERVALS = 3;

function sourceFor(config: DatasetConfig, maxRows: number | null, settleMs: number): DatasetSource {
  const { source } = config;
  if (source.kind === 'file') {
    const interval = config.acceleration.refreshCheckIntervalMs;
    return new FileSource({
      path: source.path,
      format: source.format,
      from: config.from,
      timeColumn: config.timeColumn,
      timeFormat: config.timeFormat,
      columns: config.columns,
      compression: source.compression,
      delimited: source.delimited ?? {},
      json: source.json ?? {},
      settleMs,
      readUnsettledAfterMs: interval === null ? null : UNSETTLED_READ_INTERVALS * interval,
      maxCells: config.limits.maxCells,
      maxRecordBytes: config.limits.maxRecordBytes,
    });
  }
  return createPostgresSource({
    database: source.database ?? null,
    schema: source.schema,
    table: source.table,
    timeColumn: config.timeColumn,
    timeFormat: config.timeFormat,
    columns: config.columns,
    params: config.params,
    from: config.from,
    maxRows,
    maxCells: config.limits.maxCells,
  });
}

function retryNote(at: number | null): string {
  return at === null ? '' : `; retrying at ${new Date(at).toISOString()}`;
}

/**
 * A pod dataset as the registry uses it: the Dataset lifecycle plus what models ask of it (their column
 * count, their window) and the log lines an operator reads.
 */
export class DatasetHandle {
  readonly name: string;
  readonly from: string;
  readonly config: DatasetConfig;
  /** Newest rows loaded and kept (see rowsToKeep); null keeps every row. */
  readonly maxRows: number | null;
  private readonly logger: Logger;
  private dataset: Dataset | null = null;
  /** Set when the source could not even be created (e.g. impossible connection params). */
  private setupError: string | null = null;
  private first: Promise<void> | null = null;
  private readonly availableWaiters: (() => void)[] = [];

  /** `settleMs`: how long a changed data file must hold still before it is read (see FileSource). */
  constructor(config: DatasetConfig, logger: Logger, maxRows: number | null = null, settleMs = 0) {
    this.config = config;
    this.maxRows = maxRows;
    this.name = config.name;
    this.from = config.from;
    this.logger = logger;
    try {
      this.dataset = new Dataset({
        name: config.name,
        from: config.from,
        source: sourceFor(config, maxRows, settleMs),
        acceleration: config.acceleration,
        maxRows,
        maxCells: config.limits.maxCells,
      });
    } catch (error) {
      this.setupError = error instanceof Error ? error.message : String(error);
    }
  }

  get status(): DatasetStatus {
    return this.dataset?.status ?? 'Error';
  }

  get error(): string | null {
    return this.setupError ?? this.dataset?.error ?? null;
  }

  /** `error` in the user's terms (see user-messages): what HTTP shows. */
  get userError(): string | null {
    const error = this.error;
    return error === null ? null : userText(error, this.messageContext);
  }

  private get messageContext(): MessageContext {
    const source = this.config.source;
    if (source.kind === 'file') return { from: this.from, path: source.path };
    const params = this.config.params;
    return { from: this.from, hidden: [params['pg_host'], params['pg_user']].filter((v): v is string => typeof v === 'string' && v.length > 2) };
  }

  get snapshot(): DatasetSnapshot | null {
    return this.dataset?.snapshot ?? null;
  }

  /** Epoch ms of the last successful check of the source (even one that found nothing new); null before. */
  get refreshedAt(): number | null {
    return this.dataset?.lastRefreshAt ?? null;
  }

  /** The GET /v1/datasets entry. */
  describe(): DatasetListing {
    if (this.dataset !== null) return { ...describeDataset(this.dataset), error: this.userError };
    return { name: this.name, from: this.from, rows: 0, first_ts: null, last_ts: null, status: 'Error', error: this.userError, refreshed_at: null, frequency: null, off_grid_rows: 0 };
  }

  /** Loads the dataset and starts its refreshes. Resolves after the first load, good or bad. */
  start(): Promise<void> {
    this.first ??= this.runFirstLoad();
    return this.first;
  }

  /** The first load's end (starting it if needed). */
  firstLoad(): Promise<void> {
    return this.start();
  }

  private async runFirstLoad(): Promise<void> {
    const dataset = this.dataset;
    if (dataset === null) {
      this.logger.error({ dataset: this.name, from: this.from }, `dataset ${this.name} failed to load: ${this.setupError}`);
      return;
    }
    dataset.onRefresh((outcome) => {
      const s = dataset.snapshot;
      if (outcome.error !== null) {
        this.logger.error(
          { dataset: this.name, from: this.from, ms: Math.round(outcome.durationMs) },
          s === undefined
            ? `dataset ${this.name} failed to load: ${outcome.error}${retryNote(dataset.nextRetryAt)}`
            : `dataset ${this.name} refresh failed, still serving ${s.rows} rows: ${outcome.error}`,
        );
      } else if (outcome.changed && s !== undefined) {
        this.logger.info(
          {
            dataset: this.name,
            from: this.from,
            rows: s.rows,
            columns: s.columns,
            first_ts: s.rows > 0 ? new Date(s.times[0]!).toISOString() : null,
            last_ts: s.rows > 0 ? new Date(s.times[s.rows - 1]!).toISOString() : null,
            ms: Math.round(outcome.durationMs),
          },
          `dataset ${this.name} loaded`,
        );
      }
      if (s !== undefined && this.availableWaiters.length > 0) {
        for (const waiter of this.availableWaiters.splice(0)) waiter();
      }
    });
    await dataset.start();
  }

  /**
   * Value columns a model gets: the configured columns, else those of the loaded data; null while neither
   * is known (the dataset has not loaded).
   */
  variables(): number | null {
    if (this.config.columns !== null) return this.config.columns.length;
    return this.dataset?.snapshot?.columns.length ?? null;
  }

  window(snapshot: DatasetSnapshot, lookback: number, fill: FillMissing): WindowSource {
    return windowFor(snapshot, lookback, fill, this.name, snapshotFrequency(snapshot));
  }

  /** Every new snapshot (refresh, reload). Returns a function that removes the listener. */
  onChange(listener: () => void): () => void {
    const remove = this.dataset?.onChange(() => listener());
    return () => {
      remove?.();
    };
  }

  /** Calls `listener` once, after the next refresh that leaves the dataset with data. */
  onceAvailable(listener: () => void): void {
    this.availableWaiters.push(listener);
  }

  async stop(): Promise<void> {
    this.availableWaiters.length = 0;
    await this.dataset?.stop();
  }
}
