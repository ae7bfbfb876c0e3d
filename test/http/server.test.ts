import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ForecastdError } from '../../src/errors.js';
import { HttpServer } from '../../src/http/server.js';
import { uwsBuildFor } from '../../src/http/uws.js';
import type { ModelDetails, ModelIdentity, PredictOutcome, SeriesModelLookup, ServingBackend } from '../../src/http/types.js';
import { silentLogger } from '../../src/log.js';
import { ServerMetrics } from '../../src/metrics.js';

/**
 * The HTTP layer against a scripted backend: every row of the status table, the POST body rules, auth and
 * the shared error body, over real sockets. The registry's own behaviour is tested in test/server.
 */

const good: ModelIdentity = { name: 'good', version: '1.0', lookback: 3 };

class ScriptedBackend implements ServingBackend {
  isReady = true;
  /** Resolves the next `slow` prediction. */
  releaseSlow: (() => void) | null = null;
  slowAborted = false;

  drawHeaders(): readonly string[] {
    return [];
  }

  drawsPerCall(): boolean {
    return false;
  }

  /** Models whose answer is known at once, as a cached prediction is: answered inside the request's handler. */
  predictNow(name: string): PredictOutcome | undefined {
    switch (name) {
      case 'cached':
        return { kind: 'success', model: { ...good, name }, values: new Float32Array([0.25, 1e-7]) };
      case 'cached-loading':
        return { kind: 'failure', model: { name, version: null, lookback: null }, reason: 'MODEL_LOADING', message: 'still loading' };
      case 'now-throws':
        throw new ForecastdError('ERR_INFERENCE', 'predictNow threw');
      default:
        return undefined;
    }
  }

  async predict(name: string, signal?: AbortSignal): Promise<PredictOutcome> {
    switch (name) {
      case 'good':
        return { kind: 'success', model: good, values: new Float32Array([0.45, 0.5, 0.55]) };
      case 'f64':
        return {
          kind: 'success',
          model: { name, version: null, lookback: 2 },
          values: new Float64Array([0.1 + 0.2]),
        };
      case 'broken':
        return {
          kind: 'failure',
          model: { name, version: null, lookback: null },
          reason: 'ERR_MODEL_LOAD',
          message: 'model broken is in Error: cannot read models/broken.onnx',
        };
      case 'gap':
        return { kind: 'failure', model: { ...good, name }, reason: 'ERR_WINDOW', message: 'gap at 2024-01-01T00:00:00.000Z' };
      case 'loading':
        return { kind: 'failure', model: { name, version: '2', lookback: null }, reason: 'MODEL_LOADING', message: 'model loading is still loading' };
      case 'busy':
        return { kind: 'failure', model: { ...good, name }, reason: 'ERR_QUEUE_FULL', message: 'queue full' };
      case 'slowpoke':
        return { kind: 'failure', model: { ...good, name }, reason: 'ERR_TIMEOUT', message: 'waited too long' };
      case 'throws':
        // Against the interface's promise, to check the HTTP layer still answers inside the item.
        throw new ForecastdError('ERR_INFERENCE', 'backend threw');
      case 'slow':
        return new Promise((resolve) => {
          signal?.addEventListener('abort', () => {
            this.slowAborted = true;
          });
          this.releaseSlow = () => resolve({ kind: 'success', model: good, values: new Float32Array([1]) });
        });
      default:
        return { kind: 'not_found', name };
    }
  }
  readyModelNames(): string[] {
    return ['good', 'f64'];
  }
  models() {
    return [
      { name: 'good', from: 'file:models/good.onnx', datasets: ['d'], status: 'Ready' as const, error: null, mae: 0.5, skill: 0.25 },
      { name: 'broken', from: 'file:m,"x".onnx', datasets: ['d', 'e'], status: 'Error' as const, error: 'cannot read\nfile', mae: null, skill: null },
    ];
  }
  datasets() {
    return [
      { name: 'd', from: 'file:d.csv', rows: 3, first_ts: '2024-01-01T00:00:00.000Z', last_ts: '2024-01-03T00:00:00.000Z', status: 'Ready' as const, error: null, refreshed_at: '2024-01-03T12:00:00.000Z', frequency: 'P1D', off_grid_rows: 0 },
      { name: 'e', from: 'postgres:public.e', rows: 0, first_ts: null, last_ts: null, status: 'Error' as const, error: 'connection refused', refreshed_at: null, frequency: null, off_grid_rows: 0 },
    ];
  }
  datasetRows(name: string) {
    return name === 'd' ? { columns: ['v'], times: new Float64Array([Date.UTC(2024, 0, 1)]), values: new Float64Array([1]) } : null;
  }
  ready(): boolean {
    return this.isReady;
  }
  modelDetails(): undefined {
    return undefined;
  }
  evaluation(): undefined {
    return undefined;
  }
  allModelDetails(): readonly ModelDetails[] {
    return [];
  }
  seriesModel(): SeriesModelLookup {
    return { kind: 'not_found' };
  }
}

