/**
 * What one large dataset costs to load (SPEC "Bounded and quiet"): forecastd serving a pod whose only dataset
 * is a generated CSV of `--rows` rows × `--columns` value columns (default 10,000,000 × 15, one row a minute,
 * unix-second times), read as a plain file (DuckDB's reader) and gzip-compressed (the csv-parse reader), each
 * with the default params.max_cells (200,000,000) and with a lower one (`--limit`, default 50,000,000) to show
 * the error at the limit. For each: the time from start to the dataset leaving Initializing, its status, rows
 * and error, the server's peak RSS (VmHWM, which covers the reader thread and DuckDB), and /health's slowest
 * answer while the load ran (polled every 50 ms).
 *
 * The files are generated under bench/.work/dataset-load (never committed) and kept while the shape is the same.
 *
 * Usage: npx tsx bench/dataset-load.ts [--rows N] [--columns N] [--limit N] [--only plain|gzip] [--tag TAG] [--cli PATH]
 * Needs dist/ (npm run build:ts). Writes bench/results/dataset-load-<date>[-TAG].md and .json.
 */
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { createGzip } from 'node:zlib';

import { hardwareSummary } from '../src/bench/measure.js';

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const WORK = path.join(ROOT, 'bench/.work/dataset-load');

function option(name: string, fallback: string): string {
  const at = process.argv.indexOf(name);
  return at >= 0 && process.argv[at + 1] !== undefined ? (process.argv[at + 1] as string) : fallback;
}

const ROWS = Number(option('--rows', '10000000'));
const COLUMNS = Number(option('--columns', '15'));
const LIMIT = Number(option('--limit', '50000000'));
const ONLY = option('--only', '');
const TAG = option('--tag', '');
/** The forecastd build to measure (another commit's dist/cli.js to compare builds). */
const CLI = path.resolve(option('--cli', path.join(ROOT, 'dist/cli.js')));

interface Case {
  readonly label: string;
  readonly file: string;
  readonly maxCells: number | null;
}

interface Outcome {
  readonly label: string;
  readonly maxCells: number;
  readonly seconds: number;
  readonly listenSeconds: number;
  readonly status: string;
  readonly rows: number;
  readonly error: string | null;
  readonly peakRssMiB: number;
  readonly healthMaxMs: number;
  readonly healthP99Ms: number;
  readonly healthSamples: number;
}

/** Lines of the CSV, 10,000 to a chunk (one string per line would make the writer the bottleneck). */
function* csvChunks(rows: number, columns: number): Generator<string> {
  yield `ts,${Array.from({ length: columns }, (_, j) => `v${j + 1}`).join(',')}\n`;
  const lines: string[] = [];
  for (let r = 0; r < rows; r++) {
    const cells = Array.from({ length: columns }, (_, j) => ((r * 7 + j * 13) % 1000) / 8);
    lines.push(`${1_500_000_000 + 60 * r},${cells.join(',')}`);
    if (lines.length === 10_000) {
      yield lines.join('\n') + '\n';
      lines.length = 0;
    }
  }
  if (lines.length > 0) yield lines.join('\n') + '\n';
}

async function ensureFile(file: string, gzip: boolean): Promise<void> {
  const marker = `${file}.shape`;
  const shape = `${ROWS}x${COLUMNS}`;
  if (existsSync(file) && existsSync(marker) && readFileSync(marker, 'utf8') === shape) return;
  console.log(`generating ${path.relative(ROOT, file)} (${fmt(ROWS)} rows × ${COLUMNS} columns)...`);
  const source = Readable.from(csvChunks(ROWS, COLUMNS));
  if (gzip) await pipeline(source, createGzip({ level: 6 }), createWriteStream(file));
  else await pipeline(source, createWriteStream(file));
  writeFileSync(marker, shape);
}

function peakRssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 'NaN');
  return kib / 1024;
}

