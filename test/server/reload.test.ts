import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import type { Logger } from '../../src/log.js';
import { startServer, type ForecastdServer } from '../../src/server/start.js';
import { slowModel } from '../../tools/onnx-builder.js';
import { PodDir, dailyCsv, linearFixture, predictionText, replaceFile, runDirect, until } from './fixtures.js';

/**
 * Hot reload end to end: a real server watching a real pod folder, real ONNX models swapped on disk while
 * clients keep asking. Conditions are awaited by polling the HTTP API, never by sleeping.
 */

const SERIES = [12.5, 13.25, 11.75, 14.5, 15.125, 13.875, 16.25, 17.5, 16.75, 18.125];
const OTHER = [3.5, 2.25, 4.75, 5.125, 3.875, 6.5];
const LAST4 = SERIES.slice(-4);

const A = linearFixture({ lookback: 4, horizon: 3, seed: 21 });
const B = linearFixture({ lookback: 4, horizon: 3, seed: 22 });
const C = linearFixture({ lookback: 4, horizon: 3, seed: 23 });
// The lookback dimension is symbolic: params.lookback decides it, and the weights fit only that length.
const SYM4 = linearFixture({ lookback: 4, horizon: 2, seed: 31, lookbackDim: 'L' });
const SYM3 = linearFixture({ lookback: 3, horizon: 2, seed: 32, lookbackDim: 'L' });

const WATCH = { intervalMs: 100, debounceMs: 20 } as const;
// Files here are replaced by rename; test/server/settle.test.ts covers the settle rule with the default time.
const SETTLE_MS = 200;
const KEY = 'reload-key';

function capturingLogger(): { logger: Logger; text: () => string } {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (d: Buffer) => {
    text += d.toString();
  });
  return { logger: createLogger({ format: 'json', level: 'info', destination: stream }), text: () => text };
}

async function get(server: ForecastdServer, path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(server.url + path, { headers: { 'x-api-key': KEY } });
  return { status: res.status, body: await res.text() };
}

interface ModelState {
  name: string;
  status: string;
  error: string | null;
  from: string;
  datasets: string[];
}

async function models(server: ForecastdServer): Promise<Map<string, ModelState>> {
  const list = JSON.parse((await get(server, '/v1/models?status=true')).body) as ModelState[];
  return new Map(list.map((m) => [m.name, m]));
}

/** Polls GET predict until `accept` holds for the body, and returns that body. */
function untilPrediction(server: ForecastdServer, model: string, accept: (body: string, status: number) => boolean): Promise<string> {
  return until(`a prediction of ${model} as expected`, async () => {
    const res = await get(server, `/v1/models/${model}/predict`);
    return accept(res.body, res.status) ? res.body : undefined;
  });
}

async function metricValue(server: ForecastdServer, pattern: RegExp): Promise<number | undefined> {
  const match = pattern.exec((await get(server, '/metrics')).body);
  return match === null ? undefined : Number(match[1]);
}

/** One answer a client got, per model (a POST yields one per item). */
interface Answer {
  readonly model: string;
  readonly httpStatus: number;
  readonly status: string;
  readonly prediction: string | null;
  readonly body: string;
  /** Sent after stop(), so after every change the test waited for. */
  readonly late: boolean;
}

/**
 * Concurrent clients, each a loop of GET predict for each model in turn and a POST /v1/predict for all of
 * them. They run until stop(), then each makes `extra` more requests, so every loop is seen to get answers
 * from after the last change too.
 */
class Load {
  readonly answers: Answer[][] = [];
  private stopped = false;
  private readonly done: Promise<void>;

  constructor(
    private readonly server: ForecastdServer,
    private readonly names: readonly string[],
    loops = 8,
    private readonly extra = 12,
  ) {
    const runs: Promise<void>[] = [];
    for (let i = 0; i < loops; i++) {
      const answers: Answer[] = [];
      this.answers.push(answers);
      runs.push(this.loop(i, answers));
    }
    this.done = Promise.all(runs).then(() => undefined);
  }

  get count(): number {
    return this.answers.reduce((n, a) => n + a.length, 0);
  }

