/**
 * The KServe workload (`npm run bench:kserve`): POST /v1/timeseries/forecast with 1, 10 and 100 client
 * series per request, at 1 and 64 connections, reported as series forecast per second. forecastd against the
 * peer (Fastify + onnxruntime-node) extended to serve the same route the two ways a Node user would write it:
 * one session.run per series, and the request's series stacked into one run by hand. The model is the
 * bundled example's co2_linear (52 weeks in, 12 out); every series is 52 real weekly values.
 * Writes bench/results/kserve-DATE.{json,md}.
 *
 * Environment: BENCH_SECONDS (default 5), BENCH_WARMUP_SECONDS (default 1), BENCH_SERIES=1,10,100,
 * BENCH_CONNECTIONS=1,64, BENCH_OUT=DIR, BENCH_FORECASTD_CLI=PATH (default dist/cli.js).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'csv-parse/sync';
import { batchSizeTotals, fetchText, freePort, ServerProcess } from './servers.js';
import { runWrk, wrkVersion } from './wrk.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const WORK = join(ROOT, 'bench/.work/kserve');
const CLI = resolve(process.env.BENCH_FORECASTD_CLI ?? join(ROOT, 'dist/cli.js'));
const MODEL = join(ROOT, 'examples/co2/models/co2_linear.onnx');
const CSV = join(ROOT, 'examples/co2/data/co2_weekly.csv');
const OUT = resolve(process.env.BENCH_OUT ?? join(ROOT, 'bench/results'));
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const WARMUP = Number(process.env.BENCH_WARMUP_SECONDS ?? 1);
const SERIES = (process.env.BENCH_SERIES ?? '1,10,100').split(',').map(Number);
const CONNECTIONS = (process.env.BENCH_CONNECTIONS ?? '1,64').split(',').map(Number);
const LOOKBACK = 52;
const HORIZON = 12;

interface Row {
  readonly server: string;
  readonly series: number;
  readonly connections: number;
  readonly rps: number;
  readonly seriesPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly non2xx: number;
  readonly socketErrors: number;
  readonly cpuSecondsPer1kSeries: number;
  /** forecastd only: windows per ORT run over the point. */
  readonly meanBatchSize: number | null;
}

function log(message: string): void {
  process.stderr.write(`${message}\n`);
}

/** `count` series of 52 consecutive measured weeks, from different places in the CO2 record. */
function bodyWith(count: number, values: readonly number[], times: readonly string[]): string {
  const inputs = Array.from({ length: count }, (_, i) => {
    let start = (i * 37) % (values.length - LOOKBACK);
    while (values.slice(start, start + LOOKBACK).some(Number.isNaN)) start = (start + 1) % (values.length - LOOKBACK);
    return {
      type: 'univariate_time_series',
      name: `co2_${i}`,
      series: values.slice(start, start + LOOKBACK),
      frequency: 'W',
      start_timestamp: (times[start] as string).replace('.000Z', 'Z'),
    };
  });
  return JSON.stringify({ model: 'co2_linear', inputs, options: { horizon: HORIZON } });
}

