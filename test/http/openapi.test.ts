import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type ForecastdServer } from '../../src/server/start.js';
import { linearModel, quantileModel, seededRandom, slowModel, uniformWeights } from '../../tools/onnx-builder.js';
import { PodDir, until } from '../server/fixtures.js';

/**
 * GET /openapi.json against the running server: every documented operation is called, and every real
 * response (status, content type, documented headers, body) must be one the document describes, its body
 * valid against the document's own schema (JSON Schema 2020-12, with ajv). A response shape changed without
 * the document, or a route left out of it, fails here.
 */

const KEY = 'openapi-test-key-77';

type Operation = { responses: Record<string, { content?: Record<string, { schema: unknown }>; headers?: Record<string, unknown> }> };
type Document = { openapi: string; paths: Record<string, Record<string, Operation>> };

const pod = (auth: boolean): string => `
version: v1beta1
kind: Spicepod
name: described
${auth ? `runtime:\n  auth:\n    api-key:\n      enabled: true\n      keys: ["${KEY}"]` : ''}
datasets:
  - from: file:data/co2_weekly.csv
    name: co2
models:
  - from: file:models/lin.onnx
    name: lin
    datasets: [co2]
  - from: file:models/quantile.onnx
    name: quantile
    datasets: [co2]
    params:
      quantiles: [0.1, 0.5, 0.9]
      quantile_output: quantiles
  - from: file:models/slow.onnx
    name: slow
    datasets: [co2]
    params:
      timeout_ms: 1
      cache_predictions: false
  - from: file:models/missing.onnx
    name: missing
    datasets: [co2]
  - from: ensemble:lin,quantile
    name: blend
  - from: variants:lin=1,blend=1
    name: ab
`;

// ajv-formats is CommonJS: its default export arrives as the module object under NodeNext.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (ajv: Ajv2020) => void;

function escapePointer(segment: string): string {
  return segment.replace(/~/g, '~0').replace(/\//g, '~1');
}

/** The documented path template a concrete path matches. */
function templateOf(doc: Document, path: string): string | undefined {
  const bare = path.split('?')[0]!;
  return Object.keys(doc.paths).find((template) => {
    const pattern = new RegExp('^' + template.replace(/\{[^}]+\}/g, '[^/]+') + '$');
    return pattern.test(bare);
  });
}

class Checker {
  readonly ajv = new Ajv2020({ strict: false, allErrors: true });
  /** `METHOD template` → statuses seen. */
  readonly seen = new Map<string, Set<number>>();

  constructor(readonly doc: Document) {
    addFormats(this.ajv);
    this.ajv.addSchema(doc as object, 'openapi.json');
  }

  async call(server: ForecastdServer, method: string, path: string, init: { headers?: Record<string, string>; body?: string } = {}): Promise<Response> {
    const res = await fetch(server.url + path, { method, ...init });
    const body = Buffer.from(await res.arrayBuffer());
    const where = `${method} ${path} → ${res.status}`;
    const template = templateOf(this.doc, path);
    expect(template, `${where}: path documented`).toBeDefined();
    const item = this.doc.paths[template!]!;
    // A method the path does not have is answered 405, which each of its operations documents.
    const documentedMethod = method.toLowerCase() in item ? method.toLowerCase() : res.status === 405 ? Object.keys(item)[0]! : method.toLowerCase();
    const operation = item[documentedMethod];
    expect(operation, `${where}: method documented`).toBeDefined();
    const response = operation!.responses[String(res.status)];
    expect(response, `${where}: status documented`).toBeDefined();
    for (const header of Object.keys(response!.headers ?? {})) {
      expect(res.headers.get(header), `${where}: header ${header}`).not.toBeNull();
    }
    if (response!.content === undefined) {
      expect(body.length, `${where}: no body`).toBe(0);
    } else {
      const type = res.headers.get('content-type')!;
      const base = type.split(';')[0]!.trim();
      const mediaType = Object.keys(response!.content).find((t) => t === type || t.split(';')[0]!.trim() === base);
      expect(mediaType, `${where}: content type ${type} documented`).toBeDefined();
      const pointer = ['paths', template!, documentedMethod, 'responses', String(res.status), 'content', mediaType!, 'schema']
        .map(escapePointer)
        .join('/');
      const validate = this.ajv.getSchema(`openapi.json#/${pointer}`);
      expect(validate, `${where}: schema compiles`).toBeDefined();
      const text = res.headers.get('content-encoding') === null ? body.toString('utf8') : null;
      const value = base === 'application/json' ? (JSON.parse(text!) as unknown) : text ?? '';
      const valid = validate!(value);
      expect(valid ? null : { body: text?.slice(0, 400), errors: validate!.errors }, `${where}: body matches the document`).toBeNull();
    }
    const key = `${method.toUpperCase()} ${template}`;
    if (!this.seen.has(key)) this.seen.set(key, new Set());
    this.seen.get(key)!.add(res.status);
    return new Response(res.status === 304 ? null : body, { status: res.status, headers: res.headers });
  }
}

