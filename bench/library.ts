/**
 * The batching forecaster through the library, without HTTP: many concurrent callers, each predicting from a
 * distinct window (so caching cannot help and batching must), against the inference ceiling, the addon alone
 * running the model at its best batch size on every run slot. Two models: a heavy MLP, where batching is what
 * counts, and a tiny linear one, where the forecaster's own cost per prediction shows.
 *
 * Usage: npx tsx bench/library.ts [--seconds N]
 * Prints a table and writes bench/results/library.json and bench/results/library.md.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { BatchingForecaster } from '../src/runtime/forecaster.js';
import { runtimeInfo } from '../src/runtime/runtime.js';
import { InferenceSession } from '../src/runtime/session.js';
import { linearModel, mlpModel, seasonalNaiveWeights, seededRandom, uniformWeights } from '../tools/onnx-builder.js';

const LOOKBACK = 64;
const HORIZON = 12;
const MODELS = [
  {
    name: 'heavy',
    description: 'MLP 64→512→512→512→12',
    bytes: mlpModel({ lookback: LOOKBACK, hidden: [512, 512, 512], horizon: HORIZON, seed: 1 }),
  },
  {
    name: 'small',
    description: 'linear AR 64→12',
    bytes: linearModel({ lookback: LOOKBACK, horizon: HORIZON, weights: seasonalNaiveWeights(LOOKBACK, HORIZON, 52) }),
  },
];
const CALLERS = [1, 16, 64, 256];
const CEILING_BATCHES = [1, 8, 16, 32, 64, 128, 256];
// Distinct windows, more than the callers ever hold at once.
const WINDOW_POOL = 4096;

function argSeconds(): number {
  const i = process.argv.indexOf('--seconds');
  const value = i >= 0 ? Number(process.argv[i + 1]) : 3;
  if (!(value > 0)) throw new Error('--seconds needs a positive number');
  return value;
}

const seconds = argSeconds();
const warmupSeconds = Math.min(1, seconds / 4);

interface CeilingPoint {
  readonly batch: number;
  readonly predictionsPerSecond: number;
}

interface ForecasterPoint {
  readonly callers: number;
  readonly predictionsPerSecond: number;
  readonly meanBatchSize: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

function quantile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

/** The addon alone: `slots` loops each running back-to-back batches of `batch` windows. */
async function ceilingAt(session: InferenceSession, batch: number, slots: number): Promise<CeilingPoint> {
  const data = uniformWeights(seededRandom(batch), batch * LOOKBACK, 3);
  const feeds = { window: { data, shape: [batch, LOOKBACK, 1] } };
  let counting = false;
  let done = 0;
  let stop = false;
  const loop = async () => {
    while (!stop) {
      await session.run(feeds);
      if (counting) done += batch;
    }
  };
  const loops = Array.from({ length: slots }, loop);
  await sleep(warmupSeconds * 1000);
  counting = true;
  const t0 = performance.now();
  await sleep(seconds * 1000);
  const elapsed = (performance.now() - t0) / 1000;
  const counted = done;
  stop = true;
  await Promise.all(loops);
  return { batch, predictionsPerSecond: counted / elapsed };
}

