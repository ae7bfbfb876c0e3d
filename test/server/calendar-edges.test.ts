import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type ForecastdServer } from '../../src/server/start.js';
import { linearModel } from '../../tools/onnx-builder.js';
import { PodDir } from './fixtures.js';

/**
 * Windows, frequencies and forecast timestamps at calendar edges, end to end (SPEC "The grid is anchored at
 * the newest row"), end to end through GET /v1/models/:name/predict. The model is the identity (3 values in,
 * the same 3 out), so each prediction is the window the model was fed.
 */

const identity = linearModel({ lookback: 3, horizon: 3, weights: [1, 0, 0, 0, 1, 0, 0, 0, 1] });

function csv(rows: readonly (readonly [string, number])[]): string {
  return ['ts,value', ...rows.map(([t, v]) => `${t},${v}`)].join('\n') + '\n';
}

// A year of rows on the 15th, then six rows on the 1st.
const monthlyShift = csv([
  ...Array.from({ length: 12 }, (_, m) => [`2023-${String(m + 1).padStart(2, '0')}-15T00:00:00Z`, m + 1] as const),
  ...Array.from({ length: 6 }, (_, m) => [`2024-${String(m + 1).padStart(2, '0')}-01T00:00:00Z`, 101 + m] as const),
]);

// Hourly rows with 23:00 missing and a stray 22:30 row.
const hourlyStray = csv([
  ['2024-03-01T20:00:00Z', 20],
  ['2024-03-01T21:00:00Z', 21],
  ['2024-03-01T22:00:00Z', 22],
  ['2024-03-01T22:30:00Z', 999],
  ['2024-03-02T00:00:00Z', 24],
  ['2024-03-02T01:00:00Z', 25],
]);

// Daily rows written at local midnight in New York, across the change to daylight saving time (2024-03-10).
const dstDaily = csv([
  ['2024-03-04T00:00:00-05:00', 1],
  ['2024-03-05T00:00:00-05:00', 2],
  ['2024-03-06T00:00:00-05:00', 3],
  ['2024-03-07T00:00:00-05:00', 4],
  ['2024-03-08T00:00:00-05:00', 5],
  ['2024-03-09T00:00:00-05:00', 10],
  ['2024-03-10T00:00:00-05:00', 50],
  ['2024-03-11T00:00:00-04:00', 10],
]);

// Monthly rows at local midnight in London on the 1st: +01:00 from April to October (the 1st of April is
// March 31 at 23:00Z).
const monthlyLondon = csv(
  Array.from({ length: 12 }, (_, m) => [`2023-${String(m + 1).padStart(2, '0')}-01T00:00:00${m >= 3 && m <= 9 ? '+01:00' : '+00:00'}`, m + 1] as const),
);

const yearly4 = csv([['2017-01-01', 1], ['2018-01-01', 2], ['2019-01-01', 3], ['2020-01-01', 4]]);
const monthly3 = csv([['2024-07-01', 1], ['2024-08-01', 2], ['2024-09-01', 3]]);
const ancient = csv([['0095-01-01', 95], ['0096-01-01', 96], ['0097-01-01', 97], ['0098-01-01', 98]]);

const DATASETS = ['monthly_shift', 'hourly_stray', 'dst_daily', 'monthly_london', 'yearly4', 'monthly3', 'ancient'];

function model(name: string, dataset: string, fill: string): string {
  return `  - from: file:models/identity.onnx\n    name: ${name}\n    datasets: [${dataset}]\n    params:\n      fill_missing: ${fill}\n      cache_predictions: false\n`;
}

const POD = `version: v1beta1
kind: Spicepod
name: calendar-edges
datasets:
${DATASETS.map((d) => `  - from: file:data/${d}.csv\n    name: ${d}\n`).join('')}models:
${model('shift_none', 'monthly_shift', 'none')}${model('shift_linear', 'monthly_shift', 'linear')}${model('stray_none', 'hourly_stray', 'none')}${model('stray_linear', 'hourly_stray', 'linear')}${model('dst_none', 'dst_daily', 'none')}${model('dst_linear', 'dst_daily', 'linear')}${model('yearly', 'yearly4', 'none')}${model('monthly', 'monthly3', 'none')}${model('ancient', 'ancient', 'none')}${model('london', 'monthly_london', 'none')}`;

async function get(server: ForecastdServer, path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(server.url + path);
  return { status: res.status, body: JSON.parse(await res.text()) as Record<string, unknown> };
}

