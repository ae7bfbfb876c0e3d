import { ForecastdError } from '../errors.js';
import { formatFrequency } from '../forecast/frequency.js';
import { DEFAULT_MAX_CELLS, isLimitMessage, resolveLimits, tooManyCells } from './limits.js';
import { finishYielding, sliceOf, type Work } from '../work.js';
import { snapshotFactsWork, snapshotFrequency, snapshotOffGridRows } from './snapshot-frequency.js';
import { timeOrderOffThread } from './off-thread-reader.js';
import { dropBeforeWork, gatherWork, isOrderedWork, keepNewestWork, makeSnapshot, mergeByTimeWork, rowsAfterWork, sameContentWork } from './snapshot.js';
import type { AccelerationConfig, DatasetSnapshot, DatasetSource, DatasetStatus, LoadOptions, LoadedRows } from './types.js';

export interface DatasetOptions {
  readonly name: string;
  /** As written in the pod, for display. */
  readonly from: string;
  readonly source: DatasetSource;
  /** Default: never refresh, full mode, keep every row. */
  readonly acceleration?: AccelerationConfig;
  /** Clock for retention and timestamps (epoch ms); default Date.now. */
  readonly now?: () => number;
  /**
   * Keep only the newest this many rows after every load and append (append mode otherwise grows without
   * bound when there is no retention_period). null or absent: keep every row.
   */
  readonly maxRows?: number | null;
  /**
   * params.max_cells: rows × value columns the dataset may hold, counted after retention and maxRows. A first
   * load past it is an error; a refresh past it keeps the last good data and sets `error`. Default 200,000,000.
   */
  readonly maxCells?: number;
  /**
   * Backoff for retrying while the dataset has no data yet (a database down at start, a file not there yet).
   * Default: 1 s doubling up to 60 s, each delay ±20% at random. null: no such retries (only
   * refresh_check_interval, if set, tries again).
   */
  readonly retry?: RetryOptions | null;
}

export interface RetryOptions {
  /** Delay before the first retry, ms. Default 1000. */
  readonly initialMs?: number;
  /** Longest delay between retries, ms. Default 60000. */
  readonly maxMs?: number;
}

const DEFAULT_RETRY = { initialMs: 1_000, maxMs: 60_000 } as const;
/** Each retry delay is spread by up to this fraction either way, so datasets that failed together do not retry in step. */
const RETRY_JITTER = 0.2;
// Largest delay Node's timers accept; longer ones fire at once.
const MAX_TIMER_MS = 2_147_483_647;
/**
 * Rows are dropped by retention_period as they expire, but at most this often: each drop builds a new
 * snapshot (and frees cached predictions), which a dataset of one row per millisecond would do constantly.
 */
const RETENTION_MIN_GAP_MS = 1_000;

/** What one load or refresh did, for logs and metrics. */
export interface RefreshOutcome {
  /** A new snapshot was swapped in. */
  readonly changed: boolean;
  /** The source was unchanged (same change token), so nothing was read. */
  readonly skipped: boolean;
  /** The failure, when the load or refresh failed (the last good snapshot keeps serving). */
  readonly error: string | null;
  readonly rows: number;
  readonly durationMs: number;
}

export type SnapshotListener = (snapshot: DatasetSnapshot, previous: DatasetSnapshot | undefined) => void;
export type RefreshListener = (outcome: RefreshOutcome) => void;

/**
 * A dataset held in memory: loads its source once on start(), then every refresh_check_interval checks the
 * source's change token and reloads (full) or takes the newer rows (append). Each change builds a new
 * immutable snapshot and swaps it in with one assignment. A failed refresh is contained: the last good
 * snapshot keeps serving, the status returns to Ready and `error` says what went wrong.
 *
 * While the dataset has no data at all (the first load failed), it retries by itself with exponential backoff
 * (never waiting longer than refresh_check_interval), staying Error with the reason meanwhile; once a load
 * succeeds the backoff resets and the refresh_check_interval schedule takes over.
 *
 * refresh_mode append reads the rows newer than the newest time seen minus refresh_append_overlap and merges
 * them by timestamp: a re-read row replaces the held row with the same time, so rows that commit late, updates
 * and filled NULLs inside the overlap are picked up. Of rows with equal times in one read, the last wins.
 *
 * The value columns are pinned by the first successful load: the dataset's models are checked against them,
 * so a later load whose columns differ in names, order or count is refused (the last good snapshot keeps
 * serving and `error` says so) rather than feeding a model a different or permuted window.
 *
 * retention_period counts back from now (as in Spice), not from the newest row: historic data older than the
 * period is dropped entirely. Sources are asked not to read expired rows, and rows are dropped as they
 * expire, not only when a refresh runs.
 */
