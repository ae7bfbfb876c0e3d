import { describe, expect, it } from 'vitest';
import { formatFloat32 } from '../../src/http/float-format.js';
import { InferenceSession } from '../../src/runtime/session.js';
import type { ForecastdServer } from '../../src/server/start.js';
import { linearModel, quantileModel, seededRandom, uniformWeights } from '../../tools/onnx-builder.js';
import { servePod, dailyCsv, until } from './fixtures.js';

/**
 * Forecasts people can use, end to end: dataset frequency, `?include=timestamps,quantiles` on the Spice
 * routes, quantile models, GET /v1/models/:name, and POST /v1/timeseries/forecast with GET
 * /v1/timeseries/models. Real pod, real ONNX models (quantile fixtures built with onnx-proto), the real addon,
 * real sockets. Expected values come from running the same window through InferenceSession directly.
 */

const LEVELS = [0.1, 0.5, 0.9];

interface Fixture {
  readonly lookback: number;
  readonly variables: number;
  readonly horizon: number;
  readonly outputShape: readonly number[];
  readonly levels: number;
  readonly bytes: Uint8Array;
}

function quantileFixture(o: {
  lookback: number;
  variables?: number;
  horizon: number;
  outputShape?: number[];
  levels: number;
  seed: number;
  offsets: (i: number, q: number) => number;
}): Fixture {
  const variables = o.variables ?? 1;
  const random = seededRandom(o.seed);
  const weights = uniformWeights(random, o.lookback * variables * o.horizon, 0.5);
  const bias = uniformWeights(random, o.horizon, 1);
  const offsets: number[] = [];
  for (let i = 0; i < o.horizon; i++) for (let q = 0; q < o.levels; q++) offsets.push(o.offsets(i, q));
  const bytes = quantileModel({
    lookback: o.lookback,
    variables,
    horizon: o.horizon,
    weights,
    bias,
    offsets,
    levels: o.levels,
    ...(o.outputShape === undefined ? {} : { outputShape: o.outputShape }),
  });
  return { lookback: o.lookback, variables, horizon: o.horizon, outputShape: o.outputShape ?? [o.horizon], levels: o.levels, bytes };
}

// Offsets widen with the step and increase with the level: a monotone quantile output.
const monotone = (i: number, q: number): number => (q - 1) * (0.5 + 0.25 * i);
const q = quantileFixture({ lookback: 4, horizon: 3, levels: 3, seed: 7, offsets: monotone });
const crossing = quantileFixture({ lookback: 4, horizon: 3, levels: 3, seed: 8, offsets: (i, k) => (i === 1 ? -k : k) });
// Four levels in the output, three in the pod's params.quantiles.
const badLayout = quantileFixture({ lookback: 4, horizon: 3, levels: 4, seed: 9, offsets: monotone });
// Multivariate: 2 variables in, [B, 2 steps, 2 variables] out, quantiles [B, 2, 2, 2].
const multi = quantileFixture({ lookback: 3, variables: 2, horizon: 4, outputShape: [2, 2], levels: 2, seed: 10, offsets: (i, k) => (k === 0 ? -1 - i : 1 + i) });
const plain = linearModel({ lookback: 4, horizon: 3, weights: uniformWeights(seededRandom(12), 12, 0.5), bias: 0.25 });
// Output [B, 3, 1, 1]: no horizon layout; the Spice routes serve it, timestamps and client series cannot.
const noHorizon = linearModel({ lookback: 4, horizon: 3, outputShape: [3, 1, 1], weights: uniformWeights(seededRandom(13), 12, 0.5) });

const DAILY = [12.5, 13.25, 11.75, 14.5, 15.125, 13.875, 16.25, 17.5, 16.75, 18.125];

function monthEndCsv(): string {
  const lines = ['ts,value'];
  for (let m = 0; m < 12; m++) lines.push(`${new Date(Date.UTC(2023, m + 1, 0)).toISOString()},${100 + m * 2.5}`);
  return lines.join('\n') + '\n';
}

function irregularCsv(): string {
  const days = [1, 2, 4, 7, 11, 16, 22];
  return ['ts,value', ...days.map((d, i) => `${new Date(Date.UTC(2024, 0, d)).toISOString()},${i + 0.5}`)].join('\n') + '\n';
}

const POD = `
version: v1beta1
kind: Spicepod
name: forecasts
datasets:
  - from: file:data/daily.csv
    name: daily
  - from: file:data/monthly.csv
    name: monthly
  - from: file:data/irregular.csv
    name: irregular
  - from: file:data/multi.csv
    name: multi
models:
  - from: file:models/q.onnx
    name: q
    datasets: [daily]
    params:
      version: "2.1"
      quantiles: [0.1, 0.5, 0.9]
      quantile_output: quantiles
  - from: file:models/q.onnx
    name: q_month
    datasets: [monthly]
    params:
      quantiles: [0.1, 0.5, 0.9]
      quantile_output: quantiles
  - from: file:models/plain.onnx
    name: plain
    datasets: [irregular]
  - from: file:models/plain.onnx
    name: plain_daily
    datasets: [daily]
  - from: file:models/crossing.onnx
    name: crossing
    datasets: [daily]
    params:
      cache_predictions: false
      quantiles: [0.1, 0.5, 0.9]
      quantile_output: quantiles
  - from: file:models/bad.onnx
    name: bad_layout
    datasets: [daily]
    params:
      quantiles: [0.1, 0.5, 0.9]
      quantile_output: quantiles
  - from: file:models/q.onnx
    name: bad_output
    datasets: [daily]
    params:
      quantiles: [0.1, 0.5, 0.9]
      quantile_output: nope
  - from: file:models/multi.onnx
    name: multi
    datasets: [multi]
    params:
      quantiles: [0.25, 0.75]
      quantile_output: quantiles
  - from: file:models/no_horizon.onnx
    name: no_horizon
    datasets: [daily]
  - from: file:models/q.onnx
    name: client
    params:
      quantiles: [0.1, 0.5, 0.9]
      quantile_output: quantiles
      max_concurrent_runs: 1
      max_batch_size: 64
      cache_predictions: false
`;

