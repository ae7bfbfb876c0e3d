/**
 * The native addon against onnxruntime-node on the same models, batch sizes and callers.
 *
 * Usage: npx tsx --expose-gc bench/runtime.ts [--seconds N] [--leak-runs N | --no-leak-run] [--models mlp,linear]
 *   [--batches 1,8,64,256] [--callers 1,32] [--without-spin]
 * Prints a table and writes bench/results/runtime-<date>.md and .json.
 *
 * Both run one intra-op thread per run (forecastd's serving setting) and the CPU provider. forecastd runs on its
 * own pool (one thread per core); onnxruntime-node runs each call on the JavaScript thread. Per point: runs
 * completed in a fixed time after a warm-up, latency of each call (call to resolution), the time the call
 * itself held the JavaScript thread, the event loop's busy time per run (eventLoopUtilization: call,
 * resolution and the bench's own loop, the same loop for both; it also counts time the thread waited for a
 * CPU), the JavaScript thread's own CPU time per run (Linux schedstat: immune to preemption) and the p99
 * event-loop delay (monitorEventLoopDelay: how late a timer would fire while the point runs).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import ort from 'onnxruntime-node';

import { formatNumber, hardwareSummary, measureLoop } from '../src/bench/measure.js';
import { configureRuntime, runtimeInfo } from '../src/runtime/runtime.js';
import { InferenceSession } from '../src/runtime/session.js';
import { linearModel, mlpModel, seededRandom, uniformWeights } from '../tools/onnx-builder.js';

const LOOKBACK = 64;
const HORIZON = 12;
const BATCHES = [1, 8, 64, 256];
const CALLERS = [1, 32];

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  const value = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!(value > 0)) throw new Error(`${name} needs a positive number`);
  return value;
}
function listArg<T extends string | number>(name: string, fallback: readonly T[], parse: (text: string) => T): readonly T[] {
  const i = process.argv.indexOf(name);
  if (i < 0) return fallback;
  const items = String(process.argv[i + 1] ?? '').split(',').filter((x) => x !== '').map(parse);
  if (items.length === 0) throw new Error(`${name} needs a comma-separated list`);
  return items;
}
const SECONDS = arg('--seconds', 2);
const LEAK_RUNS = process.argv.includes('--no-leak-run') ? 0 : arg('--leak-runs', 50_000);
const ONLY_MODELS = listArg('--models', ['mlp', 'linear'], String);
const BATCH_LIST = listArg('--batches', BATCHES, Number);
const CALLER_LIST = listArg('--callers', CALLERS, Number);
/** forecastd's default spin budget, and the budget of the "forecastd, no spin" variant measured beside it. */
const SPIN_DEFAULT = runtimeInfo().runSpinMicros;
const WITHOUT_SPIN = process.argv.includes('--without-spin');

interface ModelCase {
  readonly id: string;
  readonly description: string;
  readonly bytes: Uint8Array;
}

const MODELS: readonly ModelCase[] = [
  {
    id: 'mlp',
    description: 'MLP 64→512→512→512→12 (float32)',
    bytes: mlpModel({ lookback: LOOKBACK, hidden: [512, 512, 512], horizon: HORIZON, seed: 1 }),
  },
  {
    id: 'linear',
    description: 'linear AR, lookback 64, horizon 12 (float32)',
    bytes: linearModel({
      lookback: LOOKBACK,
      horizon: HORIZON,
      weights: uniformWeights(seededRandom(2), LOOKBACK * HORIZON, 0.1),
      bias: 0.5,
    }),
  },
];

/** One way of running a model: returns a promise of the first output's data. */
type Runner = (data: Float32Array, batch: number) => Promise<Float32Array>;

interface Impl {
  readonly name: string;
  /** Called before each of its points (process-wide settings such as the run threads' spin). */
  readonly prepare?: () => void;
  readonly load: (bytes: Uint8Array) => Promise<{ run: Runner; close: () => Promise<void> | void }>;
}

function forecastdImpl(name: string, spinMicros: number): Impl {
  return {
    name,
    prepare: () => configureRuntime({ runSpinMicros: spinMicros }),
    load: async (bytes) => {
      const session = await InferenceSession.load(bytes, { intraOpThreads: 1 });
      return {
        run: async (data, batch) => {
          const [out] = await session.run({ window: { data, shape: [batch, LOOKBACK, 1] } });
          return out?.data as Float32Array;
        },
        close: () => session.dispose(),
      };
    },
  };
}

