import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll } from 'vitest';
import { formatFloat32 } from '../../src/http/float-format.js';
import { InferenceSession } from '../../src/runtime/session.js';
import { startServer, type ForecastdServer, type ServerOptions } from '../../src/server/start.js';
import { buildModel, initializer, linearModel, node, seededRandom, uniformWeights, valueInfo } from '../../tools/onnx-builder.js';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** A temporary pod folder with data/ and models/; remove() deletes it. */
export class PodDir {
  readonly dir: string;

  constructor(prefix = 'forecastd-pod-') {
    this.dir = mkdtempSync(path.join(tmpdir(), prefix));
    mkdirSync(path.join(this.dir, 'data'));
    mkdirSync(path.join(this.dir, 'models'));
  }

  path(relative: string): string {
    return path.join(this.dir, relative);
  }

  write(relative: string, content: string | Uint8Array): string {
    const file = this.path(relative);
    writeFileSync(file, content);
    return file;
  }

  /** A copy of a file from test/data. */
  copyTestData(name: string, as = `data/${name}`): string {
    const file = this.path(as);
    copyFileSync(path.join(REPO, 'test/data', name), file);
    return file;
  }

  /** A named pipe: a dataset reading it blocks until something is written (see releaseFifo). */
  fifo(relative: string): string {
    const file = this.path(relative);
    execFileSync('mkfifo', [file]);
    return file;
  }


  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Writes `text` into a named pipe once its reader opens it, without blocking this thread: opening a pipe for
 * writing waits for the reader, and the reader thread may still need this thread (a worker started from the
 * TypeScript sources loads its modules through this thread's loader) before it gets there.
 */
export function releaseFifo(fifo: string, text: string): Promise<void> {
  return writeFile(fifo, text);
}

/** CSV text of daily rows starting 2024-01-01, one column per entry of `columns`; null writes an empty cell. */
export function dailyCsv(columns: Record<string, readonly (number | null)[]>): string {
  const names = Object.keys(columns);
  const rows = columns[names[0]!]!.length;
  const lines = ['ts,' + names.join(',')];
  for (let r = 0; r < rows; r++) {
    const ts = new Date(Date.UTC(2024, 0, 1 + r)).toISOString();
    lines.push([ts, ...names.map((n) => (columns[n]![r] === null ? '' : String(columns[n]![r])))].join(','));
  }
  return lines.join('\n') + '\n';
}

/**
 * The smallest serving pod: six daily values and a linear model of lookback 4 and horizon 2 reading them,
 * in a pod named `name` (the setup of most CLI and listen tests).
 */
export function writeLinearPod(pod: PodDir, name: string): void {
  pod.write('data/series.csv', dailyCsv({ value: [1, 2, 3, 4, 5, 6] }));
  pod.write('models/lin.onnx', linearFixture({ lookback: 4, horizon: 2 }).bytes);
  pod.write(
    'spicepod.yaml',
    `version: v1beta1\nkind: Spicepod\nname: ${name}\ndatasets:\n  - from: file:data/series.csv\n    name: series\n` +
      'models:\n  - from: file:models/lin.onnx\n    name: lin\n    datasets: [series]\n',
  );
}

/** A pod folder and the server running it, for the tests of one describe block (see servePod). */
export interface ServedPod {
  readonly pod: PodDir;
  /** The running server; it throws before the block's beforeAll has started it. */
  readonly server: ForecastdServer;
}

/**
 * Serves a pod for the tests of the describe block that calls it: before them, a new pod folder gets its
 * files from `fill` (spicepod.yaml among them), forecastd starts on it on a port of the system's choice
 * with the environment and logger of `options`, and, unless `loaded` is false, every model and dataset has loaded; after them, the server closes and the
 * folder goes.
 */
export function servePod(
  fill: (pod: PodDir) => void,
  options: Pick<ServerOptions, 'env' | 'logger'> & { readonly prefix?: string; readonly loaded?: boolean } = {},
): ServedPod {
  const pod = new PodDir(options.prefix);
  let running: ForecastdServer | undefined;
  beforeAll(async () => {
    fill(pod);
    running = await startServer({ spicepod: pod.dir, port: 0, env: options.env, logger: options.logger });
    if (options.loaded !== false) await running.loaded();
  });
  afterAll(async () => {
    await running?.close();
    pod.remove();
  });
  return {
    pod,
    get server(): ForecastdServer {
      if (running === undefined) throw new Error(`the pod in ${pod.dir} is not served yet (servePod starts it in beforeAll)`);
      return running;
    },
  };
}

export interface LinearFixture {
  readonly lookback: number;
  readonly variables: number;
  readonly horizon: number;
  readonly bytes: Uint8Array;
}

/** A linear model with seeded random weights: different windows give different, non-round forecasts. */
export function linearFixture(
  o: {
    lookback: number;
    variables?: number;
    horizon: number;
    seed?: number;
    modelVersion?: number;
    dtype?: 'float32' | 'float64';
    /** Declared lookback dimension, e.g. a name for a symbolic one; default the concrete lookback. */
    lookbackDim?: number | string;
    rank?: 2 | 3;
  },
): LinearFixture {
  const variables = o.variables ?? 1;
  const random = seededRandom(o.seed ?? 1);
  const weights = uniformWeights(random, o.lookback * variables * o.horizon, 0.5);
  const bias = uniformWeights(random, o.horizon, 1);
  const bytes = linearModel({
    lookback: o.lookback,
    variables,
    horizon: o.horizon,
    weights,
    bias,
    modelVersion: o.modelVersion ?? 0,
    dtype: o.dtype ?? 'float32',
    ...(o.lookbackDim === undefined ? {} : { lookbackDim: o.lookbackDim }),
    ...(o.rank === undefined ? {} : { rank: o.rank }),
  });
  return { lookback: o.lookback, variables, horizon: o.horizon, bytes };
}

/** Replaces a file the way careful writers and many editors do: write a temporary file, rename it over. */
export function replaceFile(file: string, content: string | Uint8Array): void {
  const temporary = `${file}.${process.pid}.tmp`;
  writeFileSync(temporary, content);
  renameSync(temporary, file);
}

/** The raw text of the `prediction` array in a body. */
export function predictionText(body: string): string {
  const match = /"prediction":\[([^\]]*)\]/.exec(body);
  if (match === null) throw new Error(`no prediction in ${body}`);
  return match[1]!;
}

/**
 * Runs one window through a model directly (no server) and prints output 0 as the API must: the reference
 * a served prediction is compared with.
 */
export async function runDirect(bytes: Uint8Array, window: readonly number[], shape: readonly number[]): Promise<string> {
  const session = await InferenceSession.load(bytes, { intraOpThreads: 1 });
  try {
    const input = session.inputs[0]!;
    const [output] = await session.run({ [input.name]: { data: Float32Array.from(window), shape: [...shape] } });
    return Array.from(output!.data as Float32Array).map(formatFloat32).join(',');
  } finally {
    session.dispose();
  }
}

/** Polls `probe` until it returns a value (not undefined), for conditions the server reaches on its own. */
export async function until<T>(what: string, probe: () => Promise<T | undefined>, attempts = 800): Promise<T> {
  for (let i = 0; i < attempts; i++) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`gave up waiting for ${what}`);
}

