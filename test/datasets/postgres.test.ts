import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ForecastdError } from '../../src/errors.js';
import { createPostgresSource, type PostgresSourceConfig } from '../../src/datasets/postgres.js';
import { Dataset, type RefreshOutcome } from '../../src/datasets/dataset.js';
import type { DatasetSnapshot, LoadedRows } from '../../src/datasets/types.js';
import { windowFor } from '../../src/datasets/window.js';
import {
  TcpProxy,
  TestDatabase,
  probeTestPostgres,
  readCo2Series,
  testPgParams,
  type Co2Series,
} from '../helpers/postgres.js';
import { freePort } from '../helpers/sockets.js';

const probe = await probeTestPostgres();

const never = new AbortController().signal;

async function rejection(promise: Promise<unknown>): Promise<ForecastdError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(ForecastdError);
    return err as ForecastdError;
  }
  throw new Error('expected the promise to reject');
}

describe.skipIf(!probe.available)('PostgreSQL dataset source (real server)', () => {
  let db: TestDatabase;
  let co2: Co2Series;
  const opened: { close(): Promise<void> }[] = [];

  /** A source over a table of the test schema; closed after the suite. */
  function source(table: string, overrides: Partial<PostgresSourceConfig> = {}) {
    const created = createPostgresSource({
      schema: db.schema,
      table,
      timeColumn: 'ts',
      timeFormat: null,
      columns: null,
      params: testPgParams(),
      ...overrides,
    });
    opened.push(created);
    return created;
  }

  const expectedValues = (from = 0, to = co2.values.length): number[] =>
    co2.values.slice(from, to).map((v) => (v === null ? Number.NaN : v));

  function expectCo2Rows(rows: LoadedRows, from = 0, to = co2.times.length): void {
    expect(rows.columns).toEqual(['co2']);
    expect(rows.rows).toBe(to - from);
    expect(rows.times.length).toBe(to - from);
    expect(Array.from(rows.times)).toEqual(co2.times.slice(from, to));
    expect(Array.from(rows.values)).toEqual(expectedValues(from, to));
  }

  beforeAll(async () => {
    co2 = readCo2Series();
    db = await TestDatabase.open();
    const iso = co2.iso;
    const seconds = co2.times.map((t) => t / 1000);
    // Inserted newest first, so only ORDER BY can hand the rows out in time order.
    const reversed = <T>(xs: readonly T[]): T[] => [...xs].reverse();
    const load = async (name: string, timeType: string, valueType: string, times: readonly unknown[]) => {
      await db.query(`CREATE TABLE ${db.table(name)} (ts ${timeType}, co2 ${valueType})`);
      await db.query(
        `INSERT INTO ${db.table(name)} (ts, co2) SELECT * FROM unnest($1::${timeType}[], $2::${valueType}[])`,
        [reversed(times), reversed(co2.values)],
      );
    };
    await load('co2_tz', 'timestamptz', 'double precision', iso);
    // Zoneless timestamps hold the UTC wall-clock time.
    await load('co2_ts', 'timestamp', 'numeric', iso.map((s) => s.replace(/Z$/, '')));
    await load('co2_text', 'text', 'double precision', iso);
    await load('co2_secs', 'bigint', 'double precision', seconds);
    await load('co2_ms', 'bigint', 'double precision', co2.times);
    await load('co2_date', 'date', 'double precision', iso.map((s) => s.slice(0, 10)));

    await db.query(
      `CREATE TABLE ${db.table('multi')} (site text, ts timestamptz, co2 double precision, co2_x2 numeric, n integer)`,
    );
    await db.query(
      `INSERT INTO ${db.table('multi')} (site, ts, co2, co2_x2, n)
         SELECT 'mlo', t, v, v * 2, i FROM unnest($1::timestamptz[], $2::float8[]) WITH ORDINALITY AS u(t, v, i)`,
      [iso, co2.values],
    );
  });

  afterAll(async () => {
    await Promise.all(opened.map((s) => s.close()));
    await db?.dispose();
  });

  describe.each([
    { table: 'co2_tz', timeFormat: null },
    { table: 'co2_ts', timeFormat: null },
    { table: 'co2_text', timeFormat: null },
    { table: 'co2_text', timeFormat: 'iso8601' as const },
    { table: 'co2_secs', timeFormat: null },
    { table: 'co2_secs', timeFormat: 'unix_seconds' as const },
    { table: 'co2_ms', timeFormat: 'unix_millis' as const },
    { table: 'co2_date', timeFormat: null },
  ])('time column of $table read as $timeFormat', ({ table, timeFormat }) => {
    it('loads the whole CO2 series in time order, gaps as NaN', async () => {
      const rows = await source(table, { timeFormat }).loadAll(never);
      expectCo2Rows(rows);
      expect(Array.from(rows.values).filter(Number.isNaN)).toHaveLength(59);
    });

    it('loads only the newest maxRows rows, oldest first', async () => {
      const rows = await source(table, { timeFormat, maxRows: 52 }).loadAll(never);
      expectCo2Rows(rows, co2.times.length - 52);
    });

    it('loadNewerThan returns exactly the rows after the given time', async () => {
      const n = co2.times.length;
      const rows = await source(table, { timeFormat }).loadNewerThan(co2.times[n - 4] as number, never);
      expectCo2Rows(rows, n - 3);
      const none = await source(table, { timeFormat }).loadNewerThan(co2.times[n - 1] as number, never);
      expect(none.rows).toBe(0);
      expect(none.columns).toEqual(['co2']);
    });
  });

  it('loads the listed value columns in the listed order, as float64', async () => {
    const rows = await source('multi', { columns: ['co2_x2', 'n', 'co2'] }).loadAll(never);
    expect(rows.columns).toEqual(['co2_x2', 'n', 'co2']);
    expect(rows.rows).toBe(co2.times.length);
    expect(Array.from(rows.times)).toEqual(co2.times);
    const last = co2.times.length - 1;
    const v = co2.values[last] as number;
    expect(Array.from(rows.values.subarray(last * 3, last * 3 + 3))).toEqual([v * 2, last + 1, v]);
    // Row 0 of the file is 316.1; numeric 632.2 read as float8 is the double nearest 632.2.
    expect(Array.from(rows.values.subarray(0, 3))).toEqual([632.2, 1, 316.1]);
  });

  it('by default takes every other column, and says to list them when one is not a number', async () => {
    const err = await rejection(source('multi').loadAll(never));
    expect(err.code).toBe('ERR_DATASET');
    expect(err.message).toContain('value column "site" is text, not a number; list the numeric columns in params.columns');
    const rows = await source('co2_tz').loadAll(never);
    expect(rows.columns).toEqual(['co2']);
  });

  it('names the missing table, the missing column and the columns there are', async () => {
    const missingTable = await rejection(source('no_such_table').loadAll(never));
    expect(missingTable.code).toBe('ERR_DATASET');
    expect(missingTable.message).toBe(
      `postgres:${db.schema}.no_such_table at 127.0.0.1:5432/test (user postgres): ` +
        `table ${db.schema}.no_such_table does not exist`,
    );
    const missingColumn = await rejection(source('co2_tz', { columns: ['co2', 'ch4'] }).loadAll(never));
    expect(missingColumn.message).toContain(
      'value column "ch4" not found; the table has ts (timestamp with time zone), co2 (double precision)',
    );
    const missingTime = await rejection(source('co2_tz', { timeColumn: 'time' }).loadAll(never));
    expect(missingTime.message).toContain('time column "time" not found');
    const wrongFormat = await rejection(source('co2_secs', { timeFormat: 'iso8601' }).loadAll(never));
    expect(wrongFormat.message).toContain('time_format is iso8601 but time column "ts" is bigint');
  });

  it('finds a table by the name PostgreSQL folds an unquoted name to', async () => {
    await db.query(`CREATE TABLE ${db.schema}.Co2Folded AS SELECT ts, co2 FROM ${db.table('co2_tz')}`);
    const rows = await source('Co2Folded').loadAll(never);
    expectCo2Rows(rows);
  });

  it('looks an unqualified table name up on the search_path', async () => {
    // The test schema is not on the search_path, so its tables are not found without it.
    const absent = `${db.schema}_unqualified`;
    await db.query(`CREATE TABLE ${db.table(absent)} AS SELECT ts, co2 FROM ${db.table('co2_tz')}`);
    const src = source(absent, { schema: null });
    expect(src.from).toBe(`postgres:${absent}`);
    const err = await rejection(src.loadAll(never));
    expect(err.message).toContain(`table ${absent} does not exist on the search_path`);
    expectCo2Rows(await source(absent).loadAll(never));
  });

  it('fetches rows inserted after a load, and a full reload sees them', async () => {
    await db.query(`CREATE TABLE ${db.table('growing')} AS SELECT ts, co2 FROM ${db.table('co2_tz')}`);
    const src = source('growing', { maxRows: 104 });
    const first = await src.loadAll(never);
    expectCo2Rows(first, co2.times.length - 104);
    const lastSeen = first.times[first.rows - 1] as number;
    const week = 7 * 24 * 3600 * 1000;
    const added = [lastSeen + week, lastSeen + 2 * week, lastSeen + 3 * week];
    await db.query(
      `INSERT INTO ${db.table('growing')} (ts, co2)
         SELECT to_timestamp(t / 1000.0), v FROM unnest($1::float8[], $2::float8[]) AS u(t, v)`,
      [added, [371.5, null, 372.25]],
    );
    const newer = await src.loadNewerThan(lastSeen, never);
    expect(newer.columns).toEqual(['co2']);
    expect(Array.from(newer.times)).toEqual(added);
    expect(Array.from(newer.values)).toEqual([371.5, Number.NaN, 372.25]);

    const reloaded = await src.loadAll(never);
    expect(reloaded.rows).toBe(104);
    expect(Array.from(reloaded.times.subarray(101))).toEqual(added);
    expect(reloaded.times[0]).toBe(co2.times[co2.times.length - 101]);

    // With maxRows, a refresh after a burst still fetches only the newest rows.
    const limited = await source('growing', { maxRows: 2 }).loadNewerThan(lastSeen, never);
    expect(Array.from(limited.times)).toEqual(added.slice(1));
  });

  it('connects with a pg_connection_string, URI or keyword form, which wins over the other params', async () => {
    const uri = `postgresql://postgres@127.0.0.1:5432/test?sslmode=disable&application_name=forecastd_uri`;
    const viaUri = source('co2_tz', { params: { pg_connection_string: uri, pg_port: '1' } });
    expect(viaUri.endpoint).toBe('127.0.0.1:5432/test (user postgres)');
    expectCo2Rows(await viaUri.loadAll(never));
    const keywords = "host=127.0.0.1 port=5432 dbname='test' user=postgres sslmode=disable";
    expectCo2Rows(await source('co2_tz', { params: { pg_connection_string: keywords } }).loadAll(never));
  });

  it('reports an unreachable server with host:port and the driver reason, never the password', async () => {
    const port = await freePort();
    const password = 'pw-S3cret/Value';
    const src = source('co2_tz', { params: testPgParams({ pg_port: String(port), pg_pass: password }) });
    const err = await rejection(src.loadAll(never));
    expect(err.code).toBe('ERR_DATASET');
    expect(err.message).toBe(
      `postgres:${db.schema}.co2_tz at 127.0.0.1:${port}/test (user postgres): connect ECONNREFUSED 127.0.0.1:${port}`,
    );

    const uri = `postgresql://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/test?sslmode=disable`;
    const viaUri = await rejection(source('co2_tz', { params: { pg_connection_string: uri } }).loadAll(never));
    expect(viaUri.message).toContain(`127.0.0.1:${port}/test`);
    expect(viaUri.message).toContain('ECONNREFUSED');
    expect(viaUri.message).not.toContain(password);
    expect(viaUri.message).not.toContain(encodeURIComponent(password));
  });

  it('reports an unknown role and an unknown database with the server message', async () => {
    const role = await rejection(source('co2_tz', { params: testPgParams({ pg_user: 'forecastd_no_role' }) }).loadAll(never));
    expect(role.message).toContain('(user forecastd_no_role): role "forecastd_no_role" does not exist (SQLSTATE 28000)');
    const database = await rejection(source('co2_tz', { params: testPgParams({ pg_db: 'forecastd_no_db' }) }).loadAll(never));
    expect(database.message).toContain('database "forecastd_no_db" does not exist (SQLSTATE 3D000)');
  });

  it('defaults to TLS verify-full like Spice, explains it, and falls back under prefer', async () => {
    const { pg_sslmode: _ignored, ...noSslMode } = testPgParams();
    const err = await rejection(source('co2_tz', { params: noSslMode }).loadAll(never));
    expect(err.message).toContain('The server does not support SSL connections');
    expect(err.message).toContain('set pg_sslmode: disable or prefer');
    expectCo2Rows(await source('co2_tz', { params: { ...noSslMode, pg_sslmode: 'prefer' } }).loadAll(never));
  });

  it('refuses params that can never work when the source is created', () => {
    expect(() => source('co2_tz', { params: testPgParams({ pg_sslmode: 'sometimes' }) })).toThrow(
      /pg_sslmode must be one of disable, prefer, require, verify-ca, verify-full, got "sometimes"/,
    );
    expect(() => source('co2_tz', { params: testPgParams({ pg_port: 'five' }) })).toThrow(
      /pg_port must be a TCP port number/,
    );
    expect(() => source('co2_tz', { params: { pg_connection_string: 'mysql is not postgres' } })).toThrow(
      /pg_connection_string is neither a postgresql:\/\/ URI nor "key=value key=value" pairs/,
    );
  });

  it('survives terminated backends: the next load reconnects and nothing crashes', async () => {
    const app = `forecastd_term_${process.pid}`;
    const src = source('co2_tz', { params: testPgParams({ pg_application_name: app }) });
    expectCo2Rows(await src.loadAll(never));
    expect(await db.backendCount(app)).toBeGreaterThan(0);

    // Straight away: the pooled connection is dead but the pool may not know yet.
    expect(await db.terminateBackends(app)).toBeGreaterThan(0);
    expectCo2Rows(await src.loadAll(never));

    // After the pool has seen the connection go.
    expect(await db.terminateBackends(app)).toBeGreaterThan(0);
    while ((await db.backendCount(app)) > 0) await new Promise((r) => setTimeout(r, 20));
    const n = co2.times.length;
    expectCo2Rows(await src.loadNewerThan(co2.times[n - 11] as number, never), n - 10);
  });

  it('fails while the database is unreachable and works again once it is back', async () => {
    const proxy = new TcpProxy();
    await proxy.start();
    try {
      const src = source('co2_tz', { params: testPgParams({ pg_port: String(proxy.port) }) });
      expectCo2Rows(await src.loadAll(never));

      await proxy.stop();
      const down = await rejection(src.loadAll(never));
      expect(down.code).toBe('ERR_DATASET');
      expect(down.message).toContain(`127.0.0.1:${proxy.port}/test`);
      expect(down.message).toContain('ECONNREFUSED');
      const downAppend = await rejection(src.loadNewerThan(co2.times[0] as number, never));
      expect(downAppend.message).toContain('ECONNREFUSED');

      await proxy.start();
      expectCo2Rows(await src.loadAll(never));
    } finally {
      await proxy.stop();
    }
  });

  it('stops a load when its signal aborts, and the source keeps working', async () => {
    await db.query(
      `CREATE VIEW ${db.table('slow')} AS SELECT ts, co2 FROM ${db.table('co2_tz')} CROSS JOIN pg_sleep(2)`,
    );
    const src = source('slow');
    const controller = new AbortController();
    const pending = src.loadAll(controller.signal);
    setTimeout(() => controller.abort(), 200);
    const err = await rejection(pending);
    expect(err.message).toContain('the load was cancelled');

    const aborted = await rejection(src.loadAll(controller.signal));
    expect(aborted.message).toContain('the load was cancelled');

    const again = await src.loadAll(never);
    expectCo2Rows(again);
  });

  describe('as the source of a Dataset (refresh_mode append)', () => {
    const week = 7 * 24 * 3600 * 1000;
    const datasets: Dataset[] = [];
    afterAll(async () => {
      await Promise.all(datasets.map((d) => d.stop()));
    });

    function dataset(
      table: string,
      params: Record<string, string>,
      maxRows: number,
      retry: { initialMs: number; maxMs: number } | null = null,
    ): Dataset {
      const created = new Dataset({
        name: table,
        from: `postgres:${db.schema}.${table}`,
        source: source(table, { params, maxRows }),
        // Refreshes are driven by the test (refresh()) unless a test asks for retries: no interval timer.
        acceleration: { refreshCheckIntervalMs: null, refreshMode: 'append', retentionPeriodMs: null },
        retry,
      });
      datasets.push(created);
      return created;
    }

    function window(snapshot: DatasetSnapshot | undefined, lookback: number): number[] {
      expect(snapshot).toBeDefined();
      const target = new Float64Array(lookback);
      windowFor(snapshot as DatasetSnapshot, lookback, 'none').copyInto(target, 0);
      return Array.from(target);
    }

    async function insertWeeks(table: string, after: number, values: number[]): Promise<number[]> {
      const times = values.map((_, i) => after + (i + 1) * week);
      await db.query(
        `INSERT INTO ${db.table(table)} (ts, co2) SELECT to_timestamp(t / 1000.0), v FROM unnest($1::float8[], $2::float8[]) AS u(t, v)`,
        [times, values],
      );
      return times;
    }

    it("moves the model's window when new rows are inserted", async () => {
      await db.query(`CREATE TABLE ${db.table('live')} AS SELECT ts, co2 FROM ${db.table('co2_tz')}`);
      const ds = dataset('live', testPgParams(), 60);
      const started = await ds.start();
      expect(started.error).toBeNull();
      expect(ds.status).toBe('Ready');
      expect(ds.snapshot?.rows).toBe(60);
      const n = co2.times.length;
      expect(window(ds.snapshot, 52)).toEqual(expectedValues(n - 52));

      const before = ds.snapshot?.version;
      await insertWeeks('live', co2.times[n - 1] as number, [372.5, 373.25]);
      const refreshed = await ds.refresh();
      expect(refreshed.changed).toBe(true);
      expect(ds.snapshot?.version).not.toBe(before);
      expect(window(ds.snapshot, 52)).toEqual([...expectedValues(n - 50), 372.5, 373.25]);

      const unchanged = await ds.refresh();
      expect(unchanged.changed).toBe(false);
      expect(unchanged.error).toBeNull();
    });

    it('keeps serving the last good rows while the database is down and catches up when it returns', async () => {
      await db.query(`CREATE TABLE ${db.table('flaky')} AS SELECT ts, co2 FROM ${db.table('co2_tz')}`);
      const proxy = new TcpProxy();
      await proxy.start();
      try {
        const ds = dataset('flaky', testPgParams({ pg_port: String(proxy.port) }), 60);
        await ds.start();
        const n = co2.times.length;
        const good = ds.snapshot;
        expect(window(good, 52)).toEqual(expectedValues(n - 52));

        await proxy.stop();
        const down = await ds.refresh();
        expect(down.error).toContain(`127.0.0.1:${proxy.port}/test`);
        expect(down.error).toContain('ECONNREFUSED');
        expect(ds.status).toBe('Ready');
        expect(ds.error).toBe(down.error);
        expect(ds.snapshot).toBe(good);
        expect(window(ds.snapshot, 52)).toEqual(expectedValues(n - 52));

        const added = await insertWeeks('flaky', co2.times[n - 1] as number, [374]);
        await proxy.start();
        const back = await ds.refresh();
        expect(back.error).toBeNull();
        expect(back.changed).toBe(true);
        expect(ds.error).toBeNull();
        expect(ds.snapshot?.times[(ds.snapshot?.rows ?? 0) - 1]).toBe(added[0]);
        expect(window(ds.snapshot, 52)).toEqual([...expectedValues(n - 51), 374]);
      } finally {
        await proxy.stop();
      }
    });

    it('is Error with the reason when the database is down at start, and loads once it is reachable', async () => {
      const proxy = new TcpProxy();
      await proxy.start();
      const port = proxy.port;
      await proxy.stop();
      try {
        const ds = dataset('co2_tz', testPgParams({ pg_port: String(port) }), 60);
        const first = await ds.start();
        expect(ds.status).toBe('Error');
        expect(ds.snapshot).toBeUndefined();
        expect(first.error).toBe(
          `postgres:${db.schema}.co2_tz at 127.0.0.1:${port}/test (user postgres): connect ECONNREFUSED 127.0.0.1:${port}`,
        );

        await proxy.start();
        expect(proxy.port).toBe(port);
        const recovered = await ds.refresh();
        expect(recovered.error).toBeNull();
        expect(ds.status).toBe('Ready');
        expect(window(ds.snapshot, 52)).toEqual(expectedValues(co2.times.length - 52));
      } finally {
        await proxy.stop();
      }
    });

    it('retries by itself while the database is down at start, and becomes Ready once it is reachable', async () => {
      const proxy = new TcpProxy();
      await proxy.start();
      const port = proxy.port;
      await proxy.stop();
      try {
        const ds = dataset('co2_tz', testPgParams({ pg_port: String(port) }), 60, { initialMs: 20, maxMs: 40 });
        const expectedError =
          `postgres:${db.schema}.co2_tz at 127.0.0.1:${port}/test (user postgres): connect ECONNREFUSED 127.0.0.1:${port}`;
        const outcomes: { error: string | null; status: string }[] = [];
        ds.onRefresh((o) => outcomes.push({ error: o.error, status: ds.status }));
        const nextOutcome = (accept: (o: RefreshOutcome) => boolean): Promise<RefreshOutcome> =>
          new Promise((resolve) => {
            const off = ds.onRefresh((o) => {
              if (!accept(o)) return;
              off();
              resolve(o);
            });
          });

        const first = await ds.start();
        expect(first.error).toBe(expectedError);
        expect(ds.status).toBe('Error');
        // At least one retry fails on its own while the database is still down.
        await nextOutcome((o) => o.error !== null);
        expect(ds.status).toBe('Error');
        expect(ds.error).toBe(expectedError);
        expect(ds.nextRetryAt).not.toBeNull();

        const ready = nextOutcome((o) => o.error === null);
        await proxy.start();
        expect(proxy.port).toBe(port);
        // No refresh() here: the dataset's own retry loads it.
        expect((await ready).changed).toBe(true);
        expect(ds.status).toBe('Ready');
        expect(ds.error).toBeNull();
        expect(ds.nextRetryAt).toBeNull();
        expect(ds.lastRefreshAt).not.toBeNull();
        expect(window(ds.snapshot, 52)).toEqual(expectedValues(co2.times.length - 52));
        const failures = outcomes.filter((o) => o.error !== null);
        expect(failures.length).toBeGreaterThanOrEqual(2);
        expect(failures.every((o) => o.error === expectedError && o.status === 'Error')).toBe(true);
        expect(outcomes.at(-1)).toEqual({ error: null, status: 'Ready' });
      } finally {
        await proxy.stop();
      }
    });
  });

  it('connects to the database named in postgres:DATABASE.SCHEMA.TABLE, whatever pg_db says', async () => {
    const src = source('co2_tz', { database: 'test', params: testPgParams({ pg_db: 'postgres' }) });
    expect(src.from).toBe(`postgres:test.${db.schema}.co2_tz`);
    expect(src.endpoint).toBe('127.0.0.1:5432/test (user postgres)');
    expectCo2Rows(await src.loadAll(never));

    // The other way round, the table is looked for in the database `postgres`, where it is not.
    const elsewhere = source('co2_tz', { database: 'postgres', params: testPgParams({ pg_db: 'test' }) });
    const err = await rejection(elsewhere.loadAll(never));
    expect(err.message).toBe(
      `postgres:postgres.${db.schema}.co2_tz at 127.0.0.1:5432/postgres (user postgres): table ${db.schema}.co2_tz does not exist`,
    );

    // A connection string naming the same database is fine; another one is a conflict, refused at once.
    const same = source('co2_tz', {
      database: 'test',
      params: { pg_connection_string: 'postgresql://postgres@127.0.0.1:5432/test?sslmode=disable' },
    });
    expectCo2Rows(await same.loadAll(never));
    expect(() =>
      source('co2_tz', {
        database: 'test',
        params: { pg_connection_string: 'postgresql://postgres@127.0.0.1:5432/postgres?sslmode=disable' },
      }),
    ).toThrow(
      `postgres:test.${db.schema}.co2_tz: the dataset names database "test" but pg_connection_string names "postgres"; remove one of them`,
    );
  });

  it('rejects loads after close', async () => {
    const src = source('co2_tz');
    expectCo2Rows(await src.loadAll(never));
    await src.close();
    await src.close();
    const err = await rejection(src.loadAll(never));
    expect(err.message).toContain('the source was closed');
  });
});