async function measure(c: Case): Promise<Outcome> {
  const pod = path.join(WORK, `pod-${c.label.replace(/\W+/g, '-')}`);
  mkdirSync(pod, { recursive: true });
  const params = c.maxCells === null ? '' : `    params:\n      max_cells: ${c.maxCells}\n`;
  writeFileSync(
    path.join(pod, 'spicepod.yaml'),
    `version: v1beta1\nkind: Spicepod\nname: load\ndatasets:\n  - from: file:${c.file}\n    name: big\n${params}`,
  );
  const started = performance.now();
  const child = spawn(process.execPath, [CLI, pod, '--http', '127.0.0.1:0'], {
    env: { ...process.env, FORECASTD_LOG_FORMAT: 'json' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.includes('forecastd listening on'));
      if (line !== undefined) resolve((JSON.parse(line) as { url: string }).url);
    });
    child.on('exit', (code) => reject(new Error(`forecastd exited with ${code}:\n${out}`)));
  });
  const listenSeconds = (performance.now() - started) / 1000;
  const health: number[] = [];
  let entry: { status: string; rows: number; error: string | null } | undefined;
  for (;;) {
    const t0 = performance.now();
    const ok = (await fetch(`${url}/health`)).status === 200;
    health.push(performance.now() - t0);
    if (!ok) throw new Error('/health did not answer 200');
    const listed = (await (await fetch(`${url}/v1/datasets`)).json()) as { status: string; rows: number; error: string | null }[];
    entry = listed[0];
    if (entry !== undefined && entry.status !== 'Initializing') break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const seconds = (performance.now() - started) / 1000;
  const peak = peakRssMiB(child.pid as number);
  child.kill('SIGTERM');
  await new Promise((r) => child.on('exit', r));
  const sorted = [...health].sort((a, b) => a - b);
  return {
    label: c.label,
    maxCells: c.maxCells ?? 200_000_000,
    seconds,
    listenSeconds,
    status: entry.status,
    rows: entry.rows,
    // Named as the pod's folder sees it, without this machine's path.
    error: entry.error?.replaceAll(WORK + '/', '') ?? null,
    peakRssMiB: peak,
    healthMaxMs: sorted[sorted.length - 1] ?? 0,
    healthP99Ms: sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))] ?? 0,
    healthSamples: sorted.length,
  };
}

async function main(): Promise<void> {
  if (!existsSync(CLI)) throw new Error('dist/cli.js is missing: run npm run build:ts');
  mkdirSync(WORK, { recursive: true });
  const plain = path.join(WORK, 'wide.csv');
  const gzip = path.join(WORK, 'wide.csv.gz');
  const cases: Case[] = [];
  if (ONLY !== 'gzip') {
    await ensureFile(plain, false);
    cases.push({ label: 'plain CSV (DuckDB reader)', file: plain, maxCells: null });
    cases.push({ label: 'plain CSV, lower limit', file: plain, maxCells: LIMIT });
  }
  if (ONLY !== 'plain') {
    await ensureFile(gzip, true);
    cases.push({ label: 'gzip CSV (csv-parse reader)', file: gzip, maxCells: null });
    cases.push({ label: 'gzip CSV, lower limit', file: gzip, maxCells: LIMIT });
  }
  const results: Outcome[] = [];
  for (const c of cases) {
    console.log(`measuring ${c.label}...`);
    const result = await measure(c);
    console.log(JSON.stringify(result));
    results.push(result);
  }
  const date = new Date().toISOString().slice(0, 10);
  const name = `dataset-load-${date}${TAG === '' ? '' : `-${TAG}`}`;
  const sizes = [plain, gzip].filter(existsSync).map((f) => `${path.basename(f)} ${fmt(statSync(f).size / 1024 ** 2)} MiB`);
  const lines = [
    `# Dataset load: ${fmt(ROWS)} rows × ${COLUMNS} value columns`,
    '',
    `${hardwareSummary()}; Node ${process.version}. Files: ${sizes.join(', ')}. Build: ${path.relative(ROOT, CLI) || CLI}.`,
    '',
    '| case | max_cells | start → listening (s) | start → dataset out of Initializing (s) | status | rows | peak RSS (MiB) | /health p99 / max (ms), samples | error |',
    '| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- |',
    ...results.map(
      (r) =>
        `| ${r.label} | ${fmt(r.maxCells)} | ${r.listenSeconds.toFixed(1)} | ${r.seconds.toFixed(1)} | ${r.status} | ${fmt(r.rows)} | ${fmt(r.peakRssMiB)} | ${r.healthP99Ms.toFixed(1)} / ${r.healthMaxMs.toFixed(1)}, ${r.healthSamples} | ${r.error ?? ''} |`,
    ),
    '',
  ];
  mkdirSync(path.join(ROOT, 'bench/results'), { recursive: true });
  writeFileSync(path.join(ROOT, 'bench/results', `${name}.md`), lines.join('\n'));
  writeFileSync(path.join(ROOT, 'bench/results', `${name}.json`), JSON.stringify({ rows: ROWS, columns: COLUMNS, results }, null, 2) + '\n');
  console.log(lines.join('\n'));
}

await main();
