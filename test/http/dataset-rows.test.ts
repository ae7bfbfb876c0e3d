import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type ForecastdServer } from '../../src/server/start.js';
import { PodDir, dailyCsv } from '../server/fixtures.js';

/**
 * GET /v1/datasets/:name/rows against a real server and real files: the newest N rows oldest first, gaps as
 * null, the default and the limit of `last`, unknown datasets, a dataset with no data, and auth.
 */

const KEY = 'rows-test-key-5d1f';
const LONG = Array.from({ length: 650 }, (_, i) => (i % 7 === 3 ? null : Math.round(1000 * Math.sin(i / 5)) / 1000));

function pod(auth: boolean): string {
  return `
version: v1beta1
kind: Spicepod
name: rows
${auth ? `runtime:\n  auth:\n    api-key:\n      enabled: true\n      keys: ["${KEY}"]` : ''}
datasets:
  - from: file:data/long.csv
    name: long
  - from: file:data/pair.csv
    name: pair
    params:
      columns: [b, a]
  - from: file:data/absent.csv
    name: absent
`;
}

async function get(server: ForecastdServer, path: string, headers: Record<string, string> = {}) {
  const res = await fetch(server.url + path, { headers });
  return { status: res.status, type: res.headers.get('content-type'), body: (await res.json()) as unknown };
}

function day(i: number): string {
  return new Date(Date.UTC(2024, 0, 1 + i)).toISOString();
}

describe('GET /v1/datasets/:name/rows', () => {
  const dir = new PodDir('forecastd-rows-');
  let server: ForecastdServer;

  beforeAll(async () => {
    dir.write('data/long.csv', dailyCsv({ value: LONG }));
    dir.write('data/pair.csv', dailyCsv({ a: [1.5, 2.5, null], b: [10.25, null, 30.125] }));
    dir.write('spicepod.yaml', pod(false));
    server = await startServer({ spicepod: dir.dir, port: 0 });
    await server.loaded();
  });

  afterAll(async () => {
    await server?.close();
    dir.remove();
  });

  it('gives the newest 500 rows by default, oldest first, gaps as null', async () => {
    const res = await get(server, '/v1/datasets/long/rows');
    expect(res.status).toBe(200);
    expect(res.type).toBe('application/json');
    const body = res.body as { name: string; columns: string[]; timestamps: string[]; values: (number | null)[][] };
    expect(Object.keys(body)).toEqual(['name', 'columns', 'timestamps', 'values']);
    expect(body.name).toBe('long');
    expect(body.columns).toEqual(['value']);
    expect(body.timestamps).toEqual(Array.from({ length: 500 }, (_, i) => day(150 + i)));
    expect(body.values).toEqual(LONG.slice(150).map((v) => [v]));
    expect(body.values.filter(([v]) => v === null).length).toBeGreaterThan(0);
  });

  it('takes last=N, in the configured column order', async () => {
    const three = await get(server, '/v1/datasets/long/rows?last=3');
    expect(three).toEqual({
      status: 200,
      type: 'application/json',
      body: { name: 'long', columns: ['value'], timestamps: [day(647), day(648), day(649)], values: LONG.slice(647).map((v) => [v]) },
    });
    const pair = await get(server, '/v1/datasets/pair/rows?last=100000');
    expect(pair.body).toEqual({
      name: 'pair',
      columns: ['b', 'a'],
      timestamps: [day(0), day(1), day(2)],
      values: [[10.25, 1.5], [null, 2.5], [30.125, null]],
    });
    const all = await get(server, '/v1/datasets/long/rows?last=1000');
    expect((all.body as { timestamps: string[] }).timestamps).toHaveLength(650);
  });

  it('refuses last beyond 100,000, zero, or not a whole number, with the shared error body', async () => {
    for (const last of ['100001', '0', '-1', '2.5', 'ten', '1e3', '99999999999999999999']) {
      const res = await get(server, `/v1/datasets/long/rows?last=${last}`);
      expect(res.status, last).toBe(400);
      expect(res.body, last).toEqual({ status: 'BadRequest', error_message: expect.stringContaining('last') });
    }
    expect((await get(server, '/v1/datasets/long/rows?last=100001')).body).toEqual({
      status: 'BadRequest',
      error_message: 'Query parameter last is 100001; it must be from 1 to 100000',
    });
  });

  it('answers an unknown dataset 404 and a dataset with no data with no rows', async () => {
    expect(await get(server, '/v1/datasets/nope/rows')).toEqual({
      status: 404,
      type: 'application/json',
      body: { status: 'NotFound', error_message: 'Dataset nope not found' },
    });
    const bad = await get(server, '/v1/datasets/%ff/rows');
    expect(bad).toMatchObject({ status: 400, body: { status: 'BadRequest', error_message: 'The dataset name in the URL is not valid percent-encoded UTF-8' } });
    expect(await get(server, '/v1/datasets/absent/rows')).toEqual({
      status: 200,
      type: 'application/json',
      body: { name: 'absent', columns: [], timestamps: [], values: [] },
    });
    const post = await fetch(server.url + '/v1/datasets/long/rows', { method: 'POST' });
    expect([post.status, post.headers.get('allow'), await post.json()]).toEqual([
      405,
      'GET',
      { status: 'MethodNotAllowed', error_message: 'Method POST is not allowed here; use GET' },
    ]);
  });
});

describe('GET /v1/datasets/:name/rows with auth on', () => {
  const dir = new PodDir('forecastd-rows-auth-');
  let server: ForecastdServer;

  beforeAll(async () => {
    dir.write('data/long.csv', dailyCsv({ value: LONG }));
    dir.write('data/pair.csv', dailyCsv({ a: [1], b: [2] }));
    dir.write('spicepod.yaml', pod(true));
    server = await startServer({ spicepod: dir.dir, port: 0 });
    await server.loaded();
  });

  afterAll(async () => {
    await server?.close();
    dir.remove();
  });

  it('needs the API key like the rest of the API', async () => {
    const without = await get(server, '/v1/datasets/long/rows?last=1');
    expect(without).toEqual({
      status: 401,
      type: 'application/json',
      body: { status: 'Unauthorized', error_message: 'Missing or invalid API key: send X-API-Key: KEY or Authorization: Bearer KEY' },
    });
    expect((await get(server, '/v1/datasets/nope/rows')).status).toBe(401);
    const keyed = await get(server, '/v1/datasets/long/rows?last=1', { 'x-api-key': KEY });
    expect(keyed).toEqual({ status: 200, type: 'application/json', body: { name: 'long', columns: ['value'], timestamps: [day(649)], values: [[LONG[649]]] } });
    const bearer = await get(server, '/v1/datasets/long/rows?last=1', { authorization: `Bearer ${KEY}` });
    expect(bearer.status).toBe(200);
  });
});
