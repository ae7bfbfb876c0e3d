/** A PostgreSQL dataset's settings and the source it makes: plain types both threads share. */
import type { DatasetSource, LoadOptions, LoadedRows, TimeFormat } from './types.js';

export interface PostgresSourceConfig {
  /**
   * The database to connect to (from `postgres:DATABASE.SCHEMA.TABLE`); it wins over `pg_db`. null or
   * absent: `pg_db`, the connection string's, or the user name, as libpq does.
   */
  readonly database?: string | null;
  /** null: the table is found through the server's search_path. */
  readonly schema: string | null;
  readonly table: string;
  readonly timeColumn: string;
  /** null: inferred from the column's type (numbers are unix seconds, text is ISO 8601). */
  readonly timeFormat: TimeFormat | null;
  /** Value columns in tensor order; null: every column but the time column, in table order. */
  readonly columns: readonly string[] | null;
  /** pg_host, pg_port, pg_db, pg_user, pg_pass, pg_sslmode, pg_sslrootcert, pg_connection_string, ... */
  readonly params: Readonly<Record<string, string>>;
  /**
   * Load at most this many of the newest rows (the models' largest lookback plus a margin); null or absent
   * loads every row. Applies to refreshes too.
   */
  readonly maxRows?: number | null;
  /** params.max_cells: rows × value columns a load may hold; default 200,000,000. */
  readonly maxCells?: number;
  /** Display form for messages; default `postgres:SCHEMA.TABLE`. */
  readonly from?: string;
}

export interface PostgresSource extends DatasetSource {
  /** "host:port/database (user NAME)": where the rows come from, never with the password. */
  readonly endpoint: string;
  loadNewerThan(afterMs: number, signal: AbortSignal, options?: LoadOptions): Promise<LoadedRows>;
  close(): Promise<void>;
}
