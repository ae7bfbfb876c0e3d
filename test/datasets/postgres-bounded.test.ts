import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresSource, type PostgresSource } from '../../src/datasets/postgres.js';
import { TestDatabase, probeTestPostgres, testPgParams } from '../helpers/postgres.js';

/**
 * SPEC "Bounded and quiet" for PostgreSQL: a load past params.max_cells (rows × value columns, after
 * retention) fails naming the limit and the setting; the reader fetches through a cursor and stops at the
 * limit rather than streaming the whole table, and rows never take one JavaScript object each.
 */

const probe = await probeTestPostgres();
const never = new AbortController().signal;
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * Runs in a process whose V8 heap holds 32 MiB: loads a table of (ts, a, b) through the table reader and
 * prints the row count and how many rows differ from row i = (2020-01-01 + i minutes, i, -i). The rows as
 * JavaScript arrays take several times that heap; in typed arrays (outside the heap) they fit.
 */
const SMALL_HEAP_LOAD = `
const { openPostgresTable } = await import(${JSON.stringify(path.join(ROOT, 'src/datasets/postgres-table.ts'))});
const [schema, table, params] = process.argv.slice(1);
const source = openPostgresTable({ schema, table, timeColumn: 'ts', timeFormat: null, columns: null, params: JSON.parse(params) });
const loaded = await source.loadAll(new AbortController().signal);
await source.close();
let wrong = 0;
for (let i = 0; i < loaded.rows; i += 1) {
  const row = loaded.times[i] === Date.UTC(2020, 0, 1) + i * 60000 && loaded.values[2 * i] === i && loaded.values[2 * i + 1] === -i;
  if (!row) wrong += 1;
}
console.log(loaded.rows, wrong);
`;

