import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type ForecastdServer } from '../../src/server/start.js';
import { linearModel, quantileModel } from '../../tools/onnx-builder.js';
import { PodDir } from './fixtures.js';

/**
 * POST /v1/timeseries/forecast: client input is the client's fault, never a 500 (SPEC, the paragraph after
 * the KServe limits). Real server, real sockets, real ONNX models: the identity (3 values in, the same 3
 * out), and the identity with quantiles 0.1 and 0.9 at -1 and +1.
 */

const IDENTITY = [1, 0, 0, 0, 1, 0, 0, 0, 1];
const identity = linearModel({ lookback: 3, horizon: 3, weights: IDENTITY });
const identityQuantiles = quantileModel({ lookback: 3, horizon: 3, weights: IDENTITY, levels: 2, offsets: [-1, 1, -1, 1, -1, 1] });

const POD = `version: v1beta1
kind: Spicepod
name: client-input
models:
  - from: file:models/identity.onnx
    name: client
  - from: file:models/identity_q.onnx
    name: client_q
    params:
      quantiles: [0.1, 0.9]
      quantile_output: quantiles
`;

async function post(server: ForecastdServer, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(server.url + '/v1/timeseries/forecast', { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: res.status, body: JSON.parse(await res.text()) as Record<string, unknown> };
}

function uni(name: string, series: unknown[], frequency: string, start?: string): Record<string, unknown> {
  return { type: 'univariate_time_series', name, series, frequency, ...(start === undefined ? {} : { start_timestamp: start }) };
}

describe('POST /v1/timeseries/forecast: client input is the client\'s fault', () => {
  const pod = new PodDir();
  let server: ForecastdServer;

  beforeAll(async () => {
    pod.write('models/identity.onnx', identity);
    pod.write('models/identity_q.onnx', identityQuantiles);
    pod.write('spicepod.yaml', POD);
    server = await startServer({ spicepod: pod.dir, port: 0 });
    await server.loaded();
  });

  afterAll(async () => {
    await server?.close();
    pod.remove();
  });

  it('a value beyond float64 (1e400) or float32 (1e39) is invalid_series naming it; the other inputs complete', async () => {
    const text = `{"model":"client","options":{"horizon":3},"inputs":[${JSON.stringify(uni('good', [1, 2, 3], 'D'))},` +
      `{"type":"univariate_time_series","name":"huge","frequency":"D","series":[1,2,1e400,4]},` +
      `{"type":"univariate_time_series","name":"wide","frequency":"D","series":[1,2,3,1e39]}]}`;
    const res = await post(server, text);
    expect(res.status).toBe(200);
    expect(res.body['status']).toBe('partial');
    const outputs = res.body['outputs'] as Record<string, unknown>[];
    expect(outputs.map((o) => o['status'])).toEqual(['completed', 'error', 'error']);
    expect(outputs[1]!['error']).toEqual({
      code: '400', type: 'invalid_series', param: 'inputs[1].series[2]',
      message: 'inputs[1].series[2] is not a finite number; every value must be finite',
    });
    expect(outputs[2]!['error']).toEqual({
      code: '400', type: 'invalid_series', param: 'inputs[2].series[3]',
      message: 'inputs[2].series[3] is 1e+39, beyond what model client takes (float32, at most ±3.4028234663852886e+38)',
    });
  });

  it('the same in a body over 64 KiB, whose numeric series come packed from the parser thread', async () => {
    const long = Array.from({ length: 9000 }, (_, i) => (i % 7) + 0.125);
    const text = `{"model":"client","options":{"horizon":3},"inputs":[${JSON.stringify(uni('good', long, 'D'))},` +
      `{"type":"univariate_time_series","name":"huge","frequency":"D","series":[${long.join(',')},1e400]},` +
      `{"type":"multivariate_time_series","name":"multi","frequency":"D","series":[[1],[2],[-1e39],[4]]}]}`;
    expect(text.length).toBeGreaterThan(64 * 1024);
    const res = await post(server, text);
    expect(res.status).toBe(200);
    expect(res.body['status']).toBe('partial');
    const outputs = res.body['outputs'] as Record<string, unknown>[];
    expect(outputs.map((o) => o['status'])).toEqual(['completed', 'error', 'error']);
    expect(outputs[1]!['error']).toMatchObject({ type: 'invalid_series', param: 'inputs[1].series[9000]' });
    expect(outputs[2]!['error']).toEqual({
      code: '400', type: 'invalid_series', param: 'inputs[2].series[2][0]',
      message: 'inputs[2].series[2][0] is -1e+39, beyond what model client takes (float32, at most ±3.4028234663852886e+38)',
    });
  });

  it('repeated quantile levels are a 400 invalid_quantile', async () => {
    const res = await post(server, { model: 'client_q', inputs: [uni('a', [1, 2, 3], 'D')], options: { horizon: 3, quantiles: [0.1, 0.1] } });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({
      error: { code: '400', type: 'invalid_quantile', param: 'options.quantiles[1]', message: 'options.quantiles[1] repeats the level 0.1; give each level once' },
    });
  });

  it('a start_timestamp whose forecast would leave years 0000-9999 fails that input only', async () => {
    const res = await post(server, {
      model: 'client',
      inputs: [
        uni('late', [1, 2, 3], 'M', '9999-11-30T00:00:00Z'),
        uni('good', [1, 2, 3], 'M', '0000-02-29T00:00:00Z'),
        uni('old', [1, 2, 3], 'M', '0098-11-30T00:00:00Z'),
        uni('edge', [1, 2, 3], 'H', '+275760-09-13T00:00:00Z'),
      ],
      options: { horizon: 3 },
    });
    expect(res.status).toBe(200);
    expect(res.body['status']).toBe('partial');
    const outputs = res.body['outputs'] as Record<string, unknown>[];
    expect(outputs[0]!['error']).toEqual({
      code: '400', type: 'invalid_request', param: 'inputs[0].start_timestamp',
      message: 'inputs[0].start_timestamp "9999-11-30T00:00:00Z": its forecast steps would leave the years 0000 to 9999',
    });
    const good = (outputs[1]!['content'] as Record<string, unknown>[])[0]!;
    expect(good['start_timestamp']).toBe('0000-05-29T00:00:00Z');
    expect(good['mean_forecast']).toEqual([1, 2, 3]);
    const old = (outputs[2]!['content'] as Record<string, unknown>[])[0]!;
    expect(old['start_timestamp']).toBe('0099-02-28T00:00:00Z');
    // The last day Date can hold: its forecast steps leave it, and only this input fails.
    expect(outputs[3]!['error']).toEqual({
      code: '400', type: 'invalid_request', param: 'inputs[3].start_timestamp',
      message: 'inputs[3].start_timestamp "+275760-09-13T00:00:00Z": its forecast steps would leave the years 0000 to 9999',
    });
  });

  it('a body nested deeper than 64 levels is a 400 invalid_request, never a 500', async () => {
    const deep = `{"model":"client","options":{"horizon":3},"inputs":[${JSON.stringify(uni('a', [1, 2, 3], 'D'))}],"metadata":${'['.repeat(6000)}${']'.repeat(6000)}}`;
    const res = await post(server, deep);
    expect(res.status).toBe(400);
    expect(res.body).toEqual({
      error: { code: '400', type: 'invalid_request', param: null, message: 'The request body is nested deeper than 64 levels' },
    });
    // Bodies over 64 KiB are parsed on the parser thread: the same answer.
    const padding = `"padding":"${'x'.repeat(70 * 1024)}",`;
    const large = await post(server, `{${padding}${deep.slice(1)}`);
    expect(large.status).toBe(400);
    expect(large.body).toEqual(res.body);
    // Brackets inside strings (an escaped quote too) are text, not nesting.
    const quoted = `{"model":"client","options":{"horizon":3},"inputs":[${JSON.stringify(uni('a', [1, 2, 3], 'D'))}],"metadata":${JSON.stringify('\\"' + '['.repeat(100))}}`;
    expect((await post(server, quoted)).status).toBe(200);
    // 64 levels is still fine.
    const ok = `{"model":"client","options":{"horizon":3},"inputs":[${JSON.stringify(uni('a', [1, 2, 3], 'D'))}],"metadata":${'['.repeat(62)}${']'.repeat(62)}}`;
    expect((await post(server, ok)).status).toBe(200);
  });
});
