import { writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { formatFloat32, formatFloat64 } from '../../src/http/float-format.js';
import type { ForecastdServer } from '../../src/server/start.js';
import { InferenceSession } from '../../src/runtime/session.js';
import { contractViolationModel, nonFiniteModel, slowModel } from '../../tools/onnx-builder.js';
import { servePod, dailyCsv, releaseFifo, linearFixture, type LinearFixture } from './fixtures.js';

/**
 * The server end to end: a real pod on disk, real ONNX models, the real addon and real sockets. Every
 * expected prediction is the same window run through InferenceSession directly, printed as shortest float32.
 */

const SERIES = [12.5, 13.25, 11.75, 14.5, 15.125, 13.875, 16.25, 17.5, 16.75, 18.125];
const MULTI_A = [1, 2, 3, 4, 5, 6];
const MULTI_B = [10.5, 20.25, 30.125, 40.5, 50.75, 60.25];
const GAPPY = [1.5, 2.5, 3.5, null, 6.5, 7.5];

const lin = linearFixture({ lookback: 4, horizon: 3, seed: 11 });
const linV7 = linearFixture({ lookback: 4, horizon: 3, seed: 11, modelVersion: 7 });
const multi = linearFixture({ lookback: 3, variables: 2, horizon: 2, seed: 5 });
const gap = linearFixture({ lookback: 4, horizon: 2, seed: 3 });
const short = linearFixture({ lookback: 5, horizon: 1, seed: 4 });
const f64 = linearFixture({ lookback: 4, horizon: 3, seed: 11, dtype: 'float64' });

const POD = `
version: v1beta1
kind: Spicepod
name: e2e
datasets:
  - from: file:data/series.csv
    name: series
    acceleration:
      refresh_check_interval: 50ms
  - from: file:data/multi.csv
    name: multi
    params:
      columns: [b, a]
  - from: file:data/gappy.csv
    name: gappy
  - from: file:data/short.csv
    name: short
  - from: file:data/negative.csv
    name: negative
  - from: file:data/absent.csv
    name: absent
models:
  - from: file:models/lin.onnx
    name: lin
    datasets: [series]
    params:
      version: "1.0"
  - from: file:models/lin_v7.onnx
    name: lin_v7
    datasets: [series]
    params:
      cache_predictions: false
  - from: file:models/lin.onnx
    name: lin_plain
    datasets: [series]
  - from: file:models/multi.onnx
    name: multi
    datasets: [multi]
  - from: file:models/gap.onnx
    name: gap_none
    datasets: [gappy]
  - from: file:models/gap.onnx
    name: gap_linear
    datasets: [gappy]
    params:
      fill_missing: linear
  - from: file:models/short.onnx
    name: short
    datasets: [short]
    params:
      cache_predictions: false
  - from: file:models/f64.onnx
    name: f64
    datasets: [series]
  - from: file:models/nonfinite.onnx
    name: nonfinite
    datasets: [negative]
  - from: file:models/lin.onnx
    name: busy
    datasets: [series]
    params:
      max_batch_size: 1
      max_concurrent_runs: 1
      max_queue_size: 1
      cache_predictions: false
  - from: file:models/slow.onnx
    name: slow
    datasets: [series]
    params:
      timeout_ms: 1
  - from: file:models/lin.onnx
    name: on_absent
    datasets: [absent]
  - from: file:models/missing.onnx
    name: missing
    datasets: [series]
  - from: file:models/corrupt.onnx
    name: corrupt
    datasets: [series]
  - from: file:models/contract.onnx
    name: contract
    datasets: [series]
  - from: openai/gpt-4o
    name: gpt
    datasets: [series]
`;

/** The raw text of the `prediction` array in a body. */
function predictionText(body: string): string {
  const match = /"prediction":\[([^\]]*)\]/.exec(body);
  if (match === null) throw new Error(`no prediction in ${body}`);
  return match[1]!;
}

