import { execFileSync } from 'node:child_process';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ForecastdError } from '../../src/errors.js';
import { createPostgresSource, type PostgresSource } from '../../src/datasets/postgres.js';
import { TEST_PG, TestDatabase, probeTestPostgres, testPgParams } from '../helpers/postgres.js';

/**
 * A PostgreSQL dataset's queries run, and its rows are parsed and collected, on the dataset reader thread,
 * not on the thread that serves requests: a full refresh of a large table must not stall serving.
 */

const probe = await probeTestPostgres();
const never = new AbortController().signal;
const T0 = Date.UTC(2020, 0, 1);
const MINUTE = 60_000;
const BIG_ROWS = 300_000;

async function rejection(promise: Promise<unknown>): Promise<ForecastdError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(ForecastdError);
    return err as ForecastdError;
  }
  throw new Error('expected the promise to reject');
}

/**
 * Runs in another process, started synchronously from this thread: waits (polling pg_stat_activity) until a
 * backend of `application_name` has committed a load's transaction, i.e. fetched its cursor to the end, and
 * prints "ran", or "not run" after 300 s. The thread that starts it is blocked meanwhile, so only another
 * thread can have sent the load's statements (a FETCH at a time).
 */
const WATCH_QUERY = `
import pg from 'pg';
const [config, applicationName] = process.argv.slice(1);
const client = new pg.Client(JSON.parse(config));
await client.connect();
let seen = 'not run';
for (let i = 0; i < 3000 && seen !== 'ran'; i += 1) {
  const { rows } = await client.query(
    "SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND state = 'idle' AND query = 'COMMIT'",
    [applicationName],
  );
  if (rows.length > 0) seen = 'ran';
  else await new Promise((resolve) => setTimeout(resolve, 100));
}
await client.end();
console.log(seen);
`;

