import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type ForecastdServer } from '../../src/server/start.js';
import { linearModel, seededRandom, uniformWeights } from '../../tools/onnx-builder.js';
import { startCli } from '../helpers/cli.js';
import { PodDir, dailyCsv, until } from './fixtures.js';

/**
 * Ensembles and variants under evaluation (SPEC "Ensembles and variants", "Evaluation"), with real models: the
 * mean of two linear models is itself a linear model (the shorter one's weights padded with zeros), built
 * here as one ONNX file, so the ensemble's evaluation must match that model's. A variants entry lists its
 * members' evaluations side by side and has no metrics of its own.
 */

const H = 3;
const random = seededRandom(21);
const wa = uniformWeights(random, 4 * H, 0.4);
const ba = uniformWeights(random, H, 1);
const wb = uniformWeights(random, 6 * H, 0.3);
const bb = uniformWeights(random, H, 1);
// The mean model: weights [6, H], a's 4 rows at the end (its window is the newest 4 of the 6).
const wm = new Float64Array(6 * H);
for (let i = 0; i < 6; i++) {
  for (let h = 0; h < H; h++) {
    const fromA = i >= 2 ? (wa[(i - 2) * H + h] as number) : 0;
    wm[i * H + h] = 0.5 * fromA + 0.5 * (wb[i * H + h] as number);
  }
}
const bm = Array.from({ length: H }, (_, h) => 0.5 * (ba[h] as number) + 0.5 * (bb[h] as number));

const SERIES = Array.from({ length: 150 }, (_, i) => 20 + 3 * Math.sin(i / 5) + 0.05 * i + 0.5 * Math.cos(i * 1.7));

const POD = `
version: v1beta1
kind: Spicepod
name: ensemble-evaluation
datasets:
  - from: file:data/daily.csv
    name: daily
models:
  - { from: file:models/a.onnx, name: a, datasets: [daily], params: { evaluation: { origins: 60 } } }
  - { from: file:models/b.onnx, name: b, datasets: [daily], params: { evaluation: { origins: 60 } } }
  - { from: file:models/mean.onnx, name: mean_model, datasets: [daily], params: { evaluation: { origins: 60 } } }
  - from: ensemble:a,b
    name: blend
    params: { evaluation: { origins: 60 } }
  - from: variants:a=3,b=1
    name: ab
  - from: ensemble:a,b
    name: inverse
    params: { combine: weighted, weights: inverse_mae, evaluation: { origins: 60 } }
`;

type Json = Record<string, unknown>;

async function get(server: ForecastdServer, path: string): Promise<{ status: number; json: Json; text: string }> {
  const res = await fetch(server.url + path);
  const text = await res.text();
  return { status: res.status, json: JSON.parse(text) as Json, text };
}

async function readyEvaluation(server: ForecastdServer, name: string): Promise<Json> {
  return until(`evaluation of ${name}`, async () => {
    const body = (await get(server, `/v1/models/${name}/evaluation`)).json;
    return body['status'] === 'Ready' ? body : undefined;
  });
}

/**
 * Equal JSON, numbers to 1e-9 relative: an evaluation sums its runs' errors in the order the runs finish, which
 * two run threads may change from one evaluation to the next, so the last bits may differ.
 */
function expectSameJson(actual: unknown, expected: unknown, path = ''): void {
  if (typeof expected === 'number' && typeof actual === 'number') {
    expect(Math.abs(actual - expected), path).toBeLessThanOrEqual(1e-9 * Math.max(1, Math.abs(expected)));
  } else if (Array.isArray(expected)) {
    expect(Array.isArray(actual), path).toBe(true);
    expect((actual as unknown[]).length, path).toBe(expected.length);
    expected.forEach((e, i) => expectSameJson((actual as unknown[])[i], e, `${path}[${i}]`));
  } else if (expected !== null && typeof expected === 'object') {
    expect(actual !== null && typeof actual === 'object', path).toBe(true);
    expect(Object.keys(actual as object).sort(), path).toEqual(Object.keys(expected).sort());
    for (const [k, e] of Object.entries(expected)) expectSameJson((actual as Record<string, unknown>)[k], e, `${path}.${k}`);
  } else {
    expect(actual, path).toEqual(expected);
  }
}

function close(actual: readonly (number | null)[], expected: readonly (number | null)[]): void {
  expect(actual.length).toBe(expected.length);
  actual.forEach((a, i) => expect(a).toBeCloseTo(expected[i] as number, 4));
}

