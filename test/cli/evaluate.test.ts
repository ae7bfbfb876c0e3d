import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type ForecastdServer } from '../../src/server/start.js';
import { linearModel, quantileModel, seededRandom, uniformWeights } from '../../tools/onnx-builder.js';
import { startCli } from '../helpers/cli.js';
import { PodDir, until } from '../server/fixtures.js';

/** `forecastd evaluate` (the built CLI, as users run it) gives what the server's evaluation route gives. */

const random = seededRandom(4);
const lin = linearModel({ lookback: 8, horizon: 4, weights: uniformWeights(random, 32, 0.2) });
const quant = quantileModel({ lookback: 8, horizon: 4, weights: uniformWeights(random, 32, 0.2), levels: 2, offsets: [-1, 1, -1.5, 1.5, -2, 2, -2.5, 2.5] });

const POD = `
version: v1beta1
kind: Spicepod
name: cli-evaluate
datasets:
  - from: file:data/co2_weekly.csv
    name: co2
    params:
      columns: [co2]
models:
  - from: file:models/lin.onnx
    name: lin
    datasets: [co2]
    params:
      fill_missing: linear
      evaluation:
        origins: 150
  - from: file:models/quant.onnx
    name: quant
    datasets: [co2]
    params:
      fill_missing: linear
      quantiles: [0.2, 0.8]
      quantile_output: quantiles
  - from: file:models/missing.onnx
    name: missing
    datasets: [co2]
`;

type Json = Record<string, unknown>;

/** The evaluation without the fields that say when and how fast it ran. */
function results(body: Json): Json {
  const { computed_at: _at, duration_ms: _ms, ...rest } = body;
  return rest;
}

async function run(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const cli = startCli(['evaluate', ...args]);
  const code = await cli.exit;
  return { code, stdout: cli.stdout(), stderr: cli.stderr() };
}

describe('forecastd evaluate', () => {
  const pod = new PodDir();
  let server: ForecastdServer;

  beforeAll(async () => {
    pod.copyTestData('co2_weekly.csv');
    pod.write('models/lin.onnx', lin);
    pod.write('models/quant.onnx', quant);
    pod.write('spicepod.yaml', POD);
    server = await startServer({ spicepod: pod.dir, port: 0 });
    await server.loaded();
  });

  afterAll(async () => {
    await server?.close();
    pod.remove();
  });

  async function routeOf(name: string): Promise<Json> {
    return until(`evaluation of ${name}`, async () => {
      const res = await fetch(`${server.url}/v1/models/${name}/evaluation`);
      expect(res.status).toBe(200);
      const body = (await res.json()) as Json;
      return body.status === 'Ready' || body.status === 'Error' ? body : undefined;
    });
  }

  /** Deep equality, numbers equal to 1e-12 relative. */
  function expectSame(actual: unknown, expected: unknown, path: string): void {
    if (typeof expected === 'number' && typeof actual === 'number') {
      expect(Math.abs(actual - expected), `${path}: ${actual} against ${expected}`).toBeLessThanOrEqual(1e-12 * Math.max(Math.abs(actual), Math.abs(expected)));
    } else if (Array.isArray(expected)) {
      expect(Array.isArray(actual), path).toBe(true);
      expect((actual as unknown[]).length, path).toBe(expected.length);
      expected.forEach((e, i) => expectSame((actual as unknown[])[i], e, `${path}[${i}]`));
    } else if (typeof expected === 'object' && expected !== null) {
      expect(typeof actual === 'object' && actual !== null, path).toBe(true);
      expect(Object.keys(actual as object).sort(), path).toEqual(Object.keys(expected).sort());
      for (const [k, e] of Object.entries(expected)) expectSame((actual as Record<string, unknown>)[k], e, `${path}.${k}`);
    } else {
      expect(actual, path).toEqual(expected);
    }
  }

  it('prints the route objects with --json, and exits 1 because a model failed to load', async () => {
    const { code, stdout } = await run([pod.dir, '--json']);
    expect(code).toBe(1);
    const printed = JSON.parse(stdout) as Json[];
    expect(printed.map((r) => [r.model, r.status])).toEqual([
      ['lin', 'Ready'],
      ['quant', 'Ready'],
      ['missing', 'Error'],
    ]);
    // The same numbers, summed in the order the runs finished (two run threads): equal to the last bits or so.
    expectSame(results(printed[0]!), results(await routeOf('lin')), 'lin');
    expectSame(results(printed[1]!), results(await routeOf('quant')), 'quant');
    expect(printed[0]!.origins).toBe(150);
    expect(printed[2]!.error).toMatch(/^model missing failed to load: /);
  });

  it('prints a table per model, by step, against both baselines; --model, --origins and --since choose', async () => {
    const { code, stdout, stderr } = await run([pod.dir, '--model', 'lin', '--origins', '20', '--since', '2001-01-01']);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const lines = stdout.split('\n');
    expect(lines[0]).toBe('lin on co2: Ready');
    expect(lines[1]).toMatch(/^ {2}20 origins from 2001-\d\d-\d\dT00:00:00\.000Z to 2001-\d\d-\d\dT00:00:00\.000Z \(0 skipped, 0 pairs without an actual\); horizon 4, season 52; \d+ ms$/);
    expect(lines[2]).toMatch(/^ {2}MAE [\d.]+ {2}RMSE [\d.]+ {2}bias -?[\d.e-]+ {2}MASE [\d.]+ {2}skill -?[\d.]+$/);
    expect(lines[4]).toMatch(/^ {2}MAE by step +1 +2 +3 +4 +all$/);
    expect(lines[5]).toMatch(/^ {2}model( +[\d.]+){5}$/);
    expect(lines[6]).toMatch(/^ {2}naive( +[\d.]+){5}$/);
    expect(lines[7]).toMatch(/^ {2}seasonal naive( +[\d.]+){5}$/);
    expect(stdout).not.toContain('quant');

    const json = JSON.parse((await run([pod.dir, '--model', 'lin', '--origins', '20', '--since', '2001-01-01', '--json'])).stdout) as Json[];
    expect(json).toHaveLength(1);
    expect(lines[2]).toContain(`MAE ${Number((json[0]!.mae as number).toPrecision(4))}`);
  });

  it('names what is wrong with its arguments', async () => {
    const unknown = await run([pod.dir, '--model', 'nope']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^forecastd evaluate: --model names nope, which the pod does not have \(its models: lin, quant, missing\)/);
    const origins = await run([pod.dir, '--origins', '0']);
    expect(origins.code).toBe(1);
    expect(origins.stderr).toMatch(/^forecastd evaluate: --origins must be a positive integer, not '0'/);
    const since = await run([pod.dir, '--since', 'yesterday']);
    expect(since.code).toBe(1);
    expect(since.stderr).toMatch(/^forecastd evaluate: --since must be an ISO 8601 date or time \(e\.g\. 1993-04-03\), not 'yesterday'/);
  });
});