export class Dataset {
  readonly name: string;
  readonly from: string;
  readonly source: DatasetSource;
  readonly acceleration: AccelerationConfig;
  /** Row cap applied after every load and append; null = none. */
  readonly maxRows: number | null;
  /** Rows × value columns held at most (params.max_cells). */
  readonly maxCells: number;
  /** refresh_mode append: how far back from the newest time seen each refresh re-reads, ms. */
  readonly appendOverlapMs: number;
  private readonly now: () => number;
  private readonly retry: { readonly initialMs: number; readonly maxMs: number } | null;
  /** The delay the next retry waits (before jitter); doubles after each retry, resets after a success. */
  private retryDelayMs = 0;
  private nextRetryAtMs: number | null = null;

  private currentStatus: DatasetStatus = 'Initializing';
  private currentSnapshot: DatasetSnapshot | undefined;
  private lastError: string | null = null;
  private lastErrorAtMs: number | null = null;
  private lastRefreshAtMs: number | null = null;
  /**
   * Token of the source content last read successfully. A failed read does not record its token, so the
   * source is read again at the next check even if it looks the same (the failure may have been a passing one).
   */
  private lastToken: string | null = null;
  /**
   * The change token of a source whose last read stopped at max_cells or max_record_bytes: while it is the
   * same, the source is not read again (an oversized file would be read up to the limit at every retry).
   */
  private limitToken: string | null = null;
  private running: Promise<RefreshOutcome> | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** What the pending timer is for: a backoff retry (no data yet) or the regular refresh check. */
  private timerKind: 'retry' | 'interval' | null = null;
  /** Drops rows when the oldest expires (retention_period); null while none is pending. */
  private retentionTimer: NodeJS.Timeout | null = null;
  /** The value columns of the first successful load; every later load must have exactly these. */
  private pinnedColumns: readonly string[] | null = null;
  /** Newest row time any load returned (append reads from here minus the overlap); null before any row. */
  private newestSeenMs: number | null = null;
  private started = false;
  private stopped = false;
  private readonly abort = new AbortController();
  private readonly snapshotListeners = new Set<SnapshotListener>();
  private readonly refreshListeners = new Set<RefreshListener>();

  constructor(options: DatasetOptions) {
    this.name = options.name;
    this.from = options.from;
    this.source = options.source;
    this.acceleration = options.acceleration ?? { refreshCheckIntervalMs: null, refreshMode: 'full', retentionPeriodMs: null };
    this.now = options.now ?? Date.now;
    const overlap = this.acceleration.refreshAppendOverlapMs ?? this.acceleration.refreshCheckIntervalMs ?? 0;
    if (!Number.isFinite(overlap) || overlap < 0) {
      throw new ForecastdError('ERR_INVALID_ARGUMENT', `dataset ${this.name}: refreshAppendOverlapMs must be a non-negative number of ms, got ${overlap}`);
    }
    this.appendOverlapMs = overlap;
    const maxRows = options.maxRows ?? null;
    if (maxRows !== null && (!Number.isSafeInteger(maxRows) || maxRows < 1)) {
      throw new ForecastdError('ERR_INVALID_ARGUMENT', `dataset ${this.name}: maxRows must be a positive integer or null, got ${maxRows}`);
    }
    this.maxRows = maxRows;
    this.maxCells = resolveLimits({ maxCells: options.maxCells ?? DEFAULT_MAX_CELLS }, `dataset ${this.name}`).maxCells;
    this.retry = options.retry === null ? null : resolveRetry(this.name, options.retry ?? {});
    this.retryDelayMs = this.retry?.initialMs ?? 0;
  }

  get status(): DatasetStatus {
    return this.currentStatus;
  }

  /** The last load or refresh failure; null once a later one succeeds. */
  get error(): string | null {
    return this.lastError;
  }

