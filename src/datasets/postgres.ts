/**
 * PostgreSQL datasets as the serving thread sees them. The queries run on the dataset reader thread
 * (off-thread-reader.ts), which owns each source's connections and turns the result rows into typed arrays
 * (postgres-table.ts); this side checks the config, sends each load there and receives the arrays by
 * transfer. So the driver's protocol parsing and the row collection of a full refresh of a large table never
 * hold the event loop that answers predictions.
 *
 * The whole source lives on one thread, rather than the connections here and only the parsing there,
 * because node-postgres parses as it reads from its socket: the thread holding the socket does the work.
 */
import { ForecastdError } from '../errors.js';
import { closePostgresOffThread, loadPostgresOffThread } from './off-thread-reader.js';
import type { PostgresSource, PostgresSourceConfig } from './postgres-config.js';
import { resolvePostgresSource } from './postgres-table.js';
import type { LoadOptions, LoadedRows } from './types.js';

export type { PostgresSource, PostgresSourceConfig } from './postgres-config.js';

/**
 * A dataset source reading a PostgreSQL table or view, its queries run and its rows collected off the
 * JavaScript thread. Rows come in time order (then primary key, or ctid), bounded exactly, read in a UTC
 * session, with retention and maxRows applied in SQL (see postgres-table.ts).
 *
 * Throws ERR_DATASET at once for connection params that can never work (bad port or sslmode); every
 * failure to reach or read the database rejects the load with ERR_DATASET naming the table, the endpoint
 * and the driver's reason, never the password. A connection the server drops (restart, terminated backend)
 * is replaced on the next load; the process never sees an unhandled error from the driver.
 */
export function createPostgresSource(config: PostgresSourceConfig): PostgresSource {
  return new OffThreadPostgresSource(config);
}

let nextSourceId = 1;

class OffThreadPostgresSource implements PostgresSource {
  readonly from: string;
  readonly endpoint: string;
  readonly #config: PostgresSourceConfig;
  readonly #id = nextSourceId++;
  #closed: Promise<void> | null = null;

  constructor(config: PostgresSourceConfig) {
    const resolved = resolvePostgresSource(config);
    this.from = resolved.from;
    this.endpoint = resolved.target.endpoint;
    // A copy of plain data: the caller's object may change, and only plain data crosses to the reader thread.
    this.#config = structuredClone(config);
  }

  loadAll(signal: AbortSignal, options: LoadOptions = {}): Promise<LoadedRows> {
    return this.#load(null, signal, options);
  }

  async loadNewerThan(afterMs: number, signal: AbortSignal, options: LoadOptions = {}): Promise<LoadedRows> {
    if (!Number.isFinite(afterMs)) {
      throw new ForecastdError('ERR_INVALID_ARGUMENT', `loadNewerThan needs a finite time, got ${afterMs}`);
    }
    return this.#load(afterMs, signal, options);
  }

  close(): Promise<void> {
    this.#closed ??= closePostgresOffThread(this.#id, this.#origin()).catch(() => undefined);
    return this.#closed;
  }

  async #load(afterMs: number | null, signal: AbortSignal, options: LoadOptions): Promise<LoadedRows> {
    if (this.#closed !== null) throw new ForecastdError('ERR_DATASET', `${this.#origin()}: the source was closed`);
    const load = { source: this.#id, config: this.#config, afterMs, notBeforeMs: options.notBeforeMs ?? null };
    return loadPostgresOffThread(load, this.#origin(), signal);
  }

  /** How the table source's own messages begin. */
  #origin(): string {
    return `${this.from} at ${this.endpoint}`;
  }
}
