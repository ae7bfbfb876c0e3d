import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { startServer, type ForecastdServer } from '../../src/server/start.js';
import { TestDatabase, probeTestPostgres, readCo2Series, testPgParams } from '../helpers/postgres.js';
import { PodDir, linearFixture, predictionText, runDirect, until } from './fixtures.js';

/**
 * The server fed from PostgreSQL: the weekly CO2 series in a real table, predictions from it, new rows
 * moving the window (refresh_mode append), and only the newest rows held when every model states its lookback.
 */

const probe = await probeTestPostgres();

const LOOKBACK = 52;
const MODEL = linearFixture({ lookback: LOOKBACK, horizon: 12, seed: 61 });

describe.skipIf(!probe.available)('forecastd over a PostgreSQL dataset (real server)', () => {
  const co2 = readCo2Series();
  const pod = new PodDir();
  let db: TestDatabase;
  let server: ForecastdServer;

  function params(): string {
    return Object.entries(testPgParams())
      .map(([k, v]) => `      ${k}: ${JSON.stringify(v)}`)
      .join('\n');
  }

  beforeAll(async () => {
    db = await TestDatabase.open();
    await db.query(`CREATE TABLE ${db.table('co2_weekly')} (ts timestamptz PRIMARY KEY, co2 double precision)`);
    await db.query(
      `INSERT INTO ${db.table('co2_weekly')} (ts, co2) SELECT * FROM unnest($1::timestamptz[], $2::float8[])`,
      [co2.iso, co2.values],
    );
    pod.write('models/bounded.onnx', MODEL.bytes);
    pod.write('models/unbounded.onnx', MODEL.bytes);
    pod.write(
      'spicepod.yaml',
      [
        'version: v1beta1',
        'kind: Spicepod',
        'name: pg',
        'datasets:',
        `  - from: postgres:${db.schema}.co2_weekly`,
        '    name: co2_bounded',
        '    params:',
        params(),
        '    acceleration:',
        '      refresh_check_interval: 50ms',
        '      refresh_mode: append',
        `  - from: postgres:${db.schema}.co2_weekly`,
        '    name: co2_all',
        '    params:',
        params(),
        'models:',
        '  - from: file:models/bounded.onnx',
        '    name: bounded',
        '    datasets: [co2_bounded]',
        '    params:',
        `      lookback: ${LOOKBACK}`,
        '      fill_missing: linear',
        '  - from: file:models/unbounded.onnx',
        '    name: unbounded',
        '    datasets: [co2_all]',
        '    params:',
        '      fill_missing: linear',
        '',
      ].join('\n'),
    );
    server = await startServer({ spicepod: pod.dir, port: 0, logger: createLogger({ level: 'silent' }) });
    await server.loaded();
  });

  afterAll(async () => {
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
    first_ts: string;
    last_ts: string;
    status: string;
    error: string | null;
  }

  async function datasets(): Promise<Map<string, DatasetRow>> {
    const list = JSON.parse((await get('/v1/datasets')).body) as DatasetRow[];
    return new Map(list.map((d) => [d.name, d]));
  }

  it('predicts from the table exactly as from the same window run directly', async () => {
    // The latest 52 weeks of the series have no gaps.
    const window = co2.values.slice(-LOOKBACK) as number[];
    const expected = await runDirect(MODEL.bytes, window, [1, LOOKBACK, 1]);
    for (const model of ['bounded', 'unbounded']) {
      const res = await get(`/v1/models/${model}/predict`);
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body)).toMatchObject({ status: 'Success', model_name: model, lookback: LOOKBACK });
      expect(predictionText(res.body)).toBe(expected);
    }
  });

  it('holds only the newest rows a model needs when every model states its lookback', async () => {
    const listed = await datasets();
    // 52 rows of window plus a margin of 1000 for fill_missing to look back into.
    // It refreshes every 50 ms: Refreshing is as good as Ready here.
    expect(listed.get('co2_bounded')).toMatchObject({ rows: LOOKBACK + 1000, error: null });
    expect(['Ready', 'Refreshing']).toContain(listed.get('co2_bounded')!.status);
    expect(listed.get('co2_bounded')!.first_ts).toBe(new Date(co2.times[co2.times.length - LOOKBACK - 1000]!).toISOString());
    expect(listed.get('co2_all')).toMatchObject({ rows: co2.iso.length, status: 'Ready', error: null });
  });

  it('new rows inserted move the next prediction window (refresh_mode append)', async () => {
    const added = [372.25, 372.75, 373.5];
    const start = co2.times[co2.times.length - 1]!;
    const week = 7 * 24 * 3600 * 1000;
    await db.query(
      `INSERT INTO ${db.table('co2_weekly')} (ts, co2) SELECT * FROM unnest($1::timestamptz[], $2::float8[])`,
      [added.map((_, i) => new Date(start + (i + 1) * week).toISOString()), added],
    );
    const window = [...(co2.values.slice(-(LOOKBACK - added.length)) as number[]), ...added];
    const expected = await runDirect(MODEL.bytes, window, [1, LOOKBACK, 1]);
    const body = await until('the appended rows to reach the bounded model', async () => {
      const res = await get('/v1/models/bounded/predict');
      return res.status === 200 && predictionText(res.body) === expected ? res.body : undefined;
    });
    expect(JSON.parse(body)).toMatchObject({ status: 'Success', model_name: 'bounded' });
    // Still bounded after the append: the oldest rows were let go.
    expect((await datasets()).get('co2_bounded')!.rows).toBe(LOOKBACK + 1000);
  });
});