  async stop(): Promise<Answer[][]> {
    this.stopped = true;
    await this.done;
    return this.answers;
  }

  private async loop(offset: number, answers: Answer[]): Promise<void> {
    let left = this.extra;
    for (let k = offset; !this.stopped || left-- > 0; k++) {
      const late = this.stopped;
      const step = k % (this.names.length + 1);
      if (step < this.names.length) {
        const model = this.names[step]!;
        const res = await get(this.server, `/v1/models/${model}/predict`);
        answers.push(answerOf(model, res.status, res.body, late));
      } else {
        const res = await fetch(this.server.url + '/v1/predict', {
          method: 'POST',
          headers: { 'x-api-key': KEY },
          body: JSON.stringify({ predictions: this.names.map((model_name) => ({ model_name })) }),
        });
        const text = await res.text();
        if (res.status !== 200) {
          answers.push({ model: '(POST)', httpStatus: res.status, status: '', prediction: null, body: text, late });
          continue;
        }
        const body = JSON.parse(text) as { predictions: { model_name: string }[] };
        for (const item of body.predictions) answers.push(answerOf(item.model_name, 200, JSON.stringify(item), late));
      }
    }
  }
}

function answerOf(model: string, httpStatus: number, body: string, late: boolean): Answer {
  const parsed = JSON.parse(body) as { status: string; prediction?: number[] };
  return {
    model,
    httpStatus,
    status: parsed.status,
    prediction: parsed.prediction === undefined ? null : predictionText(body),
    body,
    late,
  };
}

/** Every answer a success. */
function expectNoFailures(loops: readonly Answer[][]): void {
  const failed = loops.flat().filter((a) => a.httpStatus !== 200 || a.status !== 'Success');
  expect(failed.map((a) => `${a.model}: ${a.httpStatus} ${a.body}`)).toEqual([]);
}

/**
 * Per loop and model, the predictions walk through `versions` in order and never back (a request that saw
 * a newer version was sent after the swap, so every later one of that loop sees it too), and every answer
 * to a request sent after stop() is from the last version.
 */
function expectVersionsInOrder(loops: readonly Answer[][], model: string, versions: readonly string[]): void {
  const seen = new Set<number>();
  for (const answers of loops) {
    const own = answers.filter((a) => a.model === model);
    let at = 0;
    for (const a of own) {
      const index = versions.indexOf(a.prediction ?? '');
      expect(index, `${model} answered ${a.body}, not one of the expected versions`).toBeGreaterThanOrEqual(0);
      expect(index, `${model} went back to an older version`).toBeGreaterThanOrEqual(at);
      at = index;
      seen.add(index);
    }
    const late = own.filter((a) => a.late);
    expect(late.length).toBeGreaterThan(0);
    for (const a of late) expect(a.prediction).toBe(versions[versions.length - 1]);
  }
  expect([...seen].sort()).toEqual(versions.map((_, i) => i));
}

const BASE = `version: v1beta1
kind: Spicepod
name: reload
`;

