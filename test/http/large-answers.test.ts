import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type ForecastdServer } from '../../src/server/start.js';
import { linearModel } from '../../tools/onnx-builder.js';
import { PodDir } from '../server/fixtures.js';
import { startCli } from '../helpers/cli.js';

/**
 * SPEC "Bounded and quiet": an answer that is already made but large (here a KServe answer for 1000 series of
 * a 200-step model, about 1.5 MB) is written as the client drains it, like a rows answer: chunked, through the
 * same bounded path. Real server, real sockets, a real ONNX model; the answer is checked whole.
 */

const HORIZON = 200;
const INPUTS = 1000;

const POD = `
version: v1beta1
kind: Spicepod
name: large-answers
models:
  - from: file:models/mean.onnx
    name: long
    params:
      cache_predictions: false
`;

describe('large answers', () => {
  const dir = new PodDir('forecastd-large-answers-');
  let server: ForecastdServer;

  beforeAll(async () => {
    // Every weight 1/4: each of the 200 steps is the mean of the last four points.
    dir.write('models/mean.onnx', linearModel({ lookback: 4, horizon: HORIZON, weights: new Float32Array(4 * HORIZON).fill(0.25) }));
    dir.write('spicepod.yaml', POD);
    server = await startServer({ spicepod: dir.dir, port: 0 });
    await server.loaded();
  });

  afterAll(async () => {
    await server?.close();
    dir.remove();
  });

  it('a KServe answer for 1000 series of 200 steps is written chunked and arrives whole', async () => {
    const inputs = Array.from({ length: INPUTS }, (_, i) => ({
      type: 'univariate_time_series',
      name: `s${i}`,
      series: [i, i + 1, i + 2, i + 3],
      frequency: 'D',
    }));
    const res = await fetch(`${server.url}/v1/timeseries/forecast`, {
      method: 'POST',
      body: JSON.stringify({ model: 'long', inputs, options: { horizon: HORIZON } }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('transfer-encoding')).toBe('chunked');
    expect(res.headers.get('content-type')).toBe('application/json');
    const text = await res.text();
    expect(text.length).toBeGreaterThan(256 * 1024);
    const body = JSON.parse(text) as { status: string; outputs: { status: string; content: { name: string; mean_forecast: number[] }[] }[] };
    expect(body.status).toBe('completed');
    expect(body.outputs).toHaveLength(INPUTS);
    body.outputs.forEach((output, i) => {
      expect(output.status).toBe('completed');
      expect(output.content[0]!.name).toBe(`s${i}`);
      expect(output.content[0]!.mean_forecast).toEqual(new Array<number>(HORIZON).fill(i + 1.5));
    });
  });

  it('a small answer keeps its Content-Length', async () => {
    const res = await fetch(`${server.url}/v1/timeseries/models`);
    expect(res.status).toBe(200);
    expect(res.headers.get('transfer-encoding')).toBeNull();
    expect(Number(res.headers.get('content-length'))).toBe((await res.text()).length);
  });
});

describe('large answers from the CLI', () => {
  // An awaited answer's writes are corked like any other's: uWebSockets.js warns on stderr about each uncorked
  // write, and a production server must stay quiet.
  it('writes a large awaited answer without a word on stderr', async () => {
    const dir = new PodDir('forecastd-large-answers-cli-');
    dir.write('models/mean.onnx', linearModel({ lookback: 4, horizon: HORIZON, weights: new Float32Array(4 * HORIZON).fill(0.25) }));
    dir.write('spicepod.yaml', POD);
    const cli = startCli([dir.dir, '--http', '127.0.0.1:0']);
    try {
      const line = await cli.line(/listening on http:\/\/127\.0\.0\.1:\d+/);
      const url = /http:\/\/127\.0\.0\.1:\d+/.exec(line)![0];
      await cli.line(/loaded 1 of 1 models/);
      const inputs = Array.from({ length: INPUTS }, (_, i) => ({ type: 'univariate_time_series', name: `s${i}`, series: [i, i, i, i], frequency: 'D' }));
      const res = await fetch(`${url}/v1/timeseries/forecast`, { method: 'POST', body: JSON.stringify({ model: 'long', inputs, options: { horizon: HORIZON } }) });
      expect(res.status).toBe(200);
      expect(res.headers.get('transfer-encoding')).toBe('chunked');
      const body = (await res.json()) as { outputs: unknown[] };
      expect(body.outputs).toHaveLength(INPUTS);
      expect(cli.stderr()).toBe('');
    } finally {
      cli.child.kill('SIGTERM');
      await cli.exit;
      dir.remove();
    }
  });
});