const IMPLS: readonly Impl[] = [
  forecastdImpl('forecastd', SPIN_DEFAULT),
  ...(WITHOUT_SPIN ? [forecastdImpl('forecastd, no spin', 0)] : []),
  {
    name: 'onnxruntime-node',
    load: async (bytes) => {
      const session = await ort.InferenceSession.create(bytes, {
        intraOpNumThreads: 1,
        executionProviders: ['cpu'],
      });
      return {
        run: async (data, batch) => {
          const out = await session.run({ window: new ort.Tensor('float32', data, [batch, LOOKBACK, 1]) });
          return out['forecast']?.data as Float32Array;
        },
        close: () => session.release(),
      };
    },
  },
];

interface Point {
  model: string;
  batch: number;
  callers: number;
  impl: string;
  runs: number;
  predictionsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  syncUsPerCall: number;
  busyUsPerRun: number;
  jsCpuUsPerRun: number;
  processCpuUsPerRun: number;
  loopDelayP99Ms: number;
}

/** One point: the shared closed-loop measurement of forecastd bench, in this report's units. */
async function measure(run: Runner, windows: Float32Array[], batch: number, callers: number, seconds: number) {
  const m = await measureLoop((i) => run(windows[i % windows.length] as Float32Array, batch), {
    callers,
    durationMs: seconds * 1000,
  });
  return {
    runs: m.runs,
    predictionsPerSecond: m.runsPerSecond * batch,
    p50Ms: m.p50Ms,
    p99Ms: m.p99Ms,
    syncUsPerCall: m.syncUsPerCall,
    busyUsPerRun: m.busyUsPerRun,
    jsCpuUsPerRun: m.jsCpuUsPerRun,
    processCpuUsPerRun: m.processCpuUsPerRun,
    loopDelayP99Ms: m.loopDelayP99Ms,
  };
}

function windowsFor(batch: number): Float32Array[] {
  return Array.from({ length: 16 }, (_, i) => uniformWeights(seededRandom(1000 + i), batch * LOOKBACK, 3));
}

async function leakRun(bytes: Uint8Array, runs: number) {
  const session = await InferenceSession.load(bytes, { intraOpThreads: 1 });
  const windows = windowsFor(8);
  const gc = (globalThis as { gc?: () => void }).gc;
  const samples: { runs: number; rssMiB: number }[] = [];
  const sample = (done: number): void => {
    gc?.();
    samples.push({ runs: done, rssMiB: process.memoryUsage().rss / 2 ** 20 });
  };
  let done = 0;
  const step = runs / 10;
  sample(0);
  const caller = async (offset: number): Promise<void> => {
    for (let i = offset; done < runs; i += 32) {
      await session.run({ window: { data: windows[i % windows.length] as Float32Array, shape: [8, LOOKBACK, 1] } });
      done++;
      if (done % step === 0) sample(done);
    }
  };
  await Promise.all(Array.from({ length: 32 }, (_, c) => caller(c)));
  session.dispose();
  return { runs: done, gcExposed: gc !== undefined, samples };
}

const hardware = hardwareSummary;
const fmt = formatNumber;

