import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HttpLoadResult } from '../../src/bench/http-load.js';
import type { ModelBenchResult } from '../../src/bench/model-bench.js';
import { contractViolationModel, linearModel, meanWeights, mlpModel } from '../../tools/onnx-builder.js';
import { PodDir, REPO, dailyCsv, linearFixture } from '../server/fixtures.js';

/** `forecastd bench` end to end: the built CLI, real models built here, a real server for --http. */
const CLI = path.join(REPO, 'dist/cli.js');

interface Finished {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function cli(args: readonly string[], cwd = REPO): Promise<Finished> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd,
      env: { ...process.env, FORECASTD_LOG_FORMAT: 'json' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Table rows of the printed results: lines starting with numbers. */
function tableRows(stdout: string): string[][] {
  return stdout
    .split('\n')
    .filter((l) => /^\s*\d+\s+\d+\s+\S/.test(l))
    .map((l) => l.trim().split(/\s{2,}/));
}

describe('forecastd bench MODEL.onnx', () => {
  const dir = new PodDir('forecastd-bench-');
  beforeAll(() => {
    expect(existsSync(CLI), 'dist/cli.js is missing: run npm run build:ts (npm test does)').toBe(true);
  });
  afterAll(() => dir.remove());

  it('measures both runtimes at every batch size and caller count; writes JSON and SVG', async () => {
    const model = dir.write('models/mlp.onnx', mlpModel({ lookback: 8, hidden: [16], horizon: 3, seed: 3 }));
    const json = dir.path('out.json');
    const svg = dir.path('out.svg');
    const run = await cli(['bench', model, '--batch', '1,4', '--callers', '1,3', '--duration', '150ms', '--json', json, '--svg', svg]);
    expect(run.stderr).not.toMatch(/forecastd bench:/);
    expect(run.code).toBe(0);
    // Not a terminal: one plain progress line per point.
    expect(run.stderr).toContain('[1/8] batch 1, 1 caller, forecastd\n');
    expect(run.stderr).toContain('[8/8] batch 4, 3 callers, onnxruntime-node\n');
    expect(run.stdout).toContain(`model: ${model}`);
    expect(run.stdout).toContain('input window float32 [batch, 8, 1], output forecast float32 [batch, 3]; lookback 8');
    expect(run.stdout).toMatch(/batch\s+callers\s+runtime\s+predictions\/s\s+ratio\s+p50 ms\s+p99 ms\s+JS CPU µs\/run\s+CPU µs\/pred\s+loop p99 ms/);
    const rows = tableRows(run.stdout);
    expect(rows.map((r) => r.slice(0, 3).join(' '))).toEqual([
      '1 1 forecastd',
      '1 1 onnxruntime-node',
      '1 3 forecastd',
      '1 3 onnxruntime-node',
      '4 1 forecastd',
      '4 1 onnxruntime-node',
      '4 3 forecastd',
      '4 3 onnxruntime-node',
    ]);
    // forecastd's rows carry the ratio (e.g. "1.23×"); onnxruntime-node's do not.
    for (const row of rows) expect(row.length).toBe(row[2] === 'forecastd' ? 10 : 9);
    for (const row of rows.filter((r) => r[2] === 'forecastd')) expect(row[4]).toMatch(/^\d+\.\d\d×$/);

    const result = JSON.parse(readFileSync(json, 'utf8')) as ModelBenchResult;
    expect(result.kind).toBe('model');
    expect(result.model).toMatchObject({ path: model, lookback: 8, variables: 1 });
    expect(result.intraOpThreads).toBe(1);
    expect(result.points).toHaveLength(8);
    for (const p of result.points) {
      expect(p.runs).toBeGreaterThan(0);
      expect(p.predictionsPerSecond).toBeCloseTo((p.runs * p.batch) / p.seconds, 6);
      expect(p.p99Ms).toBeGreaterThanOrEqual(p.p50Ms);
      expect(p.maxMs).toBeGreaterThanOrEqual(p.p99Ms);
      expect(p.loopDelayP99Ms).toBeGreaterThan(0);
      expect(Number.isFinite(p.processCpuUsPerPrediction)).toBe(true);
    }
    const text = readFileSync(svg, 'utf8');
    expect(text).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    expect(text).toContain('forecastd, 3 callers');
    expect(text).toContain('onnxruntime-node, 1 caller');
    expect(text.trimEnd().endsWith('</svg>')).toBe(true);
  });

  it('a float64 model with a symbolic lookback runs with --lookback, and says so without it', async () => {
    const model = dir.write(
      'models/f64.onnx',
      linearModel({ lookback: 5, horizon: 2, weights: meanWeights(5, 2), dtype: 'float64', rank: 2, lookbackDim: 'L' }),
    );
    const without = await cli(['bench', model, '--batch', '2', '--callers', '1', '--duration', '50ms']);
    expect(without.code).toBe(1);
    expect(without.stderr).toBe(
      "forecastd bench: input 'window' has shape [batch, L] with a symbolic lookback dimension 'L'; give the lookback with --lookback N [ERR_MODEL_CONTRACT]\n",
    );
    const run = await cli(['bench', model, '--lookback', '5', '--batch', '2', '--callers', '2', '--threads', '2', '--duration', '100ms']);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('input window float64 [batch, L], output forecast float64 [batch, 2]; lookback 5');
    expect(run.stdout).toContain('2 intra-op thread(s) per run');
    expect(tableRows(run.stdout).map((r) => r.slice(0, 3).join(' '))).toEqual(['2 2 forecastd', '2 2 onnxruntime-node']);
  });

  it('a model path that cannot be read is a clear error with exit code 1', async () => {
    const missing = await cli(['bench', dir.path('models/missing.onnx'), '--duration', '50ms']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(`forecastd bench: cannot read model '${dir.path('models/missing.onnx')}': no such file [ERR_MODEL_LOAD]\n`);
    mkdirSync(dir.path('models/folder.onnx'));
    const folder = await cli(['bench', dir.path('models/folder.onnx')]);
    expect(folder.code).toBe(1);
    expect(folder.stderr).toMatch(/cannot read model '.*folder\.onnx': it is a folder, not an \.onnx file \[ERR_MODEL_LOAD\]\n$/);
    const garbage = await cli(['bench', dir.write('models/garbage.onnx', 'this is not a model')]);
    expect(garbage.code).toBe(1);
    expect(garbage.stderr).toMatch(/^forecastd bench: .+ \[ERR_MODEL_LOAD\]\n$/);
    expect(garbage.stdout).toBe('');
  });

  it('a model outside the forecasting contract is refused before anything is measured', async () => {
    const twoInputs = await cli(['bench', dir.write('models/two.onnx', contractViolationModel('two-inputs'))]);
    expect(twoInputs.code).toBe(1);
    expect(twoInputs.stderr).toBe(
      "forecastd bench: the model has 2 inputs ('window', 'offset'); a forecasting model takes exactly one input, the lookback window [ERR_MODEL_CONTRACT]\n",
    );
    const intInput = await cli(['bench', dir.write('models/int.onnx', contractViolationModel('int64-input'))]);
    expect(intInput.code).toBe(1);
    expect(intInput.stderr).toMatch(/input 'window' is int64; a forecasting model's input must be float32 or float64 \[ERR_MODEL_CONTRACT\]/);
    const one = dir.write('models/one.onnx', linearModel({ lookback: 4, horizon: 2, weights: meanWeights(4, 2), batch: 1 }));
    const batchOne = await cli(['bench', one, '--batch', '1,8']);
    expect(batchOne.code).toBe(1);
    expect(batchOne.stderr).toBe(
      "forecastd bench: input 'window' has shape [1, 4, 1]: the model takes one window per run, so only --batch 1 can be measured [ERR_MODEL_CONTRACT]\n",
    );
  });

  it('bad options: message and the bench usage, exit 1', async () => {
    const none = await cli(['bench']);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/^forecastd bench: give a MODEL\.onnx to measure, or --http URL\n\nUsage: forecastd bench MODEL\.onnx/);
    const batch = await cli(['bench', 'm.onnx', '--batch', '1,0']);
    expect(batch.code).toBe(1);
    expect(batch.stderr).toMatch(/^forecastd bench: --batch must be a comma-separated list of positive integers \(e\.g\. 1,8,64\), not '1,0'/);
    const duration = await cli(['bench', 'm.onnx', '--duration', '5']);
    expect(duration.code).toBe(1);
    expect(duration.stderr).toMatch(/^forecastd bench: --duration: invalid duration "5": it has no unit/);
    const help = await cli(['bench', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: forecastd bench MODEL\.onnx \[options\]/);
  });
});

describe('forecastd bench --http, and a pod folder named bench', () => {
  const work = new PodDir('forecastd-bench-http-');
  let server: ReturnType<typeof spawn> | undefined;
  let base = '';
  beforeAll(async () => {
    const pod = path.join(work.dir, 'bench');
    mkdirSync(path.join(pod, 'data'), { recursive: true });
    mkdirSync(path.join(pod, 'models'));
    work.write('bench/data/series.csv', dailyCsv({ value: [1, 2, 3, 4, 5, 6] }));
    work.write('bench/models/lin.onnx', linearFixture({ lookback: 4, horizon: 2 }).bytes);
    work.write(
      'bench/spicepod.yaml',
      'version: v1beta1\nkind: Spicepod\nname: bench\ndatasets:\n  - from: file:data/series.csv\n    name: series\n' +
        'models:\n  - from: file:models/lin.onnx\n    name: lin\n    datasets: [series]\n',
    );
    // "./bench" is the pod folder; the bare word is the subcommand.
    server = spawn(process.execPath, [CLI, './bench', '--http', '127.0.0.1:0', '--no-watch'], {
      cwd: work.dir,
      env: { ...process.env, FORECASTD_LOG_FORMAT: 'json' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    base = await new Promise<string>((resolve, reject) => {
      let out = '';
      server!.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const listening = out.split('\n').find((l) => l.includes('forecastd listening on'));
        if (listening !== undefined && /loaded \d+ of \d+ models/.test(out)) resolve((JSON.parse(listening) as { url: string }).url);
      });
      server!.on('exit', (code) => reject(new Error(`the server exited with ${code}: ${out}`)));
    });
  });
  afterAll(() => {
    server?.kill('SIGKILL');
    work.remove();
  });

  it('"forecastd bench" in a folder holding a pod named bench runs the subcommand, not the pod', async () => {
    const run = await cli(['bench'], work.dir);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^forecastd bench: give a MODEL\.onnx to measure, or --http URL/);
    expect(run.stdout).toBe('');
  });

  it('loads a predict route at each connection count and reports statuses', async () => {
    const json = work.path('http.json');
    const svg = work.path('http.svg');
    const run = await cli(['bench', '--http', `${base}/v1/models/lin/predict`, '--callers', '1,4', '--duration', '200ms', '--json', json, '--svg', svg]);
    expect(run.stderr).not.toMatch(/forecastd bench:/);
    expect(run.code).toBe(0);
    expect(run.stderr).toBe('[1/2] 1 connection\n[2/2] 4 connections\n');
    expect(run.stdout).toContain(`target: GET ${base}/v1/models/lin/predict`);
    expect(run.stdout).toMatch(/first answer: 200 \{"status":"Success","model_name":"lin"/);
    const result = JSON.parse(readFileSync(json, 'utf8')) as HttpLoadResult;
    expect(result.kind).toBe('http');
    expect(result.probe.status).toBe(200);
    expect(result.points.map((p) => p.connections)).toEqual([1, 4]);
    for (const p of result.points) {
      expect(p.requests).toBeGreaterThan(0);
      expect(p.statuses).toEqual({ '200': p.requests });
      expect(p.failures).toEqual({});
      expect(p.maxMs).toBeGreaterThanOrEqual(p.p99Ms);
    }
    const rows = tableRows(run.stdout);
    expect(rows.map((r) => r[0])).toEqual(['1', '4']);
    expect(rows[1]?.[6]).toBe(`200: ${result.points[1]?.requests}`);
    expect(readFileSync(svg, 'utf8')).toContain('labels: connections');
  });

  it('POST /v1/predict with --model, and errors counted by status', async () => {
    const post = await cli(['bench', '--http', base, '--model', 'lin,lin', '--callers', '2', '--duration', '150ms']);
    expect(post.code).toBe(0);
    expect(post.stdout).toContain(`target: POST ${base}/v1/predict {"predictions":[{"model_name":"lin"},{"model_name":"lin"}]}`);
    expect(post.stdout).toMatch(/first answer: 200 \{"duration_ms":/);
    const missing = await cli(['bench', '--http', base, '--model', 'nope', '--callers', '2', '--duration', '150ms', '--json', work.path('missing.json')]);
    expect(missing.code).toBe(0);
    const result = JSON.parse(readFileSync(work.path('missing.json'), 'utf8')) as HttpLoadResult;
    expect(result.target.url).toBe(`${base}/v1/models/nope/predict`);
    expect(result.probe.status).toBe(400);
    expect(result.probe.body).toContain('nope');
    expect(Object.keys(result.points[0]!.statuses)).toEqual(['400']);
    expect(result.points[0]!.statuses['400']).toBe(result.points[0]!.requests);
  });

  it('a server that cannot be reached is a clear error', async () => {
    const run = await cli(['bench', '--http', 'http://127.0.0.1:1/v1/models/lin/predict', '--duration', '50ms']);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe('forecastd bench: cannot reach http://127.0.0.1:1/v1/models/lin/predict: ECONNREFUSED [ERR_INVALID_ARGUMENT]\n');
  });
});