/** Runs one window through a model directly: output 0 and (when present) output 1, as float32 values. */
async function direct(bytes: Uint8Array, window: readonly number[], shape: readonly number[]): Promise<{ point: number[]; quantiles: number[] }> {
  const session = await InferenceSession.load(bytes, { intraOpThreads: 1 });
  try {
    const input = session.inputs[0]!;
    const outputs = await session.run({ [input.name]: { data: Float32Array.from(window), shape: [...shape] } });
    return {
      point: Array.from(outputs[0]!.data as Float32Array),
      quantiles: outputs[1] === undefined ? [] : Array.from(outputs[1].data as Float32Array),
    };
  } finally {
    session.dispose();
  }
}

/** The values of level k of [steps, Q] quantiles, as the API prints them. */
function level(quantiles: readonly number[], levels: number, k: number): string[] {
  const out: string[] = [];
  for (let i = k; i < quantiles.length; i += levels) out.push(formatFloat32(quantiles[i]!));
  return out;
}

function raw(values: readonly number[]): string {
  return `[${values.map(formatFloat32).join(',')}]`;
}

async function get(server: ForecastdServer, path: string): Promise<{ status: number; text: string; headers: Headers }> {
  const res = await fetch(server.url + path);
  return { status: res.status, text: await res.text(), headers: res.headers };
}

async function post(server: ForecastdServer, path: string, body: unknown): Promise<{ status: number; text: string; json: Record<string, unknown>; headers: Headers }> {
  const res = await fetch(server.url + path, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, text, json: JSON.parse(text) as Record<string, unknown>, headers: res.headers };
}

/** The value of one sample line of /metrics, 0 when absent. */
async function metric(server: ForecastdServer, line: string): Promise<number> {
  const text = (await get(server, '/metrics')).text;
  const found = text.split('\n').find((l) => l.startsWith(line + ' '));
  return found === undefined ? 0 : Number(found.slice(line.length + 1));
}

function forecast(model: string, inputs: unknown[], options: Record<string, unknown> = { horizon: 3 }): Record<string, unknown> {
  return { model, inputs, options };
}

function uni(name: string, series: unknown[], frequency = 'D', start?: string): Record<string, unknown> {
  return { type: 'univariate_time_series', name, series, frequency, ...(start === undefined ? {} : { start_timestamp: start }) };
}

