/**
 * What the addon's copies cost (npm run bench:copies). run() copies its inputs into addon-owned memory on the
 * JavaScript thread, unless they were built in memory from allocateTensorData() (the forecaster does that, so a
 * window is copied once, into the batch); outputs up to 64 KiB are copied out of ONNX Runtime's memory.
 *
 * Usage: npx tsx --expose-gc bench/runtime-copies.ts [--runs N]
 * Prints, per case, the median time one run() call holds the JavaScript thread (call to return, not the run) and
 * the median round trip (call to resolution), over N sequential runs after a warm-up, one run thread.
 */
import { performance } from 'node:perf_hooks';

import { configureRuntime } from '../src/runtime/runtime.js';
import { allocateTensorData, InferenceSession } from '../src/runtime/session.js';
import { linearModel, seededRandom, uniformWeights } from '../tools/onnx-builder.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  const value = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!(value > 0)) throw new Error(`${name} needs a positive number`);
  return value;
}
const RUNS = arg('--runs', 3000);
const BATCH = 64;
const LOOKBACK = 512;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

async function measure(session: InferenceSession, data: Float32Array, batch: number): Promise<{ callUs: number; roundTripUs: number }> {
  const calls: number[] = [];
  const trips: number[] = [];
  const feeds = { window: { data, shape: [batch, LOOKBACK] } };
  for (let i = 0; i < 200; i++) await session.run(feeds);
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    const pending = session.run(feeds);
    const t1 = performance.now();
    await pending;
    const t2 = performance.now();
    calls.push((t1 - t0) * 1000);
    trips.push((t2 - t0) * 1000);
  }
  return { callUs: median(calls), roundTripUs: median(trips) };
}

configureRuntime({ runThreads: 1 });
const rows: string[] = [];
for (const horizon of [12, 1024]) {
  const session = await InferenceSession.load(
    linearModel({ lookback: LOOKBACK, horizon, weights: uniformWeights(seededRandom(3), LOOKBACK * horizon, 0.05), rank: 2 }),
  );
  const ordinary = uniformWeights(seededRandom(4), BATCH * LOOKBACK, 1);
  const owned = allocateTensorData('float32', BATCH * LOOKBACK);
  owned.set(ordinary);
  const outBytes = BATCH * horizon * 4;
  const outNote = outBytes <= 64 * 1024 ? 'copied' : 'external';
  for (const [label, data] of [
    ['ordinary Float32Array (copied by run)', ordinary],
    ['allocateTensorData (held, no copy)', owned],
  ] as const) {
    const r = await measure(session, data, BATCH);
    rows.push(`| ${BATCH}×${LOOKBACK} float32 (${(BATCH * LOOKBACK * 4) / 1024} KiB) | ${label} | ${outBytes / 1024} KiB, ${outNote} | ${r.callUs.toFixed(1)} | ${r.roundTripUs.toFixed(1)} |`);
  }
  session.dispose();
}
// The raw cost of the copy itself, in JavaScript, for scale.
const src = new Float32Array(BATCH * LOOKBACK).fill(1);
const dst = new Float32Array(BATCH * LOOKBACK);
const copies: number[] = [];
for (let i = 0; i < RUNS; i++) {
  const t0 = performance.now();
  dst.set(src);
  copies.push((performance.now() - t0) * 1000);
}

console.log(`runs per case: ${RUNS} (median), one run thread, ${new Date().toISOString()}`);
console.log('| input | input memory | output | run() call µs | round trip µs |');
console.log('| --- | --- | --- | --- | --- |');
for (const row of rows) console.log(row);
console.log(`\nFloat32Array.set of ${(BATCH * LOOKBACK * 4) / 1024} KiB: ${median(copies).toFixed(1)} µs (median)`);
