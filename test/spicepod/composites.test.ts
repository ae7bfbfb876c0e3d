import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ForecastdError } from '../../src/errors.js';
import { loadSpicepod } from '../../src/spicepod/load.js';
import type { Spicepod } from '../../src/spicepod/types.js';

/**
 * The spicepod rules of ensembles and variants (SPEC "Ensembles and variants", "Errors"): what a valid entry
 * reads as, and every pod error, each naming the file, line and key.
 */

let root: string;
let counter = 0;

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'forecastd-composites-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function podDir(text: string): Promise<string> {
  const dir = path.join(root, `pod${++counter}`);
  await mkdir(dir);
  await writeFile(path.join(dir, 'spicepod.yaml'), text);
  return dir;
}

async function load(text: string): Promise<Spicepod> {
  return loadSpicepod(await podDir(text), {});
}

/** The message of the pod error `text` gives, after the file name (which it must start with). */
async function fatal(text: string): Promise<string> {
  const dir = await podDir(text);
  const file = path.join(dir, 'spicepod.yaml');
  try {
    await loadSpicepod(dir, {});
  } catch (err) {
    expect(err).toBeInstanceOf(ForecastdError);
    expect((err as ForecastdError).code).toBe('ERR_SPICEPOD');
    const message = (err as Error).message;
    expect(message.startsWith(file)).toBe(true);
    return message.slice(file.length);
  }
  throw new Error('expected loadSpicepod to fail');
}

const BASE = `version: v1beta1
kind: Spicepod
name: t
datasets:
  - { from: file:a.csv, name: d1 }
  - { from: file:b.csv, name: d2 }
models:
  - { from: file:a.onnx, name: a, datasets: [d1] }
  - { from: file:b.onnx, name: b, datasets: [d1] }
  - { from: file:c.onnx, name: other, datasets: [d2] }
  - { from: file:c.onnx, name: client_only }
`;

describe('ensemble and variants entries', () => {
  test('an ensemble reads as its members, combine rule and normalised weights; its dataset is the members\'', async () => {
    const pod = await load(`${BASE}  - from: ensemble:a, b
    name: blend
    params: { combine: weighted, weights: [3, 1], version: "2" }
  - from: ensemble:a,b
    name: plain
`);
    const blend = pod.models.find((m) => m.name === 'blend')!;
    expect(blend.source).toEqual({ kind: 'ensemble', combine: 'weighted', weightsFrom: 'pod', members: [{ name: 'a', weight: 0.75 }, { name: 'b', weight: 0.25 }] });
    expect(blend.datasets).toEqual(['d1']);
    expect(blend.params.version).toBe('2');
    const plain = pod.models.find((m) => m.name === 'plain')!;
    expect(plain.source).toEqual({ kind: 'ensemble', combine: 'mean', weightsFrom: 'pod', members: [{ name: 'a', weight: 0.5 }, { name: 'b', weight: 0.5 }] });
  });

  test('weights: inverse_mae (with combine: weighted) starts from equal weights', async () => {
    const pod = await load(`${BASE}  - from: ensemble:a,b
    name: blend
    params: { combine: weighted, weights: inverse_mae }
`);
    expect(pod.models.find((m) => m.name === 'blend')!.source).toEqual({
      kind: 'ensemble',
      combine: 'weighted',
      weightsFrom: 'inverse_mae',
      members: [{ name: 'a', weight: 0.5 }, { name: 'b', weight: 0.5 }],
    });
  });

  test('a variants entry reads as integer weights (0 allowed) and its sticky rule', async () => {
    const pod = await load(`${BASE}  - from: variants:a=90,b=0
    name: ab
    params: { sticky: "header:X-User-Id" }
  - from: variants:a=1,b=1
    name: coin
`);
    expect(pod.models.find((m) => m.name === 'ab')!.source).toEqual({
      kind: 'variants',
      members: [{ name: 'a', weight: 90 }, { name: 'b', weight: 0 }],
      sticky: { kind: 'header', name: 'x-user-id' },
    });
    expect(pod.models.find((m) => m.name === 'coin')!.source).toMatchObject({ sticky: { kind: 'none' } });
  });

  test('sticky: api_key with auth on', async () => {
    const pod = await load(`version: v1beta1
kind: Spicepod
name: t
runtime:
  auth:
    api-key: { enabled: true, keys: [k1] }
datasets:
  - { from: file:a.csv, name: d1 }
models:
  - { from: file:a.onnx, name: a, datasets: [d1] }
  - { from: variants:a=1, name: v, params: { sticky: api_key } }
`);
    expect(pod.models[1]!.source).toMatchObject({ sticky: { kind: 'api_key' } });
  });
});