describe('forecasts: frequency, include, quantiles, model details, KServe', () => {
  const served = servePod((pod) => {
    pod.write('data/daily.csv', dailyCsv({ value: DAILY }));
    pod.write('data/monthly.csv', monthEndCsv());
    pod.write('data/irregular.csv', irregularCsv());
    pod.write('data/multi.csv', dailyCsv({ a: [1, 2, 3, 4, 5], b: [10.5, 20.25, 30.125, 40.5, 50.75] }));
    pod.write('models/q.onnx', q.bytes);
    pod.write('models/crossing.onnx', crossing.bytes);
    pod.write('models/bad.onnx', badLayout.bytes);
    pod.write('models/multi.onnx', multi.bytes);
    pod.write('models/plain.onnx', plain);
    pod.write('models/no_horizon.onnx', noHorizon);
    pod.write('spicepod.yaml', POD);
  });

  describe('dataset frequency', () => {
    it('GET /v1/datasets gives each dataset its frequency as an ISO 8601 duration, or null', async () => {
      const list = JSON.parse((await get(served.server, '/v1/datasets')).text) as { name: string; frequency: string | null }[];
      expect(Object.fromEntries(list.map((d) => [d.name, d.frequency]))).toEqual({
        daily: 'P1D',
        monthly: 'P1M',
        irregular: null,
        multi: 'P1D',
      });
    });
  });

  describe('?include= on the Spice routes', () => {
    it('without include the body is unchanged', async () => {
      const res = await get(served.server, '/v1/models/q/predict');
      expect(res.status).toBe(200);
      expect(Object.keys(JSON.parse(res.text) as object)).toEqual(['status', 'model_name', 'model_version', 'lookback', 'prediction', 'duration_ms']);
    });

    it('timestamps continue the daily axis; quantiles give each level; fields in the documented order', async () => {
      const expected = await direct(q.bytes, DAILY.slice(-4), [1, 4, 1]);
      const res = await get(served.server, '/v1/models/q/predict?include=timestamps,quantiles');
      expect(res.status).toBe(200);
      expect(res.text).toMatch(/^\{"status":"Success","model_name":"q","model_version":"2\.1","lookback":4,"prediction":\[.*\],"timestamps":\[.*\],"quantiles":\{.*\},"duration_ms":\d+\}$/);
      const body = JSON.parse(res.text) as Record<string, unknown>;
      expect(Object.keys(body)).toEqual(['status', 'model_name', 'model_version', 'lookback', 'prediction', 'timestamps', 'quantiles', 'duration_ms']);
      expect(res.text).toContain(`"prediction":${raw(expected.point)}`);
      expect(body['timestamps']).toEqual(['2024-01-11T00:00:00.000Z', '2024-01-12T00:00:00.000Z', '2024-01-13T00:00:00.000Z']);
      expect(res.text).toContain(
        `"quantiles":{"0.1":[${level(expected.quantiles, 3, 0).join(',')}],"0.5":[${level(expected.quantiles, 3, 1).join(',')}],"0.9":[${level(expected.quantiles, 3, 2).join(',')}]}`,
      );
      // The model's offsets: 0.5 is the point forecast, 0.1 and 0.9 lie either side of it.
      expect((body['quantiles'] as Record<string, number[]>)['0.5']).toEqual(body['prediction']);
    });

    it('each include alone, in either order, and the same query on POST for every item', async () => {
      const onlyTimes = JSON.parse((await get(served.server, '/v1/models/q/predict?include=timestamps')).text) as Record<string, unknown>;
      expect(Object.keys(onlyTimes)).toEqual(['status', 'model_name', 'model_version', 'lookback', 'prediction', 'timestamps', 'duration_ms']);
      const onlyQuantiles = JSON.parse((await get(served.server, '/v1/models/q/predict?include=quantiles')).text) as Record<string, unknown>;
      expect(Object.keys(onlyQuantiles)).toEqual(['status', 'model_name', 'model_version', 'lookback', 'prediction', 'quantiles', 'duration_ms']);
      const reversed = JSON.parse((await get(served.server, '/v1/models/q/predict?include=quantiles,timestamps')).text) as Record<string, unknown>;
      expect(Object.keys(reversed)).toEqual(['status', 'model_name', 'model_version', 'lookback', 'prediction', 'timestamps', 'quantiles', 'duration_ms']);

      const res = await post(served.server, '/v1/predict?include=timestamps,quantiles', { predictions: [{ model_name: 'q' }, { model_name: 'plain' }, { model_name: 'q_month' }] });
      expect(res.status).toBe(200);
      const items = res.json['predictions'] as Record<string, unknown>[];
      expect(items.map((i) => Object.keys(i))).toEqual([
        ['status', 'model_name', 'model_version', 'lookback', 'prediction', 'timestamps', 'quantiles', 'duration_ms'],
        // No frequency (irregular rows) and no quantile output: both omitted, not an error.
        ['status', 'model_name', 'lookback', 'prediction', 'duration_ms'],
        ['status', 'model_name', 'lookback', 'prediction', 'timestamps', 'quantiles', 'duration_ms'],
      ]);
      // Month ends continue as month ends.
      expect(items[2]!['timestamps']).toEqual(['2024-01-31T00:00:00.000Z', '2024-02-29T00:00:00.000Z', '2024-03-31T00:00:00.000Z']);
    });

    it('fields that cannot be given are omitted: no quantile output, no horizon', async () => {
      const plainDaily = JSON.parse((await get(served.server, '/v1/models/plain_daily/predict?include=timestamps,quantiles')).text) as Record<string, unknown>;
      expect(Object.keys(plainDaily)).toEqual(['status', 'model_name', 'lookback', 'prediction', 'timestamps', 'duration_ms']);
      const wide = await get(served.server, '/v1/models/no_horizon/predict?include=timestamps,quantiles');
      expect(wide.status).toBe(200);
      expect(Object.keys(JSON.parse(wide.text) as object)).toEqual(['status', 'model_name', 'lookback', 'prediction', 'duration_ms']);
    });

    it('an unknown include value is 400 on GET and POST', async () => {
      const one = await get(served.server, '/v1/models/q/predict?include=timestamps,intervals');
      expect(one.status).toBe(400);
      expect(JSON.parse(one.text)).toEqual({
        status: 'BadRequest',
        error_message: "Query parameter include takes timestamps and quantiles (comma-separated), not 'intervals'",
      });
      const many = await post(served.server, '/v1/predict?include=Timestamps', {});
      expect(many.status).toBe(400);
      expect(many.json).toEqual({
        status: 'BadRequest',
        error_message: "Query parameter include takes timestamps and quantiles (comma-separated), not 'Timestamps'",
      });
    });

    it('multivariate quantiles are laid out like the prediction', async () => {
      const expected = await direct(multi.bytes, [2, 20.25, 3, 30.125, 4, 40.5, 5, 50.75].slice(-6), [1, 3, 2]);
      const res = await get(served.server, '/v1/models/multi/predict?include=quantiles');
      expect(res.status).toBe(200);
      expect(res.text).toContain(`"prediction":${raw(expected.point)}`);
      expect(res.text).toContain(`"quantiles":{"0.25":[${level(expected.quantiles, 2, 0).join(',')}],"0.75":[${level(expected.quantiles, 2, 1).join(',')}]}`);
    });
  });

  describe('quantile models', () => {
    it('a quantile output whose shape disagrees with the levels, or that does not exist, is a load error', async () => {
      const models = JSON.parse((await get(served.server, '/v1/models?status=true')).text) as { name: string; status: string; error: string | null }[];
      const byName = new Map(models.map((m) => [m.name, m]));
      expect(byName.get('bad_layout')).toMatchObject({
        status: 'Error',
        error: "quantile output 'quantiles' has shape [batch, 3, 4], but output 'forecast' [batch, 3] with 3 quantile levels needs [batch, 3, 3]",
      });
      expect(byName.get('bad_output')).toMatchObject({
        status: 'Error',
        error: "the model has no output 'nope' (its outputs: 'forecast', 'quantiles')",
      });
    });

    it('a quantile output not monotone in the level is served and counted in a metric', async () => {
      const before = await metric(served.server, 'forecastd_quantile_crossings_total{model="crossing"}');
      const res = await get(served.server, '/v1/models/crossing/predict?include=quantiles');
      expect(res.status).toBe(200);
      expect(await metric(served.server, 'forecastd_quantile_crossings_total{model="crossing"}')).toBe(before + 1);
      // A monotone model never counts.
      await get(served.server, '/v1/models/plain_daily/predict');
      expect(await metric(served.server, 'forecastd_quantile_crossings_total{model="q"}')).toBe(0);
    });
  });

  describe('GET /v1/models/:name', () => {
    /** The model's evaluation once finished: its mae and skill, as the details must repeat them. */
    async function evaluated(name: string): Promise<{ mae: number | null; skill: number | null }> {
      return until(`evaluation of ${name}`, async () => {
        const body = JSON.parse((await get(served.server, `/v1/models/${name}/evaluation`)).text) as { status: string; mae?: number; skill?: number };
        return body.status === 'Computing' ? undefined : { mae: body.mae ?? null, skill: body.skill ?? null };
      });
    }

    it('gives the SPEC fields of a model, with horizon, quantiles and frequency', async () => {
      const q = await evaluated('q');
      expect(typeof q.mae).toBe('number');
      const res = await get(served.server, '/v1/models/q');
      expect(res.status).toBe(200);
      expect(res.text).toBe(
        '{"name":"q","from":"file:models/q.onnx","datasets":["daily"],"status":"Ready","error":null,"version":"2.1","lookback":4,' +
          `"horizon":3,"variables":1,"quantiles":[0.1,0.5,0.9],"frequency":"P1D","mae":${JSON.stringify(q.mae)},"skill":${JSON.stringify(q.skill)}}`,
      );
      expect(JSON.parse((await get(served.server, '/v1/models/plain')).text)).toEqual({
        name: 'plain', from: 'file:models/plain.onnx', datasets: ['irregular'], status: 'Ready', error: null, version: null,
        lookback: 4, horizon: 3, variables: 1, quantiles: null, frequency: null, ...(await evaluated('plain')),
      });
      expect(JSON.parse((await get(served.server, '/v1/models/client')).text)).toMatchObject({ datasets: [], horizon: 3, quantiles: LEVELS, frequency: null });
      expect(JSON.parse((await get(served.server, '/v1/models/no_horizon')).text)).toMatchObject({ status: 'Ready', horizon: null });
      expect(JSON.parse((await get(served.server, '/v1/models/bad_layout')).text)).toMatchObject({ status: 'Error', horizon: null, lookback: null });
    });

    it('an unknown model is 404 with the shared error body', async () => {
      const res = await get(served.server, '/v1/models/nope');
      expect(res.status).toBe(404);
      expect(JSON.parse(res.text)).toEqual({ status: 'NotFound', error_message: 'Model nope not found' });
      const post405 = await fetch(`${served.server.url}/v1/models/q`, { method: 'DELETE' });
      expect(post405.status).toBe(405);
      expect(post405.headers.get('allow')).toBe('GET');
    });

    it('a model without datasets answers the Spice route with an error saying where to send series', async () => {
      const res = await get(served.server, '/v1/models/client/predict');
      expect(res.status).toBe(500);
      expect(JSON.parse(res.text)).toMatchObject({
        status: 'InternalError',
        error_message: 'Model client has no dataset to read a window from; send it series with POST /v1/timeseries/forecast',
      });
    });
  });

  describe('POST /v1/timeseries/forecast', () => {
    const SERIES = [3.5, 4.25, 5, 4.75, 6.5, 7.125];

    it('a univariate series: the newest L points, cut to the horizon, with timestamps and quantiles', async () => {
      const expected = await direct(q.bytes, SERIES.slice(-4), [1, 4, 1]);
      const startedAt = Math.floor(Date.now() / 1000);
      const res = await post(served.server, '/v1/timeseries/forecast', {
        model: 'client',
        inputs: [uni('sales', SERIES, 'D', '2024-02-25T00:00:00Z')],
        options: { horizon: 2, quantiles: [0.1, 0.9] },
        metadata: { team: 'x' },
        extra_field: true,
      });
      expect(res.status).toBe(200);
      expect(Object.keys(res.json)).toEqual(['id', 'created_at', 'status', 'model', 'outputs', 'usage']);
      expect(res.json['id']).toMatch(/^[0-9a-f-]{36}$/);
      expect(res.json['created_at']).toBeGreaterThanOrEqual(startedAt);
      expect(res.json).toMatchObject({ status: 'completed', model: 'client', usage: { prompt_tokens: 6, completion_tokens: 2, total_tokens: 8 } });
      const output = (res.json['outputs'] as Record<string, unknown>[])[0]!;
      expect(Object.keys(output)).toEqual(['type', 'id', 'status', 'content']);
      expect(output).toMatchObject({ type: 'time_series_forecast', status: 'completed' });
      expect(res.text).toContain(
        `"content":[{"type":"univariate_time_series","name":"sales","mean_forecast":${raw(expected.point.slice(0, 2))},"frequency":"D",` +
          // Leap year: Feb 25 + 6 days.
          `"start_timestamp":"2024-03-02T00:00:00Z","quantiles":{"0.1":[${level(expected.quantiles, 3, 0).slice(0, 2).join(',')}],"0.9":[${level(expected.quantiles, 3, 2).slice(0, 2).join(',')}]}}]`,
      );
      expect(res.text).not.toContain('metadata');
    });

    it('every frequency spelling is accepted and echoed as sent; calendar steps clamp to the month end', async () => {
      const cases: [string, string, string][] = [
        ['second', '2024-01-01T00:00:00Z', '2024-01-01T00:00:06Z'],
        ['S', '2024-01-01T00:00:00Z', '2024-01-01T00:00:06Z'],
        ['minute', '2024-01-01T00:00:00Z', '2024-01-01T00:06:00Z'],
        ['T', '2024-01-01T00:00:00Z', '2024-01-01T00:06:00Z'],
        ['hour', '2024-01-01T20:00:00Z', '2024-01-02T02:00:00Z'],
        ['H', '2024-01-01T20:00:00Z', '2024-01-02T02:00:00Z'],
        ['day', '2023-12-30T00:00:00Z', '2024-01-05T00:00:00Z'],
        ['D', '2023-12-30T00:00:00Z', '2024-01-05T00:00:00Z'],
        ['week', '2024-01-01T00:00:00Z', '2024-02-12T00:00:00Z'],
        ['W', '2024-01-01T00:00:00Z', '2024-02-12T00:00:00Z'],
        // Six months from Aug 31: Feb 29 (leap year), not Mar 2.
        ['month', '2023-08-31T00:00:00Z', '2024-02-29T00:00:00Z'],
        ['M', '2023-08-31T00:00:00Z', '2024-02-29T00:00:00Z'],
        ['quarter', '2022-11-30T12:00:00Z', '2024-05-30T12:00:00Z'],
        ['Q', '2022-11-30T12:00:00Z', '2024-05-30T12:00:00Z'],
        ['year', '2018-02-28T00:00:00Z', '2024-02-28T00:00:00Z'],
        ['Y', '2018-02-28T00:00:00Z', '2024-02-28T00:00:00Z'],
      ];
      const res = await post(
        served.server,
        '/v1/timeseries/forecast',
        forecast('client', cases.map(([f, start], i) => uni(`s${i}`, SERIES, f, start))),
      );
      expect(res.status).toBe(200);
      const contents = (res.json['outputs'] as { content: { frequency: string; start_timestamp: string }[] }[]).map((o) => o.content[0]!);
      expect(contents.map((c) => [c.frequency, c.start_timestamp])).toEqual(cases.map(([f, , out]) => [f, out]));
    });

    it('calendar steps count from the origin, in the origin\'s zone; no zone is UTC; no start gives no start', async () => {
      const one = async (series: number[], frequency: string, start?: string): Promise<Record<string, unknown>> => {
        const res = await post(served.server, '/v1/timeseries/forecast', forecast('client', [uni('a', series, frequency, start)]));
        expect(res.status).toBe(200);
        return (res.json['outputs'] as { content: Record<string, unknown>[] }[])[0]!.content[0]!;
      };
      // Jan 31 + 4 months: May 31 (the 31st again, not the 29th of a clamped February).
      expect((await one([1, 2, 3, 4], 'M', '2024-01-31T00:00:00Z'))['start_timestamp']).toBe('2024-05-31T00:00:00Z');
      expect((await one([1, 2, 3, 4, 5], 'M', '2023-10-31T00:00:00Z'))['start_timestamp']).toBe('2024-03-31T00:00:00Z');
      expect((await one([1, 2, 3, 4], 'M', '2023-10-31T00:00:00Z'))['start_timestamp']).toBe('2024-02-29T00:00:00Z');
      // Feb 29 + 4 years is Feb 29 again; + 5 is Feb 28.
      expect((await one([1, 2, 3, 4], 'Y', '2020-02-29T00:00:00Z'))['start_timestamp']).toBe('2024-02-29T00:00:00Z');
      expect((await one([1, 2, 3, 4, 5], 'Y', '2020-02-29T00:00:00Z'))['start_timestamp']).toBe('2025-02-28T00:00:00Z');
      // Jan 31 00:00 at +02:00 plus 4 months is May 31 00:00 there: May 30 22:00 UTC.
      expect((await one([1, 2, 3, 4], 'M', '2024-01-31T00:00:00+02:00'))['start_timestamp']).toBe('2024-05-30T22:00:00Z');
      expect((await one([1, 2, 3, 4], 'H', '2024-01-31T10:30:00-0530'))['start_timestamp']).toBe('2024-01-31T20:00:00Z');
      expect((await one([1, 2, 3, 4], 'D', '2024-01-31T00:00:00'))['start_timestamp']).toBe('2024-02-04T00:00:00Z');
      expect((await one([1, 2, 3, 4], 'D', '2024-01-31'))['start_timestamp']).toBe('2024-02-04T00:00:00Z');
      expect((await one([1, 2, 3, 4], 'D', '20240131T000000Z'))['start_timestamp']).toBe('2024-02-04T00:00:00Z');
      const noStart = await one([1, 2, 3, 4], 'D');
      expect(Object.keys(noStart)).toEqual(['type', 'name', 'mean_forecast', 'frequency']);
    });

    it('multivariate: rows of V values per step in, rows of V\' values per step out, quantiles alike', async () => {
      const series = [[1, 10], [2, 20], [3, 30.5], [4, 41.25]];
      const expected = await direct(multi.bytes, series.slice(-3).flat(), [1, 3, 2]);
      const res = await post(served.server, '/v1/timeseries/forecast', {
        model: 'multi',
        inputs: [{ type: 'multivariate_time_series', name: 'pair', series, frequency: 'week', start_timestamp: '2024-01-01T00:00:00Z' }],
        options: { horizon: 2, quantiles: [0.75] },
      });
      expect(res.status).toBe(200);
      const p = expected.point.map(formatFloat32);
      const q75 = level(expected.quantiles, 2, 1);
      expect(res.text).toContain(
        `"content":[{"type":"multivariate_time_series","name":"pair","mean_forecast":[[${p[0]},${p[1]}],[${p[2]},${p[3]}]],"frequency":"week",` +
          `"start_timestamp":"2024-01-29T00:00:00Z","quantiles":{"0.75":[[${q75[0]},${q75[1]}],[${q75[2]},${q75[3]}]]}}]`,
      );
      expect(res.json['usage']).toEqual({ prompt_tokens: 8, completion_tokens: 4, total_tokens: 12 });
    });

    it('inputs that fail on their own get status error with code, message, param and type: the response is partial', async () => {
      const res = await post(
        served.server,
        '/v1/timeseries/forecast',
        forecast('client', [uni('good', SERIES), uni('short', [1, 2, 3]), uni('holey', [1, 2, null, 4, 5]), uni('text', [1, 2, '3', 4])]),
      );
      expect(res.status).toBe(200);
      expect(res.json['status']).toBe('partial');
      const outputs = res.json['outputs'] as Record<string, unknown>[];
      expect(outputs.map((o) => o['status'])).toEqual(['completed', 'error', 'error', 'error']);
      expect(Object.keys(outputs[1]!)).toEqual(['type', 'id', 'status', 'content', 'error']);
      expect(outputs[1]).toMatchObject({
        content: [],
        error: { code: '400', type: 'invalid_series', param: 'inputs[1].series', message: 'the series has 3 time steps; model client needs at least 4 (its lookback)' },
      });
      expect(outputs[2]!['error']).toEqual({
        code: '400', type: 'invalid_series', param: 'inputs[2].series[2]', message: 'inputs[2].series[2] is null; every value must be a number',
      });
      expect(outputs[3]!['error']).toMatchObject({ type: 'invalid_series', param: 'inputs[3].series[2]' });
      // Only completed inputs count.
      expect(res.json['usage']).toEqual({ prompt_tokens: 6, completion_tokens: 3, total_tokens: 9 });
    });

    it('every input failing on its own is status error with 200', async () => {
      const res = await post(served.server, '/v1/timeseries/forecast', forecast('client', [uni('a', [1]), uni('b', [])]));
      expect(res.status).toBe(200);
      expect(res.json['status']).toBe('error');
      expect(res.json['usage']).toEqual({ prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 });
    });

    it('the wrong series type or width for the model is an input error', async () => {
      const res = await post(served.server, '/v1/timeseries/forecast', {
        model: 'multi',
        inputs: [
          uni('flat', [1, 2, 3, 4]),
          { type: 'multivariate_time_series', name: 'narrow', series: [[1, 2], [3], [4, 5]], frequency: 'D' },
        ],
        options: { horizon: 1 },
      });
      expect(res.status).toBe(200);
      const errors = (res.json['outputs'] as { error: Record<string, string> }[]).map((o) => o.error);
      expect(errors[0]).toEqual({
        code: '400', type: 'invalid_series', param: 'inputs[0].type',
        message: 'model multi takes 2 variables per time step; send a multivariate_time_series with rows of 2 values',
      });
      expect(errors[1]).toEqual({ code: '400', type: 'invalid_series', param: 'inputs[1].series[1]', message: 'inputs[1].series[1] has 1 value; model multi takes 2 per time step' });
    });

    it('request errors: 400/404 with {"error": {code, message, param, type}}', async () => {
      const cases: [unknown, number, string, string | null][] = [
        ['{"model": ', 400, 'invalid_request', null],
        ['[1, 2]', 400, 'invalid_request', null],
        [{ inputs: [uni('a', SERIES)], options: { horizon: 1 } }, 400, 'invalid_request', 'model'],
        [{ model: 'client', options: { horizon: 1 } }, 400, 'invalid_request', 'inputs'],
        [forecast('client', []), 400, 'invalid_request', 'inputs'],
        [{ model: 'client', inputs: [uni('a', SERIES)] }, 400, 'invalid_request', 'options'],
        [forecast('client', [uni('a', SERIES)], {}), 400, 'invalid_request', 'options.horizon'],
        [forecast('client', [uni('a', SERIES)], { horizon: '2' }), 400, 'invalid_horizon', 'options.horizon'],
        [forecast('client', [uni('a', SERIES)], { horizon: 0 }), 400, 'invalid_horizon', 'options.horizon'],
        [forecast('client', [uni('a', SERIES)], { horizon: 4 }), 400, 'invalid_horizon', 'options.horizon'],
        [forecast('client', [uni('a', SERIES)], { horizon: 1, quantiles: [0.5, 0.3] }), 400, 'invalid_quantile', 'options.quantiles[1]'],
        [forecast('client', [uni('a', SERIES)], { horizon: 1, quantiles: [1.5] }), 400, 'invalid_quantile', 'options.quantiles[0]'],
        [forecast('plain_daily', [uni('a', SERIES)], { horizon: 1, quantiles: [0.5] }), 400, 'invalid_quantile', 'options.quantiles[0]'],
        [forecast('client', [uni('a', SERIES, 'd')]), 400, 'invalid_frequency', 'inputs[0].frequency'],
        [forecast('client', [uni('a', SERIES, 'daily')]), 400, 'invalid_frequency', 'inputs[0].frequency'],
        [forecast('client', [{ ...uni('a', SERIES), type: 'Univariate_time_series' }]), 400, 'invalid_request', 'inputs[0].type'],
        [forecast('client', [{ type: 'univariate_time_series', series: SERIES, frequency: 'D' }]), 400, 'invalid_request', 'inputs[0].name'],
        [forecast('client', [uni('a', SERIES), uni('a', SERIES)]), 400, 'invalid_request', 'inputs[1].name'],
        [forecast('client', [{ ...uni('a', SERIES), series: 'x' }]), 400, 'invalid_request', 'inputs[0].series'],
        [forecast('client', [uni('a', SERIES, 'D', '2024-02-30T00:00:00Z')]), 400, 'invalid_request', 'inputs[0].start_timestamp'],
        [forecast('client', [uni('a', SERIES, 'D', 'yesterday')]), 400, 'invalid_request', 'inputs[0].start_timestamp'],
        [forecast('nope', [uni('a', SERIES)]), 404, 'model_not_found', 'model'],
        [forecast('no_horizon', [uni('a', SERIES)]), 400, 'invalid_request', 'model'],
        [forecast('bad_layout', [uni('a', SERIES)]), 500, 'model_not_ready', 'model'],
      ];
      for (const [body, status, type, param] of cases) {
        const res = await post(served.server, '/v1/timeseries/forecast', body);
        expect([res.status, res.json], JSON.stringify(body)).toEqual([status, { error: { code: String(status), message: expect.any(String), param, type } }]);
      }
      const horizon = await post(served.server, '/v1/timeseries/forecast', forecast('client', [uni('a', SERIES)], { horizon: 4 }));
      expect((horizon.json['error'] as Record<string, string>)['message']).toBe('"options.horizon" is 4; model client forecasts 1 to 3 steps');
      const quantile = await post(served.server, '/v1/timeseries/forecast', forecast('client', [uni('a', SERIES)], { horizon: 1, quantiles: [0.5, 0.3] }));
      expect((quantile.json['error'] as Record<string, string>)['message']).toBe('quantile 0.3 is not one model client forecasts: its levels are 0.1, 0.5, 0.9');
    });

    it('limits: 1000 inputs, 200,000 values, 4 MiB bodies (413 beyond, with the KServe error body)', async () => {
      const tooMany = await post(served.server, '/v1/timeseries/forecast', forecast('client', Array.from({ length: 1001 }, (_, i) => uni(`s${i}`, [1, 2, 3, 4]))));
      expect(tooMany.status).toBe(400);
      expect(tooMany.json['error']).toMatchObject({ type: 'invalid_request', param: 'inputs', message: '"inputs" holds 1001 series; at most 1000 are allowed in one request' });
      const big = Array.from({ length: 200_001 }, (_, i) => i % 7);
      const tooLong = await post(served.server, '/v1/timeseries/forecast', forecast('client', [uni('a', big)]));
      expect(tooLong.status).toBe(400);
      expect(tooLong.json['error']).toMatchObject({ type: 'invalid_request', message: 'the request holds more than 200000 values; send fewer or shorter series' });
      // 200,000 values in a body of about 3.9 MB is served.
      const fits = Array.from({ length: 200_000 }, (_, i) => 1000 + (i % 97) / 8);
      const bigBody = JSON.stringify(forecast('client', [uni('a', fits)], { horizon: 1 }));
      expect(bigBody.length).toBeGreaterThan(1024 * 1024);
      const answer = await post(served.server, '/v1/timeseries/forecast', bigBody);
      expect(answer.status).toBe(200);
      expect(answer.json['usage']).toEqual({ prompt_tokens: 200_000, completion_tokens: 1, total_tokens: 200_001 });
      const over = await fetch(`${served.server.url}/v1/timeseries/forecast`, { method: 'POST', body: 'x'.repeat(4 * 1024 * 1024 + 1) });
      expect(over.status).toBe(413);
      expect(await over.json()).toEqual({
        error: { code: '413', message: `The request body is ${4 * 1024 * 1024 + 1} bytes; the limit is ${4 * 1024 * 1024} bytes`, param: null, type: 'payload_too_large' },
      });
    });

    it('large bodies (parsed off the event loop) give the same answers and errors as small ones', async () => {
      const long = Array.from({ length: 20_000 }, (_, i) => 1 + (i % 13) / 4);
      const rows = Array.from({ length: 10_000 }, (_, i) => [i % 5, 10 + (i % 7)]);
      const holey: unknown[] = [...long];
      holey[12_345] = null;
      const ragged = rows.map((r) => [...r]);
      ragged[9_000] = [1];
      const body = {
        model: 'multi',
        inputs: [
          { type: 'multivariate_time_series', name: 'rows', series: rows, frequency: 'D', start_timestamp: '2024-01-01T00:00:00Z' },
          { type: 'multivariate_time_series', name: 'ragged', series: ragged, frequency: 'D' },
          { ...uni('flat', long), name: 'flat' },
        ],
        options: { horizon: 2, quantiles: [0.25] },
      };
      expect(JSON.stringify(body).length).toBeGreaterThan(64 * 1024);
      const res = await post(served.server, '/v1/timeseries/forecast', body);
      expect(res.status).toBe(200);
      expect(res.json['status']).toBe('partial');
      const expected = await direct(multi.bytes, rows.slice(-3).flat(), [1, 3, 2]);
      const p = expected.point.map(formatFloat32);
      expect(res.text).toContain(`"name":"rows","mean_forecast":[[${p[0]},${p[1]}],[${p[2]},${p[3]}]],"frequency":"D","start_timestamp":"2051-05-19T00:00:00Z"`);
      const errors = (res.json['outputs'] as { error?: Record<string, string> }[]).map((o) => o.error);
      expect(errors[1]).toEqual({ code: '400', type: 'invalid_series', param: 'inputs[1].series[9000]', message: 'inputs[1].series[9000] has 1 value; model multi takes 2 per time step' });
      expect(errors[2]).toMatchObject({ type: 'invalid_series', param: 'inputs[2].type' });

      const nulls = await post(served.server, '/v1/timeseries/forecast', forecast('client', [uni('holey', holey)]));
      expect(((nulls.json['outputs'] as { error: Record<string, string> }[])[0]!.error)).toMatchObject({ param: 'inputs[0].series[12345]', type: 'invalid_series' });

      const broken = await post(served.server, '/v1/timeseries/forecast', JSON.stringify(forecast('client', [uni('a', long)])).slice(0, -2));
      expect(broken.status).toBe(400);
      expect(broken.json['error']).toMatchObject({ code: '400', type: 'invalid_request', param: null, message: expect.stringMatching(/^The request body is not valid JSON/) });
      const bytes = Buffer.from(JSON.stringify(forecast('client', [uni('a', long)])));
      bytes[100] = 0xff;
      const notUtf8 = await fetch(`${served.server.url}/v1/timeseries/forecast`, { method: 'POST', body: bytes });
      expect(notUtf8.status).toBe(400);
      expect(await notUtf8.json()).toEqual({ error: { code: '400', type: 'invalid_request', param: null, message: 'The request body is not valid UTF-8 (JSON text must be UTF-8)' } });
    });

    it('405 with Allow and the KServe error body', async () => {
      const res = await get(served.server, '/v1/timeseries/forecast');
      expect(res.status).toBe(405);
      expect(res.headers.get('allow')).toBe('POST');
      expect(JSON.parse(res.text)).toEqual({ error: { code: '405', message: 'Method GET is not allowed here; use POST', param: null, type: 'method_not_allowed' } });
    });

    it('one request of 100 series is a handful of ORT runs, not 100 (batch-size metric)', async () => {
      const count = 'forecastd_batch_size_count{model="client"}';
      const sum = 'forecastd_batch_size_sum{model="client"}';
      const [runsBefore, windowsBefore] = [await metric(served.server, count), await metric(served.server, sum)];
      const inputs = Array.from({ length: 100 }, (_, i) => uni(`s${i}`, [i, i + 0.5, i + 1.25, i + 2]));
      const res = await post(served.server, '/v1/timeseries/forecast', forecast('client', inputs, { horizon: 3 }));
      expect(res.status).toBe(200);
      expect(res.json['status']).toBe('completed');
      // One run slot, batches of at most 64: 100 windows are exactly two runs.
      expect(await metric(served.server, sum)).toBe(windowsBefore + 100);
      expect(await metric(served.server, count)).toBe(runsBefore + 2);
      // And each series got its own forecast.
      const expected = await direct(q.bytes, [42, 42.5, 43.25, 44], [1, 4, 1]);
      const out = (res.json['outputs'] as { content: { name: string }[] }[])[42]!.content[0]!;
      expect(out.name).toBe('s42');
      expect(res.text).toContain(`"name":"s42","mean_forecast":${raw(expected.point)}`);
    });

    it('concurrent requests share runs too', async () => {
      const count = 'forecastd_batch_size_count{model="client"}';
      const sum = 'forecastd_batch_size_sum{model="client"}';
      const [runsBefore, windowsBefore] = [await metric(served.server, count), await metric(served.server, sum)];
      const requests = Array.from({ length: 8 }, (_, r) =>
        post(served.server, '/v1/timeseries/forecast', forecast('client', Array.from({ length: 20 }, (_, i) => uni(`s${i}`, [r, i, 1, 2])))),
      );
      const answers = await Promise.all(requests);
      expect(answers.map((a) => a.status)).toEqual(Array(8).fill(200));
      expect(await metric(served.server, sum)).toBe(windowsBefore + 160);
      expect(await metric(served.server, count)).toBeLessThan(runsBefore + 160 / 20);
    });
  });

  describe('GET /v1/timeseries/models', () => {
    it('lists each model with lookback, horizon, variables, quantile levels and readiness', async () => {
      const res = await get(served.server, '/v1/timeseries/models');
      expect(res.status).toBe(200);
      const models = (JSON.parse(res.text) as { models: Record<string, unknown>[] }).models;
      const byName = new Map(models.map((m) => [m['name'], m]));
      expect(byName.get('client')).toEqual({ name: 'client', status: 'Ready', ready: true, lookback: 4, horizon: 3, variables: 1, quantiles: LEVELS });
      expect(byName.get('multi')).toEqual({ name: 'multi', status: 'Ready', ready: true, lookback: 3, horizon: 2, variables: 2, quantiles: [0.25, 0.75] });
      expect(byName.get('no_horizon')).toMatchObject({ ready: false, horizon: null });
      expect(byName.get('bad_layout')).toMatchObject({ status: 'Error', ready: false });
    });
  });
});