async function main(): Promise<void> {
  const wrk = wrkVersion();
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: build forecastd first (npm run build)`);
  if (!existsSync(MODEL)) throw new Error(`${MODEL} is missing: train the example first (npm run train:example)`);
  mkdirSync(join(WORK, 'logs'), { recursive: true });
  mkdirSync(OUT, { recursive: true });
  const load0 = loadavg();

  const rows = parse(readFileSync(CSV), { columns: true, skip_empty_lines: true }) as Record<string, string>[];
  const values = rows.map((r) => (r['co2'] === '' ? Number.NaN : Number(r['co2'])));
  const times = rows.map((r) => new Date(r['ts'] as string).toISOString());
  const bodies = new Map<number, string>();
  for (const n of SERIES) {
    const file = join(WORK, `body-${n}.json`);
    writeFileSync(file, bodyWith(n, values, times));
    bodies.set(n, file);
  }

  const podDir = join(WORK, 'pod');
  mkdirSync(podDir, { recursive: true });
  // KServe only: the model has no dataset. 64 connections x 100 series is 6400 windows in flight: the queue
  // is made room for them (the default 1024 would answer part of them 503, which the peers never do).
  writeFileSync(
    join(podDir, 'spicepod.yaml'),
    `version: v1beta1\nkind: Spicepod\nname: kserve\nmodels:\n  - from: file:${MODEL}\n    name: co2_linear\n    params:\n      cache_predictions: false\n      max_queue_size: 16384\n`,
  );

  const servers: { key: string; process: ServerProcess; forecastd: boolean }[] = [];
  const fPort = await freePort();
  servers.push({
    key: 'forecastd',
    forecastd: true,
    process: new ServerProcess({ name: 'forecastd', args: [CLI, podDir, '--http', `127.0.0.1:${fPort}`], port: fPort, logFile: join(WORK, 'logs/forecastd.log') }),
  });
  for (const mode of ['per-series', 'per-request'] as const) {
    const port = await freePort();
    const config = join(WORK, `peer-${mode}.json`);
    writeFileSync(
      config,
      JSON.stringify({ port, models: [{ name: 'co2_linear', path: MODEL, csv: CSV, timeColumn: 'ts', columns: ['co2'], lookback: LOOKBACK }], timeseriesBatching: mode }),
    );
    servers.push({
      key: `peer ${mode}`,
      forecastd: false,
      process: new ServerProcess({ name: `peer ${mode}`, args: [join(ROOT, 'bench/peers/node-ort-server.mjs'), config], port, logFile: join(WORK, `logs/peer-${mode}.log`) }),
    });
  }
  const results: Row[] = [];
  try {
    for (const s of servers) await s.process.waitReady(s.forecastd ? '/v1/ready' : '/health');
    // The servers agree before anything is timed.
    const check = readFileSync(bodies.get(SERIES[SERIES.length - 1] as number) as string);
    const answers = await Promise.all(
      servers.map(async (s) => {
        const { status, text } = await fetchText(`${s.process.base}/v1/timeseries/forecast`, { method: 'POST', body: check, headers: { 'content-type': 'application/json' } });
        if (status !== 200) throw new Error(`${s.key} answered ${status}: ${text.slice(0, 300)}`);
        return (JSON.parse(text) as { outputs: { content: { mean_forecast: number[]; start_timestamp: string }[] }[] }).outputs.map((o) => o.content[0]!);
      }),
    );
    const reference = answers[0]!;
    for (const [k, answer] of answers.entries()) {
      answer.forEach((c, i) => {
        const r = reference[i]!;
        if (c.start_timestamp !== r.start_timestamp) throw new Error(`${servers[k]!.key}: start_timestamp ${c.start_timestamp}, forecastd ${r.start_timestamp}`);
        c.mean_forecast.forEach((v, h) => {
          if (Math.abs(v - r.mean_forecast[h]!) > 1e-3) throw new Error(`${servers[k]!.key}: series ${i} step ${h}: ${v} vs forecastd ${r.mean_forecast[h]}`);
        });
      });
    }
    log('the servers agree; measuring');

    for (const n of SERIES) {
      for (const connections of CONNECTIONS) {
        for (const s of servers) {
          const url = `${s.process.base}/v1/timeseries/forecast`;
          const postBodyFile = bodies.get(n) as string;
          await runWrk({ url, connections, seconds: WARMUP, postBodyFile });
          const metrics0 = s.forecastd ? batchSizeTotals((await fetchText(`${s.process.base}/metrics`)).text) : null;
          const cpu0 = s.process.cpuSeconds();
          const r = await runWrk({ url, connections, seconds: SECONDS, postBodyFile });
          const cpu1 = s.process.cpuSeconds();
          const metrics1 = s.forecastd ? batchSizeTotals((await fetchText(`${s.process.base}/metrics`)).text) : null;
          s.process.assertAlive();
          const runs = metrics0 && metrics1 ? metrics1.count - metrics0.count : 0;
          const row: Row = {
            server: s.key,
            series: n,
            connections,
            rps: r.rps,
            seriesPerSecond: r.rps * n,
            p50Ms: r.latency_us.p50 / 1000,
            p99Ms: r.latency_us.p99 / 1000,
            non2xx: r.errors.status,
            socketErrors: r.errors.connect + r.errors.read + r.errors.write + r.errors.timeout,
            cpuSecondsPer1kSeries: r.requests > 0 ? ((cpu1 - cpu0) / (r.requests * n)) * 1000 : Number.NaN,
            meanBatchSize: metrics0 && metrics1 && runs > 0 ? (metrics1.sum - metrics0.sum) / runs : null,
          };
          results.push(row);
          log(`${n} series x ${connections} conn  ${s.key.padEnd(22)} ${Math.round(row.seriesPerSecond)} series/s  p50 ${row.p50Ms.toFixed(2)} ms  p99 ${row.p99Ms.toFixed(2)} ms${row.meanBatchSize === null ? '' : `  batch ${row.meanBatchSize.toFixed(1)}`}`);
        }
      }
    }
  } finally {
    await Promise.all(servers.map((s) => s.process.stop()));
  }

  const load1 = loadavg();
  const date = new Date().toISOString().slice(0, 10);
  const environment = {
    date: new Date().toISOString(),
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    node: process.version,
    wrk,
    loadavgStart: load0.map((l) => Number(l.toFixed(2))),
    loadavgEnd: load1.map((l) => Number(l.toFixed(2))),
    seconds: SECONDS,
    command: `BENCH_SECONDS=${SECONDS} npm run bench:kserve`,
  };
  writeFileSync(join(OUT, `kserve-${date}.json`), `${JSON.stringify({ environment, results }, null, 2)}\n`);
  const lines = [
    `# KServe workload, ${environment.date}`,
    '',
    `\`${environment.command}\` on ${environment.cpus} × ${environment.cpuModel}, Node ${environment.node}, ${wrk} (one thread).`,
    `Load average ${environment.loadavgStart.join(' ')} at the start and ${environment.loadavgEnd.join(' ')} at the end: the machine was shared,`,
    'so compare the servers within this run, not with other runs. Each point: wrk for the given seconds after a warm-up.',
    '',
    '| series/request | connections | server | series/s | requests/s | p50 ms | p99 ms | CPU s per 1k series | windows per ORT run | errors |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...results.map(
      (r) =>
        `| ${r.series} | ${r.connections} | ${r.server} | ${Math.round(r.seriesPerSecond)} | ${Math.round(r.rps)} | ${r.p50Ms.toFixed(2)} | ${r.p99Ms.toFixed(2)} | ${r.cpuSecondsPer1kSeries.toFixed(3)} | ${r.meanBatchSize === null ? '' : r.meanBatchSize.toFixed(1)} | ${r.non2xx + r.socketErrors} |`,
    ),
    '',
  ];
  writeFileSync(join(OUT, `kserve-${date}.md`), lines.join('\n'));
  log(`wrote ${join(OUT, `kserve-${date}.md`)}`);
}

main().catch((error: unknown) => {
  log(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exitCode = 1;
});
