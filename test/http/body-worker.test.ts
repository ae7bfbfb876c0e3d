import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BodyParser } from '../../src/http/routes/series-body.js';
import { startServer, type ForecastdServer } from '../../src/server/start.js';
import { linearModel } from '../../tools/onnx-builder.js';
import { PodDir } from '../server/fixtures.js';

/**
 * SPEC "Bounded and quiet", one request's failure is its own: large POST /v1/timeseries/forecast bodies are
 * parsed on a shared worker thread. A body nested 100,000 deep once ended that thread (its parsed value could
 * not be posted back) and failed every body queued behind it; it is now refused by the depth check (SPEC: deeper
 * than 64 levels is invalid_request) before it is parsed, as its own 400. Whatever else ends the worker fails
 * only the body it held: the worker is replaced and the bodies behind it are parsed (the BodyParser cases, with
 * a worker script that dies on a marker). Real server, real sockets, a real ONNX model.
 */

const POD = `
version: v1beta1
kind: Spicepod
name: body-worker
models:
  - from: file:models/mean.onnx
    name: client
    params:
      cache_predictions: false
`;

// Every weight 1/4: the forecast of each step is the mean of the last four points.
const MODEL = linearModel({ lookback: 4, horizon: 2, weights: new Float32Array(8).fill(0.25) });

interface Answer {
  readonly status: number;
  readonly json: Record<string, unknown>;
}

async function post(server: ForecastdServer, body: string): Promise<Answer> {
  const res = await fetch(`${server.url}/v1/timeseries/forecast`, { method: 'POST', body });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

/** A valid body of about 1.5 MiB (parsed on the worker): its forecast is `last` at every step. */
function largeBody(last: number): string {
  const series = Array.from({ length: 150_000 }, (_, i) => (i >= 149_996 ? last : 1.125 + (i % 17)));
  return JSON.stringify({ model: 'client', inputs: [{ type: 'univariate_time_series', name: `s${last}`, series, frequency: 'D' }], options: { horizon: 2 } });
}

/** Valid JSON nested 100,000 levels deep (about 200 KB): it parses, and its value cannot be cloned back. */
function nestedBody(): string {
  const depth = 100_000;
  return `{"model":"client","inputs":${'['.repeat(depth)}${']'.repeat(depth)}}`;
}

function meanForecast(answer: Answer): unknown {
  const outputs = answer.json['outputs'] as { content: { mean_forecast: unknown }[] }[];
  return outputs[0]!.content[0]!.mean_forecast;
}

describe('the shared body parser: one body breaking it fails only that request', () => {
  const dir = new PodDir('forecastd-body-worker-');
  let server: ForecastdServer;

  beforeAll(async () => {
    dir.write('models/mean.onnx', MODEL);
    dir.write('spicepod.yaml', POD);
    server = await startServer({ spicepod: dir.dir, port: 0 });
    await server.loaded();
  });

  afterAll(async () => {
    await server?.close();
    dir.remove();
  });

  it('a body nested 100,000 deep is its own 400; the bodies queued before and behind it are answered', async () => {
    // Sent together: several large bodies are still waiting for the worker when the nested one ends it.
    const before = [2, 3, 4].map((v) => post(server, largeBody(v)));
    const nested = post(server, nestedBody());
    const after = [5, 6, 7, 8].map((v) => post(server, largeBody(v)));
    const answers = await Promise.all([...before, ...after]);
    const broken = await nested;

    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200, 200, 200]);
    expect(answers.map(meanForecast)).toEqual([2, 3, 4, 5, 6, 7, 8].map((v) => [v, v]));
    expect(broken.status).toBe(400);
    expect(broken.json).toEqual({
      error: { code: '400', type: 'invalid_request', param: null, message: 'The request body is nested deeper than 64 levels' },
    });
  });

  it('the worker is replaced: the next large body is parsed, and a nested one breaks only itself again', async () => {
    const again = await Promise.all([post(server, nestedBody()), post(server, largeBody(9))]);
    expect(again[0].status).toBe(400);
    expect(again[1].status).toBe(200);
    expect(meanForecast(again[1])).toEqual([9, 9]);
    const next = await post(server, largeBody(10));
    expect(next.status).toBe(200);
    expect(meanForecast(next)).toEqual([10, 10]);
  });
});

describe('BodyParser: a body that ends the worker fails only itself', () => {
  // A worker that parses like the real one but dies on a body holding "die".
  const DYING = `
const { parentPort } = require('node:worker_threads');
parentPort.on('message', ({ id, bytes }) => {
  const text = new TextDecoder().decode(bytes);
  if (text.includes('"die"')) process.exit(3);
  parentPort.postMessage({ id, ok: true, value: JSON.parse(text) });
});
`;
  const encode = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value));

  it('answers the bodies before and behind the one that ended the worker, on a new worker', async () => {
    const parser = new BodyParser(DYING);
    const replies = await Promise.all([
      parser.parse(encode({ n: 1 })),
      parser.parse(encode({ n: 2 })),
      parser.parse(encode({ n: 'die' })),
      parser.parse(encode({ n: 3 })),
      parser.parse(encode({ n: 4 })),
    ]);
    expect(replies.map((r) => r.ok)).toEqual([true, true, false, true, true]);
    expect(replies.filter((r) => r.ok).map((r) => (r.ok ? r.value : null))).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }, { n: 4 }]);
    expect(replies[2]).toEqual({ ok: false, message: 'The request body could not be parsed: the parser thread exited (3)' });
    const again = await Promise.all([parser.parse(encode({ n: 'die' })), parser.parse(encode({ n: 5 }))]);
    expect(again).toEqual([
      { ok: false, message: 'The request body could not be parsed: the parser thread exited (3)' },
      { ok: true, value: { n: 5 } },
    ]);
  });
});