/** `callers` loops, each awaiting one prediction from a distinct window before asking for the next. */
async function forecasterAt(session: InferenceSession, windows: Float32Array[], callers: number): Promise<ForecasterPoint> {
  let batches = 0;
  let batchedItems = 0;
  let counting = false;
  const forecaster = new BatchingForecaster(session, {
    onBatch: (b) => {
      if (!counting) return;
      batches++;
      batchedItems += b.size;
    },
  });
  const latencies = new Float64Array(2_000_000);
  let done = 0;
  let next = 0;
  let stop = false;
  const loop = async () => {
    while (!stop) {
      const window = windows[next++ % windows.length] as Float32Array;
      const t = performance.now();
      await forecaster.predict(window);
      if (counting && done < latencies.length) latencies[done++] = performance.now() - t;
    }
  };
  const loops = Array.from({ length: callers }, loop);
  await sleep(warmupSeconds * 1000);
  counting = true;
  const t0 = performance.now();
  await sleep(seconds * 1000);
  const elapsed = (performance.now() - t0) / 1000;
  const counted = done;
  counting = false;
  stop = true;
  await Promise.all(loops);
  await forecaster.close();
  const sorted = latencies.slice(0, counted).sort();
  return {
    callers,
    predictionsPerSecond: counted / elapsed,
    meanBatchSize: batches === 0 ? 0 : batchedItems / batches,
    p50Ms: quantile(sorted, 0.5),
    p99Ms: quantile(sorted, 0.99),
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function round(n: number, digits = 0): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

const info = runtimeInfo();
const slots = os.availableParallelism();
const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
const header = `float32, intra-op threads 1; ${cpu}, ${slots} run slots; Node ${process.version}; ONNX Runtime ${info.version}; ${seconds} s per point`;
process.stdout.write(`${header}\n`);

const random = seededRandom(42);
const windows = Array.from({ length: WINDOW_POOL }, () => uniformWeights(random, LOOKBACK, 3));
const results = [];
for (const model of MODELS) {
  const session = await InferenceSession.load(model.bytes, { intraOpThreads: 1 });
  process.stdout.write(`\n${model.name}: ${model.description}\n`);
  const ceiling: CeilingPoint[] = [];
  for (const batch of CEILING_BATCHES) {
    const point = await ceilingAt(session, batch, slots);
    ceiling.push(point);
    process.stdout.write(`  addon alone, batch ${String(batch).padStart(3)}: ${round(point.predictionsPerSecond)} predictions/s\n`);
  }
  const best = ceiling.reduce((a, b) => (b.predictionsPerSecond > a.predictionsPerSecond ? b : a));
  process.stdout.write(`  ceiling: ${round(best.predictionsPerSecond)} predictions/s at batch ${best.batch}\n`);
  const points: ForecasterPoint[] = [];
  for (const callers of CALLERS) {
    const p = await forecasterAt(session, windows, callers);
    points.push(p);
    process.stdout.write(
      `  forecaster, ${String(callers).padStart(3)} callers: ${round(p.predictionsPerSecond)} predictions/s ` +
        `(${round((100 * p.predictionsPerSecond) / best.predictionsPerSecond)}% of ceiling), ` +
        `mean batch ${round(p.meanBatchSize, 1)}, p50 ${round(p.p50Ms, 3)} ms, p99 ${round(p.p99Ms, 3)} ms\n`,
    );
  }
  session.dispose();
  results.push({
    model: model.name,
    description: model.description,
    ceiling: {
      best: { batch: best.batch, predictionsPerSecond: round(best.predictionsPerSecond) },
      byBatch: ceiling.map((c) => ({ batch: c.batch, predictionsPerSecond: round(c.predictionsPerSecond) })),
    },
    forecaster: points.map((p) => ({
      callers: p.callers,
      predictionsPerSecond: round(p.predictionsPerSecond),
      percentOfCeiling: round((100 * p.predictionsPerSecond) / best.predictionsPerSecond, 1),
      meanBatchSize: round(p.meanBatchSize, 1),
      p50Ms: round(p.p50Ms, 3),
      p99Ms: round(p.p99Ms, 3),
    })),
  });
}

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
const date = new Date().toISOString();
const report = {
  date,
  forecastd: pkg.version,
  command: `npx tsx bench/library.ts --seconds ${seconds}`,
  machine: { cpu, runSlots: slots, totalMemoryGiB: round(os.totalmem() / 2 ** 30, 1), loadAverage: os.loadavg().map((l) => round(l, 2)), node: process.version },
  onnxRuntime: info.version,
  secondsPerPoint: seconds,
  models: results,
};

const lines = [
  '# Library benchmark: the batching forecaster against the inference ceiling',
  '',
  `${date}; ${header}. Load average at the end: ${report.machine.loadAverage.join(', ')}.`,
  '',
  `Command: \`${report.command}\`. Each caller awaits one prediction from a distinct window before asking for`,
  'the next. The ceiling is the addon alone: one run in flight per slot, back to back, at the best batch size.',
];
for (const r of results) {
  lines.push(
    '',
    `## ${r.model}: ${r.description}`,
    '',
    `Ceiling: ${r.ceiling.best.predictionsPerSecond} predictions/s at batch ${r.ceiling.best.batch}` +
      ` (addon alone by batch size: ${r.ceiling.byBatch.map((c) => `${c.batch}: ${c.predictionsPerSecond}`).join(', ')}).`,
    '',
    '| concurrent callers | predictions/s | % of ceiling | mean batch | p50 ms | p99 ms |',
    '| ---: | ---: | ---: | ---: | ---: | ---: |',
    ...r.forecaster.map(
      (p) => `| ${p.callers} | ${p.predictionsPerSecond} | ${p.percentOfCeiling} | ${p.meanBatchSize} | ${p.p50Ms} | ${p.p99Ms} |`,
    ),
  );
}
lines.push('');
const outDir = new URL('./results/', import.meta.url).pathname;
mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, 'library.json'), `${JSON.stringify(report, null, 2)}\n`);
writeFileSync(join(outDir, 'library.md'), lines.join('\n'));
process.stdout.write(`\nwrote ${join(outDir, 'library.json')} and library.md\n`);