describe('windows and forecast timestamps at calendar edges', () => {
  const pod = new PodDir();
  let server: ForecastdServer;

  beforeAll(async () => {
    pod.write('data/monthly_shift.csv', monthlyShift);
    pod.write('data/hourly_stray.csv', hourlyStray);
    pod.write('data/dst_daily.csv', dstDaily);
    pod.write('data/monthly_london.csv', monthlyLondon);
    pod.write('data/yearly4.csv', yearly4);
    pod.write('data/monthly3.csv', monthly3);
    pod.write('data/ancient.csv', ancient);
    pod.write('models/identity.onnx', identity);
    pod.write('spicepod.yaml', POD);
    server = await startServer({ spicepod: pod.dir, port: 0 });
    await server.loaded();
  });

  afterAll(async () => {
    await server?.close();
    pod.remove();
  });

  it('frequencies: calendar steps win for short series; off-grid rows are counted', async () => {
    const res = await fetch(server.url + '/v1/datasets');
    expect(res.status).toBe(200);
    const list = JSON.parse(await res.text()) as { name: string; frequency: string | null; off_grid_rows: number }[];
    expect(Object.fromEntries(list.map((d) => [d.name, [d.frequency, d.off_grid_rows]]))).toEqual({
      monthly_shift: ['P1M', 0],
      hourly_stray: ['PT1H', 1],
      dst_daily: ['P1D', 0],
      monthly_london: ['P1M', 0],
      yearly4: ['P1Y', 0],
      monthly3: ['P1M', 0],
      ancient: ['P1Y', 0],
    });
  });

  it('monthly rows whose day changes from the 15th to the 1st: the grid follows the newest rows', async () => {
    for (const name of ['shift_none', 'shift_linear']) {
      const res = await get(server, `/v1/models/${name}/predict?include=timestamps`);
      expect(res.status).toBe(200);
      expect(res.body['prediction']).toEqual([104, 105, 106]);
      expect(res.body['timestamps']).toEqual(['2024-07-01T00:00:00.000Z', '2024-08-01T00:00:00.000Z', '2024-09-01T00:00:00.000Z']);
    }
  });

  it('an off-grid row beside a missing hourly step never fills it', async () => {
    const none = await get(server, '/v1/models/stray_none/predict');
    expect(none.status).toBe(500);
    expect(none.body['error_message']).toContain('gap in dataset hourly_stray at 2024-03-01T23:00:00.000Z');
    const linear = await get(server, '/v1/models/stray_linear/predict?include=timestamps');
    expect(linear.status).toBe(200);
    expect(linear.body['prediction']).toEqual([23, 24, 25]);
    expect(linear.body['timestamps']).toEqual(['2024-03-02T02:00:00.000Z', '2024-03-02T03:00:00.000Z', '2024-03-02T04:00:00.000Z']);
  });

  it('daily rows at local midnight across a daylight saving change keep every day', async () => {
    for (const name of ['dst_none', 'dst_linear']) {
      const res = await get(server, `/v1/models/${name}/predict?include=timestamps`);
      expect(res.status).toBe(200);
      expect(res.body['prediction']).toEqual([10, 50, 10]);
      expect(res.body['timestamps']).toEqual(['2024-03-12T04:00:00.000Z', '2024-03-13T04:00:00.000Z', '2024-03-14T04:00:00.000Z']);
    }
  });

  it('monthly rows at local midnight whose offset changes for daylight saving stay in their own month', async () => {
    const res = await get(server, '/v1/models/london/predict?include=timestamps');
    expect(res.status).toBe(200);
    // October 1st (+01:00) is September 30 at 23:00Z; it still fills October's step.
    expect(res.body['prediction']).toEqual([10, 11, 12]);
    expect(res.body['timestamps']).toEqual(['2024-01-01T00:00:00.000Z', '2024-02-01T00:00:00.000Z', '2024-03-01T00:00:00.000Z']);
  });

  it('short calendar series: 4 yearly rows step by years, 3 monthly rows by months', async () => {
    const yearly = await get(server, '/v1/models/yearly/predict?include=timestamps');
    expect(yearly.status).toBe(200);
    expect(yearly.body['prediction']).toEqual([2, 3, 4]);
    expect(yearly.body['timestamps']).toEqual(['2021-01-01T00:00:00.000Z', '2022-01-01T00:00:00.000Z', '2023-01-01T00:00:00.000Z']);
    const monthly = await get(server, '/v1/models/monthly/predict?include=timestamps');
    expect(monthly.status).toBe(200);
    expect(monthly.body['prediction']).toEqual([1, 2, 3]);
    expect(monthly.body['timestamps']).toEqual(['2024-10-01T00:00:00.000Z', '2024-11-01T00:00:00.000Z', '2024-12-01T00:00:00.000Z']);
  });

  it('years below 100 stay there', async () => {
    const res = await get(server, '/v1/models/ancient/predict?include=timestamps');
    expect(res.status).toBe(200);
    expect(res.body['prediction']).toEqual([96, 97, 98]);
    expect(res.body['timestamps']).toEqual(['0099-01-01T00:00:00.000Z', '0100-01-01T00:00:00.000Z', '0101-01-01T00:00:00.000Z']);
  });
});