describe('pod errors', () => {
  test('an unknown member', async () => {
    expect(await fatal(`${BASE}  - from: ensemble:a,nope
    name: blend
`)).toBe(':12:11: models[4].from: unknown member "nope" (models of the pod: a, b, other, client_only, blend)');
  });

  test('members without a common dataset', async () => {
    expect(await fatal(`${BASE}  - from: ensemble:a,other
    name: blend
`)).toBe(':12:11: models[4].from: members without a common dataset: "a" reads d1, "other" reads d2');
    expect(await fatal(`${BASE}  - from: variants:a=1,client_only=1
    name: v
`)).toBe(':12:11: models[4].from: member "client_only" has no dataset; every member of v must read the same dataset');
    expect(await fatal(`${BASE}  - from: ensemble:a,b
    name: blend
    datasets: [d2]
`)).toBe(':14:15: models[4].datasets: blend lists dataset d2, but its members read d1');
  });

  test('weights that do not match the members', async () => {
    expect(await fatal(`${BASE}  - from: ensemble:a,b
    name: blend
    params: { combine: weighted, weights: [0.5, 0.3, 0.2] }
`)).toBe(':14:43: models[4].params.weights: 3 weights for 2 members: give one per member, in the order of "from"');
    expect(await fatal(`${BASE}  - from: ensemble:a,b
    name: blend
    params: { combine: weighted }
`)).toBe(':14:24: models[4].params.weights: combine: weighted needs params.weights: one number per member (2)');
    expect(await fatal(`${BASE}  - from: ensemble:a,b
    name: blend
    params: { combine: weighted, weights: [1, -1] }
`)).toBe(':14:47: models[4].params.weights[1]: expected a non-negative number, got -1');
    expect(await fatal(`${BASE}  - from: ensemble:a,b
    name: blend
    params: { combine: mean, weights: inverse_mae }
`)).toBe(':14:39: models[4].params.weights: weights: inverse_mae needs combine: weighted (combine is mean)');
    expect(await fatal(`${BASE}  - from: ensemble:a,b
    name: blend
    params: { combine: weighted, weights: lowest_mae }
`)).toBe(':14:43: models[4].params.weights: expected a list of 2 weights (one per member) or inverse_mae, got "lowest_mae"');
    expect(await fatal(`${BASE}  - from: variants:a=1.5,b=1
    name: v
`)).toMatch(/^:12:11: models\[4\]\.from: member "a=1\.5" of "variants:a=1\.5,b=1" needs an integer weight/);
    expect(await fatal(`${BASE}  - from: variants:a=0,b=0
    name: v
`)).toBe(':12:11: models[4].from: every weight in "variants:a=0,b=0" is 0: at least one member must be drawn');
  });

  test('a cycle', async () => {
    expect(await fatal(`${BASE}  - from: ensemble:a,e2
    name: e1
  - from: ensemble:b,e1
    name: e2
`)).toBe(':12:11: models[4].from: members form a cycle: e1 -> e2 -> e1');
    expect(await fatal(`${BASE}  - from: ensemble:a,self
    name: self
`)).toBe(':12:11: models[4].from: ensemble self names itself as a member (a cycle)');
  });

  test('a variants entry as an ensemble member, or as a variants entry\'s', async () => {
    expect(await fatal(`${BASE}  - from: variants:a=1,b=1
    name: v
  - from: ensemble:a,v
    name: blend
`)).toBe(':14:11: models[5].from: member "v" is a variants entry, which cannot be an ensemble member');
    expect(await fatal(`${BASE}  - from: variants:a=1,b=1
    name: v
  - from: variants:a=1,v=1
    name: vv
`)).toBe(':14:11: models[5].from: member "v" is a variants entry; a variants entry draws models and ensembles, so list its members here instead');
  });

  test('bad sticky syntax, and sticky: api_key without auth', async () => {
    expect(await fatal(`${BASE}  - from: variants:a=1,b=1
    name: v
    params: { sticky: cookie }
`)).toBe(':14:23: models[4].params.sticky: expected none, api_key or header:NAME, got "cookie"');
    expect(await fatal(`${BASE}  - from: variants:a=1,b=1
    name: v
    params: { sticky: "header:" }
`)).toBe(':14:23: models[4].params.sticky: "header:" does not name a header: expected header:NAME, e.g. header:X-User-Id');
    expect(await fatal(`${BASE}  - from: variants:a=1,b=1
    name: v
    params: { sticky: api_key }
`)).toBe(':14:23: models[4].params.sticky: sticky: api_key needs runtime.auth.api-key enabled (without auth requests carry no key)');
  });
});
