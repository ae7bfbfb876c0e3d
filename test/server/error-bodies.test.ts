import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { buildModel, initializer, node, valueInfo } from '../../tools/onnx-builder.js';
import { dailyCsv, linearFixture, servePod, spinModel } from './fixtures.js';

/**
 * What clients read about failures is said in their terms, and what operators need stays in the log: error
 * bodies and listings never carry absolute paths, database hosts or users, raw cells, or ONNX Runtime's own
 * wording; and a caller joining a shared computation keeps its own timeout.
 */

/** Gather(table, int64(max(window))): fails inside ONNX Runtime when the window's largest value is not a row. */
function lookupModel(): Uint8Array {
  return buildModel({
    nodes: [
      node('ReduceMax', ['window'], ['peak'], { axes: [1, 2], keepdims: 0 }),
      node('Cast', ['peak'], ['row'], { to: 7 }),
      node('Gather', ['table', 'row'], ['forecast'], { axis: 0 }),
    ],
    initializers: [initializer('table', 'float32', [2, 3], [1, 2, 3, 4, 5, 6])],
    inputs: [valueInfo('window', 'float32', ['batch', 4, 1])],
    outputs: [valueInfo('forecast', 'float32', ['batch', 3])],
  });
}

const SECRET_CELL = 'cell-text-7f3a';
const PG_USER = 'reporting_user_91';

