import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { startServer, type ForecastdServer } from '../../src/server/start.js';
import { TEST_PG, TestDatabase, probeTestPostgres, testPgParams } from '../helpers/postgres.js';
import { PodDir, linearFixture, predictionText, runDirect, until } from './fixtures.js';

/**
 * The server over PostgreSQL tables that production writes to: two writers committing out of order into an
 * append dataset, and a column added to a table under a full-refresh dataset. The server answers throughout,
 * and every prediction equals the model run directly on the window the table holds.
 */

const probe = await probeTestPostgres();

const LOOKBACK = 8;
const MODEL = linearFixture({ lookback: LOOKBACK, horizon: 3, seed: 83 });
const DAY = 86_400_000;
const T0 = Date.UTC(2024, 0, 1);
const iso = (ms: number): string => new Date(ms).toISOString();

describe.skipIf(!probe.available)('forecastd over PostgreSQL tables that change under it (real server)', () => {
  const pod = new PodDir();
  let db: TestDatabase;
  let server: ForecastdServer;
  const writers: pg.Client[] = [];
  const base = Array.from({ length: 20 }, (_, i) => 300 + ((i * 7) % 11) + i / 4);

  function params(): string {
    return Object.entries(testPgParams())
      .map(([k, v]) => `      ${k}: ${JSON.stringify(v)}`)
      .join('\n');
  }

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
    writers.push(client);
    return client;
  }

  beforeAll(async () => {
    db = await TestDatabase.open();
    // `late` has a key that is not a value column (params.columns names co2); `widening` takes every column.
    for (const [table, key] of [['late', 'id bigserial PRIMARY KEY, '], ['widening', '']] as const) {
      await db.query(`CREATE TABLE ${db.table(table)} (${key}ts timestamptz NOT NULL, co2 double precision)`);
      await db.query(
        `INSERT INTO ${db.table(table)} (ts, co2) SELECT * FROM unnest($1::timestamptz[], $2::float8[])`,
        [base.map((_, i) => iso(T0 + i * DAY)), base],
      );
    }
    pod.write('models/late.onnx', MODEL.bytes);
    pod.write('models/widening.onnx', MODEL.bytes);
    pod.write(
      'spicepod.yaml',
      [
        'version: v1beta1',
        'kind: Spicepod',
        'name: integrity',
        'datasets:',
        `  - from: postgres:${db.schema}.late`,
        '    name: late',
        '    params:',
        '      columns: [co2]',
        params(),
        '    acceleration:',
        '      refresh_check_interval: 50ms',
        '      refresh_mode: append',
        '      refresh_append_overlap: 7d',
        `  - from: postgres:${db.schema}.widening`,
        '    name: widening',
        '    params:',
        params(),
        '    acceleration:',
        '      refresh_check_interval: 50ms',
        'models:',
        '  - from: file:models/late.onnx',
        '    name: late',
        '    datasets: [late]',
        '  - from: file:models/widening.onnx',
        '    name: widening',
        '    datasets: [widening]',
        '',
      ].join('\n'),
    );
    server = await startServer({ spicepod: pod.dir, port: 0, logger: createLogger({ level: 'silent' }) });
    await server.loaded();
  });

  afterAll(async () => {
    await Promise.all(writers.map((c) => c.end().catch(() => undefined)));
    await server?.close();
    await db?.dispose();
    pod.remove();
  });

  async function get(path: string): Promise<{ status: number; body: string }> {
    const res = await fetch(server.url + path);
    return { status: res.status, body: await res.text() };
  }

  interface DatasetRow {
    name: string;
    rows: number;
    last_ts: string;
    status: string;
    error: string | null;
  }

  async function dataset(name: string): Promise<DatasetRow> {
    const list = JSON.parse((await get('/v1/datasets')).body) as DatasetRow[];
    const found = list.find((d) => d.name === name);
    if (found === undefined) throw new Error(`no dataset ${name}`);
    return found;
  }

  it('a row committed after a newer one was served reaches the window (two writers)', async () => {
    const table = db.table('late');
    const a = await writer();
    const b = await writer();
    await a.query('BEGIN');
    await a.query(`INSERT INTO ${table} (ts, co2) VALUES ($1, 351.5)`, [iso(T0 + 20 * DAY)]);
    await b.query(`INSERT INTO ${table} (ts, co2) VALUES ($1, 352.25)`, [iso(T0 + 21 * DAY)]);
    // The server reads B's row while A's is not committed yet.
    await until('the server to read the newer row', async () => ((await dataset('late')).last_ts === iso(T0 + 21 * DAY) ? true : undefined));
    expect((await dataset('late')).rows).toBe(21);

    await a.query('COMMIT');
    const listed = await until('the late row to be read', async () => {
      const d = await dataset('late');
      return d.rows === 22 ? d : undefined;
    });
    expect(listed).toMatchObject({ name: 'late', rows: 22, error: null });
    const window = [...base.slice(-(LOOKBACK - 2)), 351.5, 352.25];
    const expected = await runDirect(MODEL.bytes, window, [1, LOOKBACK, 1]);
    const res = await get('/v1/models/late/predict');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ status: 'Success', model_name: 'late', lookback: LOOKBACK });
    expect(predictionText(res.body)).toBe(expected);
  });

  it('a column added to the table keeps the last good data serving, with the reason in /v1/datasets', async () => {
    const table = db.table('widening');
    const expected = await runDirect(MODEL.bytes, base.slice(-LOOKBACK), [1, LOOKBACK, 1]);
    const before = await get('/v1/models/widening/predict');
    expect(before.status).toBe(200);
    expect(predictionText(before.body)).toBe(expected);

    await db.query(`ALTER TABLE ${table} ADD COLUMN humidity double precision DEFAULT 0.5`);
    await db.query(`INSERT INTO ${table} (ts, co2) VALUES ($1, 399)`, [iso(T0 + 20 * DAY)]);
    const listed = await until('the refresh to be refused', async () => {
      const d = await dataset('widening');
      return d.error !== null ? d : undefined;
    });
    expect(listed).toMatchObject({
      rows: 20,
      status: expect.stringMatching(/^(Ready|Refreshing)$/),
      error:
        'dataset widening: the value columns are now [co2, humidity], not [co2] as its models were checked against; ' +
        'still serving the last good data (20 rows). List the value columns in params.columns, or restart to take the new ones',
    });
    const after = await get('/v1/models/widening/predict');
    expect(after.status).toBe(200);
    expect(JSON.parse(after.body)).toMatchObject({ status: 'Success', model_name: 'widening' });
    expect(predictionText(after.body)).toBe(expected);
    const models = JSON.parse((await get('/v1/models?status=true')).body) as { name: string; status: string }[];
    expect(models.find((m) => m.name === 'widening')?.status).toBe('Ready');
  });
});