/** Runs `window` ([L, V] row-major) through the model directly and prints the values as the API must. */
async function direct(model: LinearFixture, window: readonly number[], dtype: 'float32' | 'float64' = 'float32'): Promise<string> {
  const session = await InferenceSession.load(model.bytes, { intraOpThreads: 1 });
  try {
    const data = dtype === 'float32' ? Float32Array.from(window) : Float64Array.from(window);
    const input = session.inputs[0]!;
    const [output] = await session.run({ [input.name]: { data, shape: [1, model.lookback, model.variables] } });
    const values = Array.from(output!.data as Float32Array | Float64Array);
    return values.map(dtype === 'float32' ? formatFloat32 : formatFloat64).join(',');
  } finally {
    session.dispose();
  }
}

async function get(server: ForecastdServer, path: string): Promise<{ status: number; body: string; headers: Headers }> {
  const res = await fetch(server.url + path);
  return { status: res.status, body: await res.text(), headers: res.headers };
}

async function until<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; i < 400; i++) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`gave up waiting for ${what}`);
}

describe('forecastd serving a pod', () => {
  const served = servePod((pod) => {
    pod.write('data/series.csv', dailyCsv({ value: SERIES }));
    pod.write('data/multi.csv', dailyCsv({ a: MULTI_A, b: MULTI_B }));
    pod.write('data/gappy.csv', dailyCsv({ value: GAPPY }));
    pod.write('data/short.csv', dailyCsv({ value: [1, 2, 3] }));
    pod.write('data/negative.csv', dailyCsv({ value: [-1, -2, -3, -4] }));
    pod.write('models/lin.onnx', lin.bytes);
    pod.write('models/lin_v7.onnx', linV7.bytes);
    pod.write('models/multi.onnx', multi.bytes);
    pod.write('models/gap.onnx', gap.bytes);
    pod.write('models/short.onnx', short.bytes);
    pod.write('models/f64.onnx', f64.bytes);
    pod.write('models/nonfinite.onnx', nonFiniteModel({ lookback: 4, horizon: 2, op: 'log' }));
    // Each run is far longer than timeout_ms 1.
    pod.write('models/slow.onnx', slowModel({ size: 4, depth: 20000, horizon: 1 }));
    pod.write('models/corrupt.onnx', new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]));
    pod.write('models/contract.onnx', contractViolationModel('two-inputs', { lookback: 4 }));
    pod.write('spicepod.yaml', POD);
  });

  it('reports every model with its status and reason', async () => {
    const { body } = await get(served.server, '/v1/models?status=true');
    const models = JSON.parse(body) as { name: string; status: string; error: string | null; from: string; datasets: string[] }[];
    const byName = new Map(models.map((m) => [m.name, m]));
    expect(models.map((m) => m.name)).toEqual([
      'lin', 'lin_v7', 'lin_plain', 'multi', 'gap_none', 'gap_linear', 'short', 'f64', 'nonfinite', 'busy', 'slow',
      'on_absent', 'missing', 'corrupt', 'contract', 'gpt',
    ]);
    for (const name of ['lin', 'lin_v7', 'lin_plain', 'multi', 'gap_none', 'gap_linear', 'short', 'f64', 'nonfinite', 'busy', 'slow']) {
      expect(byName.get(name), name).toMatchObject({ status: 'Ready', error: null });
    }
    expect(byName.get('lin')).toMatchObject({ name: 'lin', from: 'file:models/lin.onnx', datasets: ['series'], status: 'Ready', error: null });
    // mae and skill: the latest finished evaluation's, null before one (or for a model that cannot be evaluated).
    expect(Object.keys(byName.get('lin')!)).toEqual(['name', 'from', 'datasets', 'status', 'error', 'mae', 'skill']);
    for (const name of ['missing', 'corrupt', 'contract', 'gpt']) expect(byName.get(name), name).toMatchObject({ mae: null, skill: null });
    for (const name of ['on_absent', 'missing', 'corrupt', 'contract', 'gpt']) expect(byName.get(name)!.status, name).toBe('Error');
    expect(byName.get('missing')!.error).toMatch(/missing\.onnx/);
    expect(byName.get('contract')!.error).toMatch(/exactly one input/);
    expect(byName.get('gpt')!.error).toBe(
      'model source "openai/gpt-4o" (openai) is not supported: forecastd serves ONNX forecasting models from file:PATH.onnx, file://PATH.onnx or an absolute path',
    );
    expect(byName.get('on_absent')!.error).toMatch(/dataset absent is not available/);
  });

  it('GET predict: the documented body, equal to running the window directly', async () => {
    const res = await get(served.server, '/v1/models/lin/predict');
    expect(res.status).toBe(200);
    expect(res.body).toMatch(/^\{"status":"Success","model_name":"lin","model_version":"1.0","lookback":4,"prediction":\[[^\]]+\],"duration_ms":\d+\}$/);
    expect(predictionText(res.body)).toBe(await direct(lin, SERIES.slice(-4)));
    // Served from the prediction cache the second time: the same answer.
    expect(predictionText((await get(served.server, '/v1/models/lin/predict')).body)).toBe(predictionText(res.body));
  });

  it('model_version comes from params, else the ONNX model_version, else is omitted', async () => {
    const v7 = await get(served.server, '/v1/models/lin_v7/predict');
    expect(v7.body).toMatch(/^\{"status":"Success","model_name":"lin_v7","model_version":"7","lookback":4,"prediction"/);
    const plain = await get(served.server, '/v1/models/lin_plain/predict');
    expect(plain.body).toMatch(/^\{"status":"Success","model_name":"lin_plain","lookback":4,"prediction"/);
  });

  it('feeds a multivariate model its columns in params.columns order', async () => {
    const res = await get(served.server, '/v1/models/multi/predict');
    expect(res.status).toBe(200);
    const window: number[] = [];
    for (let r = 3; r < 6; r++) window.push(MULTI_B[r]!, MULTI_A[r]!);
    expect(predictionText(res.body)).toBe(await direct(multi, window));
  });

  it('a float64 model prints shortest float64', async () => {
    const res = await get(served.server, '/v1/models/f64/predict');
    expect(res.status).toBe(200);
    expect(predictionText(res.body)).toBe(await direct(f64, SERIES.slice(-4), 'float64'));
  });

  it('a gap in the window is a 500 naming the time, unless fill_missing fills it', async () => {
    const none = await get(served.server, '/v1/models/gap_none/predict');
    expect(none.status).toBe(500);
    const body = JSON.parse(none.body) as Record<string, unknown>;
    expect(body['status']).toBe('InternalError');
    expect(body['error_message']).toBe(
      'gap in dataset gappy at 2024-01-04T00:00:00.000Z: column "value" has no value (fill_missing is none; set it to previous or linear to fill gaps)',
    );
    expect(body['model_name']).toBe('gap_none');
    expect(body['lookback']).toBe(4);

    const linear = await get(served.server, '/v1/models/gap_linear/predict');
    expect(linear.status).toBe(200);
    // The gap (day 4) lies halfway between 3.5 (day 3) and 6.5 (day 5).
    expect(predictionText(linear.body)).toBe(await direct(gap, [3.5, 5, 6.5, 7.5]));
  });

  it('a dataset shorter than the lookback is a 500 giving both counts (cache off: the window fails before any run)', async () => {
    const res = await get(served.server, '/v1/models/short/predict');
    expect(res.status).toBe(500);
    expect(JSON.parse(res.body)).toMatchObject({
      status: 'InternalError',
      error_message: 'dataset short has 3 rows; the model needs a lookback of 5',
      model_name: 'short',
      lookback: 5,
    });
    // In a POST it is that item's error; the other items still succeed.
    const post = await fetch(served.server.url + '/v1/predict', {
      method: 'POST',
      body: JSON.stringify({ predictions: [{ model_name: 'short' }, { model_name: 'lin' }] }),
    });
    expect(post.status).toBe(200);
    const items = ((await post.json()) as { predictions: Record<string, unknown>[] }).predictions;
    expect(items[0]).toMatchObject({
      status: 'InternalError',
      error_message: 'dataset short has 3 rows; the model needs a lookback of 5',
      model_name: 'short',
    });
    expect(items[1]).toMatchObject({ status: 'Success', model_name: 'lin' });
  });

  it('a non-finite prediction is a 500', async () => {
    const res = await get(served.server, '/v1/models/nonfinite/predict');
    expect(res.status).toBe(500);
    expect(JSON.parse(res.body)).toMatchObject({ status: 'InternalError', model_name: 'nonfinite' });
    expect((JSON.parse(res.body) as { error_message: string }).error_message).toMatch(/^prediction contains NaN/);
  });

  it('a model in Error is a 500 with the reason; an unknown model is a 400', async () => {
    const missing = await get(served.server, '/v1/models/missing/predict');
    expect(missing.status).toBe(500);
    const body = JSON.parse(missing.body) as Record<string, unknown>;
    expect(Object.keys(body)).toEqual(['status', 'error_message', 'model_name', 'duration_ms']);
    expect(body['error_message']).toMatch(/^Model missing failed to load: .*missing\.onnx/);

    const unknown = await get(served.server, '/v1/models/nobody/predict');
    expect(unknown.status).toBe(400);
    expect(JSON.parse(unknown.body)).toMatchObject({ status: 'BadRequest', error_message: 'Model nobody not found', model_name: 'nobody' });
  });

  it('a request waiting past timeout_ms is a 504', async () => {
    const res = await get(served.server, '/v1/models/slow/predict');
    expect(res.status).toBe(504);
    expect(JSON.parse(res.body)).toMatchObject({ status: 'InternalError', model_name: 'slow' });
  });

  it('one POST computes each distinct model once: items naming a model with a queue of one all succeed', async () => {
    // busy runs one window at a time with room for one more: computed per item, the third was "queue is full".
    const res = await fetch(served.server.url + '/v1/predict', {
      method: 'POST',
      body: JSON.stringify({ predictions: Array.from({ length: 1000 }, () => ({ model_name: 'busy' })) }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { predictions: { status: string; model_name: string; prediction: number[] }[] };
    expect(body.predictions).toHaveLength(1000);
    expect(new Set(body.predictions.map((p) => p.status))).toEqual(new Set(['Success']));
    expect(new Set(body.predictions.map((p) => JSON.stringify(p.prediction))).size).toBe(1);
    // A full queue on GET is 503 + Retry-After: 1, checked against the status table in test/http.
  });

  it('POST without a list predicts every Ready model, concurrently, in pod order', async () => {
    const res = await fetch(served.server.url + '/v1/predict', { method: 'POST', body: '' });
    const body = (await res.json()) as { duration_ms: number; predictions: { model_name: string; status: string }[] };
    expect(body.predictions.map((p) => p.model_name)).toEqual([
      'lin', 'lin_v7', 'lin_plain', 'multi', 'gap_none', 'gap_linear', 'short', 'f64', 'nonfinite', 'busy', 'slow',
    ]);
    expect(body.predictions[0]!.status).toBe('Success');
  });

  it('GET /v1/datasets lists rows, time range, status and errors', async () => {
    const datasets = JSON.parse((await get(served.server, '/v1/datasets')).body) as Record<string, unknown>[];
    expect(datasets.find((d) => d['name'] === 'multi')).toEqual({
      name: 'multi',
      from: 'file:data/multi.csv',
      rows: 6,
      first_ts: '2024-01-01T00:00:00.000Z',
      last_ts: '2024-01-06T00:00:00.000Z',
      status: 'Ready',
      error: null,
      refreshed_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      frequency: 'P1D',
      off_grid_rows: 0,
    });
    const absent = datasets.find((d) => d['name'] === 'absent')!;
    expect(absent).toMatchObject({ rows: 0, first_ts: null, last_ts: null, status: 'Error', refreshed_at: null, frequency: null });
    expect(absent['error']).toMatch(/absent\.csv/);
  });

  it('/v1/ready is 200 once nothing is Initializing (entries in Error do not hold it back)', async () => {
    const res = await get(served.server, '/v1/ready');
    expect([res.status, res.body]).toEqual([200, 'ready']);
  });

  it('GET /metrics exposes prediction, dataset and batch metrics', async () => {
    await get(served.server, '/v1/models/lin_v7/predict');
    const text = (await get(served.server, '/metrics')).body;
    expect(text).toMatch(/^forecastd_predictions_total\{model="lin_v7"\} [1-9]\d*$/m);
    expect(text).toMatch(/^forecastd_prediction_failures_total\{model="short",reason="ERR_WINDOW"\} [1-9]\d*$/m);
    expect(text).toMatch(/^forecastd_dataset_rows\{dataset="multi"\} 6$/m);
    expect(text).toMatch(/^forecastd_batch_size_count\{model="lin_v7"\} [1-9]\d*$/m);
    expect(text).toMatch(/^forecastd_prediction_cache_hits_total\{model="lin"\} [1-9]\d*$/m);
    expect(text).toMatch(/^forecastd_queue_depth\{model="lin"\} 0$/m);
  });

  it('a dataset file changed while serving: the next prediction reflects it', async () => {
    const next = [...SERIES, 21.625];
    writeFileSync(served.pod.path('data/series.csv'), dailyCsv({ value: next }));
    await until('the refreshed dataset', async () => {
      const datasets = JSON.parse((await get(served.server, '/v1/datasets')).body) as { name: string; rows: number }[];
      return datasets.find((d) => d.name === 'series')!.rows === 11 ? true : undefined;
    });
    const expected = await direct(lin, next.slice(-4));
    expect(predictionText((await get(served.server, '/v1/models/lin/predict')).body)).toBe(expected);
    expect(predictionText((await get(served.server, '/v1/models/lin_v7/predict')).body)).toBe(expected);
  });
});

describe('while a dataset is still loading', () => {
  let fifo: string;
  const served = servePod((pod) => {
    fifo = pod.fifo('data/blocked.csv');
    pod.write('models/lin.onnx', lin.bytes);
    pod.write(
      'spicepod.yaml',
      `version: v1beta1
kind: Spicepod
name: loading
datasets:
  - from: file:data/blocked.csv
    name: blocked
models:
  - from: file:models/lin.onnx
    name: lin
    datasets: [blocked]
`,
    );
  }, { loaded: false });

  it('answers 503 + Retry-After and not ready, then serves once the data arrives', async () => {
    const loading = await get(served.server, '/v1/models/lin/predict');
    expect(loading.status).toBe(503);
    expect(loading.headers.get('retry-after')).toBe('1');
    expect(JSON.parse(loading.body)).toMatchObject({
      status: 'InternalError',
      error_message: 'Model lin is still loading; retry shortly',
      model_name: 'lin',
    });
    const notReady = await get(served.server, '/v1/ready');
    expect([notReady.status, notReady.body]).toEqual([503, 'not ready']);
    const models = JSON.parse((await get(served.server, '/v1/models?status=true')).body) as { status: string }[];
    expect(models[0]!.status).toBe('Initializing');

    // Opening the pipe for writing releases the blocked read.
    await releaseFifo(fifo, dailyCsv({ value: SERIES }));
    await served.server.loaded();
    const ready = await get(served.server, '/v1/ready');
    expect([ready.status, ready.body]).toEqual([200, 'ready']);
    const res = await get(served.server, '/v1/models/lin/predict');
    expect(res.status).toBe(200);
    expect(predictionText(res.body)).toBe(await direct(lin, SERIES.slice(-4)));
  });
});

describe('with runtime.auth API keys', () => {
  const served = servePod((pod) => {
    pod.write('data/series.csv', dailyCsv({ value: SERIES }));
    pod.write('models/lin.onnx', lin.bytes);
    pod.write(
      'spicepod.yaml',
      `version: v1beta1
kind: Spicepod
name: auth
runtime:
  auth:
    api-key:
      enabled: true
      keys: ["\${env:E2E_KEY}"]
datasets:
  - from: file:data/series.csv
    name: series
models:
  - from: file:models/lin.onnx
    name: lin
    datasets: [series]
`,
    );
  }, { env: { E2E_KEY: 'k-123' } });

  it('needs the key from the environment everywhere but /health and /v1/ready', async () => {
    expect((await get(served.server, '/v1/models/lin/predict')).status).toBe(401);
    expect((await get(served.server, '/health')).status).toBe(200);
    expect((await get(served.server, '/v1/ready')).status).toBe(200);
    const withKey = await fetch(served.server.url + '/v1/models/lin/predict', { headers: { 'x-api-key': 'k-123' } });
    expect(withKey.status).toBe(200);
    const bearer = await fetch(served.server.url + '/v1/predict', {
      method: 'POST',
      headers: { authorization: 'Bearer k-123' },
      body: '{"predictions":[{"model_name":"lin"}]}',
    });
    expect(bearer.status).toBe(200);
    expect(((await bearer.json()) as { predictions: { status: string }[] }).predictions[0]!.status).toBe('Success');
  });
});