async function main(): Promise<void> {
  const loadAverage = os.loadavg()[0] ?? NaN;
  const info = runtimeInfo();
  console.log(`ONNX Runtime ${info.version} (${info.libraryPath}), forecastd run threads ${info.runThreads}`);
  const points: Point[] = [];
  for (const model of MODELS.filter((m) => ONLY_MODELS.includes(m.id))) {
    const loaded = await Promise.all(IMPLS.map(async (impl) => ({ impl, ...(await impl.load(model.bytes)) })));
    // Both must compute the same forecast before their speed means anything.
    const probe = windowsFor(1)[0] as Float32Array;
    const [a, b] = await Promise.all(loaded.map((l) => l.run(probe, 1)));
    const diff = Math.max(...Array.from(a as Float32Array, (v, i) => Math.abs(v - ((b as Float32Array)[i] as number))));
    if (!(diff <= 1e-4)) throw new Error(`${model.id}: forecastd and onnxruntime-node disagree by ${diff}`);
    for (const batch of BATCH_LIST) {
      const windows = windowsFor(batch);
      for (const callers of CALLER_LIST) {
        for (const l of loaded) {
          l.impl.prepare?.();
          await measure(l.run, windows, batch, callers, Math.min(0.5, SECONDS / 4)); // warm-up
          const result = await measure(l.run, windows, batch, callers, SECONDS);
          const point = { model: model.id, batch, callers, impl: l.impl.name, ...result };
          points.push(point);
          console.log(
            `${model.id.padEnd(6)} batch ${String(batch).padStart(3)} callers ${String(callers).padStart(2)} ` +
              `${l.impl.name.padEnd(16)} ${fmt(point.predictionsPerSecond, 0).padStart(9)} pred/s  ` +
              `p50 ${fmt(point.p50Ms, 3)} ms  p99 ${fmt(point.p99Ms, 3)} ms  sync ${fmt(point.syncUsPerCall)} µs  ` +
              `busy ${fmt(point.busyUsPerRun)} µs/run  cpu ${fmt(point.jsCpuUsPerRun)} µs/run  process ${fmt(point.processCpuUsPerRun)} µs/run  loop p99 ${fmt(point.loopDelayP99Ms, 2)} ms`,
          );
        }
      }
    }
    for (const l of loaded) await l.close();
  }
  configureRuntime({ runSpinMicros: SPIN_DEFAULT });
  console.log(`leak run: ${LEAK_RUNS} runs of the linear model at batch 8, 32 callers`);
  const leak = LEAK_RUNS > 0 ? await leakRun((MODELS[1] as ModelCase).bytes, LEAK_RUNS) : { runs: 0, gcExposed: false, samples: [] };
  for (const s of leak.samples) console.log(`  after ${s.runs} runs: RSS ${fmt(s.rssMiB)} MiB`);

  const date = new Date().toISOString().slice(0, 10);
  const command = `npx tsx --expose-gc bench/runtime.ts${process.argv.slice(2).length ? ` ${process.argv.slice(2).join(' ')}` : ''}`;
  const rows = points.map((p) => {
    const peer = points.find(
      (q) => q.model === p.model && q.batch === p.batch && q.callers === p.callers && q.impl === 'onnxruntime-node',
    );
    const ratio = p.impl !== 'onnxruntime-node' && peer ? `${fmt(p.predictionsPerSecond / peer.predictionsPerSecond, 2)}×` : '';
    return `| ${p.model} | ${p.batch} | ${p.callers} | ${p.impl} | ${fmt(p.predictionsPerSecond, 0)} | ${ratio} | ${fmt(p.p50Ms, 3)} | ${fmt(p.p99Ms, 3)} | ${fmt(p.syncUsPerCall)} | ${fmt(p.busyUsPerRun)} | ${fmt(p.jsCpuUsPerRun)} | ${fmt(p.processCpuUsPerRun)} | ${fmt(p.processCpuUsPerRun / p.batch, 2)} | ${fmt(p.loopDelayP99Ms, 2)} |`;
  });
  const [first, ...rest] = leak.samples;
  const settled = rest.length > 1 ? rest[1] : first;
  const last = leak.samples[leak.samples.length - 1];
  const report = [
    `# Runtime benchmark, ${date}`,
    '',
    `- Command: \`${command}\``,
    `- Hardware: ${hardware()}`,
    `- Load average (1 min) when it started: ${fmt(loadAverage, 2)}; anything else running shares the CPUs`,
    `- ONNX Runtime ${info.version} (${path.basename(info.libraryPath)} from onnxruntime-node), both sides; one intra-op thread per run; forecastd run threads: ${info.runThreads}, spin ${SPIN_DEFAULT} µs${WITHOUT_SPIN ? ' ("forecastd, no spin": 0 µs, same build)' : ''}`,
    `- ${SECONDS} s per point after a warm-up; models: ${MODELS.map((m) => `${m.id} = ${m.description}`).join('; ')}`,
    '',
    'sync = wall time inside the run() call; JS busy = event-loop active time per run (eventLoopUtilization: call,',
    'resolution and the bench loop, including time the thread waited for a CPU); JS CPU = CPU time of the',
    'JavaScript thread per run (schedstat); process CPU = CPU time of every thread of the process (user + system, run',
    'threads included, spinning included) per run and per prediction; loop p99 = p99 event-loop delay during the',
    'point (how late a timer fires).',
    '',
    '| model | batch | callers | implementation | predictions/s | vs onnxruntime-node | p50 ms | p99 ms | sync µs/call | JS busy µs/run | JS CPU µs/run | process CPU µs/run | process CPU µs/prediction | loop p99 ms |',
    '| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows,
    '',
    ...(leak.runs === 0
      ? []
      : [
          `## Leak run`,
          '',
          `${leak.runs} runs of the linear model at batch 8 by 32 callers through forecastd${leak.gcExposed ? ', with a full GC before each sample' : ' (run with --expose-gc for GC before each sample)'}:`,
          '',
          '| runs | RSS MiB |',
          '| ---: | ---: |',
          ...leak.samples.map((s) => `| ${s.runs} | ${fmt(s.rssMiB)} |`),
          '',
          `RSS from ${settled?.runs ?? 0} runs to the end: ${fmt(settled?.rssMiB ?? NaN)} → ${fmt(last?.rssMiB ?? NaN)} MiB.`,
          '',
        ]),
  ].join('\n');
  const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, `runtime-${date}.md`), report);
  writeFileSync(
    path.join(dir, `runtime-${date}.json`),
    `${JSON.stringify({ date, command, hardware: hardware(), runtime: info, seconds: SECONDS, points, leak }, null, 2)}\n`,
  );
  console.log(`wrote bench/results/runtime-${date}.md`);
}

await main();
