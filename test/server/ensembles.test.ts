import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatFloat32 } from '../../src/http/float-format.js';
import { startServer, type ForecastdServer } from '../../src/server/start.js';
import { quantileModel, seededRandom, uniformWeights } from '../../tools/onnx-builder.js';
import { PodDir, dailyCsv, linearFixture, replaceFile } from './fixtures.js';

/**
 * Ensembles and variants end to end (SPEC "Ensembles and variants"): a real pod with real ONNX models built
 * here, the real addon and real sockets. Every ensemble answer is compared with its members' own answers,
 * fetched from the same server and combined in the test; variants are counted over many keys.
 */

const SERIES = Array.from({ length: 40 }, (_, i) => 10 + Math.sin(i / 3) * 4 + i * 0.25);

// Three linear members with different lookbacks (4, 6, 5), horizon 3, float32.
const a = linearFixture({ lookback: 4, horizon: 3, seed: 1 });
const b = linearFixture({ lookback: 6, horizon: 3, seed: 2 });
const c = linearFixture({ lookback: 5, horizon: 3, seed: 3 });
// Horizon 4: an ensemble with it cannot serve.
const long = linearFixture({ lookback: 4, horizon: 4, seed: 4 });

function quantileFixture(seed: number, lookback: number): Uint8Array {
  const random = seededRandom(seed);
  const offsets: number[] = [];
  for (let i = 0; i < 3; i++) for (let q = 0; q < 3; q++) offsets.push((q - 1) * (0.5 + 0.25 * i + seed / 10));
  return quantileModel({
    lookback,
    horizon: 3,
    weights: uniformWeights(random, lookback * 3, 0.5),
    bias: uniformWeights(random, 3, 1),
    offsets,
    levels: 3,
  });
}

function podText(o: { blendWeights?: string; split?: string; longFrom?: string } = {}): string {
  return `
version: v1beta1
kind: Spicepod
name: ensembles
datasets:
  - from: file:data/daily.csv
    name: daily
models:
  - { from: file:models/a.onnx, name: a, datasets: [daily] }
  - { from: file:models/b.onnx, name: b, datasets: [daily] }
  - { from: file:models/c.onnx, name: c, datasets: [daily] }
  - { from: ${o.longFrom ?? 'file:models/long.onnx'}, name: long, datasets: [daily] }
  - from: file:models/qa.onnx
    name: qa
    datasets: [daily]
    params: { quantiles: [0.1, 0.5, 0.9], quantile_output: quantiles }
  - from: file:models/qb.onnx
    name: qb
    datasets: [daily]
    params: { quantiles: [0.1, 0.5, 0.9], quantile_output: quantiles }
  - from: file:models/missing.onnx
    name: broken
    datasets: [daily]
  - from: ensemble:a,b,c
    name: blend
    params: { version: "3" }
  - from: ensemble:a,b,c
    name: blend_nocache
    params: { cache_predictions: false }
  - from: ensemble:a,b,c
    name: med
    params: { combine: median }
  - from: ensemble:a,b,c
    name: weighted
    params: { combine: weighted, weights: ${o.blendWeights ?? '[0.7, 0.2, 0.1]'} }
  - from: ensemble:qa,qb
    name: qblend
  - from: ensemble:qa,a
    name: mixed_levels
  - from: ensemble:blend,qa
    name: nested
  - from: ensemble:a,long
    name: bad_horizon
  - from: ensemble:a,broken
    name: with_broken
  - from: variants:${o.split ?? 'a=90,b=10'}
    name: ab
    params: { sticky: "header:X-User" }
  - from: variants:a=50,c=50
    name: coin
  - from: variants:a=0,b=1,broken=5
    name: zero
  - from: variants:blend=1,a=1
    name: by_ensemble
`;
}

async function get(server: ForecastdServer, path: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string; json: Record<string, unknown> }> {
  const res = await fetch(server.url + path, { headers });
  const text = await res.text();
  return { status: res.status, text, json: JSON.parse(text) as Record<string, unknown> };
}

