/**
 * What evaluation costs (SPEC "Evaluation", "Cost"), on the bench's heavy MLP (64 → 512 ×3 → 12):
 * 1. throughput: 5,000 origins backtested through the library's backtest() (the server's code) with no other
 *    load, in ROUNDS runs; goal ≤ 1.5 s;
 * 2. serving while evaluating: forecastd (dist/cli.js) serves the model with the cache off; a closed loop of 1
 *    and of 8 connections measures GET /v1/models/heavy/predict while idle and while a long evaluation runs
 *    (started by appending a row to the dataset), alternating, ROUNDS times; goal: p99 during ≤ 2 × idle p99.
 *
 * Usage: npm run build:ts && npx tsx bench/evaluation.ts [--rounds N] [--seconds S]
 * Writes bench/results/evaluation-<date>.md and .json.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

import { closedLoop, type HttpLoadPoint, type HttpTarget } from '../src/bench/http-load.js';
import { loadavg } from 'node:os';
import { formatNumber as fmt, hardwareSummary } from '../src/bench/measure.js';
import type { DatasetSnapshot } from '../src/datasets/types.js';
import { backtest } from '../src/evaluation/backtest.js';
import { BatchingForecaster } from '../src/runtime/forecaster.js';
import { InferenceSession } from '../src/runtime/session.js';
import { mlpModel } from '../tools/onnx-builder.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const WORK = path.join(ROOT, 'bench/.work/evaluation');
const DAY = 86_400_000;
const START = Date.UTC(1950, 0, 1);

function option(name: string, fallback: number): number {
  const at = process.argv.indexOf(name);
  return at >= 0 && process.argv[at + 1] !== undefined ? Number(process.argv[at + 1]) : fallback;
}

const ROUNDS = option('--rounds', 5);
/** How busy the machine was when the run began: the report says it, rather than assuming either way. */
const LOAD_AT_START = loadavg()[0] ?? 0;
const SECONDS = option('--seconds', 3);
const ORIGINS = 5_000;
/** Rows of the served dataset: enough origins that one evaluation outlasts a measured point under load. */
const SERVED_ROWS = 300_000;

function value(d: number): number {
  return 300 + 5 * Math.sin((2 * Math.PI * d) / 52) + d * 0.001 + Math.sin(d * 12.9898) * 0.5;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

async function throughput(bytes: Uint8Array): Promise<number[]> {
  const rows = ORIGINS + 64 + 12;
  const times = new Float64Array(rows);
  const values = new Float64Array(rows);
  for (let d = 0; d < rows; d++) {
    times[d] = START + d * DAY;
    values[d] = value(d);
  }
  const snapshot: DatasetSnapshot = { version: 1, columns: ['y'], times, values, rows, loadedAt: Date.now() };
  const session = await InferenceSession.load(bytes, { intraOpThreads: 1 });
  const forecaster = new BatchingForecaster(session, { maxConcurrentRuns: 0 });
  await forecaster.warmUp();
  const seconds: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = performance.now();
    const result = await backtest(forecaster, { snapshot, origins: ORIGINS, seasonLength: 52 });
    seconds.push((performance.now() - t0) / 1000);
    if (result.origins !== ORIGINS) throw new Error(`scored ${result.origins} origins, not ${ORIGINS}`);
  }
  await forecaster.close();
  session.dispose();
  return seconds;
}

type Json = Record<string, unknown>;

async function evaluationOf(base: string): Promise<Json> {
  return (await (await fetch(`${base}/v1/models/heavy/evaluation`)).json()) as Json;
}

async function until(what: string, probe: () => Promise<boolean>, ms = 120_000): Promise<void> {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    if (await probe()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`gave up waiting for ${what}`);
}

interface Point {
  readonly connections: number;
  readonly idle: HttpLoadPoint;
  readonly during: HttpLoadPoint;
}

