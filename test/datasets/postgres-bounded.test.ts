import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresSource, type PostgresSource } from '../../src/datasets/postgres.js';
import { TestDatabase, probeTestPostgres, testPgParams } from '../helpers/postgres.js';

/**
 * SPEC "Bounded and quiet" for PostgreSQL: a load past params.max_cells (rows × value columns, after
 * retention) fails naming the limit and the setting; the database stops at the limit rather than streaming
 * the whole table into the reader.
 */

const probe = await probeTestPostgres();
const never = new AbortController().signal;

describe.skipIf(!probe.available)('PostgreSQL loads are held to params.max_cells', () => {
  let db: TestDatabase;
  const opened: PostgresSource[] = [];

  function source(maxCells: number, extra: { maxRows?: number } = {}): PostgresSource {
    const created = createPostgresSource({
      schema: db.schema,
      table: 'wide',
      timeColumn: 'ts',
      timeFormat: null,
      columns: null,
      params: testPgParams(),
      maxCells,
      ...extra,
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

  it('newer rows past the limit fail a refresh the same way', async () => {
    const error = await source(10).loadNewerThan((1_700_000_000 + 60 * 40) * 1000, never).then(
      () => null,
      (e: unknown) => e as Error,
    );
    expect(error?.message).toContain('more than 10 cells (rows × value columns)');
  });
});