describe('the KServe routes behind runtime.auth', () => {
  const served = servePod((pod) => {
    pod.write('models/q.onnx', q.bytes);
    pod.write(
      'spicepod.yaml',
      `version: v1beta1\nkind: Spicepod\nname: auth\nruntime:\n  auth:\n    api-key:\n      enabled: true\n      keys: [k-1]\nmodels:\n  - from: file:models/q.onnx\n    name: client\n`,
    );
  });

  it('401 with the KServe error body without a key; served with one', async () => {
    const body = JSON.stringify(forecast('client', [uni('a', [1, 2, 3, 4])], { horizon: 1 }));
    const denied = await fetch(`${served.server.url}/v1/timeseries/forecast`, { method: 'POST', body });
    expect(denied.status).toBe(401);
    expect(await denied.json()).toEqual({
      error: { code: '401', message: 'Missing or invalid API key: send X-API-Key: KEY or Authorization: Bearer KEY', param: null, type: 'unauthorized' },
    });
    const models = await fetch(`${served.server.url}/v1/timeseries/models`);
    expect(models.status).toBe(401);
    const answer = await fetch(`${served.server.url}/v1/timeseries/forecast`, { method: 'POST', body, headers: { authorization: 'Bearer k-1' } });
    expect(answer.status).toBe(200);
    expect(((await answer.json()) as Record<string, unknown>)['status']).toBe('completed');
  });
});
