import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, symlinkSync, writeSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import type { Logger } from '../../src/log.js';
import { startServer, type ForecastdServer } from '../../src/server/start.js';
import { PodDir, dailyCsv, linearFixture, predictionText, releaseFifo, replaceFile, runDirect, until } from './fixtures.js';

/**
 * Files changed while the server serves are read only once they settle: a real server watching a real pod
 * folder, files rewritten in place by a writer that pauses between writes (as editors, config management and
 * exporters do), and clients asking throughout over real sockets.
 */

const WATCH = { intervalMs: 100, debounceMs: 20 } as const;
const KEY = 'settle-key';
const OLD = [12.5, 13.25, 11.75, 14.5, 15.125, 13.875, 16.25, 17.5, 16.75, 18.125];
const NEW = [21.5, 22.75, 20.25, 23.5, 24.125, 22.875, 25.25, 26.5, 25.75, 27.125, 28.375, 26.625];
const lin = linearFixture({ lookback: 4, horizon: 3, seed: 51 });
const other = linearFixture({ lookback: 4, horizon: 3, seed: 52 });

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function capturingLogger(): { logger: Logger; text: () => string } {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (d: Buffer) => {
    text += d.toString();
  });
  return { logger: createLogger({ format: 'json', level: 'info', destination: stream }), text: () => text };
}

/** Rewrites a file in place (same inode: truncate, then write) in parts, pausing `pauseMs` between them. */
async function writeInParts(file: string, parts: readonly (string | Uint8Array)[], pauseMs: number, during?: () => Promise<void>): Promise<void> {
  const fd = openSync(file, 'w');
  try {
    for (let i = 0; i < parts.length; i++) {
      writeSync(fd, typeof parts[i] === 'string' ? Buffer.from(parts[i] as string) : (parts[i] as Uint8Array));
      fsyncSync(fd);
      if (i < parts.length - 1) {
        const pause = sleep(pauseMs);
        await Promise.all([pause, during?.()]);
      }
    }
  } finally {
    closeSync(fd);
  }
}

async function get(server: ForecastdServer, path: string, key: string | null = KEY): Promise<{ status: number; body: string }> {
  const res = await fetch(server.url + path, { headers: key === null ? {} : { 'x-api-key': key } });
  return { status: res.status, body: await res.text() };
}

/** Polls `probe` every 25 ms until `stop()` says so. */
async function pollUntil(stop: () => boolean, probe: () => Promise<void>): Promise<void> {
  while (!stop()) {
    await probe();
    await sleep(25);
  }
}

const servers: ForecastdServer[] = [];
const pods: PodDir[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  for (const pod of pods.splice(0)) pod.remove();
});

function newPod(): PodDir {
  const pod = new PodDir('forecastd-settle-');
  pods.push(pod);
  return pod;
}

async function serve(pod: PodDir, options: { settleMs?: number; env?: NodeJS.ProcessEnv; logger?: Logger } = {}): Promise<ForecastdServer> {
  const server = await startServer({ spicepod: pod.dir, port: 0, watch: WATCH, ...options });
  servers.push(server);
  await server.loaded();
  return server;
}

const HEAD = 'version: v1beta1\nkind: Spicepod\nname: settle\n';
const DATASETS = 'datasets:\n  - from: file:data/series.csv\n    name: series\n';
const MODEL_A = 'models:\n  - from: file:models/a.onnx\n    name: a\n    datasets: [series]\n';
const MODEL_C = '  - from: file:models/a.onnx\n    name: c\n    datasets: [series]\n';
const AUTH = `runtime:\n  auth:\n    api-key:\n      enabled: true\n      keys: ["${KEY}"]\n`;

