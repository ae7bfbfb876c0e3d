import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type ForecastdServer } from '../../src/server/start.js';
import { PodDir, dailyCsv, releaseFifo, linearFixture, predictionText, runDirect, until } from './fixtures.js';

/**
 * Readiness latches: once startup has brought every entry out of Initializing, /v1/ready stays 200 while
 * entries added later load, so an orchestrator never pulls a pod whose models all serve.
 */

const SERIES = [2.5, 3.25, 4.75, 3.5, 5.125, 6.5];
const lin = linearFixture({ lookback: 4, horizon: 2, seed: 41 });

function pod(datasets: string, models: string): string {
  return `version: v1beta1
kind: Spicepod
name: readiness
datasets:
  - from: file:data/series.csv
    name: series
${datasets}models:
${models}`;
}

const BLOCKED = '  - from: file:data/blocked.csv\n    name: blocked\n';

const A = '  - from: file:models/lin.onnx\n    name: a\n    datasets: [series]\n';
const B = '  - from: file:models/lin.onnx\n    name: b\n    datasets: [blocked]\n';

async function get(server: ForecastdServer, path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(server.url + path);
  return { status: res.status, body: await res.text() };
}

describe('readiness', () => {
  const dir = new PodDir('forecastd-ready-');
  let server: ForecastdServer;
  let fifo: string;

  beforeAll(async () => {
    dir.write('data/series.csv', dailyCsv({ value: SERIES }));
    // A named pipe: model b's dataset load blocks until the test writes to it.
    fifo = dir.fifo('data/blocked.csv');
    dir.write('models/lin.onnx', lin.bytes);
    dir.write('spicepod.yaml', pod('', A));
    server = await startServer({ spicepod: dir.dir, port: 0 });
    await server.loaded();
  });

  afterAll(async () => {
    await server?.close();
    dir.remove();
  });

  it('stays 200 while a model added by a reload is Initializing, and the others serve', async () => {
    expect(await get(server, '/v1/ready')).toEqual({ status: 200, body: 'ready' });
    dir.write('spicepod.yaml', pod(BLOCKED, A + B));
    const reloading = server.reload();
    await until('model b to be loading', async () => {
      const models = JSON.parse((await get(server, '/v1/models?status=true')).body) as { name: string; status: string }[];
      return models.some((m) => m.name === 'b' && m.status === 'Initializing') ? true : undefined;
    });
    expect(await get(server, '/v1/ready')).toEqual({ status: 200, body: 'ready' });
    const a = await get(server, '/v1/models/a/predict');
    expect(a.status).toBe(200);
    expect(predictionText(a.body)).toBe(await runDirect(lin.bytes, SERIES.slice(-4), [1, 4, 1]));

    await releaseFifo(fifo, dailyCsv({ value: SERIES }));
    await reloading;
    const b = await get(server, '/v1/models/b/predict');
    expect(b.status).toBe(200);
    expect(await get(server, '/v1/ready')).toEqual({ status: 200, body: 'ready' });
  });
});