  /** Epoch ms of the last failure, or null. */
  get lastErrorAt(): number | null {
    return this.lastErrorAtMs;
  }

  /**
   * Epoch ms of the last successful load or refresh check, or null. A check that found the source unchanged
   * counts: this is how fresh the data is known to be, not when it last changed (see snapshot.loadedAt).
   */
  get lastRefreshAt(): number | null {
    return this.lastRefreshAtMs;
  }

  /** Epoch ms when the next backoff retry is due, while the dataset has no data and one is scheduled; else null. */
  get nextRetryAt(): number | null {
    return this.timerKind === 'retry' ? this.nextRetryAtMs : null;
  }

  /** The value columns every load must have (those of the first successful load); null before it. */
  get columns(): readonly string[] | null {
    return this.pinnedColumns;
  }

  /** The data requests read; undefined until the first successful load. */
  get snapshot(): DatasetSnapshot | undefined {
    return this.currentSnapshot;
  }

  /** Called with every new snapshot. Returns a function that removes the listener. Listeners must not throw. */
  onChange(listener: SnapshotListener): () => void {
    this.snapshotListeners.add(listener);
    return () => this.snapshotListeners.delete(listener);
  }

  /** Called after every load and refresh attempt. Returns a function that removes the listener. */
  onRefresh(listener: RefreshListener): () => void {
    this.refreshListeners.add(listener);
    return () => this.refreshListeners.delete(listener);
  }

  /**
   * Loads the dataset, then starts the refresh timer when refresh_check_interval is set, or the backoff
   * retries when the load failed. Resolves once the first load has finished, successfully or not (then
   * status is Error); a failed load does not reject.
   */
  async start(): Promise<RefreshOutcome> {
    if (this.started) throw new ForecastdError('ERR_INVALID_ARGUMENT', `dataset ${this.name} was already started`);
    this.started = true;
    // The refresh schedules what comes next (retry or regular check) as it finishes.
    return this.refresh();
  }

  /**
   * Checks the source now and swaps in a new snapshot if it changed. Concurrent calls share one refresh.
   * Never rejects: failures are reported in the outcome and in `error`.
   */
  refresh(): Promise<RefreshOutcome> {
    if (this.running !== null) return this.running;
    const run = this.runRefresh().finally(() => {
      this.running = null;
    });
    this.running = run;
    return run;
  }

  /** Stops the refresh timer and pending retries, cancels a load in progress and closes the source. Safe to call twice. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.clearTimer();
    this.clearRetentionTimer();
    this.abort.abort();
    await this.running?.catch(() => undefined);
    await this.source.close?.();
  }

  /**
   * Decides the next timed attempt once a refresh has finished: a backoff retry while there is no data, else
   * the regular check (kept as it is when one is already pending, so manual refreshes do not postpone it).
   */
  private scheduleNext(): void {
    if (!this.started || this.stopped) return;
    const interval = this.acceleration.refreshCheckIntervalMs;
    if (this.currentSnapshot === undefined && this.retry !== null) {
      const base = this.retryDelayMs;
      this.retryDelayMs = Math.min(base * 2, this.retry.maxMs);
      const jittered = base * (1 + RETRY_JITTER * (2 * Math.random() - 1));
      const delay = Math.max(1, Math.round(Math.min(jittered, interval ?? MAX_TIMER_MS)));
      this.setTimer('retry', delay);
      return;
    }
    if (this.currentSnapshot !== undefined && this.retry !== null) this.retryDelayMs = this.retry.initialMs;
    if (this.timerKind === 'interval') return;
    if (interval === null) this.clearTimer();
    else this.setTimer('interval', interval);
  }