async function start(apiKeys: readonly string[] | null = null) {
  const backend = new ScriptedBackend();
  const metrics = new ServerMetrics();
  const server = new HttpServer({ backend, metrics, logger: silentLogger(), apiKeys });
  const { port } = await server.listen('127.0.0.1', 0);
  return { backend, server, url: `http://127.0.0.1:${port}`, port };
}

/** Sends raw bytes and collects whatever comes back until the server closes or `idleMs` passes quietly. */
function raw(port: number, data: string | Buffer, idleMs = 1000): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let out = '';
    let timer: NodeJS.Timeout;
    const finish = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(out);
    };
    const idle = (): void => {
      clearTimeout(timer);
      timer = setTimeout(finish, idleMs);
    };
    socket.on('data', (d) => {
      out += d.toString('utf8');
      idle();
    });
    socket.on('error', finish);
    socket.on('close', finish);
    socket.write(data);
    idle();
  });
}

describe('HTTP API over a scripted backend', () => {
  let ctx: Awaited<ReturnType<typeof start>>;
  beforeAll(async () => {
    ctx = await start();
  });
  afterAll(() => ctx.server.closeConnections());

  it('GET predict success: fields in order, shortest float32 numbers, request id echoed', async () => {
    const res = await fetch(`${ctx.url}/v1/models/good/predict`, { headers: { 'x-request-id': 'abc-123' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(res.headers.get('x-request-id')).toBe('abc-123');
    const text = await res.text();
    expect(text).toMatch(
      /^\{"status":"Success","model_name":"good","model_version":"1.0","lookback":3,"prediction":\[0.45,0.5,0.55\],"duration_ms":\d+\}$/,
    );
  });

  it('answers known outcomes inside the handler: a cached success, a model still loading', async () => {
    const res = await fetch(`${ctx.url}/v1/models/cached/predict`, { headers: { 'x-request-id': 'sync-1' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(res.headers.get('x-request-id')).toBe('sync-1');
    expect(await res.text()).toMatch(
      /^\{"status":"Success","model_name":"cached","model_version":"1.0","lookback":3,"prediction":\[0.25,1e-7\],"duration_ms":\d+\}$/,
    );
    const loading = await fetch(`${ctx.url}/v1/models/cached-loading/predict`);
    expect(loading.status).toBe(503);
    expect(loading.headers.get('retry-after')).toBe('1');
    expect(await loading.json()).toEqual({
      status: 'InternalError',
      error_message: 'still loading',
      model_name: 'cached-loading',
      duration_ms: expect.any(Number),
    });
    // Keep-alive connections still serve after answers written inside the handler.
    const again = await Promise.all([1, 2, 3].map(() => fetch(`${ctx.url}/v1/models/cached/predict`).then((r) => r.status)));
    expect(again).toEqual([200, 200, 200]);
  });

  it('a throw while answering inside the handler is a 500 for that request, and the server goes on', async () => {
    const res = await fetch(`${ctx.url}/v1/models/now-throws/predict`, { headers: { 'x-request-id': 'boom-1' } });
    expect(res.status).toBe(500);
    expect(await res.json()).toEqual({
      status: 'InternalError',
      error_message: 'The server failed to answer this request; its log has the details (request id boom-1)',
    });
    expect((await fetch(`${ctx.url}/v1/models/good/predict`)).status).toBe(200);
  });

  it('generates a request id when none is sent', async () => {
    const res = await fetch(`${ctx.url}/health`);
    expect(res.headers.get('x-request-id')).toMatch(/^[0-9a-z]+-[0-9a-z]+$/);
    expect(await res.text()).toBe('ok');
  });

  it('float64 models print shortest float64', async () => {
    const res = await fetch(`${ctx.url}/v1/models/f64/predict`);
    expect(await res.text()).toMatch(/"lookback":2,"prediction":\[0.30000000000000004\],"duration_ms":\d+\}$/);
  });

  it.each([
    ['nope', 400, 'BadRequest', 'Model nope not found', null],
    ['broken', 500, 'InternalError', 'model broken is in Error: cannot read models/broken.onnx', null],
    ['gap', 500, 'InternalError', 'gap at 2024-01-01T00:00:00.000Z', null],
    ['throws', 500, 'InternalError', 'the prediction failed unexpectedly; the server log has the details', null],
    ['loading', 503, 'InternalError', 'model loading is still loading', '1'],
    ['busy', 503, 'InternalError', 'queue full', '1'],
    ['slowpoke', 504, 'InternalError', 'waited too long', null],
  ])('GET predict %s → %i %s', async (name, http, status, message, retryAfter) => {
    const res = await fetch(`${ctx.url}/v1/models/${name}/predict`);
    expect(res.status).toBe(http);
    expect(res.headers.get('retry-after')).toBe(retryAfter);
    const body = (await res.json()) as Record<string, unknown>;
    expect(Object.keys(body).slice(0, 3)).toEqual(['status', 'error_message', 'model_name']);
    expect(body['status']).toBe(status);
    expect(body['error_message']).toBe(message);
    expect(body['model_name']).toBe(name);
    expect(body).not.toHaveProperty('prediction');
    expect(typeof body['duration_ms']).toBe('number');
  });

  it('errors of a known model keep model_version and lookback where known', async () => {
    const gap = (await (await fetch(`${ctx.url}/v1/models/gap/predict`)).json()) as Record<string, unknown>;
    expect(Object.keys(gap)).toEqual(['status', 'error_message', 'model_name', 'model_version', 'lookback', 'duration_ms']);
    expect(gap['model_version']).toBe('1.0');
    expect(gap['lookback']).toBe(3);
    const loading = (await (await fetch(`${ctx.url}/v1/models/loading/predict`)).json()) as Record<string, unknown>;
    expect(Object.keys(loading)).toEqual(['status', 'error_message', 'model_name', 'model_version', 'duration_ms']);
    const missing = (await (await fetch(`${ctx.url}/v1/models/nope/predict`)).json()) as Record<string, unknown>;
    expect(Object.keys(missing)).toEqual(['status', 'error_message', 'model_name', 'duration_ms']);
  });

  it('decodes percent-encoded model names', async () => {
    const res = await fetch(`${ctx.url}/v1/models/no%20such/predict`);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error_message: string }).error_message).toBe('Model no such not found');
  });

  it('POST with an explicit list answers in request order, errors inside their items', async () => {
    const res = await fetch(`${ctx.url}/v1/predict`, {
      method: 'POST',
      body: JSON.stringify({ predictions: [{ model_name: 'good' }, { model_name: 'nope' }, { model_name: 'busy' }] }),
    });
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toMatch(/^\{"duration_ms":\d+,"predictions":\[/);
    const body = JSON.parse(text) as { predictions: Record<string, unknown>[] };
    expect(body.predictions.map((p) => [p['model_name'], p['status']])).toEqual([
      ['good', 'Success'],
      ['nope', 'BadRequest'],
      ['busy', 'InternalError'],
    ]);
    expect(body.predictions[0]!['prediction']).toEqual([0.45, 0.5, 0.55]);
    expect(body.predictions[1]!['error_message']).toBe('Model nope not found');
  });

  it.each([
    ['an empty body', ''],
    ['{}', '{}'],
    ['no predictions key', '{"other": 1}'],
    ['whitespace', '  \n'],
  ])('POST with %s predicts every ready model', async (_label, body) => {
    const res = await fetch(`${ctx.url}/v1/predict`, { method: 'POST', body });
    expect(res.status).toBe(200);
    const parsed = (await res.json()) as { predictions: { model_name: string; status: string }[] };
    expect(parsed.predictions.map((p) => [p.model_name, p.status])).toEqual([
      ['good', 'Success'],
      ['f64', 'Success'],
    ]);
  });

  it('POST with an explicit [] predicts nothing', async () => {
    const res = await fetch(`${ctx.url}/v1/predict`, { method: 'POST', body: '{"predictions": []}' });
    expect(res.status).toBe(200);
    expect(await res.text()).toMatch(/^\{"duration_ms":\d+,"predictions":\[\]\}$/);
  });

  it('POST parses JSON whatever the Content-Type, and without one', async () => {
    const form = await fetch(`${ctx.url}/v1/predict`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: '{"predictions": [{"model_name": "good"}]}',
    });
    expect(form.status).toBe(200);
    expect(((await form.json()) as { predictions: unknown[] }).predictions).toHaveLength(1);
    const body = '{"predictions":[{"model_name":"f64"}]}';
    const response = await raw(
      ctx.port,
      `POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
    );
    expect(response).toMatch(/^HTTP\/1.1 200 OK\r\n/);
    expect(response).toContain('"model_name":"f64"');
  });

  it.each([
    ['malformed JSON', '{"predictions": [', /^The request body is not valid JSON/],
    ['a JSON array', '[]', /^The request body must be a JSON object/],
    ['null', 'null', /^The request body must be a JSON object/],
    ['predictions not an array', '{"predictions": {"model_name": "a"}}', /^"predictions" must be an array/],
    ['predictions null', '{"predictions": null}', /^"predictions" must be an array/],
    ['an item that is not an object', '{"predictions": ["good"]}', /^predictions\[0\] must be an object/],
    ['an item without model_name', '{"predictions": [{"model_name": "good"}, {}]}', /^predictions\[1\] has no "model_name"/],
    ['a model_name that is not a string', '{"predictions": [{"model_name": 7}]}', /^predictions\[0\]\.model_name must be a string/],
    [
      'more than 1000 items',
      JSON.stringify({ predictions: Array.from({ length: 1001 }, () => ({ model_name: 'good' })) }),
      /^"predictions" holds 1001 items; at most 1000/,
    ],
  ])('POST with %s → 400 BadRequest', async (_label, body, message) => {
    const res = await fetch(`${ctx.url}/v1/predict`, { method: 'POST', body });
    expect(res.status).toBe(400);
    const parsed = (await res.json()) as { status: string; error_message: string };
    expect(Object.keys(parsed)).toEqual(['status', 'error_message']);
    expect(parsed.status).toBe('BadRequest');
    expect(parsed.error_message).toMatch(message);
  });

  it('POST with exactly 1000 items is accepted', async () => {
    const body = JSON.stringify({ predictions: Array.from({ length: 1000 }, () => ({ model_name: 'good' })) });
    const res = await fetch(`${ctx.url}/v1/predict`, { method: 'POST', body });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { predictions: unknown[] }).predictions).toHaveLength(1000);
  });

  it('POST over 1 MiB with a Content-Length → 413 at once, before the body is sent', async () => {
    const response = await raw(
      ctx.port,
      `POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: ${1024 * 1024 + 1}\r\n\r\n`,
    );
    expect(response).toMatch(/^HTTP\/1.1 413 Payload Too Large\r\n/);
    expect(response).toContain('{"status":"PayloadTooLarge","error_message":"The request body is 1048577 bytes; the limit is 1048576 bytes"}');
  });

  it('POST streaming past 1 MiB (chunked) → 413 while streaming', async () => {
    const chunk = Buffer.alloc(256 * 1024, 0x20);
    const head = 'POST /v1/predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n';
    const parts: Buffer[] = [Buffer.from(head)];
    for (let i = 0; i < 5; i++) parts.push(Buffer.from(chunk.length.toString(16) + '\r\n'), chunk, Buffer.from('\r\n'));
    const response = await raw(ctx.port, Buffer.concat(parts));
    expect(response).toMatch(/^HTTP\/1.1 413 Payload Too Large\r\n/);
    expect(response).toContain('"status":"PayloadTooLarge"');
  });

  it('a body of exactly 1 MiB is read (and here is not JSON)', async () => {
    const body = '{"predictions":[]}' + ' '.repeat(1024 * 1024 - 18);
    const res = await fetch(`${ctx.url}/v1/predict`, { method: 'POST', body });
    expect(res.status).toBe(200);
  });

  it('unknown paths → 404, known paths with other methods → 405 with Allow', async () => {
    const missing = await fetch(`${ctx.url}/v2/nothing`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ status: 'NotFound', error_message: 'No route for GET /v2/nothing' });

    const post = await fetch(`${ctx.url}/v1/models/good/predict`, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET');
    expect(await post.json()).toEqual({ status: 'MethodNotAllowed', error_message: 'Method POST is not allowed here; use GET' });

    const get = await fetch(`${ctx.url}/v1/predict`);
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');

    const del = await fetch(`${ctx.url}/v1/models`, { method: 'DELETE' });
    expect(del.status).toBe(405);
    expect(del.headers.get('allow')).toBe('GET');
  });

  it('GET /v1/models: JSON, with status, and CSV', async () => {
    expect(await (await fetch(`${ctx.url}/v1/models`)).json()).toEqual([
      { name: 'good', from: 'file:models/good.onnx', datasets: ['d'] },
      { name: 'broken', from: 'file:m,"x".onnx', datasets: ['d', 'e'] },
    ]);
    expect(await (await fetch(`${ctx.url}/v1/models?status=true`)).json()).toEqual([
      { name: 'good', from: 'file:models/good.onnx', datasets: ['d'], status: 'Ready', error: null, mae: 0.5, skill: 0.25 },
      { name: 'broken', from: 'file:m,"x".onnx', datasets: ['d', 'e'], status: 'Error', error: 'cannot read\nfile', mae: null, skill: null },
    ]);
    const csv = await fetch(`${ctx.url}/v1/models?format=csv&status=true`);
    expect(csv.headers.get('content-type')).toBe('text/csv; charset=utf-8');
    expect(await csv.text()).toBe(
      'name,from,datasets,status,error\r\n' +
        'good,file:models/good.onnx,d,Ready,\r\n' +
        'broken,"file:m,""x"".onnx","d,e",Error,"cannot read\nfile"\r\n',
    );
    expect(await (await fetch(`${ctx.url}/v1/models?format=csv`)).text()).toBe(
      'name,from,datasets\r\ngood,file:models/good.onnx,d\r\nbroken,"file:m,""x"".onnx","d,e"\r\n',
    );
    const bad = await fetch(`${ctx.url}/v1/models?format=xml`);
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({ status: 'BadRequest', error_message: "Query parameter format must be json or csv, not 'xml'" });
  });

  it('GET /v1/datasets: the SPEC fields in order', async () => {
    const res = await fetch(`${ctx.url}/v1/datasets`);
    expect(res.status).toBe(200);
    // The exact text pins the field order, which toEqual would not.
    expect(await res.text()).toBe(
      '[{"name":"d","from":"file:d.csv","rows":3,"first_ts":"2024-01-01T00:00:00.000Z","last_ts":"2024-01-03T00:00:00.000Z",' +
        '"status":"Ready","error":null,"refreshed_at":"2024-01-03T12:00:00.000Z","frequency":"P1D","off_grid_rows":0},' +
        '{"name":"e","from":"postgres:public.e","rows":0,"first_ts":null,"last_ts":null,"status":"Error","error":"connection refused","refreshed_at":null,"frequency":null,"off_grid_rows":0}]',
    );
  });

  it('GET /v1/ready follows the backend', async () => {
    const ready = await fetch(`${ctx.url}/v1/ready`);
    expect([ready.status, await ready.text()]).toEqual([200, 'ready']);
    ctx.backend.isReady = false;
    const notReady = await fetch(`${ctx.url}/v1/ready`);
    expect([notReady.status, await notReady.text()]).toEqual([503, 'not ready']);
    ctx.backend.isReady = true;
  });

  it('GET /metrics counts requests by route and status', async () => {
    await fetch(`${ctx.url}/v1/models/nope/predict`);
    const res = await fetch(`${ctx.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await res.text();
    expect(text).toMatch(/^http_requests_total\{route="\/v1\/models\/:name\/predict",status="400"\} [1-9]\d*$/m);
    expect(text).toMatch(/^http_request_duration_seconds_count\{route="\/health"\} [1-9]\d*$/m);
    expect(text).toMatch(/^process_resident_memory_bytes \d+/m);
  });

  it('a client that disconnects mid-request does not disturb the server', async () => {
    const socket = net.connect(ctx.port, '127.0.0.1');
    await new Promise<void>((resolve) => socket.on('connect', () => resolve()));
    socket.write('GET /v1/models/slow/predict HTTP/1.1\r\nHost: x\r\n\r\n');
    while (ctx.backend.releaseSlow === null) await new Promise((r) => setTimeout(r, 5));
    socket.destroy();
    while (!ctx.backend.slowAborted) await new Promise((r) => setTimeout(r, 5));
    ctx.backend.releaseSlow();
    ctx.backend.releaseSlow = null;
    // A POST whose client leaves half-way through its body.
    const half = net.connect(ctx.port, '127.0.0.1');
    await new Promise<void>((resolve) => half.on('connect', () => resolve()));
    half.write('POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"predictions"');
    await new Promise((r) => setTimeout(r, 50));
    half.destroy();
    const res = await fetch(`${ctx.url}/v1/models/good/predict`);
    expect(res.status).toBe(200);
    await new Promise((r) => setTimeout(r, 20));
    expect(ctx.server.pending).toBe(0);
  });

  it('a malformed HTTP request gets the connection closed', async () => {
    const response = await raw(ctx.port, 'THIS IS NOT HTTP\r\n\r\n');
    // uWebSockets.js 20.30 (Node.js 20) closes without a byte; 20.57 (Node.js 22 and 24) first writes its own
    // 505 page. Either way forecastd never sees the request.
    const uws2057 = uwsBuildFor(process.platform, process.arch, process.versions.modules)?.dependency === '@btc-vision/uwebsockets.js';
    expect(response).toBe(
      uws2057
        ? 'HTTP/1.1 505 HTTP Version Not Supported\r\nConnection: close\r\n\r\n<h1>HTTP Version Not Supported</h1><p>This server does not support HTTP/1.0.</p><hr><i>uWebSockets/20 Server</i>'
        : '',
    );
  });
});

describe('API keys', () => {
  let ctx: Awaited<ReturnType<typeof start>>;
  beforeAll(async () => {
    ctx = await start(['s3cret', 'other-key']);
  });
  afterAll(() => ctx.server.closeConnections());

  it('every route but /health and /v1/ready needs a key', async () => {
    for (const path of ['/v1/models', '/v1/datasets', '/metrics', '/v1/models/good/predict', '/nowhere']) {
      const res = await fetch(`${ctx.url}${path}`);
      expect(res.status, path).toBe(401);
      expect(await res.json()).toEqual({
        status: 'Unauthorized',
        error_message: 'Missing or invalid API key: send X-API-Key: KEY or Authorization: Bearer KEY',
      });
    }
    const post = await fetch(`${ctx.url}/v1/predict`, { method: 'POST', body: '{}' });
    expect(post.status).toBe(401);
    expect((await fetch(`${ctx.url}/health`)).status).toBe(200);
    expect((await fetch(`${ctx.url}/v1/ready`)).status).toBe(200);
  });

  it('accepts X-API-Key or a Bearer token, and rejects wrong ones', async () => {
    const ok1 = await fetch(`${ctx.url}/v1/models/good/predict`, { headers: { 'x-api-key': 's3cret' } });
    expect(ok1.status).toBe(200);
    const ok2 = await fetch(`${ctx.url}/v1/models`, { headers: { authorization: 'Bearer other-key' } });
    expect(ok2.status).toBe(200);
    const wrong = await fetch(`${ctx.url}/v1/models`, { headers: { 'x-api-key': 's3cre' } });
    expect(wrong.status).toBe(401);
    const basic = await fetch(`${ctx.url}/v1/models`, { headers: { authorization: 'Basic s3cret' } });
    expect(basic.status).toBe(401);
  });
});
