/**
 * Big datasets must not stall serving: a 2,000,000-row, 3-column dataset served by forecastd with a model
 * reading it. Measures the time from start to /v1/ready, the predict route's latency while idle and while the
 * dataset is refreshed (a closed loop of 4 connections), and the server's RSS: steady, and the peak during the
 * refresh.
 *
 * `--source file` (default): a CSV (unix-second timestamps, about 57 MB, generated under bench/.work, never
 * committed); the refresh is the file being touched. `--source postgres`: a table generated with
 * generate_series in the schema forecastd_bench of the PostgreSQL server that libpq's environment names
 * (PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD; default 127.0.0.1:5432, database test, user postgres),
 * kept while the row count is the same; the refresh is a full one, on the dataset's interval.
 *
 * Usage: npx tsx bench/dataset-refresh.ts [--source file|postgres] [--cli PATH[=LABEL][,NAME=VALUE]...]...
 *        [--rows N] [--seconds N] [--tag TAG]
 * Each --cli is a built forecastd (default dist/cli.js), measured one after the other in the same run, so a
 * build of another commit can be compared with this one under the same conditions; NAME=VALUE pairs are set
 * in its environment (FORECASTD_DUCKDB_THREADS=2 to compare DuckDB thread counts).
 * Writes bench/results/dataset-refresh-<date>[-TAG].md and .json (postgres-refresh-<date>[-TAG].* with
 * --source postgres).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, utimesSync, writeFileSync, createWriteStream } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

import { closedLoop, type HttpLoadPoint, type HttpTarget } from '../src/bench/http-load.js';
import { formatNumber as fmt, hardwareSummary } from '../src/bench/measure.js';
import { linearModel, seededRandom, uniformWeights } from '../tools/onnx-builder.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const WORK = path.join(ROOT, 'bench/.work/dataset-refresh');

function option(name: string): string[] {
  const found: string[] = [];
  process.argv.forEach((a, i) => {
    if (a === name && process.argv[i + 1] !== undefined) found.push(process.argv[i + 1] as string);
  });
  return found;
}
const ROWS = Number(option('--rows')[0] ?? 2_000_000);
const SECONDS = Number(option('--seconds')[0] ?? 5);
const CLIS = (option('--cli').length > 0 ? option('--cli') : ['dist/cli.js']).map((spec) => {
  const [build, ...settings] = spec.split(',') as [string, ...string[]];
  const [file, label] = build.split('=') as [string, string | undefined];
  const env = Object.fromEntries(settings.map((s) => [s.slice(0, s.indexOf('=')), s.slice(s.indexOf('=') + 1)]));
  return { file: path.resolve(file), label: label ?? file, env };
});
const SOURCE = option('--source')[0] ?? 'file';
if (SOURCE !== 'file' && SOURCE !== 'postgres') throw new Error(`--source must be file or postgres, got ${SOURCE}`);
const TAG = option('--tag')[0];
const LOOKBACK = 64;
const CONNECTIONS = 4;

/** Rows every 60 s from 2020-01-01, two smooth value columns with a little noise; written once per size. */
async function generateCsv(file: string, rows: number): Promise<void> {
  const marker = `${file}.rows`;
  if (existsSync(file) && existsSync(marker) && readFileSync(marker, 'utf8') === String(rows)) return;
  const random = seededRandom(42);
  const out = createWriteStream(file);
  out.write('ts,load,temp\n');
  const start = 1_577_836_800;
  let chunk = '';
  for (let i = 0; i < rows; i++) {
    const load = 500 + 100 * Math.sin(i / 1440) + random() * 10;
    const temp = 15 + 8 * Math.sin(i / 10_080) + random();
    chunk += `${start + i * 60},${load.toFixed(3)},${temp.toFixed(3)}\n`;
    if (chunk.length > 1 << 20) {
      if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
      chunk = '';
    }
  }
  out.write(chunk);
  await new Promise<void>((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve())));
  writeFileSync(marker, String(rows));
}