describe('GET /openapi.json', () => {
  const open = new PodDir('forecastd-openapi-');
  const guarded = new PodDir('forecastd-openapi-auth-');
  let server: ForecastdServer;
  let keyed: ForecastdServer;
  let doc: Document;
  let check: Checker;

  beforeAll(async () => {
    const random = seededRandom(9);
    const lin = linearModel({ lookback: 8, horizon: 3, weights: uniformWeights(random, 24, 0.1) });
    const quantile = quantileModel({ lookback: 8, horizon: 3, weights: uniformWeights(random, 24, 0.1), offsets: [-1, 0, 1, -2, 0, 2, -3, 0, 3], levels: 3 });
    for (const dir of [open, guarded]) {
      dir.copyTestData('co2_weekly.csv');
      dir.write('models/lin.onnx', lin);
      dir.write('models/quantile.onnx', quantile);
      dir.write('models/slow.onnx', slowModel({ size: 8, depth: 3000, horizon: 1 }));
    }
    open.write('spicepod.yaml', pod(false));
    guarded.write('spicepod.yaml', pod(true));
    server = await startServer({ spicepod: open.dir, port: 0 });
    keyed = await startServer({ spicepod: guarded.dir, port: 0 });
    await Promise.all([server.loaded(), keyed.loaded()]);
    const res = await fetch(server.url + '/openapi.json');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    doc = (await res.json()) as Document;
    check = new Checker(doc);
  });

  afterAll(async () => {
    await server?.close();
    await keyed?.close();
    open.remove();
    guarded.remove();
  });

  it('is OpenAPI 3.1 and served without the API key', async () => {
    expect(doc.openapi).toBe('3.1.0');
    const res = await check.call(keyed, 'GET', '/openapi.json');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual(doc);
  });

  it('describes every answer of every route, checked against the running server', async () => {
    const call = (method: string, path: string, init?: { headers?: Record<string, string>; body?: string }) => check.call(server, method, path, init);
    expect((await call('GET', '/health')).status).toBe(200);
    expect((await call('GET', '/v1/ready')).status).toBe(200);
    expect((await call('GET', '/metrics')).status).toBe(200);
    expect((await call('GET', '/v1/models')).status).toBe(200);
    expect((await call('GET', '/v1/models?status=true')).status).toBe(200);
    expect((await call('GET', '/v1/models?status=true&format=csv')).status).toBe(200);
    expect((await call('GET', '/v1/models?status=maybe')).status).toBe(400);
    expect((await call('GET', '/v1/datasets')).status).toBe(200);
    expect((await call('GET', '/v1/datasets/co2/rows?last=5')).status).toBe(200);
    expect((await call('GET', '/v1/datasets/co2/rows')).status).toBe(200);
    expect((await call('GET', '/v1/datasets/nope/rows')).status).toBe(404);
    expect((await call('GET', '/v1/datasets/co2/rows?last=100001')).status).toBe(400);
    expect((await call('GET', '/v1/models/lin/predict')).status).toBe(200);
    expect((await call('GET', '/v1/models/nope/predict')).status).toBe(400);
    expect((await call('GET', '/v1/models/%ff/predict')).status).toBe(400);
    expect((await call('GET', '/v1/models/missing/predict')).status).toBe(500);
    expect((await call('GET', '/v1/models/slow/predict')).status).toBe(504);
    const withExtras = await call('GET', '/v1/models/quantile/predict?include=timestamps,quantiles');
    expect(withExtras.status).toBe(200);
    expect(Object.keys((await withExtras.json()) as object)).toEqual(['status', 'model_name', 'lookback', 'prediction', 'timestamps', 'quantiles', 'duration_ms']);
    expect((await call('GET', '/v1/models/lin/predict?include=nonsense')).status).toBe(400);
    expect((await call('POST', '/v1/predict?include=timestamps', { body: '{}' })).status).toBe(200);
    expect((await call('GET', '/v1/models/quantile')).status).toBe(200);
    expect((await call('GET', '/v1/models/blend/predict?include=timestamps,quantiles')).status).toBe(200);
    expect((await call('GET', '/v1/models/blend')).status).toBe(200);
    const drawn = await call('GET', '/v1/models/ab/predict');
    expect(drawn.status).toBe(200);
    expect(Object.keys((await drawn.json()) as object)).toEqual(['status', 'model_name', 'variant', 'lookback', 'prediction', 'duration_ms']);
    expect((await call('GET', '/v1/models/ab')).status).toBe(200);
    expect(
      (
        await call('POST', '/v1/timeseries/forecast', {
          body: JSON.stringify({ model: 'ab', inputs: [{ type: 'univariate_time_series', name: 'a', series: Array.from({ length: 8 }, (_, i) => i), frequency: 'W' }], options: { horizon: 2 } }),
        })
      ).status,
    ).toBe(200);
    expect((await call('GET', '/v1/models/missing')).status).toBe(200);
    expect((await call('GET', '/v1/models/nope')).status).toBe(404);
    const evaluated = await until('evaluation of quantile', async () => {
      const res = await fetch(server.url + '/v1/models/quantile/evaluation');
      const body = (await res.json()) as { status: string };
      return body.status === 'Ready' ? body : undefined;
    });
    expect(evaluated.status).toBe('Ready');
    expect((await call('GET', '/v1/models/quantile/evaluation')).status).toBe(200);
    expect((await call('GET', '/v1/models/missing/evaluation')).status).toBe(200);
    // An ensemble's evaluation is a model's; a variants entry's lists its members side by side.
    await until('evaluation of blend', async () => {
      const body = (await (await fetch(server.url + '/v1/models/blend/evaluation')).json()) as { status: string };
      return body.status === 'Ready' ? body : undefined;
    });
    expect((await call('GET', '/v1/models/blend/evaluation')).status).toBe(200);
    const sideBySide = await call('GET', '/v1/models/ab/evaluation');
    expect(sideBySide.status).toBe(200);
    expect(Object.keys(((await sideBySide.json()) as { variants: object }).variants)).toEqual(['lin', 'blend']);
    expect((await call('GET', '/v1/models/nope/evaluation')).status).toBe(404);
    expect((await call('GET', '/v1/timeseries/models')).status).toBe(200);
    const series = Array.from({ length: 10 }, (_, i) => 300 + i / 4);
    const forecast = await call('POST', '/v1/timeseries/forecast', {
      body: JSON.stringify({
        model: 'quantile',
        inputs: [
          { type: 'univariate_time_series', name: 'a', series, frequency: 'W', start_timestamp: '2020-01-04T00:00:00Z' },
          { type: 'univariate_time_series', name: 'short', series: [1, 2], frequency: 'W' },
        ],
        options: { horizon: 2, quantiles: [0.1, 0.9] },
      }),
    });
    expect(forecast.status).toBe(200);
    expect(((await forecast.json()) as { status: string }).status).toBe('partial');
    expect((await call('POST', '/v1/timeseries/forecast', { body: '{"model":"quantile","inputs":[]}' })).status).toBe(400);
    expect((await call('POST', '/v1/timeseries/forecast', { body: '{"model":"nope","inputs":[{"type":"univariate_time_series","name":"a","series":[1],"frequency":"W"}],"options":{"horizon":1}}' })).status).toBe(404);
    expect((await call('GET', '/v1/timeseries/forecast')).status).toBe(405);
    const many = await call('POST', '/v1/predict', { body: '{"predictions":[{"model_name":"lin"},{"model_name":"missing"},{"model_name":"nope"}]}' });
    expect(many.status).toBe(200);
    expect(((await many.json()) as { predictions: { status: string }[] }).predictions.map((p) => p.status)).toEqual(['Success', 'InternalError', 'BadRequest']);
    expect((await call('POST', '/v1/predict', { body: '{' })).status).toBe(400);
    expect((await call('POST', '/v1/predict', { body: ' '.repeat(1024 * 1024 + 1) })).status).toBe(413);
    expect((await call('DELETE', '/v1/models')).status).toBe(405);
    expect((await call('PUT', '/v1/datasets/co2/rows')).status).toBe(405);

    const page = await call('GET', '/');
    expect(page.status).toBe(200);
    const html = await page.text();
    const etag = page.headers.get('etag')!;
    expect((await call('GET', '/', { headers: { 'if-none-match': etag } })).status).toBe(304);
    const script = /src="(\/assets\/[^"]+\/dashboard\.js)"/.exec(html)![1]!;
    expect((await call('GET', script, { headers: { 'accept-encoding': 'identity' } })).status).toBe(200);
    expect((await call('GET', script.replace('dashboard.js', 'dashboard.css'), { headers: { 'accept-encoding': 'identity' } })).status).toBe(200);
    expect((await call('GET', script.replace('dashboard.js', 'nope.js'))).status).toBe(404);
    expect((await call('GET', '/assets/oldbuild/dashboard.js')).status).toBe(404);

    // With auth on: the data routes answer 401, the page and the document do not need the key.
    const guardedCall = (method: string, path: string, init?: { headers?: Record<string, string>; body?: string }) => check.call(keyed, method, path, init);
    for (const path of ['/v1/models', '/v1/datasets', '/v1/datasets/co2/rows', '/metrics', '/v1/models/lin/predict', '/v1/models/lin', '/v1/models/lin/evaluation', '/v1/timeseries/models']) {
      expect((await guardedCall('GET', path)).status, path).toBe(401);
    }
    expect((await guardedCall('POST', '/v1/timeseries/forecast', { body: '{}' })).status).toBe(401);
    expect((await guardedCall('POST', '/v1/predict', { body: '{}' })).status).toBe(401);
    expect((await guardedCall('GET', '/v1/datasets/co2/rows?last=2', { headers: { 'x-api-key': KEY } })).status).toBe(200);
    expect((await guardedCall('GET', '/')).status).toBe(200);

    // Every documented operation was called and answered with a documented success.
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const method of Object.keys(item)) {
        const statuses = check.seen.get(`${method.toUpperCase()} ${path}`);
        expect(statuses, `${method.toUpperCase()} ${path} exercised`).toBeDefined();
        expect([...statuses!].some((s) => s >= 200 && s < 300), `${method.toUpperCase()} ${path} succeeded`).toBe(true);
      }
    }
  });

  it('refuses a body the document does not describe (the check itself can fail)', () => {
    const validate = check.ajv.getSchema('openapi.json#/components/schemas/DatasetRows')!;
    expect(validate({ name: 'co2', columns: ['co2'], timestamps: ['2001-12-29T00:00:00.000Z'], values: [[1]] })).toBe(true);
    expect(validate({ name: 'co2', columns: ['co2'], timestamps: ['yesterday'], values: [[1]] })).toBe(false);
    expect(validate({ name: 'co2', columns: ['co2'], timestamps: [], values: [], extra: 1 })).toBe(false);
    const prediction = check.ajv.getSchema('openapi.json#/components/schemas/Prediction')!;
    expect(prediction({ status: 'Success', model_name: 'lin', duration_ms: 0 })).toBe(false);
  });
});