async function serving(bytes: Uint8Array): Promise<{ points: Point[]; evaluationMs: number[] }> {
  const dir = path.join(WORK, 'pod');
  mkdirSync(path.join(dir, 'models'), { recursive: true });
  writeFileSync(path.join(dir, 'models/heavy.onnx'), bytes);
  const lines = ['ts,y'];
  for (let d = 0; d < SERVED_ROWS; d++) lines.push(`${(START + d * DAY) / 1000},${value(d).toFixed(4)}`);
  const csv = path.join(dir, 'series.csv');
  writeFileSync(csv, lines.join('\n') + '\n');
  let next = SERVED_ROWS;
  writeFileSync(
    path.join(dir, 'spicepod.yaml'),
    `version: v1beta1
kind: Spicepod
name: evaluation-bench
datasets:
  - from: file:series.csv
    name: series
    acceleration:
      refresh_check_interval: 200ms
models:
  - from: file:models/heavy.onnx
    name: heavy
    datasets: [series]
    params:
      cache_predictions: false
      evaluation:
        origins: ${SERVED_ROWS - 100}
        season_length: 52
`,
  );
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const child = spawn(process.execPath, [path.join(ROOT, 'dist/cli.js'), dir, '--http', `127.0.0.1:${port}`, '--no-watch', '--settle-ms', '50', '--log-level', 'warn'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  try {
    await until('the server', async () => (await fetch(`${base}/v1/ready`).catch(() => null))?.status === 200);
    await until('the first evaluation', async () => (await evaluationOf(base)).status === 'Ready', 600_000);
    const target: HttpTarget = { url: new URL(`${base}/v1/models/heavy/predict`), method: 'GET', body: null, headers: {} };
    const points: Point[] = [];
    const evaluationMs: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      for (const connections of [1, 8]) {
        const before = await evaluationOf(base);
        const idle = await closedLoop(target, connections, new Promise((r) => setTimeout(r, SECONDS * 1000)));
        const after = await evaluationOf(base);
        if (after.status !== 'Ready' || after.computed_at !== before.computed_at) throw new Error('an evaluation ran during the idle point');
        // A new row: the refresh gives a new snapshot, which is evaluated again.
        appendFileSync(csv, `${(START + next * DAY) / 1000},${value(next).toFixed(4)}\n`);
        next++;
        await until('the evaluation to start', async () => (await evaluationOf(base)).status === 'Computing');
        const started = performance.now();
        let stop!: () => void;
        const stopped = new Promise<void>((r) => (stop = r));
        const timer = setTimeout(stop, SECONDS * 1000);
        let ended = false;
        const watch = (async () => {
          while (!ended) {
            if ((await evaluationOf(base)).status !== 'Computing') {
              stop();
              break;
            }
            await new Promise((r) => setTimeout(r, 100));
          }
        })();
        const during = await closedLoop(target, connections, stopped);
        const measuredS = (performance.now() - started) / 1000;
        ended = true;
        clearTimeout(timer);
        await watch;
        await until('the evaluation to finish', async () => (await evaluationOf(base)).status === 'Ready', 600_000);
        const done = await evaluationOf(base);
        evaluationMs.push(done.duration_ms as number);
        process.stderr.write(
          `round ${round + 1}, ${connections} conn: idle p99 ${fmt(idle.p99Ms, 2)} ms, during p99 ${fmt(during.p99Ms, 2)} ms ` +
            `(${fmt(measuredS, 1)} s measured; evaluation took ${done.duration_ms} ms)\n`,
        );
        points.push({ connections, idle, during });
      }
    }
    return { points, evaluationMs };
  } finally {
    child.kill('SIGTERM');
  }
}

async function main(): Promise<void> {
  const bytes = mlpModel({ lookback: 64, hidden: [512, 512, 512], horizon: 12, seed: 1, modelVersion: 1 });
  const hash = createHash('sha256').update(bytes).digest('hex').slice(0, 12);
  const seconds = await throughput(bytes);
  process.stderr.write(`5,000 origins: ${seconds.map((s) => fmt(s, 3)).join(', ')} s\n`);
  const { points, evaluationMs } = await serving(bytes);
  const date = new Date().toISOString();
  const byConnections = [1, 8].map((c) => {
    const mine = points.filter((p) => p.connections === c);
    const idle = median(mine.map((p) => p.idle.p99Ms));
    const during = median(mine.map((p) => p.during.p99Ms));
    const ratios = mine.map((p) => p.during.p99Ms / p.idle.p99Ms);
    return {
      connections: c,
      idleP99Ms: idle,
      duringP99Ms: during,
      ratioMedian: median(ratios),
      ratioMin: Math.min(...ratios),
      ratioMax: Math.max(...ratios),
      idleRps: median(mine.map((p) => p.idle.requestsPerSecond)),
      duringRps: median(mine.map((p) => p.during.requestsPerSecond)),
      errors: mine.reduce((n, p) => n + Object.values(p.during.failures).reduce((a, b) => a + b, 0), 0),
    };
  });
  const json = { date, hardware: hardwareSummary(), loadAverageAtStart: LOAD_AT_START, model: `heavy MLP 64→512×3→12 (sha256 ${hash})`, rounds: ROUNDS, secondsPerPoint: SECONDS, throughput: { origins: ORIGINS, seconds }, serving: byConnections, evaluationMs, points };
  const md = [
    `# Evaluation cost, ${date}`,
    '',
    `${json.hardware}; model ${json.model}; ${ROUNDS} rounds; 1-minute load average ${LOAD_AT_START.toFixed(2)} at the start (other work on the machine shows here).`,
    '',
    `Backtest of ${ORIGINS} origins through backtest() with no other load: median ${fmt(median(seconds), 3)} s (runs: ${seconds.map((s) => fmt(s, 3)).join(', ')}; goal ≤ 1.5 s).`,
    '',
    `Predict while a ${SERVED_ROWS - 100}-origin evaluation runs against idle, alternating, ${SECONDS} s points (cache off):`,
    '',
    '| connections | idle p99 ms | during p99 ms | during / idle (median, min–max) | idle req/s | during req/s | errors |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...byConnections.map(
      (b) =>
        `| ${b.connections} | ${fmt(b.idleP99Ms, 2)} | ${fmt(b.duringP99Ms, 2)} | ${fmt(b.ratioMedian, 2)} (${fmt(b.ratioMin, 2)}–${fmt(b.ratioMax, 2)}) | ${fmt(b.idleRps, 0)} | ${fmt(b.duringRps, 0)} | ${b.errors} |`,
    ),
    '',
    `Evaluations of ${SERVED_ROWS - 100} origins under that load took ${evaluationMs.join(', ')} ms.`,
    '',
  ].join('\n');
  const out = path.join(ROOT, 'bench/results');
  mkdirSync(out, { recursive: true });
  const stem = path.join(out, `evaluation-${date.slice(0, 10)}`);
  writeFileSync(`${stem}.json`, JSON.stringify(json, null, 2) + '\n');
  writeFileSync(`${stem}.md`, md);
  process.stdout.write(md);
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