describe('reloading a changed model file under load', () => {
  const pod = new PodDir('forecastd-reload-');
  const log = capturingLogger();
  let server: ForecastdServer;
  let ofA: string;
  let ofB: string;
  let ofC: string;

  beforeAll(async () => {
    pod.write('data/series.csv', dailyCsv({ value: SERIES }));
    pod.write('models/lin.onnx', A.bytes);
    pod.write(
      'spicepod.yaml',
      `${BASE}datasets:
  - from: file:data/series.csv
    name: series
models:
  - from: file:models/lin.onnx
    name: lin
    datasets: [series]
  - from: file:models/lin.onnx
    name: lin_nocache
    datasets: [series]
    params:
      cache_predictions: false
      max_batch_size: 4
`,
    );
    const shape = [1, 4, 1];
    [ofA, ofB, ofC] = await Promise.all([runDirect(A.bytes, LAST4, shape), runDirect(B.bytes, LAST4, shape), runDirect(C.bytes, LAST4, shape)]);
    server = await startServer({ spicepod: pod.dir, port: 0, logger: log.logger, watch: WATCH, settleMs: SETTLE_MS });
    await server.loaded();
  });

  afterAll(async () => {
    await server?.close();
    pod.remove();
  });

  it('swaps in a new model while requests keep coming, without one failing', async () => {
    expect(new Set([ofA, ofB, ofC]).size).toBe(3);
    expect(predictionText((await get(server, '/v1/models/lin/predict')).body)).toBe(ofA);

    const load = new Load(server, ['lin', 'lin_nocache']);
    await until('some answers before the swap', async () => (load.count >= 32 ? true : undefined));
    replaceFile(pod.path('models/lin.onnx'), B.bytes);
    await untilPrediction(server, 'lin', (body) => body.includes(ofB));
    await untilPrediction(server, 'lin_nocache', (body) => body.includes(ofB));
    const answers = await load.stop();

    expectNoFailures(answers);
    expectVersionsInOrder(answers, 'lin', [ofA, ofB]);
    expectVersionsInOrder(answers, 'lin_nocache', [ofA, ofB]);
    const state = (await models(server)).get('lin')!;
    expect(state).toMatchObject({ status: 'Ready', error: null });
    expect(log.text()).toMatch(/"model":"lin".*model lin reloaded; the new version serves/);
    const metrics = (await get(server, '/metrics')).body;
    expect(metrics).toMatch(/^forecastd_model_reloads_total\{model="lin",result="swapped"\} 1$/m);
  });

  it('keeps serving the old model when the new file is corrupt, and shows why; a fixed file clears it', async () => {
    const load = new Load(server, ['lin', 'lin_nocache']);
    await until('some answers first', async () => (load.count >= 32 ? true : undefined));
    replaceFile(pod.path('models/lin.onnx'), new Uint8Array([8, 1, 18, 4, 1, 2, 3, 4, 0xff, 0xff]));
    const broken = await until('the failed reload to show', async () => {
      const m = await models(server);
      const lin = m.get('lin')!;
      const plain = m.get('lin_nocache')!;
      return lin.error !== null && plain.error !== null ? { lin, plain } : undefined;
    });
    // Still Ready: it serves the previous version.
    expect(broken.lin.status).toBe('Ready');
    expect(broken.plain.status).toBe('Ready');
    expect(broken.lin.error).toMatch(/lin\.onnx/);
    expect(predictionText((await get(server, '/v1/models/lin/predict')).body)).toBe(ofB);
    expect(log.text()).toMatch(/model lin reload failed; still serving the previous version: /);

    replaceFile(pod.path('models/lin.onnx'), C.bytes);
    await until('the error to clear', async () => {
      const m = await models(server);
      return m.get('lin')!.error === null && m.get('lin_nocache')!.error === null ? true : undefined;
    });
    await untilPrediction(server, 'lin', (body) => body.includes(ofC));
    await untilPrediction(server, 'lin_nocache', (body) => body.includes(ofC));
    const answers = await load.stop();

    expectNoFailures(answers);
    expectVersionsInOrder(answers, 'lin', [ofB, ofC]);
    expectVersionsInOrder(answers, 'lin_nocache', [ofB, ofC]);
    expect((await models(server)).get('lin')).toMatchObject({ status: 'Ready', error: null });
    const metrics = (await get(server, '/metrics')).body;
    expect(metrics).toMatch(/^forecastd_model_reloads_total\{model="lin",result="failed"\} 1$/m);
    expect(metrics).toMatch(/^forecastd_model_reloads_total\{model="lin",result="swapped"\} 2$/m);
  });
});