  private setTimer(kind: 'retry' | 'interval', delayMs: number): void {
    this.clearTimer();
    this.timerKind = kind;
    this.nextRetryAtMs = kind === 'retry' ? this.now() + delayMs : null;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.timerKind = null;
      void this.refresh();
    }, delayMs);
    // A refresh or retry timer alone must not keep the process alive.
    this.timer.unref();
  }

  private clearTimer(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.timerKind = null;
    this.nextRetryAtMs = null;
  }

  private async runRefresh(): Promise<RefreshOutcome> {
    const startedAt = this.now();
    const previous = this.currentSnapshot;
    const signal = this.abort.signal;
    let token: string | null = null;
    try {
      if (this.stopped) return this.outcome(false, true, null, startedAt);
      if (this.source.changeToken !== undefined) {
        try {
          token = await this.source.changeToken(signal);
        } catch (err) {
          // The source is gone or unreadable; forget the old token so it is read again once it comes back.
          this.lastToken = null;
          throw err;
        }
        if (previous !== undefined && token === this.lastToken) {
          this.lastRefreshAtMs = this.now();
          await this.applyRetention(previous, signal);
          return this.finish(false, true, startedAt);
        }
        if (token === this.limitToken && this.lastError !== null) {
          this.currentStatus = previous === undefined ? 'Error' : 'Ready';
          this.scheduleNext();
          return this.report(this.outcome(false, true, this.lastError, startedAt));
        }
      }
      if (previous !== undefined) this.currentStatus = 'Refreshing';
      const loaded = await this.load(previous, signal);
      // Taken before reading: a write during the read changes the token again and triggers another reload.
      this.lastToken = token;
      if (this.stopped) return this.outcome(false, true, null, startedAt);
      this.pinnedColumns ??= loaded.rows.columns;
      if (loaded.newest !== null) this.newestSeenMs = Math.max(this.newestSeenMs ?? loaded.newest, loaded.newest);
      let next: LoadedRows = loaded.rows;
      const retention = this.acceleration.retentionPeriodMs;
      if (retention !== null) next = await this.work(dropBeforeWork(next, this.now() - retention), signal);
      next = await this.work(keepNewestWork(next, this.maxRows), signal);
      const width = next.columns.length;
      if (next.rows * width > this.maxCells) {
        throw tooManyCells(`dataset ${this.name}`, this.maxCells, `${next.rows} rows × ${width} columns`);
      }
      const changed = previous === undefined || !(await this.work(sameContentWork(next, previous), signal));
      if (changed) {
        // The retention timer may have dropped rows from the served snapshot while this ran over many turns:
        // rows it dropped must not come back with these.
        if (retention !== null && this.currentSnapshot !== previous) next = await this.work(dropBeforeWork(next, this.now() - retention), signal);
        const snapshot = makeSnapshot(next, this.now());
        // Worked out before it serves, so no request or listing makes that pass over every row.
        await this.work(snapshotFactsWork(snapshot), signal);
        if (this.stopped) return this.outcome(false, true, null, startedAt);
        this.swap(snapshot);
      }
      this.lastRefreshAtMs = this.now();
      this.lastError = null;
      this.limitToken = null;
      return this.finish(changed, false, startedAt);
    } catch (err) {
      if (this.stopped) return this.outcome(false, true, null, startedAt);
      this.lastError = err instanceof Error ? err.message : String(err);
      this.lastErrorAtMs = this.now();
      this.limitToken = token !== null && isLimitMessage(this.lastError) ? token : null;
      this.currentStatus = this.currentSnapshot === undefined ? 'Error' : 'Ready';
      // Before the listeners run, so they can read nextRetryAt.
      this.scheduleNext();
      return this.report(this.outcome(false, false, this.lastError, startedAt));
    }
  }

  /**
   * Reads the source: in append mode (once something was seen) the rows after the newest time seen minus the
   * overlap, merged into `previous` by timestamp; otherwise every row. `newest` is the newest time read.
   */
  private async load(previous: DatasetSnapshot | undefined, signal: AbortSignal): Promise<{ rows: LoadedRows; newest: number | null }> {
    const retention = this.acceleration.retentionPeriodMs;
    const options: LoadOptions = { notBeforeMs: retention === null ? null : this.now() - retention };
    if (this.acceleration.refreshMode === 'append' && previous !== undefined && this.newestSeenMs !== null) {
      const after = this.newestSeenMs - this.appendOverlapMs;
      const loaded =
        this.source.loadNewerThan !== undefined
          ? await this.source.loadNewerThan(after, signal, options)
          : await this.source.loadAll(signal, options);
      this.checkColumns(loaded.columns);
      const reread = await this.ordered(await this.work(rowsAfterWork(loaded, after), signal), signal);
      return { rows: await this.work(mergeByTimeWork(previous, reread, this.maxRows), signal), newest: newestTime(reread) };
    }
    const loaded = await this.ordered(await this.source.loadAll(signal, options), signal);
    this.checkColumns(loaded.columns);
    return { rows: loaded, newest: newestTime(loaded) };
  }

  /** Refuses a load whose value columns are not the pinned ones (names, order and count). */
  private checkColumns(columns: readonly string[]): void {
    const pinned = this.pinnedColumns;
    if (pinned === null || (columns.length === pinned.length && columns.every((c, i) => c === pinned[i]))) return;
    const held = this.currentSnapshot?.rows ?? 0;
    throw new ForecastdError(
      'ERR_DATASET',
      `dataset ${this.name}: the value columns are now [${columns.join(', ')}], not [${pinned.join(', ')}] as its models were checked against; ` +
        `still serving the last good data (${held} row${held === 1 ? '' : 's'}). List the value columns in params.columns, or restart to take the new ones`,
    );
  }

  /**
   * `rows` in time order. The server's own sources read on the reader thread and order their rows there, so
   * this is usually only the check; for rows that come out of order (a library's own source) the reader thread
   * sorts a copy of their times, and the rows are gathered here in that order between turns of the event loop.
   */
  private async ordered(rows: LoadedRows, signal: AbortSignal): Promise<LoadedRows> {
    if (await this.work(isOrderedWork(rows), signal)) return rows;
    // Only a copy of the times crosses; the rows are gathered here, a slice at a time, in the order found.
    const times = await this.work(sliceOf(rows.times, 0, rows.rows), signal);
    const order = await timeOrderOffThread(times, rows.rows, `dataset ${this.name}`, signal);
    return this.work(gatherWork(rows, order), signal);
  }

  /**
   * Work over every row (comparing, copying, merging, counting), spread over turns of the event loop so that a
   * large dataset does not hold the serving thread; an abort (stop()) ends it at the next slice.
   */
  private work<T>(work: Work<T>, signal: AbortSignal): Promise<T> {
    return finishYielding(work, signal, () => new ForecastdError('ERR_DATASET', `dataset ${this.name}: the load was cancelled`));
  }

  /**
   * Drops the rows retention_period has expired from `current`. Rows kept are served from the same buffers
   * until dropped rows outnumber them (see dropBefore). A snapshot swapped in meanwhile (by a refresh) wins.
   */
  private async applyRetention(current: DatasetSnapshot, signal: AbortSignal): Promise<'dropped' | 'kept' | 'superseded'> {
    const retention = this.acceleration.retentionPeriodMs;
    if (retention === null) return 'kept';
    const kept = await this.work(dropBeforeWork(current, this.now() - retention), signal);
    if (kept === current) return 'kept';
    const snapshot = makeSnapshot(kept, current.loadedAt);
    await this.work(snapshotFactsWork(snapshot), signal);
    if (this.currentSnapshot !== current || this.stopped) return 'superseded';
    this.swap(snapshot);
    return 'dropped';
  }

  /**
   * Sets the retention timer for when the oldest held row expires (retention_period), so expired rows leave
   * even when no refresh runs. `minDelayMs` spaces drops out (see RETENTION_MIN_GAP_MS).
   */
  private scheduleRetention(minDelayMs: number): void {
    this.clearRetentionTimer();
    const retention = this.acceleration.retentionPeriodMs;
    const current = this.currentSnapshot;
    if (retention === null || current === undefined || current.rows === 0 || !this.started || this.stopped) return;
    // dropBefore keeps rows at exactly now - retention: the oldest row leaves one millisecond after that.
    const dueIn = (current.times[0] as number) + retention + 1 - this.now();
    const delay = Math.min(MAX_TIMER_MS, Math.max(1, minDelayMs, Math.ceil(dueIn)));
    this.retentionTimer = setTimeout(() => {
      this.retentionTimer = null;
      const snapshot = this.currentSnapshot;
      if (snapshot === undefined || this.stopped) return;
      void this.applyRetention(snapshot, this.abort.signal).then(
        (result) => {
          // The next drop waits at least RETENTION_MIN_GAP_MS, unless a refresh swapped in its own snapshot
          // meanwhile (its swap set the timer for it).
          if (result === 'dropped' || (result === 'kept' && this.currentSnapshot === snapshot)) this.scheduleRetention(RETENTION_MIN_GAP_MS);
        },
        () => undefined,
      );
    }, delay);
    this.retentionTimer.unref();
  }

  private clearRetentionTimer(): void {
    if (this.retentionTimer !== null) clearTimeout(this.retentionTimer);
    this.retentionTimer = null;
  }

  private swap(snapshot: DatasetSnapshot): void {
    const previous = this.currentSnapshot;
    this.currentSnapshot = snapshot;
    this.scheduleRetention(0);
    for (const listener of this.snapshotListeners) {
      try {
        listener(snapshot, previous);
      } catch {
        // A faulty listener must not stop the dataset or the other listeners.
      }
    }
  }

  private finish(changed: boolean, skipped: boolean, startedAt: number): RefreshOutcome {
    this.currentStatus = 'Ready';
    this.scheduleNext();
    return this.report(this.outcome(changed, skipped, null, startedAt));
  }

  private outcome(changed: boolean, skipped: boolean, error: string | null, startedAt: number): RefreshOutcome {
    return { changed, skipped, error, rows: this.currentSnapshot?.rows ?? 0, durationMs: Math.max(0, this.now() - startedAt) };
  }

  private report(outcome: RefreshOutcome): RefreshOutcome {
    for (const listener of this.refreshListeners) {
      try {
        listener(outcome);
      } catch {
        // As in swap(): listeners are observers only.
      }
    }
    return outcome;
  }
}