/**
 * A model whose run loops (an ONNX Loop of a small MatMul and Tanh) as many times as the window's largest
 * value plus `extraIterations`: a window of zeros (the warm-up) is instant unless `extraIterations` is large,
 * and a window holding 1e9 keeps a run busy far longer than any test. Input [1, lookback], output [1, horizon].
 */
export function spinModel(o: { lookback: number; horizon: number; extraIterations?: number }): Uint8Array {
  const { lookback: L, horizon: H } = o;
  const random = seededRandom(5);
  const square = uniformWeights(random, L * L, Math.sqrt(3 / L));
  const head = uniformWeights(random, L * H, 1 / Math.sqrt(L));
  const BOOL = 9;
  const INT64 = 7;
  const body = {
    name: 'spin',
    node: [
      node('Identity', ['cond_in'], ['cond_out']),
      node('MatMul', ['state_in', 'square'], ['product']),
      node('Tanh', ['product'], ['state_out']),
    ],
    input: [
      valueInfo('iteration', 'int64', []),
      { name: 'cond_in', type: { tensorType: { elemType: BOOL, shape: { dim: [] } } } },
      valueInfo('state_in', 'float32', [1, L]),
    ],
    output: [
      { name: 'cond_out', type: { tensorType: { elemType: BOOL, shape: { dim: [] } } } },
      valueInfo('state_out', 'float32', [1, L]),
    ],
  };
  const loop = node('Loop', ['count', '', 'window'], ['spun']);
  loop.attribute = [{ name: 'body', type: 5 /* GRAPH */, g: body }];
  return buildModel({
    nodes: [
      node('ReduceMax', ['window'], ['largest'], { keepdims: 0 }),
      node('Add', ['largest', 'extra'], ['total']),
      node('Cast', ['total'], ['count'], { to: INT64 }),
      loop,
      node('MatMul', ['spun', 'head'], ['forecast']),
    ],
    initializers: [
      initializer('extra', 'float32', [], [o.extraIterations ?? 0]),
      initializer('square', 'float32', [L, L], square),
      initializer('head', 'float32', [L, H], head),
    ],
    inputs: [valueInfo('window', 'float32', [1, L])],
    outputs: [valueInfo('forecast', 'float32', [1, H])],
  });
}
