import type { ConnectionOptions } from 'node:tls';
import { DatabaseError, Pool, Query, escapeIdentifier } from 'pg';
import type { PoolClient, QueryArrayConfig } from 'pg';
import { ForecastdError } from '../errors.js';
import type { DatasetSource, LoadedRows, TimeFormat } from './types.js';
import {
  parseConnectionString,
  poolConfigFor,
  redact,
  resolvePostgresEndpoint,
  tlsOptionsFor,
  type PostgresEndpoint,
} from './postgres-connection.js';

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
  /** Display form for messages; default `postgres:SCHEMA.TABLE`. */
  readonly from?: string;
}

export interface PostgresSource extends DatasetSource {
  /** "host:port/database (user NAME)": where the rows come from, never with the password. */
  readonly endpoint: string;
  loadNewerThan(afterMs: number, signal: AbortSignal): Promise<LoadedRows>;
  close(): Promise<void>;
}

/**
 * A dataset source reading a PostgreSQL table or view. Rows are streamed in time order straight into
 * Float64Arrays (no per-row objects are kept), only the value columns and, with `maxRows`, only the newest
 * rows are fetched. Queries take their values as parameters and quote every identifier.
 *
 * Throws ERR_DATASET at once for connection params that can never work (bad port or sslmode); every
 * failure to reach or read the database rejects the load with ERR_DATASET naming the table, the endpoint
 * and the driver's reason, never the password. A connection the server drops (restart, terminated backend)
 * is replaced on the next load; the process never sees an unhandled error from the driver.
 */
export function createPostgresSource(config: PostgresSourceConfig): PostgresSource {
  return new PostgresTableSource(config);
}

// No change token: a cheap one (count, max time) misses UPDATEs of existing values, which a full refresh
// must pick up, and an exact one costs as much as the reload itself.

interface ColumnInfo {
  readonly name: string;
  /** Base type name (domains resolved), e.g. int8, timestamptz, text. */
  readonly type: string;
  /** As the server prints it, for messages. */
  readonly display: string;
}

/** The SQL pieces for one table, resolved from the catalog. Identifiers are already quoted. */
interface TablePlan {
  readonly columns: readonly string[];
  /** `ms, v1, v2, ...` */
  readonly selectList: string;
  readonly relation: string;
  /** Filters rows without a time. */
  readonly hasTime: string;
  /** Sorts in time order, on the column itself where possible so an index serves it. */
  readonly orderBy: string;
  /** A condition "time > the epoch-millisecond parameter `param`". */
  newerThan(param: string): string;
}

const INTEGER_TYPES = new Set(['int2', 'int4', 'int8']);
const FLOAT_TYPES = new Set(['float4', 'float8']);
const NUMBER_TYPES = new Set([...INTEGER_TYPES, ...FLOAT_TYPES, 'numeric']);
const TEXT_TYPES = new Set(['text', 'varchar', 'bpchar', 'name']);
const ZONED_TIME_TYPES = new Set(['timestamptz']);
/** Times without a zone are UTC, as for file datasets. */
const UTC_TIME_TYPES = new Set(['timestamp', 'date']);

const INITIAL_CAPACITY = 16_384;

class PostgresTableSource implements PostgresSource {
  readonly from: string;
  readonly endpoint: string;
  readonly #config: PostgresSourceConfig;
  readonly #target: PostgresEndpoint;
  readonly #maxRows: number | null;
  #pool: Pool | null = null;
  /** The TLS choice in use; `prefer` falls back to plain text once the server says it has no TLS. */
  #ssl: false | ConnectionOptions | null = null;
  #plan: TablePlan | null = null;
  #closed = false;

  constructor(config: PostgresSourceConfig) {
    this.#config = config;
    const database = config.database ?? null;
    this.from =
      config.from ??
      `postgres:${database === null ? '' : `${database}.`}${config.schema === null ? '' : `${config.schema}.`}${config.table}`;
    const maxRows = config.maxRows ?? null;
    if (maxRows !== null && (!Number.isInteger(maxRows) || maxRows < 1)) {
      throw new ForecastdError('ERR_INVALID_ARGUMENT', `maxRows must be a positive integer or null, got ${maxRows}`);
    }
    this.#maxRows = maxRows;
    try {
      this.#target = resolvePostgresEndpoint(withDatabase(config.params, database));
    } catch (err) {
      throw new ForecastdError('ERR_DATASET', `${this.from}: ${(err as Error).message}`, { cause: err });
    }
    this.endpoint = this.#target.endpoint;
  }

