/**
 * Reads a PostgreSQL table or view into typed arrays. This runs on the dataset reader thread (see
 * dataset-worker.ts): the driver's protocol parsing and the row collection never hold the thread that serves
 * requests. The serving thread's side is postgres.ts.
 */
import type { ConnectionOptions } from 'node:tls';
import { DatabaseError, Pool, Query, escapeIdentifier } from 'pg';
import type { PoolClient, QueryArrayConfig } from 'pg';
import { ForecastdError } from '../errors.js';
import type { PostgresSource, PostgresSourceConfig } from './postgres-config.js';
import { DEFAULT_MAX_CELLS, GrowableRows, resolveLimits, rowLimit, tooManyCells } from './limits.js';
import type { LoadOptions, LoadedRows, TimeFormat } from './types.js';
import {
  parseConnectionString,
  poolConfigFor,
  redact,
  resolvePostgresEndpoint,
  tlsOptionsFor,
  type PostgresEndpoint,
} from './postgres-connection.js';

/** A source's display name, connection target and row cap, checked: what both threads derive from its config. */
export interface ResolvedPostgresSource {
  readonly from: string;
  readonly target: PostgresEndpoint;
  readonly maxRows: number | null;
}

/**
 * Resolves and checks a source's config. Throws ERR_DATASET for connection params that can never work (bad
 * port or sslmode, a conflicting database) and ERR_INVALID_ARGUMENT for a bad maxRows.
 */
export function resolvePostgresSource(config: PostgresSourceConfig): ResolvedPostgresSource {
  const database = config.database ?? null;
  const from =
    config.from ??
    `postgres:${database === null ? '' : `${database}.`}${config.schema === null ? '' : `${config.schema}.`}${config.table}`;
  const maxRows = config.maxRows ?? null;
  if (maxRows !== null && (!Number.isInteger(maxRows) || maxRows < 1)) {
    throw new ForecastdError('ERR_INVALID_ARGUMENT', `maxRows must be a positive integer or null, got ${maxRows}`);
  }
  try {
    return { from, target: resolvePostgresEndpoint(withDatabase(config.params, database)), maxRows };
  } catch (err) {
    throw new ForecastdError('ERR_DATASET', `${from}: ${(err as Error).message}`, { cause: err });
  }
}

/** Opens a source that runs its queries on the calling thread (the dataset reader thread calls this). */
export function openPostgresTable(config: PostgresSourceConfig): PostgresSource {
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
  /** Sort keys after the time that fix the order of rows with equal times (primary key, ctid, ...). */
  readonly tiebreak: readonly string[];
  /**
   * A condition "time >= the epoch-millisecond parameter `param`, less a millisecond": a superset of the rows
   * wanted, whatever rounding the comparison involves. The rows are then filtered exactly (RowBuffer).
   */
  atLeast(param: string): string;
}

const INTEGER_TYPES = new Set(['int2', 'int4', 'int8']);
const FLOAT_TYPES = new Set(['float4', 'float8']);
const NUMBER_TYPES = new Set([...INTEGER_TYPES, ...FLOAT_TYPES, 'numeric']);
const TEXT_TYPES = new Set(['text', 'varchar', 'bpchar', 'name']);
const ZONED_TIME_TYPES = new Set(['timestamptz']);
/** Times without a zone are UTC, as for file datasets. */
const UTC_TIME_TYPES = new Set(['timestamp', 'date']);


/**
 * A PostgreSQL table or view read on the calling thread. Rows are fetched in time order through a cursor, a
 * batch at a time, straight into Float64Arrays (no per-row objects are kept), only the value columns and, with
 * `maxRows`, only the newest rows; rows older than `notBeforeMs` (retention) are filtered in the query.
 * Queries take their values as parameters and quote every identifier.
 *
 * Rows with equal times come in a fixed order, so the last of them (the one that wins) is always the same:
 * by primary key, else by physical position (ctid) in a table without one, else (views) by their values.
 * Time bounds are compared in SQL with a millisecond of slack, on the column itself so an index serves them,
 * and exactly in JavaScript on the times as they are held; no row is skipped by a rounded bound.
 * Every connection is switched to UTC before its first query (ISO text without a zone reads as UTC).
 *
 * Every failure to reach or read the database rejects the load with ERR_DATASET naming the table, the
 * endpoint and the driver's reason, never the password. A connection the server drops (restart, terminated
 * backend) is replaced on the next load; the process never sees an unhandled error from the driver.
 */
