import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type ForecastdServer } from '../../src/server/start.js';
import { linearModel, seededRandom, uniformWeights } from '../../tools/onnx-builder.js';
import { PodDir, until } from '../server/fixtures.js';
import { close, DAY, oracleBacktest, type Series } from './oracle.js';

/**
 * Evaluation walks the same anchored grid as the serving windows (SPEC "The grid is anchored at the newest row
 * that continues it"): daily rows written at local midnight in New York, with their offset changing at both
 * daylight-saving changes of 2024, and a stray newest row at noon that must not move the grid. The independent
 * backtest sees the same days on the UTC-midnight grid (it knows nothing of offsets), so every metric agrees
 * only when each origin and each target is matched to its day within the ±3 h a daily step allows.
 */

const ZONE = 'America/New_York';
const START_DAY = Date.UTC(2024, 1, 1);
const DAYS = 300;
const MISSING = new Set([50, 51, 200]);

/** The zone's offset from UTC in ms at instant t, read from the platform's zone rules. */
function offsetAt(t: number): number {
  const name = new Intl.DateTimeFormat('en-US', { timeZone: ZONE, timeZoneName: 'longOffset' })
    .formatToParts(new Date(t))
    .find((p) => p.type === 'timeZoneName')!.value; // "GMT-05:00"
  const m = /GMT([+-])(\d{2}):(\d{2})/.exec(name);
  if (m === null) return 0;
  const minutes = Number(m[2]) * 60 + Number(m[3]);
  return (m[1] === '-' ? -1 : 1) * minutes * 60_000;
}

/** Local midnight of the civil day that starts at UTC midnight `day`, as an instant. */
function localMidnight(day: number): number {
  // The offset at noon UTC of that day is the one in force at the local midnight (changes happen at 2:00 local).
  return day - offsetAt(day + DAY / 2);
}

/** "2024-03-10T00:00:00-05:00" for an instant at local midnight. */
function withOffset(t: number): string {
  const off = offsetAt(t);
  const local = new Date(t + off).toISOString().slice(0, 19);
  const sign = off < 0 ? '-' : '+';
  const abs = Math.abs(off) / 60_000;
  return `${local}${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
}

const L = 8;
const H = 3;
const random = seededRandom(23);
const modelBytes = linearModel({ lookback: L, horizon: H, weights: uniformWeights(random, L * H, 0.3), bias: uniformWeights(random, H, 0.5) });

function makeSeries(): { csv: string; grid: Series; instantOfDay: Map<number, number> } {
  const values = seededRandom(5);
  const lines = ['ts,y'];
  const times: number[] = [];
  const rows: number[][] = [];
  const instantOfDay = new Map<number, number>();
  let level = 20;
  for (let d = 0; d < DAYS; d++) {
    level += values() - 0.5;
    if (MISSING.has(d)) continue;
    const day = START_DAY + d * DAY;
    const y = Number((level + 2 * Math.sin((2 * Math.PI * d) / 7)).toFixed(5));
    const instant = localMidnight(day);
    lines.push(`${withOffset(instant)},${y}`);
    times.push(day);
    rows.push([y]);
    instantOfDay.set(day, instant);
  }
  // A stray newest row at local noon: off the grid, counted as such, and never an origin or a target.
  const lastDay = START_DAY + (DAYS - 1) * DAY;
  lines.push(`${withOffset(localMidnight(lastDay)).slice(0, 11)}12:00:00${withOffset(localMidnight(lastDay)).slice(19)},999`);
  return { csv: lines.join('\n') + '\n', grid: { times, rows }, instantOfDay };
}

const POD = `
version: v1beta1
kind: Spicepod
name: anchored
datasets:
  - from: file:data/local.csv
    name: local
models:
  - from: file:models/model.onnx
    name: local_model
    datasets: [local]
    params:
      evaluation:
        origins: 250
`;

type Json = Record<string, unknown>;


describe('evaluation on the anchored grid', () => {
  const pod = new PodDir();
  const series = makeSeries();
  let server: ForecastdServer;
  let url: string;

  beforeAll(async () => {
    pod.write('data/local.csv', series.csv);
    pod.write('models/model.onnx', modelBytes);
    pod.write('spicepod.yaml', POD);
    server = await startServer({ spicepod: pod.dir, port: 0 });
    await server.loaded();
    url = `http://127.0.0.1:${server.port}`;
  });

  afterAll(async () => {
    await server?.close();
    pod.remove();
  });

  it('matches origins and targets to their days across daylight-saving changes, past a stray newest row', async () => {
    const datasets = (await (await fetch(`${url}/v1/datasets`)).json()) as Json[];
    expect(datasets[0]!.frequency).toBe('P1D');
    expect(datasets[0]!.off_grid_rows).toBe(1);

    const body = await until('evaluation of local_model', async () => {
      const res = await fetch(`${url}/v1/models/local_model/evaluation`);
      expect(res.status).toBe(200);
      const json = (await res.json()) as Json;
      return json.status === 'Ready' || json.status === 'Error' ? json : undefined;
    });
    const oracle = await oracleBacktest(modelBytes, series.grid, {
      lookback: L,
      horizon: H,
      outputVariables: 1,
      fill: 'none',
      origins: 250,
      since: null,
      seasonLength: 7,
    });
    expect(body.status).toBe('Ready');
    expect(oracle.origins).toBe(250);
    expect(body.origins).toBe(oracle.origins);
    expect(body.skipped).toBe(oracle.skipped);
    expect(body.skipped_pairs).toBe(oracle.skipped_pairs);
    // Origins are printed at their rows' own instants (local midnight in UTC).
    const instant = (iso: string): string => new Date(series.instantOfDay.get(Date.parse(iso))!).toISOString();
    expect(body.first_origin).toBe(instant(oracle.first_origin));
    expect(body.last_origin).toBe(instant(oracle.last_origin));
    expect(body.last_origin).toMatch(/T0[45]:00:00\.000Z$/);
    close(body.mae, oracle.mae, 'mae');
    close(body.rmse, oracle.rmse, 'rmse');
    close(body.bias, oracle.bias, 'bias');
    close(body.mase, oracle.mase, 'mase');
    close(body.skill, oracle.skill, 'skill');
    const baselines = body.baselines as Record<string, Json>;
    close(baselines.naive!.mae, oracle.naive.mae, 'naive.mae');
    close(baselines.seasonal_naive!.mae, oracle.seasonal.mae, 'seasonal_naive.mae');
  });
});