describe.skipIf(!probe.available)('PostgreSQL datasets load off the JavaScript thread (real server)', () => {
  let db: TestDatabase;
  const opened: PostgresSource[] = [];

  function source(table: string, applicationName: string): PostgresSource {
    const created = createPostgresSource({
      schema: db.schema,
      table,
      timeColumn: 'ts',
      timeFormat: null,
      columns: null,
      params: testPgParams({ pg_application_name: applicationName }),
    });
    opened.push(created);
    return created;
  }

  const uniqueName = (what: string): string => `forecastd_${what}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;

  beforeAll(async () => {
    db = await TestDatabase.open();
    // One row a minute from 2020-01-01; v is the row number, so every row can be checked.
    await db.query(`CREATE TABLE ${db.table('big')} (ts timestamptz NOT NULL, v double precision)`);
    await db.query(
      `INSERT INTO ${db.table('big')} SELECT to_timestamp(($1::float8 + i * $2::float8) / 1000), i
         FROM generate_series(0, $3::int - 1) AS i`,
      [T0, MINUTE, BIG_ROWS],
    );
    await db.query(`CREATE TABLE ${db.table('small')} (ts timestamptz PRIMARY KEY, v double precision)`);
    await db.query(`INSERT INTO ${db.table('small')} VALUES ($1, 1), ($2, 2)`, [new Date(T0), new Date(T0 + MINUTE)]);
  });

  afterEach(() => vi.restoreAllMocks());

  afterAll(async () => {
    await Promise.all(opened.map((s) => s.close()));
    await db?.dispose();
  });

  it('reads a 300k-row table to its end while this thread is blocked', async () => {
    const applicationName = uniqueName('blocked');
    const src = source('big', applicationName);
    const loading = src.loadAll(never);
    // Blocks this thread until the watcher has seen the query done: nothing here can run it meanwhile.
    const watcherConfig = JSON.stringify({
      host: TEST_PG.host,
      port: TEST_PG.port,
      database: TEST_PG.database,
      user: TEST_PG.user,
      ...(TEST_PG.password === null ? {} : { password: TEST_PG.password }),
    });
    const seen = execFileSync(
      process.execPath,
      ['--input-type=module', '-e', WATCH_QUERY, watcherConfig, applicationName],
      { encoding: 'utf8' },
    );
    expect(seen.trim()).toBe('ran');

    const rows = await loading;
    expect(rows.columns).toEqual(['v']);
    expect(rows.rows).toBe(BIG_ROWS);
    expect(rows.times[0]).toBe(T0);
    expect(rows.times[BIG_ROWS - 1]).toBe(T0 + (BIG_ROWS - 1) * MINUTE);
    expect(rows.values[12_345]).toBe(12_345);
    expect(rows.values[BIG_ROWS - 1]).toBe(BIG_ROWS - 1);
  }, 400_000);

  it('parses no row and sends no query on the calling thread', async () => {
    const src = source('small', uniqueName('spied'));
    // node-postgres turns each DataRow message into a row here (not in its typings).
    const queryPrototype = pg.Query.prototype as unknown as { handleDataRow(message: unknown): void };
    const parsed = vi.spyOn(queryPrototype, 'handleDataRow');
    const sent = vi.spyOn(pg.Client.prototype, 'query');
    const rows = await src.loadAll(never);
    const newer = await src.loadNewerThan(T0, never);
    expect(Array.from(rows.times)).toEqual([T0, T0 + MINUTE]);
    expect(Array.from(rows.values)).toEqual([1, 2]);
    expect(Array.from(newer.times)).toEqual([T0 + MINUTE]);
    expect(Array.from(newer.values)).toEqual([2]);
    expect(parsed).not.toHaveBeenCalled();
    expect(sent).not.toHaveBeenCalled();
  });

  it('a load waiting on a lock is cancelled on the reader thread: its connection is closed, the next load works', async () => {
    const applicationName = uniqueName('cancelled');
    const src = source('small', applicationName);
    const locker = new pg.Client({
      host: TEST_PG.host,
      port: TEST_PG.port,
      database: TEST_PG.database,
      user: TEST_PG.user,
      ...(TEST_PG.password === null ? {} : { password: TEST_PG.password }),
    });
    await locker.connect();
    try {
      await locker.query('BEGIN');
      await locker.query(`LOCK TABLE ${db.table('small')} IN ACCESS EXCLUSIVE MODE`);
      const controller = new AbortController();
      const pending = src.loadAll(controller.signal);
      // The load's backend is there, waiting for the lock.
      while ((await waitingBackends(applicationName)) === 0) await new Promise((resolve) => setTimeout(resolve, 20));
      controller.abort();
      const err = await rejection(pending);
      expect(err.code).toBe('ERR_DATASET');
      expect(err.message).toBe(`postgres:${db.schema}.small at ${src.endpoint}: the load was cancelled`);
      await locker.query('COMMIT');
      // The reader thread dropped the connection: its backend ends once the lock no longer holds it.
      while ((await db.backendCount(applicationName)) > 0) await new Promise((resolve) => setTimeout(resolve, 20));
    } finally {
      await locker.end();
    }
    const again = await src.loadAll(never);
    expect(Array.from(again.values)).toEqual([1, 2]);
  });

  it('errors from the reader thread keep their code and message', async () => {
    const missing = source('no_such_table', uniqueName('missing'));
    const err = await rejection(missing.loadAll(never));
    expect(err.code).toBe('ERR_DATASET');
    expect(err.message).toBe(
      `postgres:${db.schema}.no_such_table at ${missing.endpoint}: table ${db.schema}.no_such_table does not exist`,
    );
    const bad = await rejection(missing.loadNewerThan(Number.NaN, never));
    expect(bad.code).toBe('ERR_INVALID_ARGUMENT');
    expect(bad.message).toBe('loadNewerThan needs a finite time, got NaN');
  });

  async function waitingBackends(applicationName: string): Promise<number> {
    const rows = await db.query<{ n: string }>(
      "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'",
      [applicationName],
    );
    return Number(rows[0]?.n ?? 0);
  }
});