  async loadAll(signal: AbortSignal): Promise<LoadedRows> {
    return this.#run(signal, async (client) => {
      // Every full load reads the catalog again, so a changed table is seen as it is now.
      const plan = await this.#discover(client);
      this.#plan = plan;
      const sql = this.#maxRows === null
        ? `SELECT ${plan.selectList} FROM ${plan.relation} WHERE ${plan.hasTime} ORDER BY ${plan.orderBy}`
        : this.#newestSql(plan, plan.hasTime, '$1');
      return this.#stream(client, sql, this.#maxRows === null ? [] : [this.#maxRows], plan, signal);
    });
  }

  async loadNewerThan(afterMs: number, signal: AbortSignal): Promise<LoadedRows> {
    if (!Number.isFinite(afterMs)) {
      throw new ForecastdError('ERR_INVALID_ARGUMENT', `loadNewerThan needs a finite time, got ${afterMs}`);
    }
    return this.#run(signal, async (client) => {
      // Keep the columns of the rows already loaded; only a first load reads the catalog here.
      const plan = this.#plan ?? (this.#plan = await this.#discover(client));
      const where = `${plan.hasTime} AND ${plan.newerThan('$1')}`;
      const sql = this.#maxRows === null
        ? `SELECT ${plan.selectList} FROM ${plan.relation} WHERE ${where} ORDER BY ${plan.orderBy}`
        : this.#newestSql(plan, where, '$2');
      const values = this.#maxRows === null ? [afterMs] : [afterMs, this.#maxRows];
      return this.#stream(client, sql, values, plan, signal);
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const pool = this.#pool;
    this.#pool = null;
    if (pool !== null) await pool.end();
  }

  /** The newest `limit` rows matching `where`, handed out oldest first. */
  #newestSql(plan: TablePlan, where: string, limitParam: string): string {
    const values = plan.columns.map((_, j) => `v${j}`);
    return (
      `SELECT ms${values.map((v) => `, ${v}`).join('')} FROM (` +
      `SELECT ${plan.selectList}, ${plan.orderBy} AS ord FROM ${plan.relation} WHERE ${where} ` +
      `ORDER BY ${plan.orderBy} DESC LIMIT ${limitParam}) AS newest ORDER BY ord`
    );
  }

  /** Runs `work` on a pooled connection; a connection the server dropped meanwhile is replaced once. */
  async #run<T>(signal: AbortSignal, work: (client: PoolClient) => Promise<T>): Promise<T> {
    try {
      for (let attempt = 1; ; attempt += 1) {
        this.#checkUsable(signal);
        const client = await this.#connect();
        let broken: Error | undefined;
        try {
          return await work(client);
        } catch (err) {
          if (isConnectionFailure(err) || signal.aborted) broken = err as Error;
          // A plan built before the failure may describe a table that has changed since.
          if (err instanceof DatabaseError) this.#plan = null;
          // A pooled connection the server already closed fails its first query: retry once on a fresh one.
          if (attempt === 1 && broken !== undefined && !signal.aborted) continue;
          throw err;
        } finally {
          // Releasing with an error destroys the connection instead of pooling it.
          client.release(broken);
        }
      }
    } catch (err) {
      throw this.#datasetError(err);
    }
  }

  #checkUsable(signal: AbortSignal): void {
    if (this.#closed) throw new ForecastdError('ERR_DATASET', 'the source was closed');
    if (signal.aborted) throw new ForecastdError('ERR_DATASET', 'the load was cancelled');
  }

  async #connect(): Promise<PoolClient> {
    if (this.#ssl === null) this.#ssl = await tlsOptionsFor(this.#target);
    try {
      return await this.#ensurePool().connect();
    } catch (err) {
      if (this.#target.sslMode === 'prefer' && this.#ssl !== false && /does not support SSL/i.test(String(err))) {
        // libpq's `prefer`: a server without TLS gets a plain connection.
        this.#ssl = false;
        const old = this.#pool;
        this.#pool = null;
        if (old !== null) void old.end().catch(() => undefined);
        return await this.#ensurePool().connect();
      }
      throw err;
    }
  }

  #ensurePool(): Pool {
    if (this.#pool !== null) return this.#pool;
    if (this.#closed) throw new ForecastdError('ERR_DATASET', 'the source was closed');
    const pool = new Pool(poolConfigFor(this.#target, this.#ssl ?? false));
    // An idle connection the server closes (restart, pg_terminate_backend) is dropped by the pool; the
    // next load opens a new one and reports any failure itself, so there is nothing more to do here.
    pool.on('error', () => undefined);
    pool.on('connect', (client) => {
      // Same reasoning for a connection that fails while checked out but between queries.
      client.on('error', () => undefined);
      // ISO text without a zone means UTC, whatever the server's default zone is.
      client.query("SET TIME ZONE 'UTC'").catch(() => undefined);
    });
    this.#pool = pool;
    return pool;
  }

  /** Reads the table's columns from the catalog and builds the queries for them. */
  async #discover(client: PoolClient): Promise<TablePlan> {
    const { schema, table } = this.#config;
    const qualified = (name: string): string =>
      schema === null ? escapeIdentifier(name) : `${escapeIdentifier(schema)}.${escapeIdentifier(name)}`;
    // Exact name first; then the name as PostgreSQL folds an unquoted one (postgres:MyTable -> mytable).
    const candidates = [qualified(table)];
    if (table.toLowerCase() !== table) candidates.push(qualified(table.toLowerCase()));
    let oid: number | null = null;
    let relation = '';
    for (const candidate of candidates) {
      const found = await client.query<{ oid: number | null }>('SELECT to_regclass($1)::oid AS oid', [candidate]);
      const value = found.rows[0]?.oid ?? null;
      if (value !== null) {
        oid = value;
        relation = candidate;
        break;
      }
    }
    if (oid === null) {
      throw new ForecastdError(
        'ERR_DATASET',
        `table ${schema === null ? '' : `${schema}.`}${table} does not exist` +
          (schema === null ? ' on the search_path' : ''),
      );
    }
    const result = await client.query<{ name: string; type: string; display: string }>(
      `SELECT a.attname AS name, b.typname AS type, format_type(a.atttypid, a.atttypmod) AS display
         FROM pg_catalog.pg_attribute a
         JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
         JOIN pg_catalog.pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
        WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum`,
      [oid],
    );
    return buildPlan(relation, result.rows, this.#config);
  }

  /** Streams the result rows into Float64Arrays as they arrive. */
  #stream(
    client: PoolClient,
    text: string,
    values: readonly unknown[],
    plan: TablePlan,
    signal: AbortSignal,
  ): Promise<LoadedRows> {
    return new Promise<LoadedRows>((resolve, reject) => {
      const rows = new RowBuffer(plan.columns.length, this.#maxRows ?? INITIAL_CAPACITY);
      let rowError: Error | null = null;
      let settled = false;
      const onAbort = (): void => {
        finish(new ForecastdError('ERR_DATASET', 'the load was cancelled'));
      };
      const finish = (err: Error | null): void => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        if (err !== null) reject(err);
        else resolve(rows.finish(plan.columns));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      // A 'row' listener keeps node-postgres from collecting the rows into an array of its own.
      const queryConfig: QueryArrayConfig = { text, values: [...values], rowMode: 'array' };
      const query = new Query(queryConfig);
      query.on('row', (row: unknown[]) => {
        if (rowError !== null || settled) return;
        try {
          rows.push(row);
        } catch (err) {
          rowError = err as Error;
        }
      });
      query.on('error', (err: Error) => finish(err));
      query.on('end', () => finish(rowError));
      client.query(query);
    });
  }

  #datasetError(err: unknown): ForecastdError {
    const reason = describeFailure(err, this.#target);
    return new ForecastdError('ERR_DATASET', `${this.from} at ${this.#target.endpoint}: ${reason}`, { cause: err });
  }
}

/** Growing Float64Arrays for row times and row-major values. */
class RowBuffer {
  #times: Float64Array;
  #values: Float64Array;
  #rows = 0;

  constructor(
    private readonly width: number,
    capacity: number,
  ) {
    this.#times = new Float64Array(capacity);
    this.#values = new Float64Array(capacity * width);
  }

  push(row: readonly unknown[]): void {
    if (this.#rows === this.#times.length) this.#grow();
    const time = row[0];
    if (typeof time !== 'number' || !Number.isFinite(time)) {
      throw new ForecastdError('ERR_DATASET', `the time column holds a value that is not a finite time (${String(time)})`);
    }
    this.#times[this.#rows] = time;
    const base = this.#rows * this.width;
    for (let j = 0; j < this.width; j += 1) {
      const value = row[j + 1];
      // NULL (a gap) becomes NaN, as in file datasets.
      this.#values[base + j] = typeof value === 'number' ? value : Number.NaN;
    }
    this.#rows += 1;
  }

  finish(columns: readonly string[]): LoadedRows {
    const rows = this.#rows;
    const exact = rows === this.#times.length;
    return {
      columns: [...columns],
      times: exact ? this.#times : this.#times.slice(0, rows),
      values: exact ? this.#values : this.#values.slice(0, rows * this.width),
      rows,
    };
  }

  #grow(): void {
    const capacity = Math.max(1, this.#times.length * 2);
    const times = new Float64Array(capacity);
    times.set(this.#times);
    const values = new Float64Array(capacity * this.width);
    values.set(this.#values);
    this.#times = times;
    this.#values = values;
  }
}

function buildPlan(relation: string, tableColumns: readonly ColumnInfo[], config: PostgresSourceConfig): TablePlan {
  const byName = new Map(tableColumns.map((c) => [c.name, c]));
  const listColumns = (): string => tableColumns.map((c) => `${c.name} (${c.display})`).join(', ');
  const time = byName.get(config.timeColumn);
  if (time === undefined) {
    throw new ForecastdError(
      'ERR_DATASET',
      `time column "${config.timeColumn}" not found; the table has ${listColumns()} (set time_column)`,
    );
  }
  const wanted = config.columns ?? tableColumns.filter((c) => c.name !== config.timeColumn).map((c) => c.name);
  if (wanted.length === 0) throw new ForecastdError('ERR_DATASET', 'the table has no value column besides the time column');
  const valueExprs = wanted.map((name) => {
    const column = byName.get(name);
    if (column === undefined) {
      throw new ForecastdError('ERR_DATASET', `value column "${name}" not found; the table has ${listColumns()}`);
    }
    if (name === config.timeColumn) {
      throw new ForecastdError('ERR_DATASET', `"${name}" is the time column; it cannot also be a value column`);
    }
    if (!NUMBER_TYPES.has(column.type)) {
      throw new ForecastdError(
        'ERR_DATASET',
        `value column "${name}" is ${column.display}, not a number` +
          (config.columns === null ? '; list the numeric columns in params.columns' : ''),
      );
    }
    return `${escapeIdentifier(name)}::float8`;
  });
  const t = timeSql(time, config.timeFormat);
  return {
    columns: wanted,
    selectList: `${t.ms} AS ms${valueExprs.map((e, j) => `, ${e} AS v${j}`).join('')}`,
    relation,
    hasTime: `${escapeIdentifier(time.name)} IS NOT NULL`,
    orderBy: t.order,
    newerThan: t.newerThan,
  };
}

/** How to read, order and compare the time column, by its type and time_format. */
function timeSql(
  column: ColumnInfo,
  format: TimeFormat | null,
): { ms: string; order: string; newerThan: (param: string) => string } {
  const col = escapeIdentifier(column.name);
  const type = column.type;
  // A native time type needs no time_format; the comparisons stay on the column so an index serves them.
  if (ZONED_TIME_TYPES.has(type)) {
    return {
      ms: `(EXTRACT(EPOCH FROM ${col}) * 1000)::float8`,
      order: col,
      newerThan: (p) => `${col} > to_timestamp(${p}::float8 / 1000)`,
    };
  }
  if (UTC_TIME_TYPES.has(type)) {
    return {
      // EXTRACT of a zoneless timestamp counts from 1970-01-01 00:00 as written, i.e. as UTC.
      ms: `(EXTRACT(EPOCH FROM ${col}) * 1000)::float8`,
      order: col,
      newerThan: (p) => `${col} > (to_timestamp(${p}::float8 / 1000) AT TIME ZONE 'UTC')`,
    };
  }
  if (NUMBER_TYPES.has(type)) {
    if (format === 'iso8601') {
      throw new ForecastdError(
        'ERR_DATASET',
        `time_format is iso8601 but time column "${column.name}" is ${column.display}; use unix_seconds or unix_millis`,
      );
    }
    const scale = format === 'unix_millis' ? 1 : 1000;
    // The bound is cast to the column's own type so the comparison can use an index; it came from this
    // column, so the conversion is exact.
    const castTo = INTEGER_TYPES.has(type) ? 'bigint' : type === 'numeric' ? 'numeric' : 'float8';
    const bound = (p: string): string => (scale === 1 ? `${p}::float8` : `${p}::float8 / 1000`);
    return {
      ms: scale === 1 ? `${col}::float8` : `(${col}::float8 * 1000)`,
      order: col,
      newerThan: (p) => `${col} > CAST(${bound(p)} AS ${castTo})`,
    };
  }
  if (TEXT_TYPES.has(type)) {
    if (format === 'unix_seconds' || format === 'unix_millis') {
      const ms = format === 'unix_millis' ? `${col}::float8` : `(${col}::float8 * 1000)`;
      return { ms, order: `${col}::float8`, newerThan: (p) => `${ms} > ${p}::float8` };
    }
    // The session runs in UTC (see the pool's connect hook), so ISO text without a zone reads as UTC.
    const ts = `${col}::timestamptz`;
    return {
      ms: `(EXTRACT(EPOCH FROM ${ts}) * 1000)::float8`,
      order: ts,
      newerThan: (p) => `${ts} > to_timestamp(${p}::float8 / 1000)`,
    };
  }
  throw new ForecastdError(
    'ERR_DATASET',
    `time column "${column.name}" is ${column.display}; it must be a timestamp, timestamptz, date, number or text`,
  );
}

/** The params with `database` as pg_db; a connection string naming another database is a conflict, not a guess. */
function withDatabase(params: Readonly<Record<string, string>>, database: string | null): Readonly<Record<string, string>> {
  if (database === null) return params;
  const connection = params.pg_connection_string;
  const named = connection === undefined ? undefined : parseConnectionString(connection).get('dbname');
  if (named !== undefined && named !== '' && named !== database) {
    throw new ForecastdError(
      'ERR_DATASET',
      `the dataset names database "${database}" but pg_connection_string names "${named}"; remove one of them`,
    );
  }
  return { ...params, pg_db: database };
}

/** True when the connection itself failed (as opposed to the SQL), so it must not go back to the pool. */
function isConnectionFailure(err: unknown): boolean {
  if (err instanceof ForecastdError) return false;
  if (err instanceof DatabaseError) {
    const code = err.code ?? '';
    // 08: connection exceptions; 57P01-57P03: the server is shutting down or terminated this backend.
    return code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03';
  }
  return true;
}

/** The driver's reason, with the SQLSTATE where there is one, a hint where it helps, and no password. */
function describeFailure(err: unknown, target: PostgresEndpoint): string {
  let reason: string;
  if (err instanceof ForecastdError) {
    reason = err.message;
  } else if (err instanceof DatabaseError) {
    reason = `${err.message}${err.code === undefined ? '' : ` (SQLSTATE ${err.code})`}`;
  } else if (err instanceof AggregateError && err.errors.length > 0) {
    // Node reports every address it tried (e.g. ::1 and 127.0.0.1 for localhost) in one AggregateError.
    reason = err.errors.map((e: unknown) => (e instanceof Error ? e.message : String(e))).join('; ');
  } else if (err instanceof Error) {
    reason = err.message !== '' ? err.message : String((err as NodeJS.ErrnoException).code ?? err.name);
  } else {
    reason = String(err);
  }
  if (/does not support SSL/i.test(reason)) {
    reason += ' (pg_sslmode defaults to verify-full; set pg_sslmode: disable or prefer for a server without TLS)';
  } else if (/self[- ]signed certificate|unable to verify|certificate/i.test(reason) && target.sslMode.startsWith('verify')) {
    reason += ` (pg_sslmode is ${target.sslMode}: give the server's CA in pg_sslrootcert, or use pg_sslmode: require)`;
  }
  return redact(reason, target);
}
