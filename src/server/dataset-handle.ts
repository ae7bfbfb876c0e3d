import { Dataset, describeDataset } from '../datasets/dataset.js';
import type { DatasetListing } from '../http/types.js';
import { FileSource } from '../datasets/file-source.js';
import { createPostgresSource } from '../datasets/postgres.js';
import type { DatasetSnapshot, DatasetSource, DatasetStatus, FillMissing } from '../datasets/types.js';
import { windowFor } from '../datasets/window.js';
import type { Logger } from '../log.js';
import type { WindowSource } from '../runtime/window.js';
import type { DatasetConfig } from '../spicepod/types.js';

function sourceFor(config: DatasetConfig): DatasetSource {
  const { source } = config;
  if (source.kind === 'file') {
    return new FileSource({
      path: source.path,
      format: source.format,
      from: config.from,
      timeColumn: config.timeColumn,
      timeFormat: config.timeFormat,
      columns: config.columns,
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
  private readonly logger: Logger;
  private dataset: Dataset | null = null;
  /** Set when the source could not even be created (e.g. impossible connection params). */
  private setupError: string | null = null;
  private first: Promise<void> | null = null;
  private readonly availableWaiters: (() => void)[] = [];

  constructor(config: DatasetConfig, logger: Logger) {
    this.config = config;
    this.name = config.name;
    this.from = config.from;
    this.logger = logger;
    try {
      this.dataset = new Dataset({
        name: config.name,
        from: config.from,
        source: sourceFor(config),
        acceleration: config.acceleration,
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

  get snapshot(): DatasetSnapshot | null {
    return this.dataset?.snapshot ?? null;
  }

  /** Epoch ms of the last successful check of the source (even one that found nothing new); null before. */
  get refreshedAt(): number | null {
    return this.dataset?.lastRefreshAt ?? null;
  }

  /** The GET /v1/datasets entry. */
  describe(): DatasetListing {
    if (this.dataset !== null) return describeDataset(this.dataset);
    return { name: this.name, from: this.from, rows: 0, first_ts: null, last_ts: null, status: 'Error', error: this.error, refreshed_at: null };
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
    return windowFor(snapshot, lookback, fill, this.name);
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