const PG = {
  host: process.env.PGHOST ?? '127.0.0.1',
  port: Number(process.env.PGPORT ?? 5432),
  database: process.env.PGDATABASE ?? 'test',
  user: process.env.PGUSER ?? 'postgres',
  password: process.env.PGPASSWORD ?? null,
};
const PG_SCHEMA = 'forecastd_bench';

/** The same series as the CSV, as a table with a primary key on ts; created once per size. Returns its name. */
async function generateTable(rows: number): Promise<string> {
  const table = `big_${rows}`;
  const client = new pg.Client({ ...PG, password: PG.password ?? undefined });
  await client.connect();
  try {
    const qualified = `${PG_SCHEMA}.${table}`;
    const found = await client.query<{ oid: number | null }>('SELECT to_regclass($1)::oid AS oid', [qualified]);
    if (found.rows[0]?.oid !== null && found.rows[0]?.oid !== undefined) return table;
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${PG_SCHEMA}`);
    await client.query('SELECT setseed(0.42)');
    await client.query(
      `CREATE TABLE ${qualified} AS
         SELECT to_timestamp(1577836800 + i * 60::bigint) AS ts,
                500 + 100 * sin(i / 1440.0) + random() * 10 AS load,
                15 + 8 * sin(i / 10080.0) + random() AS temp
           FROM generate_series(0, $1::bigint - 1) AS i`,
      [rows],
    );
    await client.query(`ALTER TABLE ${qualified} ADD PRIMARY KEY (ts)`);
    await client.query(`ANALYZE ${qualified}`);
    return table;
  } finally {
    await client.end();
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN) / 1024;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface Result {
  readonly label: string;
  readonly cli: string;
  readonly startToReadyS: number;
  readonly idle: HttpLoadPoint;
  readonly refresh: HttpLoadPoint;
  readonly refreshS: number;
  readonly steadyRssMiB: number;
  readonly peakRefreshRssMiB: number;
}

/**
 * Starts a refresh and resolves once it has begun: the CSV is touched (its next check reloads it), or the
 * PostgreSQL dataset's interval comes round, seen as /v1/datasets showing it Refreshing.
 */
type RefreshTrigger = (base: string) => Promise<void>;

async function measure(cli: { file: string; label: string; env: Record<string, string> }, pod: string, startRefresh: RefreshTrigger): Promise<Result> {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const t0 = performance.now();
  const child: ChildProcess = spawn(process.execPath, [cli.file, pod, '--http', `127.0.0.1:${port}`, '--no-watch', '--log-level', 'warn'], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, ...cli.env },
  });
  const pid = child.pid as number;
  let peak = 0;
  const sampler = setInterval(() => {
    try {
      peak = Math.max(peak, rssMiB(pid));
    } catch {
      // The process has exited; the failure shows below.
    }
  }, 25);
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`${cli.label} exited with ${child.exitCode}`);
      try {
        if ((await fetch(`${base}/v1/ready`)).status === 200) break;
      } catch {
        // Not listening yet.
      }
      await sleep(20);
    }
    const startToReadyS = (performance.now() - t0) / 1000;
    const target: HttpTarget = { url: new URL(`${base}/v1/models/big_linear/predict`), method: 'GET', body: null, headers: {} };
    await closedLoop(target, CONNECTIONS, sleep(1000)); // warm-up
    const idle = await closedLoop(target, CONNECTIONS, sleep(SECONDS * 1000));
    const steadyRssMiB = rssMiB(pid);
    const refreshedAt = async (): Promise<string> => {
      const list = (await (await fetch(`${base}/v1/datasets`)).json()) as { name: string; refreshed_at: string | null }[];
      return list.find((d) => d.name === 'big')?.refreshed_at ?? '';
    };
    const before = await refreshedAt();
    peak = 0;
    let refreshS = NaN;
    await startRefresh(base);
    const started = performance.now();
    const refreshed = (async (): Promise<void> => {
      while ((await refreshedAt()) === before) await sleep(50);
      refreshS = (performance.now() - started) / 1000;
    })();
    const refresh = await closedLoop(target, CONNECTIONS, refreshed);
    return { label: cli.label, cli: cli.file, startToReadyS, idle, refresh, refreshS, steadyRssMiB, peakRefreshRssMiB: peak };
  } finally {
    clearInterval(sampler);
    child.kill('SIGKILL');
  }
}

async function main(): Promise<void> {
  const pod = path.join(WORK, 'pod');
  mkdirSync(path.join(pod, 'data'), { recursive: true });
  mkdirSync(path.join(pod, 'models'), { recursive: true });
  const csv = path.join(pod, 'data/big.csv');
  let sizeMB = NaN;
  let datasetLines: string[];
  let startRefresh: RefreshTrigger;
  if (SOURCE === 'file') {
    console.log(`generating ${ROWS} rows into ${path.relative(ROOT, csv)} (once per size)`);
    await generateCsv(csv, ROWS);
    sizeMB = statSync(csv).size / 1e6;
    datasetLines = [
      '  - from: file:data/big.csv',
      '    name: big',
      '    time_column: ts',
      '    time_format: unix_seconds',
      '    acceleration:',
      '      refresh_check_interval: 1s',
    ];
    startRefresh = async () => {
      const now = new Date();
      utimesSync(csv, now, now); // a new modification time: the next check reloads the file
    };
  } else {
    console.log(`generating ${ROWS} rows into ${PG_SCHEMA}.big_${ROWS} at ${PG.host}:${PG.port}/${PG.database} (once per size)`);
    const table = await generateTable(ROWS);
    datasetLines = [
      `  - from: postgres:${PG_SCHEMA}.${table}`,
      '    name: big',
      '    time_column: ts',
      '    params:',
      `      pg_host: "${PG.host}"`,
      `      pg_port: "${PG.port}"`,
      `      pg_db: ${PG.database}`,
      `      pg_user: ${PG.user}`,
      ...(PG.password === null ? [] : [`      pg_pass: \${env:PGPASSWORD}`]),
      '      pg_sslmode: disable',
      '    acceleration:',
      '      refresh_mode: full',
      // Long enough for the warm-up and the idle measurement to end before the first refresh.
      `      refresh_check_interval: ${SECONDS + 15}s`,
    ];
    startRefresh = async (base) => {
      for (;;) {
        const list = (await (await fetch(`${base}/v1/datasets`)).json()) as { name: string; status: string }[];
        if (list.find((d) => d.name === 'big')?.status === 'Refreshing') return;
        await sleep(20);
      }
    };
  }
  writeFileSync(
    path.join(pod, 'models/big_linear.onnx'),
    linearModel({
      lookback: LOOKBACK,
      variables: 2,
      horizon: 12,
      weights: uniformWeights(seededRandom(3), LOOKBACK * 2 * 12, 0.05),
      bias: 0.1,
    }),
  );
  writeFileSync(
    path.join(pod, 'spicepod.yaml'),
    [
      'version: v1beta1',
      'kind: Spicepod',
      'name: dataset-refresh',
      'datasets:',
      ...datasetLines,
      'models:',
      '  - from: file:models/big_linear.onnx',
      '    name: big_linear',
      '    datasets: [big]',
      '    params:',
      '      cache_predictions: false',
      '',
    ].join('\n'),
  );
  const loadAverage = os.loadavg()[0] ?? NaN;
  const results: Result[] = [];
  for (const cli of CLIS) {
    console.log(`measuring ${cli.label}`);
    const r = await measure(cli, pod, startRefresh);
    results.push(r);
    console.log(
      `  start→ready ${fmt(r.startToReadyS, 2)} s; idle p50/p99 ${fmt(r.idle.p50Ms, 2)}/${fmt(r.idle.p99Ms, 2)} ms; ` +
        `refresh ${fmt(r.refreshS, 2)} s, p50/p99/max ${fmt(r.refresh.p50Ms, 2)}/${fmt(r.refresh.p99Ms, 2)}/${fmt(r.refresh.maxMs, 1)} ms ` +
        `(p99 ${fmt(r.refresh.p99Ms / r.idle.p99Ms, 2)}× idle); RSS steady ${fmt(r.steadyRssMiB, 0)} MiB, refresh peak ${fmt(r.peakRefreshRssMiB, 0)} MiB ` +
        `(${fmt(r.peakRefreshRssMiB / r.steadyRssMiB, 2)}×)`,
    );
  }
  const date = new Date().toISOString().slice(0, 10);
  const command = `npx tsx bench/dataset-refresh.ts ${process.argv.slice(2).join(' ')}`.trim();
  const report = [
    `# ${SOURCE === 'file' ? 'Dataset' : 'PostgreSQL dataset'} refresh benchmark, ${date}`,
    '',
    `- Command: \`${command}\``,
    `- Hardware: ${hardwareSummary()}`,
    `- Load average (1 min) when it started: ${fmt(loadAverage, 2)}; anything else running shares the CPUs`,
    SOURCE === 'file'
      ? `- Data: ${ROWS} rows × (ts, load, temp), unix seconds, ${fmt(sizeMB, 1)} MB CSV; model: linear, lookback ${LOOKBACK}, 2 variables, cache off`
      : `- Data: ${ROWS} rows × (ts timestamptz primary key, load, temp float8) in PostgreSQL ${PG.host}:${PG.port} (same machine), refresh_mode full; model: linear, lookback ${LOOKBACK}, 2 variables, cache off`,
    SOURCE === 'file'
      ? `- Load: GET /v1/models/big_linear/predict from ${CONNECTIONS} closed-loop connections (Node.js generator); idle for ${SECONDS} s, then from the file's touch until /v1/datasets shows the new refreshed_at`
      : `- Load: GET /v1/models/big_linear/predict from ${CONNECTIONS} closed-loop connections (Node.js generator); idle for ${SECONDS} s, then from /v1/datasets showing the dataset Refreshing (its interval came round) until it shows the new refreshed_at`,
    '',
    '| build | start → /v1/ready s | idle p50 / p99 ms | refresh s | during refresh p50 / p99 / max ms | p99 vs idle | steady RSS MiB | refresh peak RSS MiB | peak vs steady | errors |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
    ...results.map((r) => {
      const errors = [r.idle, r.refresh]
        .flatMap((p) => [...Object.entries(p.statuses).filter(([s]) => !s.startsWith('2')), ...Object.entries(p.failures)])
        .map(([k, n]) => `${k}: ${n}`)
        .join(', ');
      return `| ${r.label} | ${fmt(r.startToReadyS, 2)} | ${fmt(r.idle.p50Ms, 2)} / ${fmt(r.idle.p99Ms, 2)} | ${fmt(r.refreshS, 2)} | ${fmt(r.refresh.p50Ms, 2)} / ${fmt(r.refresh.p99Ms, 2)} / ${fmt(r.refresh.maxMs, 1)} | ${fmt(r.refresh.p99Ms / r.idle.p99Ms, 2)}× | ${fmt(r.steadyRssMiB, 0)} | ${fmt(r.peakRefreshRssMiB, 0)} | ${fmt(r.peakRefreshRssMiB / r.steadyRssMiB, 2)}× | ${errors || 'none'} |`;
    }),
    '',
  ].join('\n');
  const dir = path.join(ROOT, 'bench/results');
  mkdirSync(dir, { recursive: true });
  const name = `${SOURCE === 'file' ? 'dataset-refresh' : 'postgres-refresh'}-${date}${TAG === undefined ? '' : `-${TAG}`}`;
  writeFileSync(path.join(dir, `${name}.md`), report);
  writeFileSync(
    path.join(dir, `${name}.json`),
    `${JSON.stringify({ date, command, source: SOURCE, hardware: hardwareSummary(), loadAverage, rows: ROWS, sizeMB, results }, null, 2)}\n`,
  );
  console.log(report);
}

await main();