describe('a spicepod rewritten in place', () => {
  it('is never applied half-written, by the watcher or by SIGHUP: auth never drops and no model is retired', async () => {
    const pod = newPod();
    pod.write('data/series.csv', dailyCsv({ value: OLD }));
    pod.write('models/a.onnx', lin.bytes);
    pod.write('spicepod.yaml', HEAD + DATASETS + MODEL_A + AUTH);
    const { logger, text } = capturingLogger();
    const server = await serve(pod, { logger });
    expect((await get(server, '/v1/models', null)).status).toBe(401);

    const unauthenticated: string[] = [];
    let sighup: ReturnType<ForecastdServer['reload']> | null = null;
    let done = false;
    const probe = pollUntil(
      () => done,
      async () => {
        const res = await get(server, '/v1/models', null);
        if (res.status !== 401) unauthenticated.push(`${res.status} ${res.body}`);
        const a = await get(server, '/v1/models/a/predict');
        if (a.status !== 200) unauthenticated.push(`a: ${a.status} ${a.body}`);
      },
    );
    // The half file (datasets only, no models, no runtime.auth) is a valid pod: applied, it drops auth and model a.
    await writeInParts(pod.path('spicepod.yaml'), [HEAD + DATASETS, MODEL_A + MODEL_C + AUTH], 500, async () => {
      await sleep(100);
      sighup = server.reload();
    });
    const outcome = await sighup!;
    expect(outcome).toMatchObject({ applied: true, error: null });
    await until('model c to serve', async () => ((await get(server, '/v1/models/c/predict')).status === 200 ? true : undefined));
    done = true;
    await probe;
    expect(unauthenticated).toEqual([]);
    expect(text()).not.toMatch(/model a removed/);
    expect((await get(server, '/v1/models', null)).status).toBe(401);
  }, 30_000);

  it('a read that fails is retried without the file changing (the signature is not recorded)', async () => {
    const pod = newPod();
    pod.write('data/series.csv', dailyCsv({ value: OLD }));
    pod.write('models/a.onnx', lin.bytes);
    pod.write('spicepod.yaml', HEAD + DATASETS + MODEL_A);
    const env: NodeJS.ProcessEnv = {};
    const server = await serve(pod, { settleMs: 100, env });
    replaceFile(pod.path('spicepod.yaml'), HEAD + DATASETS + MODEL_A + AUTH.replace(`"${KEY}"`, '"${env:SETTLE_KEY}"'));
    await until('the reload to fail', async () => (server.registry.reloadError?.includes('SETTLE_KEY') === true ? true : undefined));
    expect((await get(server, '/v1/models', null)).status).toBe(200);
    // The variable the pod needs appears; the file stays as it is.
    env['SETTLE_KEY'] = KEY;
    await until('auth to apply', async () => ((await get(server, '/v1/models', null)).status === 401 ? true : undefined));
    expect(server.registry.reloadError).toBeNull();
    expect((await get(server, '/v1/models')).status).toBe(200);
  }, 30_000);

  it('a second edit is applied while the first edit\'s model is still loading', async () => {
    const pod = newPod();
    pod.write('data/series.csv', dailyCsv({ value: OLD }));
    pod.write('models/a.onnx', lin.bytes);
    // A named pipe: model b's dataset load blocks until the test writes to it.
    const fifo = pod.fifo('data/blocked.csv');
    pod.write('spicepod.yaml', HEAD + DATASETS + MODEL_A);
    const server = await serve(pod, { settleMs: 100 });
    const blocked = '  - from: file:data/blocked.csv\n    name: blocked\n';
    const modelB = '  - from: file:models/a.onnx\n    name: b\n    datasets: [blocked]\n';
    replaceFile(pod.path('spicepod.yaml'), HEAD + DATASETS + blocked + MODEL_A + modelB);
    await until('model b to be loading', async () => {
      const models = JSON.parse((await get(server, '/v1/models?status=true', null)).body) as { name: string; status: string }[];
      return models.some((m) => m.name === 'b' && m.status === 'Initializing') ? true : undefined;
    });
    replaceFile(pod.path('spicepod.yaml'), HEAD + DATASETS + blocked + MODEL_A + modelB + AUTH);
    await until('auth to apply', async () => ((await get(server, '/v1/models', null)).status === 401 ? true : undefined));
    const models = JSON.parse((await get(server, '/v1/models?status=true')).body) as { name: string; status: string }[];
    expect(models.find((m) => m.name === 'b')!.status).toBe('Initializing');
    // Release the pipe so the load can finish before the server closes.
    await releaseFifo(fifo, dailyCsv({ value: OLD }));
  }, 30_000);

  it('a Kubernetes ConfigMap swap (..data symlink renamed) is applied', async () => {
    const pod = newPod();
    pod.write('data/series.csv', dailyCsv({ value: OLD }));
    pod.write('models/a.onnx', lin.bytes);
    // The layout kubelet writes: spicepod.yaml -> ..data/spicepod.yaml, ..data -> ..<timestamp>/
    mkdirSync(pod.path('..v1'));
    pod.write('..v1/spicepod.yaml', HEAD + DATASETS + MODEL_A);
    symlinkSync('..v1', pod.path('..data'));
    symlinkSync('..data/spicepod.yaml', pod.path('spicepod.yaml'));
    const server = await serve(pod, { settleMs: 100 });
    expect((await get(server, '/v1/models', null)).status).toBe(200);
    mkdirSync(pod.path('..v2'));
    pod.write('..v2/spicepod.yaml', HEAD + DATASETS + MODEL_A + AUTH);
    symlinkSync('..v2', pod.path('..data_tmp'));
    renameSync(pod.path('..data_tmp'), pod.path('..data'));
    await until('auth to apply', async () => ((await get(server, '/v1/models', null)).status === 401 ? true : undefined));
    expect((await get(server, '/v1/models/a/predict')).status).toBe(200);
  }, 30_000);
});