class PostgresTableSource implements PostgresSource {
  readonly from: string;
  readonly endpoint: string;
  readonly #config: PostgresSourceConfig;
  readonly #target: PostgresEndpoint;
  readonly #maxRows: number | null;
  readonly #maxCells: number;
  #pool: Pool | null = null;
  /** The TLS choice in use; `prefer` falls back to plain text once the server says it has no TLS. */
  #ssl: false | ConnectionOptions | null = null;
  #plan: TablePlan | null = null;
  /** Connections already switched to UTC. */
  readonly #prepared = new WeakSet<PoolClient>();
  /** Connections inside a load's transaction; one still there when released (its ROLLBACK failed) is dropped. */
  readonly #inTransaction = new WeakSet<PoolClient>();
  #closed = false;

  constructor(config: PostgresSourceConfig) {
    this.#config = config;
    const resolved = resolvePostgresSource(config);
    this.from = resolved.from;
    this.#target = resolved.target;
    this.#maxRows = resolved.maxRows;
    this.#maxCells = resolveLimits({ maxCells: config.maxCells ?? DEFAULT_MAX_CELLS }, 'postgres source').maxCells;
    this.endpoint = this.#target.endpoint;
  }

  async loadAll(signal: AbortSignal, options: LoadOptions = {}): Promise<LoadedRows> {
    return this.#run(signal, async (client) => {
      // Every full load reads the catalog again, so a changed table is seen as it is now.
      const plan = await this.#discover(client);
      this.#plan = plan;
      return this.#select(client, plan, { after: null, notBefore: options.notBeforeMs ?? null }, signal);
    });
  }

  async loadNewerThan(afterMs: number, signal: AbortSignal, options: LoadOptions = {}): Promise<LoadedRows> {
    if (!Number.isFinite(afterMs)) {
      throw new ForecastdError('ERR_INVALID_ARGUMENT', `loadNewerThan needs a finite time, got ${afterMs}`);
    }
    return this.#run(signal, async (client) => {
      // Keep the columns of the rows already loaded; only a first load reads the catalog here.
      const plan = this.#plan ?? (this.#plan = await this.#discover(client));
      return this.#select(client, plan, { after: afterMs, notBefore: options.notBeforeMs ?? null }, signal);
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const pool = this.#pool;
    this.#pool = null;
    if (pool !== null) await pool.end();
  }

  /**
   * The rows with time > `after` and >= `notBefore` (either null: no bound), in (time, tiebreak) order; with
   * maxRows, only the newest of them. They are read through a cursor, a batch at a time, so the database hands
   * out no more than one batch past what the reader has taken, and the reading stops at the first row past
   * max_cells (the cursor closes with its transaction).
   */
  async #select(client: PoolClient, plan: TablePlan, bounds: RowBounds, signal: AbortSignal): Promise<LoadedRows> {
    const values: unknown[] = [];
    const conditions = [plan.hasTime];
    // One lower bound does for both: the exact filter on the rows tells them apart.
    const lowest = [bounds.after, bounds.notBefore].filter((b): b is number => b !== null && Number.isFinite(b));
    if (lowest.length > 0) {
      values.push(Math.max(...lowest));
      conditions.push(plan.atLeast(`$${values.length}`));
    }
    const where = conditions.join(' AND ');
    const order = [plan.orderBy, ...plan.tiebreak];
    const allowed = rowLimit(this.#maxCells, plan.columns.length);
    let sql: string;
    if (this.#maxRows === null || this.#maxRows > allowed) {
      // No LIMIT for max_cells: the rows the bound takes in by its slack (see timeSql) would take up some of
      // it, so it could not tell a table past the limit from one under it. The reader counts the rows it keeps.
      sql = `SELECT ${plan.selectList} FROM ${plan.relation} WHERE ${where} ORDER BY ${order.join(', ')}`;
    } else {
      values.push(this.#maxRows);
      // The newest rows, handed out oldest first: sorted descending to cut, then ascending again.
      const keys = order.map((_, k) => `k${k}`);
      const outputs = ['ms', ...plan.columns.map((_, j) => `v${j}`)];
      sql =
        `SELECT ${outputs.join(', ')} FROM (` +
        `SELECT ${plan.selectList}${order.map((e, k) => `, ${e} AS k${k}`).join('')} FROM ${plan.relation} WHERE ${where} ` +
        `ORDER BY ${order.map((e) => `${e} DESC`).join(', ')} LIMIT $${values.length}) AS newest ORDER BY ${keys.join(', ')}`;
    }
    const rows = new RowBuffer(plan.columns.length, allowed, bounds, this.#maxCells);
    const push = (row: unknown[]): void => rows.push(row);
    const batch = Math.max(1, Math.floor(FETCH_CELLS / (plan.columns.length + 1)));
    await this.#statement(client, 'BEGIN', [], signal, null);
    this.#inTransaction.add(client);
    try {
      await this.#statement(client, `DECLARE ${CURSOR} NO SCROLL CURSOR FOR ${sql}`, values, signal, null);
      // A short batch is the last; a row past max_cells fails the batch it arrives in.
      let fetched: number;
      do {
        fetched = await this.#statement(client, `FETCH ${batch} FROM ${CURSOR}`, [], signal, push);
      } while (fetched === batch);
      await this.#statement(client, 'COMMIT', [], signal, null);
      this.#inTransaction.delete(client);
    } catch (err) {
      // A cancelled load or a failed connection is dropped with its transaction (see #run); on any other
      // failure the connection still answers, and goes back to the pool once the transaction is closed.
      if (!signal.aborted && !isConnectionFailure(err)) {
        await client.query('ROLLBACK').then(
          () => this.#inTransaction.delete(client),
          () => undefined,
        );
      }
      throw err;
    }
    return rows.finish(plan.columns);
  }

  /** Runs `work` on a pooled connection; a connection the server dropped meanwhile is replaced once. */
  async #run<T>(signal: AbortSignal, work: (client: PoolClient) => Promise<T>): Promise<T> {
    try {
      for (let attempt = 1; ; attempt += 1) {
        this.#checkUsable(signal);
        const client = await this.#connectInUtc();
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
          const open = this.#inTransaction.has(client) ? new Error('its transaction is still open') : undefined;
          client.release(broken ?? open);
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

  /**
   * A pooled connection whose session runs in UTC. A new connection is switched before it is used, and a
   * failure to switch fails the load (it is never read in another zone).
   */
  async #connectInUtc(): Promise<PoolClient> {
    const client = await this.#connect();
    if (this.#prepared.has(client)) return client;
    try {
      await client.query("SET TIME ZONE 'UTC'");
    } catch (err) {
      client.release(err as Error);
      throw err;
    }
    this.#prepared.add(client);
    return client;
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
    const identity = await client.query<{ relkind: string; key: string[] | null }>(
      `SELECT c.relkind::text AS relkind,
              (SELECT array_agg(a.attname::text ORDER BY k.ord)
                 FROM pg_catalog.pg_index i
                 CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                WHERE i.indrelid = c.oid AND i.indisprimary) AS key
         FROM pg_catalog.pg_class c WHERE c.oid = $1`,
      [oid],
    );
    const result = await client.query<{ name: string; type: string; display: string }>(
      `SELECT a.attname AS name, b.typname AS type, format_type(a.atttypid, a.atttypmod) AS display
         FROM pg_catalog.pg_attribute a
         JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
         JOIN pg_catalog.pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
        WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum`,
      [oid],
    );
    const { relkind = 'r', key = null } = identity.rows[0] ?? {};
    return buildPlan(relation, result.rows, this.#config, { relkind, primaryKey: key ?? [] });
  }

  /**
   * Runs one statement and hands each result row to `onRow` as it arrives (no row is kept here); resolves
   * with the number of rows the server sent. A row `onRow` refuses fails the statement once the server has
   * finished it; a cancelled load rejects at once, and #run then drops the busy connection.
   */
  #statement(
    client: PoolClient,
    text: string,
    values: readonly unknown[],
    signal: AbortSignal,
    onRow: ((row: unknown[]) => void) | null,
  ): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      if (signal.aborted) {
        reject(new ForecastdError('ERR_DATASET', 'the load was cancelled'));
        return;
      }
      let received = 0;
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
        else resolve(received);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      // A 'row' listener keeps node-postgres from collecting the rows into an array of its own.
      const queryConfig: QueryArrayConfig = { text, values: [...values], rowMode: 'array' };
      const query = new Query(queryConfig);
      query.on('row', (row: unknown[]) => {
        received += 1;
        if (rowError !== null || settled || onRow === null) return;
        try {
          onRow(row);
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

/** The load's cursor; each load declares it in a transaction of its own. */
const CURSOR = 'forecastd_rows';

/**
 * About how many cells (times included) a load fetches at a time: a few MiB on the wire, and few enough round
 * trips that a large table reads about as fast as in one query.
 */
const FETCH_CELLS = 262_144;

/** Lower bounds on the rows a load wants, epoch ms: time > after, time >= notBefore; null: none. */
interface RowBounds {
  readonly after: number | null;
  readonly notBefore: number | null;
}

/**
 * Row times and row-major values in typed arrays (GrowableRows), up to max_cells. Rows outside the bounds
 * (the query's slack) are dropped here, comparing the times exactly as they are held.
 */
class RowBuffer {
  readonly #rows: GrowableRows;

  constructor(
    private readonly width: number,
    maxRows: number,
    private readonly bounds: RowBounds,
    private readonly maxCells: number,
  ) {
    this.#rows = new GrowableRows(width, maxRows);
  }

  push(row: readonly unknown[]): void {
    const time = row[0];
    if (typeof time !== 'number' || !Number.isFinite(time)) {
      throw new ForecastdError('ERR_DATASET', `the time column holds a value that is not a finite time (${String(time)})`);
    }
    const { after, notBefore } = this.bounds;
    if ((after !== null && !(time > after)) || (notBefore !== null && time < notBefore)) return;
    if (this.#rows.full) throw tooManyCells('', this.maxCells);
    const base = this.#rows.startRow(time);
    for (let j = 0; j < this.width; j += 1) {
      const value = row[j + 1];
      // NULL (a gap) becomes NaN, as in file datasets.
      this.#rows.set(base + j, typeof value === 'number' ? value : Number.NaN);
    }
  }

  finish(columns: readonly string[]): LoadedRows {
    return this.#rows.finish([...columns]);
  }
}

/** What fixes the order of rows with equal times: the relation's kind and its primary key columns, if any. */
interface RowIdentity {
  /** pg_class.relkind: r table, p partitioned table, m materialized view, v view, f foreign table. */
  readonly relkind: string;
  readonly primaryKey: readonly string[];
}

function buildPlan(
  relation: string,
  tableColumns: readonly ColumnInfo[],
  config: PostgresSourceConfig,
  identity: RowIdentity,
): TablePlan {
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
    tiebreak: tiebreakFor(identity, wanted),
    atLeast: t.atLeast,
  };
}

/**
 * Sort keys for rows with equal times, the last of which wins: the primary key; without one, the row's
 * physical position (ctid; per partition, so tableoid first); a view or foreign table has neither, so its
 * value columns (then the largest value wins, deterministically).
 */
function tiebreakFor(identity: RowIdentity, valueColumns: readonly string[]): string[] {
  if (identity.primaryKey.length > 0) return identity.primaryKey.map((c) => escapeIdentifier(c));
  if (identity.relkind === 'r' || identity.relkind === 'm') return ['ctid'];
  if (identity.relkind === 'p') return ['tableoid', 'ctid'];
  return valueColumns.map((c) => escapeIdentifier(c));
}

/**
 * How to read, order and bound the time column, by its type and time_format. `atLeast` subtracts a
 * millisecond from the bound so no rounding in the comparison can leave a wanted row out (the exact filter
 * is RowBuffer's); numeric columns are compared in numeric, never through float8 (which keeps 15 digits).
 */
function timeSql(
  column: ColumnInfo,
  format: TimeFormat | null,
): { ms: string; order: string; atLeast: (param: string) => string } {
  const col = escapeIdentifier(column.name);
  const type = column.type;
  const instant = (p: string): string => `to_timestamp((${p}::float8 - 1) / 1000)`;
  // A native time type needs no time_format; the comparisons stay on the column so an index serves them.
  if (ZONED_TIME_TYPES.has(type)) {
    return {
      ms: `(EXTRACT(EPOCH FROM ${col}) * 1000)::float8`,
      order: col,
      atLeast: (p) => `${col} >= ${instant(p)}`,
    };
  }
  if (UTC_TIME_TYPES.has(type)) {
    return {
      // EXTRACT of a zoneless timestamp counts from 1970-01-01 00:00 as written, i.e. as UTC.
      ms: `(EXTRACT(EPOCH FROM ${col}) * 1000)::float8`,
      order: col,
      atLeast: (p) => `${col} >= (${instant(p)} AT TIME ZONE 'UTC')`,
    };
  }
  if (NUMBER_TYPES.has(type)) {
    if (format === 'iso8601') {
      throw new ForecastdError(
        'ERR_DATASET',
        `time_format is iso8601 but time column "${column.name}" is ${column.display}; use unix_seconds or unix_millis`,
      );
    }
    const millis = format === 'unix_millis';
    if (INTEGER_TYPES.has(type)) {
      // Bounds are cast to the column's own type so the comparison can use an index.
      const bound = millis ? (p: string) => `floor(${p}::numeric - 1)::bigint` : (p: string) => `floor((${p}::numeric - 1) * 0.001)::bigint`;
      return { ms: millis ? `${col}::float8` : `(${col}::float8 * 1000)`, order: col, atLeast: (p) => `${col} >= ${bound(p)}` };
    }
    if (type === 'numeric') {
      // Multiplied in numeric, rounded to float8 once: microsecond times stay distinct and exact.
      const bound = millis ? (p: string) => `(${p}::numeric - 1)` : (p: string) => `((${p}::numeric - 1) * 0.001)`;
      return { ms: millis ? `${col}::float8` : `(${col} * 1000)::float8`, order: col, atLeast: (p) => `${col} >= ${bound(p)}` };
    }
    const bound = millis ? (p: string) => `(${p}::float8 - 1)` : (p: string) => `((${p}::float8 - 1) / 1000)`;
    return { ms: millis ? `${col}::float8` : `(${col}::float8 * 1000)`, order: col, atLeast: (p) => `${col} >= ${bound(p)}` };
  }
  if (TEXT_TYPES.has(type)) {
    if (format === 'unix_seconds' || format === 'unix_millis') {
      const ms = format === 'unix_millis' ? `${col}::float8` : `(${col}::float8 * 1000)`;
      return { ms, order: `${col}::float8`, atLeast: (p) => `${ms} >= ${p}::float8 - 1` };
    }
    // The session runs in UTC (see #connectInUtc), so ISO text without a zone reads as UTC.
    const ts = `${col}::timestamptz`;
    return {
      ms: `(EXTRACT(EPOCH FROM ${ts}) * 1000)::float8`,
      order: ts,
      atLeast: (p) => `${ts} >= ${instant(p)}`,
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