describe('reloading an edited spicepod', () => {
  const pod = new PodDir('forecastd-reload-pod-');
  const log = capturingLogger();
  let server: ForecastdServer;
  let load: Load;

  const dataset = (file: string): string => `datasets:
  - from: file:data/${file}
    name: series
`;
  const keep = `  - from: file:models/keep.onnx
    name: keep
    datasets: [series]
`;
  const sym = (version: string, lookback: number): string => `  - from: file:models/sym.onnx
    name: sym
    datasets: [series]
    params:
      version: "${version}"
      lookback: ${lookback}
`;
  const extra = `  - from: file:models/extra.onnx
    name: extra
    datasets: [series]
`;
  const writePod = (body: string): void => replaceFile(pod.path('spicepod.yaml'), BASE + body);

  beforeAll(async () => {
    pod.write('data/series.csv', dailyCsv({ value: SERIES }));
    pod.write('data/other.csv', dailyCsv({ value: OTHER }));
    pod.write('models/keep.onnx', A.bytes);
    pod.write('models/sym.onnx', SYM4.bytes);
    pod.write('models/extra.onnx', B.bytes);
    pod.write('spicepod.yaml', BASE + dataset('series.csv') + 'models:\n' + keep + sym('1.0', 4));
    server = await startServer({ spicepod: pod.dir, port: 0, logger: log.logger, watch: WATCH, settleMs: SETTLE_MS });
    await server.loaded();
    // A model no edit touches keeps answering throughout.
    load = new Load(server, ['keep'], 4, 4);
  });

  afterAll(async () => {
    await load?.stop();
    await server?.close();
    pod.remove();
  });

  it('starts an added model', async () => {
    writePod(dataset('series.csv') + 'models:\n' + keep + sym('1.0', 4) + extra);
    const body = await untilPrediction(server, 'extra', (_, status) => status === 200);
    expect(predictionText(body)).toBe(await runDirect(B.bytes, LAST4, [1, 4, 1]));
    expect([...(await models(server)).keys()]).toEqual(['keep', 'sym', 'extra']);
    expect(log.text()).toMatch(/spicepod reloaded: model extra added/);
  });

  it('applies changed params: a new version at once, a bad lookback as a failed reload that keeps the old one', async () => {
    const sym4 = await runDirect(SYM4.bytes, LAST4, [1, 4, 1]);
    writePod(dataset('series.csv') + 'models:\n' + keep + sym('2.0', 4) + extra);
    const v2 = await untilPrediction(server, 'sym', (body) => body.includes('"model_version":"2.0"'));
    expect(JSON.parse(v2)).toMatchObject({ status: 'Success', model_version: '2.0', lookback: 4 });
    expect(predictionText(v2)).toBe(sym4);

    // The model's weights fit 4 rows only: its warm-up with 3 fails, so it stays on the version that works.
    writePod(dataset('series.csv') + 'models:\n' + keep + sym('3.0', 3) + extra);
    const failed = await until('the failed reload of sym', async () => {
      const state = (await models(server)).get('sym')!;
      return state.error !== null ? state : undefined;
    });
    expect(failed.status).toBe('Ready');
    const still = JSON.parse((await get(server, '/v1/models/sym/predict')).body) as Record<string, unknown>;
    expect(still).toMatchObject({ status: 'Success', model_version: '2.0', lookback: 4 });

    // A model file that fits the new lookback: the same config now loads.
    replaceFile(pod.path('models/sym.onnx'), SYM3.bytes);
    const v3 = await untilPrediction(server, 'sym', (body) => body.includes('"model_version":"3.0"'));
    expect(JSON.parse(v3)).toMatchObject({ status: 'Success', model_version: '3.0', lookback: 3 });
    expect(predictionText(v3)).toBe(await runDirect(SYM3.bytes, SERIES.slice(-3), [1, 3, 1]));
    expect((await models(server)).get('sym')).toMatchObject({ status: 'Ready', error: null });
  });

  it('stops a removed model: it is not found', async () => {
    writePod(dataset('series.csv') + 'models:\n' + keep + sym('3.0', 3));
    const body = await untilPrediction(server, 'extra', (_, status) => status === 400);
    expect(JSON.parse(body)).toMatchObject({ status: 'BadRequest', error_message: 'Model extra not found', model_name: 'extra' });
    expect([...(await models(server)).keys()]).toEqual(['keep', 'sym']);
  });

  it('keeps the current configuration while the spicepod is invalid, and applies it once fixed', async () => {
    writePod(dataset('series.csv') + 'models:\n' + keep + '  - from: file:models/extra.onnx\n    name: [broken\n');
    await until('the failed spicepod reload', async () =>
      (await metricValue(server, /^forecastd_spicepod_reload_failing (\d+)$/m)) === 1 ? true : undefined,
    );
    expect(log.text()).toMatch(/spicepod reload failed; still serving the configuration applied before: .*spicepod\.yaml:\d+:\d+: invalid YAML/);
    expect([...(await models(server)).keys()]).toEqual(['keep', 'sym']);
    expect((await get(server, '/v1/models/sym/predict')).status).toBe(200);

    writePod(dataset('series.csv') + 'models:\n' + keep + sym('3.0', 3) + extra);
    await untilPrediction(server, 'extra', (_, status) => status === 200);
    expect(await metricValue(server, /^forecastd_spicepod_reload_failing (\d+)$/m)).toBe(0);
  });

  it('a changed dataset is loaded anew and its models follow', async () => {
    const expected = await runDirect(A.bytes, OTHER.slice(-4), [1, 4, 1]);
    writePod(dataset('other.csv') + 'models:\n' + keep + sym('3.0', 3) + extra);
    await untilPrediction(server, 'keep', (body) => body.includes(expected));
    const datasets = JSON.parse((await get(server, '/v1/datasets')).body) as { name: string; from: string; rows: number }[];
    expect(datasets).toMatchObject([{ name: 'series', from: 'file:data/other.csv', rows: OTHER.length }]);
    // sym follows too, at its own pace (models reload side by side and calibrate one after the other).
    const symExpected = await runDirect(SYM3.bytes, OTHER.slice(-3), [1, 3, 1]);
    const body = await untilPrediction(server, 'sym', (text) => text.includes(symExpected));
    expect(predictionText(body)).toBe(symExpected);
  });

  it('applies changed API keys', async () => {
    writePod(
      `runtime:
  auth:
    api-key:
      enabled: true
      keys: ["${KEY}"]
` + dataset('other.csv') + 'models:\n' + keep + sym('3.0', 3) + extra,
    );
    await until('auth to apply', async () => ((await fetch(server.url + '/v1/models')).status === 401 ? true : undefined));
    expect((await get(server, '/v1/models')).status).toBe(200);
  });

  it('starts a model whose file was missing as soon as the file appears', async () => {
    const late = `  - from: file:models/late.onnx
    name: late
    datasets: [series]
`;
    writePod(
      `runtime:
  auth:
    api-key:
      enabled: true
      keys: ["${KEY}"]
` + dataset('other.csv') + 'models:\n' + keep + sym('3.0', 3) + extra + late,
    );
    const missing = await until('the model without a file to fail', async () => {
      const state = (await models(server)).get('late');
      return state?.status === 'Error' ? state : undefined;
    });
    expect(missing.error).toMatch(/late\.onnx/);
    replaceFile(pod.path('models/late.onnx'), C.bytes);
    const body = await untilPrediction(server, 'late', (_, status) => status === 200);
    expect(predictionText(body)).toBe(await runDirect(C.bytes, OTHER.slice(-4), [1, 4, 1]));
    expect((await models(server)).get('late')).toMatchObject({ status: 'Ready', error: null });
  });

  it('no request for the untouched model failed meanwhile', async () => {
    const answers = await load.stop();
    expectNoFailures(answers);
    const last = await runDirect(A.bytes, OTHER.slice(-4), [1, 4, 1]);
    for (const loop of answers) expect(loop[loop.length - 1]!.prediction).toBe(last);
  });
});

