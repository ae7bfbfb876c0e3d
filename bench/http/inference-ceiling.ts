/**
 * The inference ceiling: the addon alone (no HTTP, no forecaster) running each model as fast as it can. For
 * every batch size it keeps twice as many runs in flight as the addon has run threads, so the pool never
 * idles, and counts predictions (batch items) per second. The best batch size gives the ceiling.
 *
 * Run in its own process (the ONNX Runtime library is configured once per process):
 *   tsx bench/http/inference-ceiling.ts CONFIG.json   → one JSON line on stdout (InferenceCeilingReport)
 * CONFIG: { "seconds": 1.5, "batchSizes": [1, 8, 32, 64, 128, 256],
 *           "models": [{ "name": "heavy", "path": "heavy.onnx", "lookback": 64 }] }
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { InferenceSession } from '../../src/runtime/session.js';
import { runtimeInfo } from '../../src/runtime/runtime.js';
import type { Dim, InputTensor } from '../../src/runtime/types.js';

export interface CeilingModel {
  readonly name: string;
  readonly path: string;
  /** Used where the model's lookback dimension is symbolic. */
  readonly lookback?: number;
}

export interface CeilingConfig {
  readonly seconds: number;
  readonly batchSizes: readonly number[];
  readonly models: readonly CeilingModel[];
}

export interface BatchMeasurement {
  readonly batchSize: number;
  readonly predictionsPerSecond: number;
  readonly runsPerSecond: number;
  readonly cpuSecondsPer1kPredictions: number;
}

export interface ModelCeiling {
  readonly name: string;
  readonly best: BatchMeasurement;
  readonly sweep: readonly BatchMeasurement[];
}

export interface InferenceCeilingReport {
  readonly runThreads: number;
  readonly inFlight: number;
  readonly ortVersion: string;
  readonly intraOpThreads: number;
  readonly models: readonly ModelCeiling[];
}

/** The server's default (`intra_op_threads: 1`): throughput comes from concurrent runs. */
const INTRA_OP_THREADS = 1;

function inputFor(session: InferenceSession, model: CeilingModel, batchSize: number): Record<string, InputTensor> {
  const input = session.inputs[0];
  if (!input) throw new Error(`${model.path}: the model has no input`);
  const shape = input.shape.map((dim: Dim, axis: number) => {
    if (axis === 0) return batchSize;
    if (typeof dim === 'number') return dim;
    if (axis === 1 && model.lookback !== undefined) return model.lookback;
    throw new Error(`${model.path}: input dimension ${axis} is symbolic; give the model a lookback`);
  });
  const size = shape.reduce((a, b) => a * b, 1);
  const data = input.type === 'float64' ? new Float64Array(size) : new Float32Array(size);
  // CO2-like values around 350: the MLP's cost does not depend on them, but they keep it on realistic numbers.
  for (let i = 0; i < size; i++) data[i] = 350 + Math.sin(i / 8) * 5;
  return { [input.name]: { data, shape } };
}

async function measure(
  session: InferenceSession,
  feeds: Record<string, InputTensor>,
  batchSize: number,
  inFlight: number,
  seconds: number,
): Promise<BatchMeasurement> {
  let runs = 0;
  let counting = false;
  let stop = false;
  const worker = async (): Promise<void> => {
    while (!stop) {
      await session.run(feeds);
      if (counting) runs++;
    }
  };
  const workers = Array.from({ length: inFlight }, worker);
  // A short unmeasured phase first, so every run thread is busy when counting starts.
  await new Promise((resolve) => setTimeout(resolve, Math.min(300, seconds * 200)));
  counting = true;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const counted = runs;
  stop = true;
  await Promise.all(workers);
  const predictions = counted * batchSize;
  return {
    batchSize,
    predictionsPerSecond: predictions / elapsed,
    runsPerSecond: counted / elapsed,
    cpuSecondsPer1kPredictions: predictions > 0 ? ((cpu.user + cpu.system) / 1e6 / predictions) * 1000 : Number.NaN,
  };
}

export async function inferenceCeiling(config: CeilingConfig): Promise<InferenceCeilingReport> {
  const info = runtimeInfo();
  const inFlight = info.runThreads * 2;
  const models: ModelCeiling[] = [];
  for (const model of config.models) {
    const session = await InferenceSession.load(model.path, { intraOpThreads: INTRA_OP_THREADS });
    try {
      const sweep: BatchMeasurement[] = [];
      for (const batchSize of config.batchSizes) {
        const feeds = inputFor(session, model, batchSize);
        sweep.push(await measure(session, feeds, batchSize, inFlight, config.seconds));
      }
      const best = sweep.reduce((a, b) => (b.predictionsPerSecond > a.predictionsPerSecond ? b : a));
      models.push({ name: model.name, best, sweep });
    } finally {
      session.dispose();
    }
  }
  return { runThreads: info.runThreads, inFlight, ortVersion: info.version, intraOpThreads: INTRA_OP_THREADS, models };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const configPath = process.argv[2];
  if (!configPath) throw new Error('usage: tsx bench/http/inference-ceiling.ts CONFIG.json');
  const config = JSON.parse(readFileSync(configPath, 'utf8')) as CeilingConfig;
  const report = await inferenceCeiling(config);
  process.stdout.write(`${JSON.stringify(report)}\n`);
}