describe('evaluation of ensembles and variants', () => {
  const pod = new PodDir('forecastd-ensemble-evaluation-');
  let server: ForecastdServer;

  beforeAll(async () => {
    pod.write('data/daily.csv', dailyCsv({ value: SERIES }));
    pod.write('models/a.onnx', linearModel({ lookback: 4, horizon: H, weights: wa, bias: ba }));
    pod.write('models/b.onnx', linearModel({ lookback: 6, horizon: H, weights: wb, bias: bb }));
    pod.write('models/mean.onnx', linearModel({ lookback: 6, horizon: H, weights: wm, bias: bm }));
    pod.write('spicepod.yaml', POD);
    server = await startServer({ spicepod: pod.dir, port: 0 });
    await server.loaded();
  });

  afterAll(async () => {
    await server?.close();
    pod.remove();
  });

  it('an ensemble is evaluated like a model: the same as the one model it equals', async () => {
    const blend = await readyEvaluation(server, 'blend');
    const reference = await readyEvaluation(server, 'mean_model');
    expect(blend).toMatchObject({ model: 'blend', dataset: 'daily', status: 'Ready', origins: 60, horizon: H });
    for (const key of ['first_origin', 'last_origin', 'skipped', 'skipped_pairs', 'season_length']) expect(blend[key], key).toEqual(reference[key]);
    expectSameJson(blend['baselines'], reference['baselines'], 'baselines');
    for (const key of ['mae', 'rmse', 'bias', 'mase', 'skill']) expect(blend[key] as number, key).toBeCloseTo(reference[key] as number, 4);
    const steps = (r: Json): Record<string, (number | null)[]> => r['by_step'] as Record<string, (number | null)[]>;
    close(steps(blend)['mae']!, steps(reference)['mae']!);
    close(steps(blend)['bias']!, steps(reference)['bias']!);
    // And it is not simply a member's.
    const a = await readyEvaluation(server, 'a');
    expect(Math.abs((a['mae'] as number) - (blend['mae'] as number))).toBeGreaterThan(1e-3);
  });

  it('a variants entry lists its members side by side, with their weights', async () => {
    const a = await readyEvaluation(server, 'a');
    const b = await readyEvaluation(server, 'b');
    const res = await get(server, '/v1/models/ab/evaluation');
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ model: 'ab', status: 'Ready', variants: { a: { ...a, weight: 3 }, b: { ...b, weight: 1 } } });
    expect(Object.keys(res.json)).toEqual(['model', 'status', 'variants']);
  });

  it('listings, details and gauges: the ensemble has its own mae and skill, the variants entry none', async () => {
    const blend = await readyEvaluation(server, 'blend');
    await readyEvaluation(server, 'a');
    await readyEvaluation(server, 'b');
    const listing = (await get(server, '/v1/models?status=true')).json as unknown as Json[];
    const byName = new Map(listing.map((m) => [m['name'], m]));
    expect(byName.get('blend')).toMatchObject({ mae: blend['mae'], skill: blend['skill'] });
    expect(byName.get('ab')).toMatchObject({ mae: null, skill: null });
    expect((await get(server, '/v1/models/blend')).json).toMatchObject({ mae: blend['mae'], skill: blend['skill'] });
    expect((await get(server, '/v1/models/ab')).json).toMatchObject({ mae: null, skill: null });
    const metrics = await (await fetch(server.url + '/metrics')).text();
    expect(metrics).toContain(`forecastd_evaluation_mae{model="blend"} ${blend['mae'] as number}`);
    expect(metrics).not.toMatch(/forecastd_evaluation_(mae|skill)\{model="ab"\}/);
  });

  it('inverse_mae: once every member is evaluated, the weights are 1/MAE on the common origins, normalised', async () => {
    const a = await readyEvaluation(server, 'a');
    const b = await readyEvaluation(server, 'b');
    // On 150 rows without gaps the newest 60 origins are the same for every lookback here: the common origins.
    expect(a['first_origin']).toBe(b['first_origin']);
    const expected = [1 / (a['mae'] as number), 1 / (b['mae'] as number)];
    const total = expected[0]! + expected[1]!;
    const details = await until('inverse_mae weights', async () => {
      const body = (await get(server, '/v1/models/inverse')).json;
      return body['weights_from'] === 'inverse_mae' ? body : undefined;
    });
    expect(details).toMatchObject({ combine: 'weighted', weights_from: 'inverse_mae', status: 'Ready' });
    const members = details['members'] as { name: string; weight: number }[];
    expect(members.map((m) => m.name)).toEqual(['a', 'b']);
    members.forEach((m, i) => expect(m.weight).toBeCloseTo(expected[i]! / total, 9));
    // Served with those weights: the members' own answers, combined here.
    const own = async (name: string): Promise<number[]> => (await get(server, `/v1/models/${name}/predict`)).json['prediction'] as number[];
    const [pa, pb, pi] = [await own('a'), await own('b'), await own('inverse')];
    pi.forEach((v, h) => expect(Math.fround(v)).toBe(Math.fround(members[0]!.weight * Math.fround(pa[h]!) + members[1]!.weight * Math.fround(pb[h]!))));
    // And its own evaluation follows (in-sample, as any evaluation of weights fitted on the same history).
    const evaluation = await until('evaluation with the new weights', async () => {
      const body = (await get(server, '/v1/models/inverse/evaluation')).json;
      return body['status'] === 'Ready' ? body : undefined;
    });
    expect(evaluation['origins']).toBe(60);
  });

  it('forecastd evaluate prints the ensemble like a model and the variants entry side by side', async () => {
    const cli = startCli(['evaluate', pod.dir, '--model', 'blend,ab', '--json']);
    expect(await cli.exit, cli.stderr()).toBe(0);
    const reports = JSON.parse(cli.stdout()) as Json[];
    expect(reports.map((r) => r['model'])).toEqual(['blend', 'ab']);
    const served = await readyEvaluation(server, 'blend');
    const { computed_at: _a, duration_ms: _b, ...fromCli } = reports[0]!;
    const { computed_at: _c, duration_ms: _d, ...fromServer } = served;
    expectSameJson(fromCli, fromServer);
    expect(Object.keys(reports[1]!['variants'] as Json)).toEqual(['a', 'b']);
    const text = startCli(['evaluate', pod.dir, '--model', 'ab']);
    expect(await text.exit, text.stderr()).toBe(0);
    expect(text.stdout()).toMatch(/^ab \(variants\): Ready\n\n {2}member +weight +status +origins +MAE +RMSE +MASE +skill\n {2}a +3 +Ready +60 /);
  });
});