describe('a model swapped while its requests are in flight', () => {
  const pod = new PodDir('forecastd-reload-slow-');
  let server: ForecastdServer;
  // Long enough that a batch-1 queue of requests takes a while; short enough to load in about a second.
  const SIZE = 512;
  const slow = slowModel({ size: SIZE, depth: 2000, horizon: 1, seed: 5 });
  const fast = linearFixture({ lookback: SIZE, horizon: 1, seed: 6, rank: 2 });
  const values = Array.from({ length: SIZE + 20 }, (_, i) => Math.round(Math.sin(i / 7) * 1000) / 100);
  const window = values.slice(-SIZE);

  beforeAll(async () => {
    pod.write('data/long.csv', dailyCsv({ value: values }));
    pod.write('models/m.onnx', slow);
    pod.write(
      'spicepod.yaml',
      `${BASE}datasets:
  - from: file:data/long.csv
    name: long
models:
  - from: file:models/m.onnx
    name: m
    datasets: [long]
    params:
      max_batch_size: 1
      max_concurrent_runs: 1
      cache_predictions: false
      timeout_ms: 600000
`,
    );
    server = await startServer({ spicepod: pod.dir, port: 0, watch: WATCH, settleMs: SETTLE_MS });
    await server.loaded();
  });

  afterAll(async () => {
    await server?.close();
    pod.remove();
  });

  it('finishes them on the old session', async () => {
    const [ofSlow, ofFast] = await Promise.all([runDirect(slow, window, [1, SIZE]), runDirect(fast.bytes, window, [1, SIZE])]);
    expect(ofSlow).not.toBe(ofFast);
    const requests = 32;
    let settled = 0;
    const inFlight = Array.from({ length: requests }, () =>
      get(server, '/v1/models/m/predict').finally(() => {
        settled++;
      }),
    );
    // Every one of them has reached the model's queue (the count includes the /metrics request itself).
    await until('the requests to be in flight', async () => {
      const n = await metricValue(server, /^http_requests_in_flight (\d+)$/m);
      return n !== undefined && n >= requests + 1 ? true : undefined;
    });
    replaceFile(pod.path('models/m.onnx'), fast.bytes);
    // Watched through metrics: a prediction request sent before the swap would queue behind the old ones.
    await until('the swap', async () =>
      (await metricValue(server, /^forecastd_model_reloads_total\{model="m",result="swapped"\} (\d+)$/m)) === 1 ? true : undefined,
    );
    const pendingAtSwap = requests - settled;
    const now = await get(server, '/v1/models/m/predict');
    expect([now.status, predictionText(now.body)]).toEqual([200, ofFast]);

    const answers = await Promise.all(inFlight);
    expect(answers.map((a) => a.status)).toEqual(Array(requests).fill(200));
    for (const a of answers) expect(predictionText(a.body)).toBe(ofSlow);
    // The premise: the new version answered while old requests were still queued on the old session.
    expect(pendingAtSwap).toBeGreaterThan(0);
  });
});