describe('forecastd evaluate examples/co2, run many times', () => {
  // The dataset reader thread loads DuckDB's binary in the background from its start, and this pod's
  // ISO 8601 times are read with csv-parse, so the process reaches its exit while that load may still run.
  // Exiting inside it used to abort the process (`terminate ... Napi::Error`, exit 134) after complete output,
  // in about 1 run in 5 here.
  it('exits 0 every time, nothing on stderr, every model evaluated', async () => {
    for (let i = 0; i < 12; i++) {
      const cli = startCli(['evaluate', 'examples/co2', '--json']);
      const code = await cli.exit;
      expect(cli.stderr(), `run ${i}`).toBe('');
      expect(code, `run ${i}`).toBe(0);
      const json = JSON.parse(cli.stdout()) as Json[];
      expect(json.map((e) => [e.model, e.status])).toEqual([
        ['co2_linear', 'Ready'],
        ['co2_seasonal_naive', 'Ready'],
        ['co2_quantile', 'Ready'],
        ['co2_blend', 'Ready'],
      ]);
      for (const e of json) expect(Number.isFinite(e.mae), `run ${i}: ${String(e.model)}`).toBe(true);
    }
  }, 300_000);
});

describe('forecastd serving examples/co2, stopped right after it starts', () => {
  // The same background load runs while a server starts: SIGTERM as soon as the server has loaded its models
  // (its signal handling starts then) must stop it cleanly too.
  it('exits 0 on SIGTERM every time, nothing on stderr', async () => {
    for (let i = 0; i < 4; i++) {
      const cli = startCli(['examples/co2', '--http', '127.0.0.1:0', '--shutdown-delay', '0']);
      await cli.line(/loaded \d+ of \d+ models/);
      cli.child.kill('SIGTERM');
      const code = await cli.exit;
      expect(cli.stderr(), `run ${i}`).toBe('');
      expect(code, `run ${i}`).toBe(0);
      expect(cli.stdout(), `run ${i}`).toMatch(/SIGTERM received/);
    }
  }, 300_000);
});