async function post(server: ForecastdServer, path: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; text: string; json: Record<string, unknown> }> {
  const res = await fetch(server.url + path, { method: 'POST', body: JSON.stringify(body), headers });
  const text = await res.text();
  return { status: res.status, text, json: JSON.parse(text) as Record<string, unknown> };
}

async function prediction(server: ForecastdServer, model: string): Promise<number[]> {
  const res = await get(server, `/v1/models/${model}/predict`);
  expect(res.status, res.text).toBe(200);
  return res.json['prediction'] as number[];
}

/** Σ w_i x_i per step in float64, stored as float32: what the server computes, combined here. */
function weighted(parts: readonly (readonly number[])[], weights: readonly number[]): string[] {
  return parts[0]!.map((_, i) => {
    let sum = 0;
    parts.forEach((p, m) => {
      sum += weights[m]! * Math.fround(p[i]!);
    });
    return formatFloat32(Math.fround(sum));
  });
}

function median(parts: readonly (readonly number[])[]): string[] {
  return parts[0]!.map((_, i) => {
    const column = parts.map((p) => Math.fround(p[i]!)).sort((x, y) => x - y);
    const mid = column.length >> 1;
    return formatFloat32(Math.fround(column.length % 2 === 1 ? column[mid]! : (column[mid - 1]! + column[mid]!) / 2));
  });
}

const printed = (values: readonly number[]): string[] => values.map(formatFloat32);
const third = 1 / 3;

/** The value of one sample line of /metrics, 0 when absent. */
async function metric(server: ForecastdServer, line: string): Promise<number> {
  const text = await (await fetch(server.url + '/metrics')).text();
  const found = text.split('\n').find((l) => l.startsWith(line + ' '));
  return found === undefined ? 0 : Number(found.slice(line.length + 1));
}

