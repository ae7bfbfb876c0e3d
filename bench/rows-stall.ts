/**
 * Clients that do not read must not stall serving: a 100,000-row, 30-column dataset (about 24 MB as JSON) served
 * by forecastd; 20 clients ask for all of it with GET /v1/datasets/wide/rows?last=100000 and never read a byte.
 * While they hold their answers, one client asks /health one request after another; its latency (p50, p99,
 * max) is compared with the same client's on the idle server, and the server's RSS (steady and peak) is read
 * from /proc.
 *
 * Usage: npx tsx bench/rows-stall.ts [--cli PATH[=LABEL]]... [--clients N] [--seconds N] [--tag TAG]
 * Each --cli is a built forecastd (default dist/cli.js), measured one after the other in the same run, so a
 * build of another commit can be compared with this one under the same conditions.
 * Writes bench/results/rows-stall-<date>[-TAG].md and .json.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

import { formatNumber as fmt, hardwareSummary } from '../src/bench/measure.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const WORK = path.join(ROOT, 'bench/.work/rows-stall');
const ROWS = 100_000;
const COLUMNS = 30;

function option(name: string): string[] {
  const found: string[] = [];
  process.argv.forEach((a, i) => {
    if (a === name && process.argv[i + 1] !== undefined) found.push(process.argv[i + 1] as string);
  });
  return found;
}

const CLIENTS = Number(option('--clients')[0] ?? 20);
const SECONDS = Number(option('--seconds')[0] ?? 15);
const TAG = option('--tag')[0];
const BUILDS = (option('--cli').length > 0 ? option('--cli') : ['dist/cli.js']).map((spec) => {
  const [file, label] = spec.split('=');
  return { cli: path.resolve(ROOT, file!), label: label ?? file! };
});

function writePod(): string {
  const pod = path.join(WORK, 'pod');
  const csv = path.join(pod, 'data/wide.csv');
  if (!existsSync(csv)) {
    mkdirSync(path.dirname(csv), { recursive: true });
    const lines = ['ts,' + Array.from({ length: COLUMNS }, (_, c) => `c${c}`).join(',')];
    const start = Date.UTC(2000, 0, 1);
    for (let i = 0; i < ROWS; i++) {
      const cells = Array.from({ length: COLUMNS }, (_, c) => String(Math.round(1000 * Math.sin(i / 50 + c)) / 8));
      lines.push(new Date(start + i * 3_600_000).toISOString() + ',' + cells.join(','));
    }
    writeFileSync(csv, lines.join('\n') + '\n');
  }
  writeFileSync(path.join(pod, 'spicepod.yaml'), 'version: v1beta1\nkind: Spicepod\nname: wide\ndatasets:\n  - from: file:data/wide.csv\n    name: wide\n');
  return pod;
}

function memoryMb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith(field + ':'));
  return Number(/(\d+)/.exec(line ?? '')?.[1]) / 1024;
}

async function start(cli: string, pod: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [cli, pod, '--http', '127.0.0.1:0', '--no-watch'], {
    env: { ...process.env, FORECASTD_LOG_FORMAT: 'json' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  let url = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      url ||= /forecastd listening on (http:\/\/[\d.:]+)/.exec(out)?.[1] ?? '';
      if (url !== '' && out.includes('dataset wide loaded')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`${cli} exited with ${code}\n${out}`)));
  });
  return { child, url };
}

interface Latency {
  readonly requests: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

/** One client asking /health one request after another for `seconds`. */
async function healthLoop(url: string, seconds: number): Promise<Latency> {
  const samples: number[] = [];
  const until = performance.now() + seconds * 1000;
  while (performance.now() < until) {
    const t0 = performance.now();
    const res = await fetch(`${url}/health`);
    if ((await res.text()) !== 'ok') throw new Error(`/health answered ${res.status}`);
    samples.push(performance.now() - t0);
  }
  samples.sort((a, b) => a - b);
  const at = (q: number): number => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))]!;
  return { requests: samples.length, p50: at(0.5), p99: at(0.99), max: samples[samples.length - 1]! };
}

interface Result {
  readonly label: string;
  readonly idle: Latency;
  readonly holding: Latency;
  readonly rssIdleMb: number;
  readonly rssHoldingMb: number;
  readonly peakMb: number;
}

async function measure(build: { cli: string; label: string }, pod: string): Promise<Result> {
  const { child, url } = await start(build.cli, pod);
  const pid = child.pid!;
  try {
    const idle = await healthLoop(url, Math.min(5, SECONDS));
    const rssIdleMb = memoryMb(pid, 'VmRSS');
    const port = Number(new URL(url).port);
    const sockets = Array.from({ length: CLIENTS }, () => {
      const socket = net.connect({ host: '127.0.0.1', port });
      socket.pause();
      socket.on('error', () => undefined);
      socket.write(`GET /v1/datasets/wide/rows?last=${ROWS} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
      return socket;
    });
    const holding = await healthLoop(url, SECONDS);
    const result = { label: build.label, idle, holding, rssIdleMb, rssHoldingMb: memoryMb(pid, 'VmRSS'), peakMb: memoryMb(pid, 'VmHWM') };
    for (const s of sockets) s.destroy();
    return result;
  } finally {
    const exited = new Promise((resolve) => child.on('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }
}

const pod = writePod();
const results: Result[] = [];
for (const build of BUILDS) {
  console.log(`measuring ${build.label}`);
  results.push(await measure(build, pod));
  console.log(JSON.stringify(results[results.length - 1]));
}

const ms = (v: number): string => fmt(v, v < 10 ? 2 : 0);
const report = [
  `# /health while ${CLIENTS} clients hold unread ${ROWS.toLocaleString('en')}-row answers`,
  '',
  `${hardwareSummary()}`,
  '',
  `Dataset: ${ROWS.toLocaleString('en')} rows × ${COLUMNS} columns; each of ${CLIENTS} clients asks GET /v1/datasets/wide/rows?last=${ROWS} and never reads. /health: one client, one request after another, ${SECONDS} s (idle: ${Math.min(5, SECONDS)} s before the clients connect).`,
  '',
  '| build | /health idle p50 / p99 / max (ms) | /health while held: requests, p50 / p99 / max (ms) | RSS idle → while held (MB) | peak RSS (MB) |',
  '| --- | --- | --- | --- | --- |',
  ...results.map(
    (r) =>
      `| ${r.label} | ${ms(r.idle.p50)} / ${ms(r.idle.p99)} / ${ms(r.idle.max)} | ${r.holding.requests}, ${ms(r.holding.p50)} / ${ms(r.holding.p99)} / ${ms(r.holding.max)} | ${fmt(r.rssIdleMb, 0)} → ${fmt(r.rssHoldingMb, 0)} | ${fmt(r.peakMb, 0)} |`,
  ),
  '',
].join('\n');
const date = new Date().toISOString().slice(0, 10);
const base = path.join(ROOT, 'bench/results', `rows-stall-${date}${TAG === undefined ? '' : `-${TAG}`}`);
mkdirSync(path.dirname(base), { recursive: true });
writeFileSync(base + '.md', report);
writeFileSync(base + '.json', JSON.stringify({ clients: CLIENTS, seconds: SECONDS, rows: ROWS, columns: COLUMNS, results }, null, 2));
console.log(report);