describe('error bodies and listings', () => {
  let log = '';
  const stream = new PassThrough();
  stream.on('data', (d: Buffer) => {
    log += d.toString();
  });
  const served = servePod((pod) => {
    pod.write('data/series.csv', dailyCsv({ value: [1, 2, 3, 4, 5, 9] }));
    pod.write('data/bad.csv', `ts,value\n2024-01-01T00:00:00Z,1\n2024-01-02T00:00:00Z,${SECRET_CELL}\n`);
    pod.write('models/lookup.onnx', lookupModel());
    pod.write('models/lin.onnx', linearFixture({ lookback: 4, horizon: 2 }).bytes);
    pod.write(
      'spicepod.yaml',
      `version: v1beta1
kind: Spicepod
name: errors
datasets:
  - from: file:data/series.csv
    name: series
  - from: file:data/bad.csv
    name: bad
  - from: postgres:public.nowhere
    name: pg
    params:
      pg_host: 127.0.0.1
      pg_port: 1
      pg_user: ${PG_USER}
      pg_db: test
      pg_sslmode: disable
models:
  - from: file:models/lookup.onnx
    name: lookup
    datasets: [series]
  - from: file:models/absent.onnx
    name: absent
    datasets: [series]
  - from: file:models/lin.onnx
    name: on_bad
    datasets: [bad]
`,
    );
  }, { prefix: 'forecastd-errors-', logger: createLogger({ format: 'json', level: 'info', destination: stream }) });

  async function get(path: string): Promise<{ status: number; body: string; id: string }> {
    const res = await fetch(served.server.url + path);
    return { status: res.status, body: await res.text(), id: res.headers.get('x-request-id') ?? '' };
  }

  function expectNoInternals(text: string): void {
    expect(text).not.toContain(served.pod.dir);
    expect(text).not.toContain(SECRET_CELL);
    expect(text).not.toContain(PG_USER);
    expect(text).not.toContain('127.0.0.1:1');
  }

  it('a missing model file is named as the pod names it', async () => {
    const res = await get('/v1/models/absent/predict');
    expect(res.status).toBe(500);
    expect(JSON.parse(res.body)).toMatchObject({
      status: 'InternalError',
      error_message: 'Model absent failed to load: file:models/absent.onnx: the model file was not found',
    });
    const models = await get('/v1/models?status=true');
    expectNoInternals(models.body);
    expect(JSON.parse(models.body)).toContainEqual(expect.objectContaining({ name: 'absent', from: 'file:models/absent.onnx', status: 'Error' }));
    // The log keeps the full path.
    expect(log).toContain(served.pod.path('models/absent.onnx'));
  });

  it('a bad cell and an unreachable database: listings and predictions say what, not the cell, host or user', async () => {
    const datasets = await get('/v1/datasets');
    expectNoInternals(datasets.body);
    const list = JSON.parse(datasets.body) as { name: string; from: string; error: string | null }[];
    expect(list.find((d) => d.name === 'bad')).toMatchObject({
      from: 'file:data/bad.csv',
      error: 'file:data/bad.csv: line 3: column "value": a value that is not a number',
    });
    expect(list.find((d) => d.name === 'pg')!.error).toMatch(/^postgres:public\.nowhere: /);
    const predict = await get('/v1/models/on_bad/predict');
    expect(predict.status).toBe(500);
    expectNoInternals(predict.body);
    expect(JSON.parse(predict.body)).toMatchObject({ error_message: expect.stringContaining('file:data/bad.csv') });
    expect(log).toContain(SECRET_CELL);
  });

  it("ONNX Runtime's failure is reworded; the log line with the request id keeps its words", async () => {
    const res = await get('/v1/models/lookup/predict');
    expect(res.status).toBe(500);
    const message = (JSON.parse(res.body) as { error_message: string }).error_message;
    expect(message).toMatch(/^inference failed: the model's Gather operation failed: .*out of (data )?bounds/);
    expect(message).not.toMatch(/Non-zero status code|Name:'|\.cc:\d|onnxruntime/);
    const line = log.split('\n').find((l) => l.includes(`"reqId":"${res.id}"`));
    expect(line).toMatch(/Non-zero status code returned while running Gather node/);
  });

  it('repeated failures of one model and reason get one log line per interval; the metric counts every one', async () => {
    const lines = (): number => log.split('\n').filter((l) => l.includes('"model":"lookup"') && l.includes('"reason":"ERR_INFERENCE"')).length;
    const counted = async (): Promise<number> =>
      Number(/forecastd_prediction_failures_total\{model="lookup",reason="ERR_INFERENCE"\} (\d+)/.exec((await get('/metrics')).body)?.[1] ?? 0);
    const [linesBefore, countedBefore] = [lines(), await counted()];
    for (let i = 0; i < 20; i++) expect((await get('/v1/models/lookup/predict')).status).toBe(500);
    // At most the first of them is logged (none when an earlier failure of this interval already was).
    expect(lines() - linesBefore).toBeLessThanOrEqual(1);
    expect(lines()).toBe(1);
    expect((await counted()) - countedBefore).toBe(20);
  });
});

describe('a caller joining a shared computation', () => {
  const served = servePod((pod) => {
    // The newest value sets how long a run loops: 2e7 turns, far longer than timeout_ms on any machine
    // (the test only needs it to outlast both callers' deadlines; close() stops it).
    pod.write('data/series.csv', dailyCsv({ value: [1, 2, 3, 4, 5, 2e7] }));
    pod.write('models/spin.onnx', spinModel({ lookback: 4, horizon: 2 }));
    pod.write(
      'spicepod.yaml',
      'version: v1beta1\nkind: Spicepod\nname: deadline\ndatasets:\n  - from: file:data/series.csv\n    name: series\n' +
        'models:\n  - from: file:models/spin.onnx\n    name: spin\n    datasets: [series]\n    params:\n      timeout_ms: 1500\n',
    );
  }, { prefix: 'forecastd-deadline-' });

  it('keeps its own timeout_ms: it is still waiting after the first caller timed out', async () => {
    const answer = (started: Promise<Response>): { status: number | null; done: Promise<void> } => {
      const state: { status: number | null; done: Promise<void> } = { status: null, done: Promise.resolve() };
      state.done = started.then(async (res) => {
        await res.text();
        state.status = res.status;
      });
      return state;
    };
    const first = answer(fetch(served.server.url + '/v1/models/spin/predict'));
    await new Promise((r) => setTimeout(r, 1000));
    // Joins the run the first request started (same model version, same window): its deadline is its own.
    const late = answer(fetch(served.server.url + '/v1/models/spin/predict'));
    await first.done;
    expect(first.status).toBe(504);
    await new Promise((r) => setTimeout(r, 300));
    expect(late.status).toBeNull();
    await late.done;
    expect(late.status).toBe(504);
  }, 30_000);
});
