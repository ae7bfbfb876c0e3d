import { rmSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { buildModel, initializer, node, valueInfo } from '../../tools/onnx-builder.js';
import { servePod, dailyCsv, linearFixture, predictionText, replaceFile, runDirect, until } from './fixtures.js';

/**
 * Failures inside a running server, each contained: a model that fails inside ONNX Runtime for some windows,
 * and a data file that turns corrupt or disappears on refresh. Everything else keeps serving.
 */

const LOOKBACK = 4;
// Rows of the lookup table the "lookup" model returns: the window's largest value picks the row.
const TABLE = [
  [1.5, 2.5, 3.5],
  [10.25, 20.25, 30.25],
  [-1.125, -2.125, -3.125],
  [7.75, 8.75, 9.75],
];

/**
 * Gather(TABLE, int64(max(window))): a valid model whose run fails inside ONNX Runtime when the window's
 * largest value is not a row index of TABLE. Its warm-up (zeros) picks row 0 and succeeds.
 */
function lookupModel(): Uint8Array {
  return buildModel({
    nodes: [
      node('ReduceMax', ['window'], ['peak'], { axes: [1, 2], keepdims: 0 }),
      node('Cast', ['peak'], ['row'], { to: 7 }),
      node('Gather', ['table', 'row'], ['forecast'], { axis: 0 }),
    ],
    initializers: [initializer('table', 'float32', [4, 3], TABLE.flat())],
    inputs: [valueInfo('window', 'float32', ['batch', LOOKBACK, 1])],
    outputs: [valueInfo('forecast', 'float32', ['batch', 3])],
  });
}

const LINEAR = linearFixture({ lookback: LOOKBACK, horizon: 2, seed: 41 });
const GOOD = [0, 1, 2, 3, 1, 2, 3];
const BAD = [0, 1, 2, 3, 1, 2, 100];

describe('failures inside a running server are contained', () => {
  const served = servePod(
    (pod) => {
      pod.write('data/series.csv', dailyCsv({ value: GOOD }));
      pod.write('models/lookup.onnx', lookupModel());
      pod.write('models/linear.onnx', LINEAR.bytes);
      pod.write(
        'spicepod.yaml',
        [
          'version: v1beta1',
          'kind: Spicepod',
          'name: failures',
          'datasets:',
          '  - from: file:data/series.csv',
          '    name: series',
          '    acceleration:',
          '      refresh_check_interval: 50ms',
          'models:',
          '  - from: file:models/lookup.onnx',
          '    name: lookup',
          '    datasets: [series]',
          '  - from: file:models/linear.onnx',
          '    name: linear',
          '    datasets: [series]',
          '',
        ].join('\n'),
      );
    },
    { logger: createLogger({ level: 'silent' }) },
  );

  async function get(path: string): Promise<{ status: number; body: string }> {
    const res = await fetch(served.server.url + path);
    return { status: res.status, body: await res.text() };
  }

  async function datasetError(): Promise<string | null> {
    const [entry] = JSON.parse((await get('/v1/datasets')).body) as { error: string | null }[];
    return entry!.error;
  }

  it('a run that fails inside ONNX Runtime is a 500 with its message; other models keep serving', async () => {
    const good = await get('/v1/models/lookup/predict');
    expect(good.status).toBe(200);
    // max(1, 2, 3, 1) picks row 3.
    expect(predictionText(good.body)).toBe('7.75,8.75,9.75');

    replaceFile(served.pod.path('data/series.csv'), dailyCsv({ value: BAD }));
    const failed = await until('the new window to reach the lookup model', async () => {
      const res = await get('/v1/models/lookup/predict');
      return res.status === 500 ? res : undefined;
    });
    const body = JSON.parse(failed.body) as Record<string, unknown>;
    expect(Object.keys(body)).toEqual(['status', 'error_message', 'model_name', 'lookback', 'duration_ms']);
    expect(body['status']).toBe('InternalError');
    expect(body['model_name']).toBe('lookup');
    expect(body['lookback']).toBe(LOOKBACK);
    // ONNX Runtime's own words about the out-of-range row.
    expect(String(body['error_message'])).toMatch(/indices|out of (data )?bounds/i);

    const linear = await get('/v1/models/linear/predict');
    expect(linear.status).toBe(200);
    expect(predictionText(linear.body)).toBe(await runDirect(LINEAR.bytes, BAD.slice(-LOOKBACK), [1, LOOKBACK, 1]));
    expect((await get('/health')).body).toBe('ok');

    // The failed run took nothing down: back to a valid window, back to a prediction.
    replaceFile(served.pod.path('data/series.csv'), dailyCsv({ value: GOOD }));
    const recovered = await until('the lookup model to serve again', async () => {
      const res = await get('/v1/models/lookup/predict');
      return res.status === 200 ? res : undefined;
    });
    expect(predictionText(recovered.body)).toBe('7.75,8.75,9.75');
  });

  it('a data file that turns corrupt, then disappears, keeps the last good data serving', async () => {
    const expected = await runDirect(LINEAR.bytes, GOOD.slice(-LOOKBACK), [1, LOOKBACK, 1]);
    await until('the good data to be served', async () => {
      const res = await get('/v1/models/linear/predict');
      return res.status === 200 && predictionText(res.body) === expected ? true : undefined;
    });

    replaceFile(served.pod.path('data/series.csv'), 'ts,value\nnot-a-time,abc\n');
    const corrupt = await until('the refresh to report the corrupt file', async () => (await datasetError()) ?? undefined);
    expect(corrupt).toMatch(/series\.csv/);
    const whileCorrupt = await get('/v1/models/linear/predict');
    expect(whileCorrupt.status).toBe(200);
    expect(predictionText(whileCorrupt.body)).toBe(expected);

    replaceFile(served.pod.path('data/series.csv'), dailyCsv({ value: GOOD }));
    await until('the repaired file to clear the error', async () => ((await datasetError()) === null ? true : undefined));

    rmSync(served.pod.path('data/series.csv'));
    const gone = await until('the refresh to report the missing file', async () => (await datasetError()) ?? undefined);
    expect(gone).toMatch(/series\.csv/);
    const whileGone = await get('/v1/models/linear/predict');
    expect(whileGone.status).toBe(200);
    expect(predictionText(whileGone.body)).toBe(expected);
    const datasets = JSON.parse((await get('/v1/datasets')).body) as { status: string; rows: number }[];
    expect(datasets[0]!.status).toBe('Ready');
    expect(datasets[0]!.rows).toBe(GOOD.length);
    expect((await get('/health')).body).toBe('ok');
  });
});