describe('a data file rewritten in place', () => {
  it('is never read half-way: every prediction is from the old content or the new', async () => {
    const pod = newPod();
    pod.write('data/series.csv', dailyCsv({ value: OLD }));
    pod.write('models/a.onnx', lin.bytes);
    pod.write(
      'spicepod.yaml',
      HEAD +
        'datasets:\n  - from: file:data/series.csv\n    name: series\n    acceleration:\n      refresh_check_interval: 300ms\n' +
        MODEL_A,
    );
    const server = await serve(pod, { settleMs: 2000 });
    const before = await runDirect(lin.bytes, OLD.slice(-4), [1, 4, 1]);
    const after = await runDirect(lin.bytes, NEW.slice(-4), [1, 4, 1]);
    const full = dailyCsv({ value: NEW });
    // Cut inside a value of the eighth row ("26.5" becomes "2"): a file that parses, with a wrong last row.
    const cut = full.indexOf('26.5') + 1;
    const seen = new Set<string>();
    let done = false;
    const probe = pollUntil(
      () => done,
      async () => {
        const res = await get(server, '/v1/models/a/predict');
        seen.add(res.status === 200 ? predictionText(res.body) : `${res.status} ${res.body}`);
        const rows = (JSON.parse((await get(server, '/v1/datasets')).body) as { rows: number }[])[0]!.rows;
        seen.add(`rows ${rows}`);
      },
    );
    // Longer than several refresh intervals, shorter than the settle time.
    await writeInParts(pod.path('data/series.csv'), [full.slice(0, cut), full.slice(cut)], 1200);
    await until('the new data to serve', async () => (predictionText((await get(server, '/v1/models/a/predict')).body) === after ? true : undefined));
    done = true;
    await probe;
    expect([...seen].filter((s) => s !== before && s !== after && s !== 'rows 10' && s !== 'rows 12')).toEqual([]);
  }, 30_000);
});

describe('a model file rewritten in place', () => {
  it('is loaded once it settles, never half-written: no failed reload, no error, old or new answers only', async () => {
    const pod = newPod();
    pod.write('data/series.csv', dailyCsv({ value: OLD }));
    pod.write('models/a.onnx', lin.bytes);
    pod.write('spicepod.yaml', HEAD + DATASETS + MODEL_A);
    const server = await serve(pod);
    const before = await runDirect(lin.bytes, OLD.slice(-4), [1, 4, 1]);
    const after = await runDirect(other.bytes, OLD.slice(-4), [1, 4, 1]);
    const seen = new Set<string>();
    let done = false;
    const probe = pollUntil(
      () => done,
      async () => {
        const res = await get(server, '/v1/models/a/predict');
        seen.add(res.status === 200 ? predictionText(res.body) : `${res.status} ${res.body}`);
        const models = JSON.parse((await get(server, '/v1/models?status=true')).body) as { error: string | null }[];
        if (models[0]!.error !== null) seen.add(`error: ${models[0]!.error}`);
      },
    );
    const half = Math.floor(other.bytes.length / 2);
    await writeInParts(pod.path('models/a.onnx'), [other.bytes.subarray(0, half), other.bytes.subarray(half)], 500);
    await until('the new model to serve', async () => (predictionText((await get(server, '/v1/models/a/predict')).body) === after ? true : undefined));
    done = true;
    await probe;
    expect([...seen].filter((s) => s !== before && s !== after)).toEqual([]);
    expect((await get(server, '/metrics')).body).not.toMatch(/forecastd_model_reloads_total\{model="a",result="failed"\} [1-9]/);
  }, 30_000);
});