/** One entry of GET /v1/datasets. */
export interface DatasetDescription {
  readonly name: string;
  readonly from: string;
  readonly rows: number;
  readonly first_ts: string | null;
  readonly last_ts: string | null;
  readonly status: DatasetStatus;
  readonly error: string | null;
  /** ISO 8601 time of the last successful refresh check (even one that found nothing new), or null. */
  readonly refreshed_at: string | null;
  /** The step of the time axis as an ISO 8601 duration (PT1H, P7D, P1M), or null when no step covers most rows. */
  readonly frequency: string | null;
  /** Rows that fill no step of the dataset's grid (a stray row between steps, or newer than the anchor); 0 without a frequency. */
  readonly off_grid_rows: number;
}

export function describeDataset(dataset: Dataset): DatasetDescription {
  const s = dataset.snapshot;
  const first = s !== undefined && s.rows > 0 ? (s.times[0] as number) : null;
  const last = s !== undefined && s.rows > 0 ? (s.times[s.rows - 1] as number) : null;
  return {
    name: dataset.name,
    from: dataset.from,
    rows: s?.rows ?? 0,
    first_ts: first === null ? null : new Date(first).toISOString(),
    last_ts: last === null ? null : new Date(last).toISOString(),
    status: dataset.status,
    error: dataset.error,
    refreshed_at: dataset.lastRefreshAt === null ? null : new Date(dataset.lastRefreshAt).toISOString(),
    frequency: frequencyOf(s),
    off_grid_rows: s === undefined ? 0 : snapshotOffGridRows(s),
  };
}

