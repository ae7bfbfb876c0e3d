// Soak of files changing under a serving forecastd: the spicepod and the data file are rewritten in place in
// several writes with pauses (as editors and config management do), and two writers append rows to the data
// file out of order, each line in two writes, while clients ask. Counted: wrong predictions (a prediction is
// right when it equals the reference computed from some complete state of the data file), unauthenticated
// answers (auth must never drop, even while the pod is half-written), failed good requests.
//
//   npm run build:ts && npx tsx bench/soak-rewrites.ts            # 120 s
//   SOAK_SECONDS=300 npx tsx bench/soak-rewrites.ts
//
// Exit code 1 when any of the three counts is not 0. The report is printed (and written to
// bench/results/soak-rewrites-<date>.json).
import { spawn } from 'node:child_process';
import { closeSync, existsSync, fsyncSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { linearModel, linearReference, seededRandom, uniformWeights } from '../tools/onnx-builder.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(REPO, 'dist/cli.js');
const SECONDS = Number(process.env['SOAK_SECONDS'] ?? 120);
const LOOPS = Number(process.env['SOAK_LOOPS'] ?? 4);
const KEY = 'soak-key';
const LOOKBACK = 8;
const HORIZON = 3;
const HOUR = 3_600_000;
const T0 = Date.UTC(2025, 0, 1);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

if (!existsSync(CLI)) {
  console.error('bench/soak-rewrites.ts: dist/cli.js is missing; run `npm run build:ts` first');
  process.exit(1);
}

// A linear model with distinct weights: a missing, duplicated, reordered or cut row changes its answer.
const random = seededRandom(99);
const params = { horizon: HORIZON, weights: uniformWeights(random, LOOKBACK * HORIZON, 0.5), bias: 0.25 };
const pod = mkdtempSync(path.join(tmpdir(), 'forecastd-soak-rewrites-'));
mkdirSync(path.join(pod, 'data'));
mkdirSync(path.join(pod, 'models'));
writeFileSync(path.join(pod, 'models/lin.onnx'), linearModel({ lookback: LOOKBACK, variables: 1, ...params }));

/** Rows by hour index: the value of hour k. */
const rows = new Map<number, number>();
const valueOf = (k: number): number => Math.round((100 + 10 * Math.sin(k / 5) + random() * 5) * 1000) / 1000;
const line = (k: number): string => `${new Date(T0 + k * HOUR).toISOString()},${rows.get(k)}\n`;
for (let k = 0; k < 48; k++) rows.set(k, valueOf(k));
const csvPath = path.join(pod, 'data/series.csv');
writeFileSync(csvPath, 'ts,value\n' + [...rows.keys()].map(line).join(''));

/** References of every complete state the data file has been in. */
const references: Float64Array[] = [];
function recordState(): void {
  const keys = [...rows.keys()].sort((a, b) => a - b).slice(-LOOKBACK);
  references.push(linearReference(params, keys.map((k) => rows.get(k)!)));
}
recordState();

const podText = (version: number): string[] => [
  `version: v1beta1\nkind: Spicepod\nname: soak\ndatasets:\n  - from: file:data/series.csv\n    name: series\n` +
    `    acceleration:\n      refresh_check_interval: 500ms\n      refresh_mode: append\n      refresh_append_overlap: 30d\n`,
  `models:\n  - from: file:models/lin.onnx\n    name: lin\n    datasets: [series]\n    params:\n      version: "${version}"\n`,
  `runtime:\n  auth:\n    api-key:\n      enabled: true\n      keys: ["${KEY}"]\n`,
];
writeFileSync(path.join(pod, 'spicepod.yaml'), podText(1).join(''));

/** Rewrites a file in place (truncate, then write) in parts with pauses between them. */
async function rewriteInPlace(file: string, parts: readonly string[], pauseMs: number): Promise<void> {
  const fd = openSync(file, 'w');
  try {
    for (let i = 0; i < parts.length; i++) {
      writeSync(fd, parts[i]!);
      fsyncSync(fd);
      if (i < parts.length - 1) await sleep(pauseMs);
    }
  } finally {
    closeSync(fd);
  }
}

/** Appends one line in two writes, pausing mid-line. */
async function appendLine(text: string, pauseMs: number): Promise<void> {
  const fd = openSync(csvPath, 'a');
  try {
    const cut = text.indexOf(',') + 3;
    writeSync(fd, text.slice(0, cut));
    fsyncSync(fd);
    await sleep(pauseMs);
    writeSync(fd, text.slice(cut));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

// ---------------------------------------------------------------------------------------------------------
const child = spawn(process.execPath, [CLI, pod, '--http', '127.0.0.1:0'], {
  stdio: ['ignore', 'pipe', 'pipe'],
  env: { ...process.env, FORECASTD_LOG_FORMAT: 'json' },
});
let out = '';
// The last 64 KiB of the server's log, for the report when something fails.
const keep = (d: Buffer): void => {
  out = (out + d.toString()).slice(-65536);
};
child.stdout.on('data', keep);
child.stderr.on('data', keep);
const url = await (async () => {
  for (let i = 0; i < 400; i++) {
    const match = /listening on (http:\/\/[\d.:]+)/.exec(out);
    if (match !== null && /loaded \d+ of \d+ models/.test(out)) return match[1]!;
    if (match === null) {
      await sleep(25);
      continue;
    }
    await sleep(25);
  }
  throw new Error(`the server did not start:\n${out}`);
})();

const counts = { good: 0, failedGood: 0, wrong: 0, unauthenticated: 0, refused: 0, podRewrites: 0, dataRewrites: 0, rowsAppended: 0 };
const failures: string[] = [];
let stop = false;

/** The newest data state any answer matched: shows the server kept up with the writers. */
let newestStateServed = -1;

function isReference(prediction: readonly number[]): boolean {
  for (let s = references.length - 1; s >= 0; s--) {
    const ref = references[s]!;
    if (ref.every((v, i) => Math.abs(v - prediction[i]!) <= 1e-4 * Math.max(1, Math.abs(v)))) {
      newestStateServed = Math.max(newestStateServed, s);
      return true;
    }
  }
  return false;
}

async function clientLoop(i: number): Promise<void> {
  for (let n = i; !stop; n++) {
    try {
      if (n % 5 === 0) {
        const res = await fetch(`${url}/v1/models/lin/predict`);
        await res.text();
        if (res.status === 401) counts.refused++;
        else {
          counts.unauthenticated++;
          failures.push(`no key: ${res.status}`);
        }
        continue;
      }
      const res =
        n % 5 === 1
          ? await fetch(`${url}/v1/predict`, { method: 'POST', headers: { 'x-api-key': KEY }, body: '{"predictions":[{"model_name":"lin"}]}' })
          : await fetch(`${url}/v1/models/lin/predict`, { headers: { 'x-api-key': KEY } });
      const text = await res.text();
      const body = JSON.parse(text) as { status?: string; prediction?: number[]; predictions?: { status: string; prediction?: number[] }[] };
      const item = body.predictions?.[0] ?? body;
      if (res.status !== 200 || item.status !== 'Success' || item.prediction === undefined) {
        counts.failedGood++;
        if (failures.length < 20) failures.push(`${res.status} ${text}`);
      } else if (!isReference(item.prediction)) {
        counts.wrong++;
        if (failures.length < 20) failures.push(`wrong: ${text}`);
      } else {
        counts.good++;
      }
    } catch (error) {
      counts.failedGood++;
      if (failures.length < 20) failures.push(String(error));
    }
  }
}

/** Every ~4 s: the pod rewritten in place in three writes (runtime.auth last) with 300 ms pauses. */
async function podLoop(): Promise<void> {
  for (let version = 2; !stop; version++) {
    await sleep(4000);
    await rewriteInPlace(path.join(pod, 'spicepod.yaml'), podText(version), 300);
    counts.podRewrites++;
  }
}

/**
 * Every ~2.5 s a burst from two writers: writer A appends hour k+1, then writer B appends hour k (out of
 * order), each line cut in two writes; every fourth burst the data file is also rewritten in place in two
 * halves. References are recorded at each complete state.
 */
async function dataLoop(): Promise<void> {
  let next = 48;
  for (let burst = 0; !stop; burst++) {
    await sleep(2500);
    const k = next;
    next += 2;
    rows.set(k + 1, valueOf(k + 1));
    await appendLine(line(k + 1), 60);
    recordState();
    rows.set(k, valueOf(k));
    await appendLine(line(k), 60);
    recordState();
    counts.rowsAppended += 2;
    if (burst % 4 === 3) {
      const text = 'ts,value\n' + [...rows.keys()].sort((a, b) => a - b).map(line).join('');
      const half = Math.floor(text.length / 2);
      await rewriteInPlace(csvPath, [text.slice(0, half), text.slice(half)], 300);
      counts.dataRewrites++;
    }
  }
}

const started = Date.now();
const work = [podLoop(), dataLoop(), ...Array.from({ length: LOOPS }, (_, i) => clientLoop(i))];
await sleep(SECONDS * 1000);
stop = true;
await Promise.all(work);
child.kill('SIGTERM');
const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
rmSync(pod, { recursive: true, force: true });

const report = {
  date: new Date().toISOString(),
  seconds: Math.round((Date.now() - started) / 1000),
  cpus: cpus().length,
  loops: LOOPS,
  ...counts,
  dataStates: references.length,
  newestStateServed: newestStateServed + 1,
  serverExit: code,
  failures,
  serverLogTail: failures.length > 0 ? out.split('\n').filter((l) => /"level":(40|50)/.test(l)).slice(-20) : [],
};
console.log(JSON.stringify(report, null, 2));
mkdirSync(path.join(REPO, 'bench/results'), { recursive: true });
writeFileSync(path.join(REPO, `bench/results/soak-rewrites-${report.date.slice(0, 10)}.json`), JSON.stringify(report, null, 2) + '\n');
process.exit(counts.wrong === 0 && counts.unauthenticated === 0 && counts.failedGood === 0 ? 0 : 1);
