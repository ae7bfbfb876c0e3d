import { appendFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type ForecastdServer } from '../../src/server/start.js';
import { linearModel, seededRandom, uniformWeights } from '../../tools/onnx-builder.js';
import { PodDir, until } from '../server/fixtures.js';
import { DAY, oracleBacktest, type Series } from './oracle.js';

/** The evaluation follows the data and the model: an append refresh and a model reload are evaluated again. */

const START = Date.UTC(2024, 0, 1);
const L = 6;
const H = 2;
const random = seededRandom(3);
const modelA = linearModel({ lookback: L, horizon: H, weights: uniformWeights(random, L * H, 0.4) });
const modelB = linearModel({ lookback: L, horizon: H, weights: uniformWeights(random, L * H, 0.4), bias: 0.25 });

function value(d: number): number {
  return Number((20 + 4 * Math.sin((2 * Math.PI * d) / 7) + 0.1 * d).toFixed(4));
}

function rows(from: number, to: number): string {
  let out = '';
  for (let d = from; d < to; d++) out += `${new Date(START + d * DAY).toISOString()},${value(d)}\n`;
  return out;
}

function series(days: number): Series {
  const times: number[] = [];
  const values: number[][] = [];
  for (let d = 0; d < days; d++) {
    times.push(START + d * DAY);
    values.push([value(d)]);
  }
  return { times, rows: values };
}

const POD = `
version: v1beta1
kind: Spicepod
name: recompute
datasets:
  - from: file:data/series.csv
    name: series
    acceleration:
      refresh_check_interval: 100ms
      refresh_mode: append
models:
  - from: file:models/m.onnx
    name: m
    datasets: [series]
    params:
      evaluation:
        origins: 30
`;

type Json = Record<string, unknown>;

describe('evaluation after a refresh and a reload', () => {
  const pod = new PodDir();
  let server: ForecastdServer;

  async function evaluationOf(): Promise<Json> {
    const res = await fetch(`${server.url}/v1/models/m/evaluation`);
    expect(res.status).toBe(200);
    return (await res.json()) as Json;
  }

  beforeAll(async () => {
    pod.write('data/series.csv', 'ts,value\n' + rows(0, 60));
    pod.write('models/m.onnx', modelA);
    pod.write('spicepod.yaml', POD);
    server = await startServer({ spicepod: pod.dir, port: 0, settleMs: 50 });
    await server.loaded();
  });

  afterAll(async () => {
    await server?.close();
    pod.remove();
  });

  it('evaluates the appended rows once the refresh brings them in', async () => {
    const first = await until('first evaluation', async () => {
      const body = await evaluationOf();
      return body.status === 'Ready' ? body : undefined;
    });
    const before = await oracleBacktest(modelA, series(60), { lookback: L, horizon: H, outputVariables: 1, fill: 'none', origins: 30, since: null, seasonLength: 7 });
    expect(first.last_origin).toBe(before.last_origin);
    expect(first.mae as number).toBeCloseTo(before.mae, 6);

    appendFileSync(pod.path('data/series.csv'), rows(60, 75));
    const after = await oracleBacktest(modelA, series(75), { lookback: L, horizon: H, outputVariables: 1, fill: 'none', origins: 30, since: null, seasonLength: 7 });
    const second = await until('evaluation of the appended rows', async () => {
      const body = await evaluationOf();
      return body.status === 'Ready' && body.last_origin === after.last_origin ? body : undefined;
    });
    expect(second.last_origin).toBe(new Date(START + (74 - H) * DAY).toISOString());
    expect(second.first_origin).toBe(after.first_origin);
    expect(Math.abs((second.mae as number) - after.mae)).toBeLessThanOrEqual(1e-6 * after.mae);
    expect(Date.parse(second.computed_at as string)).toBeGreaterThan(Date.parse(first.computed_at as string));
  });

  it('evaluates the new version of a reloaded model', async () => {
    const current = await evaluationOf();
    pod.write('models/m.onnx', modelB);
    const outcome = await server.reload();
    expect(outcome.reloadedModels).toEqual(['m']);
    const expected = await oracleBacktest(modelB, series(75), { lookback: L, horizon: H, outputVariables: 1, fill: 'none', origins: 30, since: null, seasonLength: 7 });
    expect(Math.abs(expected.mae - (current.mae as number))).toBeGreaterThan(1e-3);
    const body = await until('evaluation of the reloaded model', async () => {
      const b = await evaluationOf();
      return b.status === 'Ready' && b.computed_at !== current.computed_at ? b : undefined;
    });
    expect(body.origins).toBe(30);
    expect(Math.abs((body.mae as number) - expected.mae)).toBeLessThanOrEqual(1e-6 * expected.mae);
    expect(Math.abs((body.bias as number) - expected.bias)).toBeLessThanOrEqual(1e-6 * Math.abs(expected.bias));
  });
});