describe.skipIf(!probe.available)('PostgreSQL loads are held to params.max_cells', () => {
  let db: TestDatabase;
  const opened: PostgresSource[] = [];

  function source(maxCells: number, extra: { maxRows?: number; table?: string } = {}): PostgresSource {
    const { table = 'wide', ...rest } = extra;
    const created = createPostgresSource({
      schema: db.schema,
      table,
      timeColumn: 'ts',
      timeFormat: null,
      columns: null,
      params: testPgParams(),
      maxCells,
      ...rest,
    });
    opened.push(created);
    return created;
  }

  beforeAll(async () => {
    db = await TestDatabase.open();
    await db.query(`CREATE TABLE ${db.table('wide')} (ts timestamptz PRIMARY KEY, a float8, b float8)`);
    await db.query(
      `INSERT INTO ${db.table('wide')} SELECT to_timestamp(1700000000 + 60 * i), i, i / 2.0 FROM generate_series(0, 49) AS i`,
    );
  });
  afterAll(async () => {
    await Promise.all(opened.map((s) => s.close()));
    await db?.dispose();
  });

  it('a table past the limit fails naming it; at the limit it loads', async () => {
    const error = await source(60).loadAll(never).then(
      () => null,
      (e: unknown) => e as Error,
    );
    expect(error?.message).toMatch(/^postgres:\S+ at \S+ \(user \S+\): more than 60 cells \(rows × value columns\)/);
    expect(error?.message).toContain('params.max_cells');
    const rows = await source(100).loadAll(never);
    expect(rows.rows).toBe(50);
    expect(Array.from(rows.values.subarray(96))).toEqual([48, 24, 49, 24.5]);
  });

  it('rows older than retention do not count', async () => {
    const rows = await source(20).loadAll(never, { notBeforeMs: (1_700_000_000 + 60 * 40) * 1000 });
    expect(rows.rows).toBe(10);
    expect(rows.times[0]).toBe((1_700_000_000 + 60 * 40) * 1000);
  });

  it('a load stopped at the limit closes its cursor and leaves its connection idle for the next load', async () => {
    const applicationName = `forecastd_bounded_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
    const created = createPostgresSource({
      schema: db.schema,
      table: 'wide',
      timeColumn: 'ts',
      timeFormat: null,
      columns: null,
      params: testPgParams({ pg_application_name: applicationName }),
      maxCells: 60,
    });
    opened.push(created);
    const error = await created.loadAll(never).then(
      () => null,
      (e: unknown) => e as Error,
    );
    expect(error?.message).toContain('more than 60 cells (rows × value columns)');
    const backends = async (): Promise<{ state: string }[]> =>
      db.query<{ state: string }>('SELECT state FROM pg_stat_activity WHERE application_name = $1', [applicationName]);
    // Pooled, not dropped, and out of its transaction.
    expect(await backends()).toEqual([{ state: 'idle' }]);
    const newer = await created.loadNewerThan((1_700_000_000 + 60 * 45) * 1000, never);
    expect(Array.from(newer.values)).toEqual([46, 23, 47, 23.5, 48, 24, 49, 24.5]);
    expect(await backends()).toEqual([{ state: 'idle' }]);
  });

  it('rows never become one JavaScript object each: 1.5 million rows load in a 32 MiB heap', async () => {
    const rows = 1_500_000;
    await db.query(`CREATE TABLE ${db.table('tall')} (ts timestamptz NOT NULL, a float8, b float8)`);
    try {
      await db.query(
        `INSERT INTO ${db.table('tall')} SELECT to_timestamp(1577836800 + 60 * i), i, -i FROM generate_series(0, $1::int - 1) AS i`,
        [rows],
      );
      const flags = ['--max-old-space-size=32', '--import', 'tsx', '--input-type=module'];
      const args = [db.schema, 'tall', JSON.stringify(testPgParams())];
      const child = spawnSync(process.execPath, [...flags, '-e', SMALL_HEAP_LOAD, ...args], { cwd: ROOT, encoding: 'utf8' });
      expect(child.stderr).toBe('');
      expect(child.stdout).toBe(`${rows} 0\n`);
      expect(child.status).toBe(0);
    } finally {
      await db.query(`DROP TABLE ${db.table('tall')}`);
    }
  }, 120_000);

  it('newer rows past the limit fail a refresh the same way', async () => {
    const error = await source(10).loadNewerThan((1_700_000_000 + 60 * 40) * 1000, never).then(
      () => null,
      (e: unknown) => e as Error,
    );
    expect(error?.message).toContain('more than 10 cells (rows × value columns)');
  });

  it('rows a load leaves out do not count, however many share the millisecond at its lower bound', async () => {
    // Many rows at (or just under) a load's lower bound: duplicates of the last time already loaded, or
    // microsecond times just before the retention cutoff. Only the 10 rows after the bound are the load's.
    const t0 = 1_700_000_000_000;
    await db.query(`CREATE TABLE ${db.table('crowded')} (ts timestamptz NOT NULL, v float8)`);
    try {
      await db.query(
        `INSERT INTO ${db.table('crowded')}
           SELECT to_timestamp($1::float8 / 1000), -1 FROM generate_series(1, 1500)
           UNION ALL SELECT to_timestamp(($1::float8 - 0.5) / 1000), -2 FROM generate_series(1, 1500)
           UNION ALL SELECT to_timestamp(($1::float8 + 60000 * i) / 1000), i FROM generate_series(1, 10) AS i`,
        [t0],
      );
      const expectedTimes = Array.from({ length: 10 }, (_, i) => t0 + 60_000 * (i + 1));
      const expectedValues = Array.from({ length: 10 }, (_, i) => i + 1);

      const newer = await source(10, { table: 'crowded' }).loadNewerThan(t0, never);
      expect(newer.rows).toBe(10);
      expect(Array.from(newer.times)).toEqual(expectedTimes);
      expect(Array.from(newer.values)).toEqual(expectedValues);

      // Retention from t0 keeps the 1500 rows at t0 and drops the 1500 half a millisecond before it.
      const retained = await source(1510, { table: 'crowded' }).loadAll(never, { notBeforeMs: t0 });
      expect(retained.rows).toBe(1510);
      expect(Array.from(retained.times.subarray(0, 1500))).toEqual(new Array<number>(1500).fill(t0));
      expect(Array.from(retained.values.subarray(0, 1500))).toEqual(new Array<number>(1500).fill(-1));
      expect(Array.from(retained.times.subarray(1500))).toEqual(expectedTimes);
      expect(Array.from(retained.values.subarray(1500))).toEqual(expectedValues);
    } finally {
      await db.query(`DROP TABLE ${db.table('crowded')}`);
    }
  });
});