describe('ensembles and variants', () => {
  const pod = new PodDir('forecastd-ensembles-');
  let server: ForecastdServer;

  beforeAll(async () => {
    pod.write('data/daily.csv', dailyCsv({ value: SERIES }));
    pod.write('models/a.onnx', a.bytes);
    pod.write('models/b.onnx', b.bytes);
    pod.write('models/c.onnx', c.bytes);
    pod.write('models/long.onnx', long.bytes);
    pod.write('models/qa.onnx', quantileFixture(5, 4));
    pod.write('models/qb.onnx', quantileFixture(6, 7));
    pod.write('spicepod.yaml', podText());
    server = await startServer({ spicepod: pod.dir, port: 0 });
    await server.loaded();
  });

  afterAll(async () => {
    await server?.close();
    pod.remove();
  });

  describe('ensembles', () => {
    it('mean: each member on its own window, combined step by step', async () => {
      const parts = [await prediction(server, 'a'), await prediction(server, 'b'), await prediction(server, 'c')];
      for (const name of ['blend', 'blend_nocache']) {
        const res = await get(server, `/v1/models/${name}/predict`);
        expect(res.status, res.text).toBe(200);
        expect(res.json['status']).toBe('Success');
        expect(res.json['model_name']).toBe(name);
        // The largest member lookback.
        expect(res.json['lookback']).toBe(6);
        expect(printed(res.json['prediction'] as number[])).toEqual(weighted(parts, [third, third, third]));
      }
      // Its own version only from params.version.
      expect((await get(server, '/v1/models/blend/predict')).text).toMatch(/^\{"status":"Success","model_name":"blend","model_version":"3","lookback":6,"prediction":\[/);
      expect((await get(server, '/v1/models/blend_nocache/predict')).json['model_version']).toBeUndefined();
    });

    it('median and weighted', async () => {
      const parts = [await prediction(server, 'a'), await prediction(server, 'b'), await prediction(server, 'c')];
      expect(printed(await prediction(server, 'med'))).toEqual(median(parts));
      expect(printed(await prediction(server, 'weighted'))).toEqual(weighted(parts, [0.7, 0.2, 0.1]));
    });

    it('quantiles are combined level by level when every member has the same levels; timestamps continue the dataset', async () => {
      const qa = await get(server, '/v1/models/qa/predict?include=quantiles,timestamps');
      const qb = await get(server, '/v1/models/qb/predict?include=quantiles,timestamps');
      const res = await get(server, '/v1/models/qblend/predict?include=quantiles,timestamps');
      expect(res.status, res.text).toBe(200);
      expect(printed(res.json['prediction'] as number[])).toEqual(weighted([qa.json['prediction'] as number[], qb.json['prediction'] as number[]], [0.5, 0.5]));
      const levels = ['0.1', '0.5', '0.9'];
      const qq = res.json['quantiles'] as Record<string, number[]>;
      expect(Object.keys(qq)).toEqual(levels);
      for (const level of levels) {
        const parts = [(qa.json['quantiles'] as Record<string, number[]>)[level]!, (qb.json['quantiles'] as Record<string, number[]>)[level]!];
        expect(printed(qq[level]!)).toEqual(weighted(parts, [0.5, 0.5]));
      }
      expect(res.json['timestamps']).toEqual(qa.json['timestamps']);
      expect(res.json['timestamps']).toEqual(['2024-02-10T00:00:00.000Z', '2024-02-11T00:00:00.000Z', '2024-02-12T00:00:00.000Z']);
    });

    it('members with different levels: the ensemble gives no quantiles, and still its point forecast', async () => {
      const parts = [await prediction(server, 'qa'), await prediction(server, 'a')];
      const res = await get(server, '/v1/models/mixed_levels/predict?include=quantiles');
      expect(res.status, res.text).toBe(200);
      expect(res.json['quantiles']).toBeUndefined();
      expect(printed(res.json['prediction'] as number[])).toEqual(weighted(parts, [0.5, 0.5]));
      expect((await get(server, '/v1/models/mixed_levels')).json['quantiles']).toBeNull();
    });

    it('ensembles nest', async () => {
      const blend = await prediction(server, 'blend');
      const qa = await prediction(server, 'qa');
      expect(printed(await prediction(server, 'nested'))).toEqual(weighted([blend, qa], [0.5, 0.5]));
    });

    it('POST /v1/predict serves ensembles like models', async () => {
      const parts = [await prediction(server, 'a'), await prediction(server, 'b'), await prediction(server, 'c')];
      const res = await post(server, '/v1/predict', { predictions: [{ model_name: 'blend' }, { model_name: 'a' }, { model_name: 'med' }] });
      expect(res.status, res.text).toBe(200);
      const items = res.json['predictions'] as Record<string, unknown>[];
      expect(items.map((i) => i['model_name'])).toEqual(['blend', 'a', 'med']);
      expect(printed(items[0]!['prediction'] as number[])).toEqual(weighted(parts, [third, third, third]));
      expect(printed(items[2]!['prediction'] as number[])).toEqual(median(parts));
    });

    it('the KServe route: each member takes its own newest points of the client series', async () => {
      const series = SERIES.slice(0, 12).map((v) => v * 2);
      const body = (model: string): unknown => ({ model, inputs: [{ type: 'univariate_time_series', name: 's', series, frequency: 'D' }], options: { horizon: 3 } });
      const mean = async (model: string): Promise<number[]> => {
        const res = await post(server, '/v1/timeseries/forecast', body(model));
        expect(res.status, res.text).toBe(200);
        const output = (res.json['outputs'] as { content: { mean_forecast: number[] }[] }[])[0]!;
        return output.content[0]!.mean_forecast;
      };
      const parts = [await mean('a'), await mean('b'), await mean('c')];
      expect(printed(await mean('blend'))).toEqual(weighted(parts, [third, third, third]));
      // Fewer points than the largest lookback: the request's error, naming it.
      const short = await post(server, '/v1/timeseries/forecast', {
        model: 'blend',
        inputs: [{ type: 'univariate_time_series', name: 's', series: [1, 2, 3, 4, 5], frequency: 'D' }],
        options: { horizon: 3 },
      });
      expect(short.status).toBe(200);
      expect(short.json['status']).toBe('error');
      expect(JSON.stringify(short.json['outputs'])).toMatch(/6/);
    });

    it('GET /v1/models/:name shows lookback, horizon, quantiles and the members with their weights', async () => {
      const res = await get(server, '/v1/models/weighted');
      expect(res.status).toBe(200);
      expect(res.json).toMatchObject({
        name: 'weighted',
        from: 'ensemble:a,b,c',
        datasets: ['daily'],
        status: 'Ready',
        error: null,
        lookback: 6,
        horizon: 3,
        variables: 1,
        quantiles: null,
        frequency: 'P1D',
        combine: 'weighted',
      });
      const members = res.json['members'] as { name: string; weight: number; status: string }[];
      expect(members.map((m) => m.name)).toEqual(['a', 'b', 'c']);
      expect(members.map((m) => m.weight)).toEqual([0.7, 0.2, 0.1].map((w) => w / (0.7 + 0.2 + 0.1)));
      expect((await get(server, '/v1/models/qblend')).json).toMatchObject({ lookback: 7, quantiles: [0.1, 0.5, 0.9] });
    });

    it('members that disagree on the horizon, or a member in Error, put the ensemble in Error; the rest serve', async () => {
      const listing = (await get(server, '/v1/models?status=true')).json as unknown as { name: string; status: string; error: string | null }[];
      const byName = new Map(listing.map((m) => [m.name, m]));
      expect(byName.get('bad_horizon')).toMatchObject({ status: 'Error' });
      expect(byName.get('bad_horizon')!.error).toMatch(/horizon: a has 3, long has 4/);
      expect(byName.get('with_broken')).toMatchObject({ status: 'Error' });
      expect(byName.get('with_broken')!.error).toMatch(/member broken/);
      expect(byName.get('blend')).toMatchObject({ status: 'Ready', error: null });
      const res = await get(server, '/v1/models/bad_horizon/predict');
      expect(res.status).toBe(500);
      expect(res.json).toMatchObject({ status: 'InternalError', model_name: 'bad_horizon' });
      expect(res.json['error_message']).toMatch(/members disagree on the horizon/);
      const broken = await get(server, '/v1/models/with_broken/predict');
      expect(broken.status).toBe(500);
      expect(broken.json['error_message']).toMatch(/member broken/);
    });

    it('with the cache on, an unchanged ensemble answer is served from the cache', async () => {
      await prediction(server, 'blend');
      const before = await metric(server, 'forecastd_prediction_cache_hits_total{model="blend"}');
      const again = await get(server, '/v1/models/blend/predict');
      expect(again.status).toBe(200);
      expect(await metric(server, 'forecastd_prediction_cache_hits_total{model="blend"}')).toBe(before + 1);
    });
  });

  describe('variants', () => {
    it('answers keep model_name and add the member as variant, right after it', async () => {
      const res = await get(server, '/v1/models/ab/predict', { 'x-user': 'someone' });
      expect(res.status, res.text).toBe(200);
      expect(res.text).toMatch(/^\{"status":"Success","model_name":"ab","variant":"(a|b)","lookback":\d,"prediction":\[/);
      const variant = res.json['variant'] as string;
      expect(res.json['prediction']).toEqual(await prediction(server, variant));
    });

    it('a sticky key always gets the same member; over many keys the split follows the weights', async () => {
      const counts = { a: 0, b: 0 };
      const before = {
        a: await metric(server, 'forecastd_variant_requests_total{model="ab",variant="a"}'),
        b: await metric(server, 'forecastd_variant_requests_total{model="ab",variant="b"}'),
      };
      const keys = 2000;
      for (let start = 0; start < keys; start += 100) {
        const answers = await Promise.all(
          Array.from({ length: 100 }, (_, i) => get(server, '/v1/models/ab/predict', { 'x-user': `user-${start + i}` })),
        );
        for (const res of answers) {
          expect(res.status).toBe(200);
          counts[res.json['variant'] as 'a' | 'b']++;
        }
      }
      // Binomial(2000, 0.9): mean 1800, sd 13.4; five sd either side.
      expect(counts.a).toBeGreaterThan(1800 - 67);
      expect(counts.a).toBeLessThan(1800 + 67);
      expect(counts.a + counts.b).toBe(keys);
      expect(await metric(server, 'forecastd_variant_requests_total{model="ab",variant="a"}')).toBe(before.a + counts.a);
      expect(await metric(server, 'forecastd_variant_requests_total{model="ab",variant="b"}')).toBe(before.b + counts.b);
      // Stickiness under a fixed key, on GET and POST alike.
      const first = (await get(server, '/v1/models/ab/predict', { 'x-user': 'fixed' })).json['variant'];
      for (let i = 0; i < 20; i++) expect((await get(server, '/v1/models/ab/predict', { 'x-user': 'fixed' })).json['variant']).toBe(first);
      const many = await post(server, '/v1/predict', { predictions: Array.from({ length: 50 }, () => ({ model_name: 'ab' })) }, { 'x-user': 'fixed' });
      expect((many.json['predictions'] as { variant: string }[]).every((p) => p.variant === first)).toBe(true);
    });

    it('without a key each POST item is its own random draw, within binomial bounds', async () => {
      const res = await post(server, '/v1/predict', { predictions: Array.from({ length: 1000 }, () => ({ model_name: 'coin' })) });
      expect(res.status).toBe(200);
      const items = res.json['predictions'] as { model_name: string; variant: string; prediction: number[] }[];
      const heads = items.filter((p) => p.variant === 'a').length;
      // Binomial(1000, 0.5): sd 15.8; five sd either side.
      expect(heads).toBeGreaterThan(500 - 80);
      expect(heads).toBeLessThan(500 + 80);
      expect(items.every((p) => p.model_name === 'coin' && (p.variant === 'a' || p.variant === 'c'))).toBe(true);
      const a1 = await prediction(server, 'a');
      expect(items.find((p) => p.variant === 'a')!.prediction).toEqual(a1);
    });

    it('a member of weight 0 is never served, nor one in Error', async () => {
      const res = await post(server, '/v1/predict', { predictions: Array.from({ length: 300 }, () => ({ model_name: 'zero' })) });
      expect(res.status).toBe(200);
      const variants = new Set((res.json['predictions'] as { variant: string }[]).map((p) => p.variant));
      expect([...variants]).toEqual(['b']);
    });

    it('a variants entry may draw an ensemble', async () => {
      const blend = await prediction(server, 'blend');
      const res = await post(server, '/v1/predict', { predictions: Array.from({ length: 40 }, () => ({ model_name: 'by_ensemble' })) });
      const items = res.json['predictions'] as { variant: string; prediction: number[] }[];
      expect(new Set(items.map((i) => i.variant))).toEqual(new Set(['blend', 'a']));
      expect(items.find((i) => i.variant === 'blend')!.prediction).toEqual(blend);
    });

    it('the KServe route: one request is one draw, and each output names it', async () => {
      const series = SERIES.slice(0, 8);
      const res = await post(
        server,
        '/v1/timeseries/forecast',
        { model: 'ab', inputs: [0, 1].map((i) => ({ type: 'univariate_time_series', name: `s${i}`, series, frequency: 'D' })), options: { horizon: 3 } },
        { 'x-user': 'fixed' },
      );
      expect(res.status, res.text).toBe(200);
      expect(res.json['model']).toBe('ab');
      const outputs = res.json['outputs'] as { variant: string; content: { mean_forecast: number[] }[] }[];
      const variant = outputs[0]!.variant;
      expect(outputs.map((o) => o.variant)).toEqual([variant, variant]);
      const member = await post(server, '/v1/timeseries/forecast', { model: variant, inputs: [{ type: 'univariate_time_series', name: 's', series, frequency: 'D' }], options: { horizon: 3 } });
      expect(outputs[0]!.content[0]!.mean_forecast).toEqual((member.json['outputs'] as { content: { mean_forecast: number[] }[] }[])[0]!.content[0]!.mean_forecast);
    });

    it('GET /v1/models/:name lists the members with their weights and the sticky rule', async () => {
      const res = await get(server, '/v1/models/zero');
      expect(res.json).toMatchObject({
        name: 'zero',
        status: 'Ready',
        sticky: 'none',
        lookback: 6,
        horizon: 3,
        members: [
          { name: 'a', weight: 0, status: 'Ready' },
          { name: 'b', weight: 1, status: 'Ready' },
          { name: 'broken', weight: 5, status: 'Error' },
        ],
      });
      expect((await get(server, '/v1/models/ab')).json).toMatchObject({ sticky: 'header:x-user' });
    });
  });

  describe('hot reload', () => {
    it('changes weights and members without dropping requests', async () => {
      const parts = [await prediction(server, 'a'), await prediction(server, 'b'), await prediction(server, 'c')];
      let stop = false;
      const statuses: number[] = [];
      const load = (async () => {
        while (!stop) {
          const answers = await Promise.all([get(server, '/v1/models/weighted/predict'), get(server, '/v1/models/ab/predict', { 'x-user': 'u' })]);
          for (const r of answers) statuses.push(r.status);
        }
      })();
      // Also: the model `long` becomes an ensemble of a and b, so bad_horizon (a and long) now agrees.
      replaceFile(pod.path('spicepod.yaml'), podText({ blendWeights: '[0, 0, 1]', split: 'a=0,c=1', longFrom: "'ensemble:a,b'" }));
      const outcome = await server.reload();
      stop = true;
      await load;
      expect(outcome.error).toBeNull();
      expect(outcome.applied).toBe(true);
      expect(statuses.length).toBeGreaterThan(0);
      expect(statuses.every((s) => s === 200)).toBe(true);
      expect(printed(await prediction(server, 'weighted'))).toEqual(weighted(parts, [0, 0, 1]));
      const res = await get(server, '/v1/models/ab/predict', { 'x-user': 'u' });
      expect(res.json['variant']).toBe('c');
      const longNow = await prediction(server, 'long');
      expect(printed(longNow)).toEqual(weighted([parts[0]!, parts[1]!], [0.5, 0.5]));
      expect(printed(await prediction(server, 'bad_horizon'))).toEqual(weighted([parts[0]!, longNow], [0.5, 0.5]));
      expect((await get(server, '/v1/models/ab')).json['members']).toEqual([
        { name: 'a', weight: 0, status: 'Ready' },
        { name: 'c', weight: 1, status: 'Ready' },
      ]);
    });
  });
});

describe('variants with sticky: api_key', () => {
  const pod = new PodDir('forecastd-variants-auth-');
  let server: ForecastdServer;
  const KEYS = ['key-one', 'key-two', 'key-three', 'key-four'];

  beforeAll(async () => {
    pod.write('data/daily.csv', dailyCsv({ value: SERIES }));
    pod.write('models/a.onnx', a.bytes);
    pod.write('models/b.onnx', b.bytes);
    pod.write(
      'spicepod.yaml',
      `
version: v1beta1
kind: Spicepod
name: keyed
runtime:
  auth:
    api-key: { enabled: true, keys: [${KEYS.join(', ')}] }
datasets:
  - { from: file:data/daily.csv, name: daily }
models:
  - { from: file:models/a.onnx, name: a, datasets: [daily] }
  - { from: file:models/b.onnx, name: b, datasets: [daily] }
  - { from: "variants:a=1,b=1", name: ab, params: { sticky: api_key } }
`,
    );
    server = await startServer({ spicepod: pod.dir, port: 0 });
    await server.loaded();
  });

  afterAll(async () => {
    await server?.close();
    pod.remove();
  });

  it('the same key gets the same member, whether sent as X-API-Key or as a Bearer token', async () => {
    for (const key of KEYS) {
      const seen = new Set<string>();
      for (let i = 0; i < 10; i++) {
        const viaHeader = await get(server, '/v1/models/ab/predict', { 'x-api-key': key });
        const viaBearer = await get(server, '/v1/models/ab/predict', { authorization: `Bearer ${key}` });
        expect(viaHeader.status).toBe(200);
        expect(viaBearer.status).toBe(200);
        seen.add(viaHeader.json['variant'] as string);
        seen.add(viaBearer.json['variant'] as string);
      }
      expect(seen.size, key).toBe(1);
    }
    const unauthorised = await get(server, '/v1/models/ab/predict');
    expect(unauthorised.status).toBe(401);
  });
});