function newestTime(rows: LoadedRows): number | null {
  return rows.rows > 0 ? (rows.times[rows.rows - 1] as number) : null;
}

function frequencyOf(snapshot: DatasetSnapshot | undefined): string | null {
  const f = snapshot === undefined ? null : snapshotFrequency(snapshot);
  return f === null ? null : formatFrequency(f);
}

function resolveRetry(name: string, options: RetryOptions): { initialMs: number; maxMs: number } {
  const initialMs = options.initialMs ?? DEFAULT_RETRY.initialMs;
  const maxMs = options.maxMs ?? Math.max(DEFAULT_RETRY.maxMs, initialMs);
  if (!Number.isFinite(initialMs) || initialMs <= 0 || initialMs > MAX_TIMER_MS) {
    throw new ForecastdError('ERR_INVALID_ARGUMENT', `dataset ${name}: retry.initialMs must be a positive number of ms (at most ${MAX_TIMER_MS}), got ${initialMs}`);
  }
  if (!Number.isFinite(maxMs) || maxMs < initialMs || maxMs > MAX_TIMER_MS) {
    throw new ForecastdError('ERR_INVALID_ARGUMENT', `dataset ${name}: retry.maxMs must be at least retry.initialMs (${initialMs}) and at most ${MAX_TIMER_MS}, got ${maxMs}`);
  }
  return { initialMs, maxMs };
}