describe('reload() without watching', () => {
  const pod = new PodDir('forecastd-reload-manual-');
  let server: ForecastdServer;
  const model = (name: string): string => `  - from: file:models/lin.onnx
    name: ${name}
    datasets: [series]
`;
  const head = `${BASE}datasets:
  - from: file:data/series.csv
    name: series
models:
`;

  beforeAll(async () => {
    pod.write('data/series.csv', dailyCsv({ value: SERIES }));
    pod.write('models/lin.onnx', A.bytes);
    pod.write('spicepod.yaml', head + model('one'));
    server = await startServer({ spicepod: pod.dir, port: 0 });
    await server.loaded();
  });

  afterAll(async () => {
    await server?.close();
    pod.remove();
  });

  it('applies the spicepod and changed model files when asked, and resolves once they serve', async () => {
    pod.write('spicepod.yaml', head + model('one') + model('two'));
    pod.write('models/lin.onnx', B.bytes);
    const outcome = await server.reload();
    expect(outcome).toEqual({ applied: true, error: null, reloadedModels: ['two', 'one'] });
    const ofB = await runDirect(B.bytes, LAST4, [1, 4, 1]);
    for (const name of ['one', 'two']) {
      const res = await get(server, `/v1/models/${name}/predict`);
      expect([res.status, predictionText(res.body)]).toEqual([200, ofB]);
    }
  });

  it('reports a spicepod it cannot apply, naming file, line and key, and changes nothing', async () => {
    pod.write('spicepod.yaml', head + model('one') + '  - from: file:models/lin.onnx\n    name: two\n    datasets: [nowhere]\n');
    const outcome = await server.reload();
    expect(outcome.applied).toBe(false);
    expect(outcome.error).toMatch(/spicepod\.yaml:\d+:\d+: .*nowhere/);
    expect([...(await models(server)).keys()]).toEqual(['one', 'two']);
    expect((await get(server, '/v1/models/two/predict')).status).toBe(200);
  });
});
