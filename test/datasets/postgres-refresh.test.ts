import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Dataset, type DatasetOptions } from '../../src/datasets/dataset.js';
import { createPostgresSource, type PostgresSourceConfig } from '../../src/datasets/postgres.js';
import type { AccelerationConfig, DatasetSource, LoadedRows } from '../../src/datasets/types.js';
import { TEST_PG, TestDatabase, probeTestPostgres, testPgParams } from '../helpers/postgres.js';

/**
 * Refreshes against a real PostgreSQL whose rows arrive the way production writes them: two writers that
 * commit out of order, equal timestamps, NULLs filled in later, columns added, precise numeric times,
 * expired rows. Each case once lost or mixed up rows without any error.
 */

const probe = await probeTestPostgres();
const never = new AbortController().signal;

const T0 = Date.UTC(2024, 0, 1);
const HOUR = 3_600_000;
const iso = (ms: number): string => new Date(ms).toISOString();

describe.skipIf(!probe.available)('PostgreSQL datasets: rows that arrive late, repeat or change', () => {
  let db: TestDatabase;
  const running: Dataset[] = [];
  const clients: pg.Client[] = [];

  beforeAll(async () => {
    db = await TestDatabase.open();
  });
  afterEach(async () => {
    await Promise.all(running.splice(0).map((d) => d.stop()));
    await Promise.all(clients.splice(0).map((c) => c.end().catch(() => undefined)));
  });
  afterAll(async () => {
    await db?.dispose();
  });

  function source(table: string, overrides: Partial<PostgresSourceConfig> = {}) {
    return createPostgresSource({
      schema: db.schema,
      table,
      timeColumn: 'ts',
      timeFormat: null,
      columns: null,
      params: testPgParams(),
      ...overrides,
    });
  }

  function dataset(
    table: string,
    acceleration: Partial<AccelerationConfig>,
    options: Partial<DatasetOptions> = {},
    sourceOverrides: Partial<PostgresSourceConfig> = {},
  ): Dataset {
    const created = new Dataset({
      name: table,
      from: `postgres:${table}`,
      source: source(table, { columns: ['v'], ...sourceOverrides }),
      acceleration: { refreshCheckIntervalMs: null, refreshMode: 'append', retentionPeriodMs: null, ...acceleration },
      retry: null,
      ...options,
    });
    running.push(created);
    return created;
  }

  /** A second connection of its own, as another writer. */
  async function writer(): Promise<pg.Client> {
    const client = new pg.Client({
      host: TEST_PG.host,
      port: TEST_PG.port,
      database: TEST_PG.database,
      user: TEST_PG.user,
      ...(TEST_PG.password === null ? {} : { password: TEST_PG.password }),
    });
    client.on('error', () => undefined);
    await client.connect();
    clients.push(client);
    return client;
  }

  function rowsOf(d: Dataset): [string, number | null][] {
    const s = d.snapshot;
    expect(s).toBeDefined();
    const out: [string, number | null][] = [];
    for (let i = 0; i < (s?.rows ?? 0); i++) {
      const v = s?.values[i] as number;
      out.push([iso(s?.times[i] as number), Number.isNaN(v) ? null : v]);
    }
    return out;
  }

  /** A table of two hourly rows; with `key`, a bigserial primary key that is not a value column. */
  async function seriesTable(name: string, key = true): Promise<string> {
    const table = db.table(name);
    await db.query(`CREATE TABLE ${table} (${key ? 'id bigserial PRIMARY KEY, ' : ''}ts timestamptz NOT NULL, v double precision)`);
    await db.query(`INSERT INTO ${table} (ts, v) VALUES ($1, 1), ($2, 2)`, [iso(T0), iso(T0 + HOUR)]);
    return table;
  }

  it('append refresh picks up a row that commits after a newer one was read (two writers)', async () => {
    const table = await seriesTable('two_writers');
    // No overlap configured: it defaults to refresh_check_interval.
    const ds = dataset('two_writers', { refreshCheckIntervalMs: 2 * HOUR });
    expect((await ds.start()).error).toBeNull();

    const a = await writer();
    const b = await writer();
    await a.query('BEGIN');
    await a.query(`INSERT INTO ${table} (ts, v) VALUES ($1, 3)`, [iso(T0 + 2 * HOUR)]);
    await b.query(`INSERT INTO ${table} (ts, v) VALUES ($1, 4)`, [iso(T0 + 3 * HOUR)]);
    await ds.refresh();
    expect(rowsOf(ds)).toEqual([[iso(T0), 1], [iso(T0 + HOUR), 2], [iso(T0 + 3 * HOUR), 4]]);

    await a.query('COMMIT');
    const outcome = await ds.refresh();
    expect(outcome).toMatchObject({ changed: true, error: null });
    expect(rowsOf(ds)).toEqual([[iso(T0), 1], [iso(T0 + HOUR), 2], [iso(T0 + 2 * HOUR), 3], [iso(T0 + 3 * HOUR), 4]]);
  });

  it('append refresh takes a later row with an equal timestamp and a NULL filled by UPDATE', async () => {
    const table = await seriesTable('equal_and_null');
    const ds = dataset('equal_and_null', { refreshAppendOverlapMs: 1.5 * HOUR });
    await ds.start();
    await db.query(`INSERT INTO ${table} (ts, v) VALUES ($1, NULL)`, [iso(T0 + 2 * HOUR)]);
    await ds.refresh();
    expect(rowsOf(ds).at(-1)).toEqual([iso(T0 + 2 * HOUR), null]);

    // A second row for the newest time (a later primary key: it wins), and the NULL filled in.
    await db.query(`UPDATE ${table} SET v = 30 WHERE ts = $1`, [iso(T0 + 2 * HOUR)]);
    await db.query(`INSERT INTO ${table} (ts, v) VALUES ($1, 20)`, [iso(T0 + HOUR)]);
    expect((await ds.refresh()).changed).toBe(true);
    expect(rowsOf(ds)).toEqual([[iso(T0), 1], [iso(T0 + HOUR), 20], [iso(T0 + 2 * HOUR), 30]]);
    expect(ds.error).toBeNull();
  });

  it('append refresh compares a numeric time column exactly (microsecond times)', async () => {
    const table = db.table('numeric_times');
    await db.query(`CREATE TABLE ${table} (ts numeric NOT NULL, v double precision)`);
    await db.query(`INSERT INTO ${table} VALUES (1700000000.123456, 1)`);
    // Overlap 0: only rows strictly newer than the newest seen are read.
    const ds = dataset('numeric_times', { refreshAppendOverlapMs: 0 });
    await ds.start();
    await db.query(`INSERT INTO ${table} VALUES (1700000000.123458, 2)`);
    await ds.refresh();
    expect(ds.snapshot?.rows).toBe(2);
    expect(Array.from(ds.snapshot?.values ?? [])).toEqual([1, 2]);
    expect(ds.snapshot?.times[1]).toBe(1700000000123.458);
  });

  it('orders rows with equal timestamps by primary key, so a full refresh never flips their values', async () => {
    const table = db.table('dup_pk');
    await db.query(`CREATE TABLE ${table} (id int PRIMARY KEY, ts timestamptz NOT NULL, v double precision)`);
    await db.query(`INSERT INTO ${table} VALUES (1, $1, 10), (2, $1, 20), (3, $2, 30)`, [iso(T0), iso(T0 + HOUR)]);
    // Rewriting row 1 moves it to the end of the heap: physically it now comes after row 2.
    await db.query(`UPDATE ${table} SET v = 11 WHERE id = 1`);
    for (const maxRows of [null, 5]) {
      const rows = await source('dup_pk', { maxRows, columns: ['v'] }).loadAll(never);
      const ds = dataset('dup_pk', { refreshMode: 'full' }, {}, { maxRows });
      await ds.start();
      expect(rowsOf(ds)).toEqual([[iso(T0), 20], [iso(T0 + HOUR), 30]]);
      // The source hands them out in (time, key) order; the last of equal times wins.
      expect(Array.from(rows.values)).toEqual([11, 20, 30]);
    }
  });

  it('orders rows with equal timestamps by physical position in a table without a primary key', async () => {
    const table = db.table('dup_ctid');
    await db.query(`CREATE TABLE ${table} (ts timestamptz NOT NULL, v double precision)`);
    await db.query(`INSERT INTO ${table} VALUES ($1, 10), ($1, 20)`, [iso(T0)]);
    await db.query(`UPDATE ${table} SET v = 11 WHERE v = 10`);
    for (const maxRows of [null, 5]) {
      const rows = await source('dup_ctid', { maxRows }).loadAll(never);
      expect(Array.from(rows.values)).toEqual([20, 11]);
    }
  });

  it('orders equal timestamps in a partitioned table and a view too', async () => {
    const parted = db.table('parted');
    await db.query(`CREATE TABLE ${parted} (ts timestamptz NOT NULL, v double precision) PARTITION BY RANGE (ts)`);
    await db.query(`CREATE TABLE ${db.table('parted_a')} PARTITION OF ${parted} FOR VALUES FROM ('${iso(T0)}') TO ('${iso(T0 + HOUR)}')`);
    await db.query(`CREATE TABLE ${db.table('parted_b')} PARTITION OF ${parted} FOR VALUES FROM ('${iso(T0 + HOUR)}') TO ('${iso(T0 + 9 * HOUR)}')`);
    await db.query(`INSERT INTO ${parted} VALUES ($1, 10), ($1, 20), ($2, 30)`, [iso(T0), iso(T0 + HOUR)]);
    await db.query(`CREATE VIEW ${db.table('viewed')} AS SELECT ts, v FROM ${parted}`);
    for (const maxRows of [null, 5]) {
      expect(Array.from((await source('parted', { maxRows }).loadAll(never)).values)).toEqual([10, 20, 30]);
      // A view has no row identity: equal times are ordered by their values.
      expect(Array.from((await source('viewed', { maxRows }).loadAll(never)).values)).toEqual([10, 20, 30]);
    }
  });

  it('a full refresh after ALTER TABLE ... ADD COLUMN keeps the last good data and says why', async () => {
    const table = await seriesTable('grows_a_column', false);
    const ds = dataset('grows_a_column', { refreshMode: 'full' }, {}, { columns: null });
    await ds.start();
    const good = ds.snapshot;
    expect(good?.columns).toEqual(['v']);
    await db.query(`ALTER TABLE ${table} ADD COLUMN humidity double precision DEFAULT 0.5`);
    await db.query(`INSERT INTO ${table} (ts, v) VALUES ($1, 3)`, [iso(T0 + 2 * HOUR)]);
    const outcome = await ds.refresh();
    expect(outcome.changed).toBe(false);
    expect(outcome.error).toBe(
      'dataset grows_a_column: the value columns are now [v, humidity], not [v] as its models were checked against; ' +
        'still serving the last good data (2 rows). List the value columns in params.columns, or restart to take the new ones',
    );
    expect(ds.snapshot).toBe(good);
    expect(ds.status).toBe('Ready');
    expect(ds.error).toBe(outcome.error);

    // The same columns again (dropped): the refresh goes through and the error clears.
    await db.query(`ALTER TABLE ${table} DROP COLUMN humidity`);
    expect(await ds.refresh()).toMatchObject({ changed: true, error: null });
    expect(ds.snapshot?.rows).toBe(3);
    expect(ds.error).toBeNull();
  });

  it('an append refresh after ALTER TABLE ... ADD COLUMN keeps the columns the models were checked against', async () => {
    const table = await seriesTable('append_grows', false);
    const ds = dataset('append_grows', { refreshAppendOverlapMs: 0 }, {}, { columns: null });
    await ds.start();
    await db.query(`ALTER TABLE ${table} ADD COLUMN extra double precision`);
    await db.query(`INSERT INTO ${table} (ts, v, extra) VALUES ($1, 3, 9)`, [iso(T0 + 2 * HOUR)]);
    await ds.refresh();
    expect(ds.snapshot?.columns).toEqual(['v']);
    expect(ds.snapshot?.rows).toBe(3);
  });

  it('pushes retention_period into the query: expired rows are never fetched', async () => {
    const table = db.table('expiring');
    await db.query(`CREATE TABLE ${table} (ts timestamptz NOT NULL, v double precision)`);
    await db.query(
      `INSERT INTO ${table} SELECT to_timestamp(t / 1000.0), i FROM unnest($1::float8[]) WITH ORDINALITY AS u(t, i)`,
      [Array.from({ length: 100 }, (_, i) => T0 + i * HOUR)],
    );
    const src = source('expiring');
    const kept = await src.loadAll(never, { notBeforeMs: T0 + 90 * HOUR });
    expect(Array.from(kept.times)).toEqual(Array.from({ length: 10 }, (_, i) => T0 + (90 + i) * HOUR));
    const newer = await src.loadNewerThan(T0 + 50 * HOUR, never, { notBeforeMs: T0 + 97 * HOUR });
    expect(Array.from(newer.values)).toEqual([98, 99, 100]);
    await src.close();
  });

  it('append mode with every row expired reads nothing old again on later refreshes', async () => {
    const table = db.table('all_expired');
    await db.query(`CREATE TABLE ${table} (ts timestamptz NOT NULL, v double precision)`);
    await db.query(
      `INSERT INTO ${table} SELECT to_timestamp(t / 1000.0), i FROM unnest($1::float8[]) WITH ORDINALITY AS u(t, i)`,
      [Array.from({ length: 500 }, (_, i) => T0 + i * HOUR)],
    );
    let now = T0 + 499 * HOUR;
    const real = source('all_expired');
    const fetched: number[] = [];
    const counted: DatasetSource = {
      from: real.from,
      loadAll: async (signal, options) => record(await real.loadAll(signal, options)),
      loadNewerThan: async (after, signal, options) => record(await real.loadNewerThan(after, signal, options)),
      close: () => real.close(),
    };
    function record(rows: LoadedRows): LoadedRows {
      fetched.push(rows.rows);
      return rows;
    }
    const ds = new Dataset({
      name: 'all_expired',
      from: 'postgres:all_expired',
      source: counted,
      acceleration: { refreshCheckIntervalMs: null, refreshMode: 'append', retentionPeriodMs: 10 * HOUR, refreshAppendOverlapMs: HOUR },
      now: () => now,
      retry: null,
    });
    running.push(ds);
    await ds.start();
    expect(ds.snapshot?.rows).toBe(11);
    now += 100 * HOUR;
    await ds.refresh();
    expect(ds.snapshot?.rows).toBe(0);
    await ds.refresh();
    await ds.refresh();
    expect(ds.snapshot?.rows).toBe(0);
    // The first load fetched only the unexpired rows; later refreshes fetch nothing, not the whole table.
    expect(fetched).toEqual([11, 0, 0, 0]);

    await db.query(`INSERT INTO ${table} VALUES ($1, 7)`, [iso(now - HOUR)]);
    await ds.refresh();
    expect(rowsOf(ds)).toEqual([[iso(now - HOUR), 7]]);
  });

  it('reads ISO text times as UTC whatever time zone the role defaults to', async () => {
    const role = `forecastd_tz_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
    const table = db.table('text_times');
    await db.query(`CREATE TABLE ${table} (ts text NOT NULL, v double precision)`);
    await db.query(`INSERT INTO ${table} VALUES ('2024-01-01 00:00:00', 1), ('2024-01-01T01:00:00Z', 2)`);
    await db.query(`CREATE ROLE ${pg.escapeIdentifier(role)} LOGIN`);
    try {
      await db.query(`ALTER ROLE ${pg.escapeIdentifier(role)} SET timezone = 'America/New_York'`);
      await db.query(`GRANT USAGE ON SCHEMA ${pg.escapeIdentifier(db.schema)} TO ${pg.escapeIdentifier(role)}`);
      await db.query(`GRANT SELECT ON ${table} TO ${pg.escapeIdentifier(role)}`);
      const src = source('text_times', { params: testPgParams({ pg_user: role }) });
      try {
        const rows = await src.loadAll(never);
        expect(Array.from(rows.times)).toEqual([T0, T0 + HOUR]);
      } finally {
        await src.close();
      }
    } finally {
      await db.query(`DROP OWNED BY ${pg.escapeIdentifier(role)}`);
      await db.query(`DROP ROLE ${pg.escapeIdentifier(role)}`);
    }
  });
});
