/**
 * The `forecastd bench` subcommand: parses its arguments, runs the model or HTTP benchmark with a progress
 * display on stderr, prints the results table on stdout and writes the JSON and SVG files asked for.
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { parseDuration } from '../duration.js';
import { ForecastdError } from '../errors.js';
import { benchHttp, type HttpLoadResult, type HttpTarget } from './http-load.js';
import { formatNumber as fmt } from './measure.js';
import { benchModel, RUNTIMES, type ModelBenchResult } from './model-bench.js';
import { renderCurves, type CurveChart } from './svg.js';

export const BENCH_USAGE = `Usage: forecastd bench MODEL.onnx [options]
       forecastd bench --http URL [options]

Runs MODEL.onnx through forecastd's addon and through onnxruntime-node side by side (same windows, same
threads) and prints predictions/s, p50/p99 latency, JavaScript-thread CPU per run and event-loop p99 for each
batch size and number of callers, with forecastd's throughput as a multiple of onnxruntime-node's.
With --http, loads a running server instead (forecastd or any server speaking Spice's predict routes) with a
closed-loop load generator and prints throughput, p50/p99/max latency and errors by status.

Options:
  --batch LIST            batch sizes, e.g. 1,8,64 (default: 1,8,64; model benchmark only)
  --callers LIST          concurrent callers (model) or connections (--http), e.g. 1,32 (default: 1,32)
  --duration TIME         measured time per point, e.g. 5s or 500ms (default: 5s), after a short warm-up
  --threads N             intra-op threads per run, on both runtimes (default: 1, as forecastd serves)
  --lookback N            the lookback, when the model's lookback dimension is symbolic
  --http URL              load this URL: a predict route (GET /v1/models/NAME/predict, or POST /v1/predict
                          with --model), or the server's base URL with --model NAME
  --model NAMES           with --http: the model(s) to ask for; several (a,b) make a POST /v1/predict
  --header 'NAME: VALUE'  with --http: an extra request header (repeatable), e.g. 'X-API-Key: secret'
  --json FILE             also write every number measured as JSON
  --svg FILE              also write throughput against latency as an SVG chart
  -h, --help              show this help

A pod folder named "bench" is served with: forecastd ./bench
`;

class BenchUsageError extends Error {}

interface BenchCommand {
  readonly model: string | null;
  readonly target: HttpTarget | null;
  readonly batches: number[];
  readonly callers: number[];
  readonly durationMs: number;
  readonly threads: number;
  readonly lookback: number | null;
  readonly json: string | null;
  readonly svg: string | null;
}

function positiveIntegers(option: string, value: string): number[] {
  const items = value.split(',').map((s) => s.trim());
  const numbers = items.map(Number);
  if (items.length === 0 || numbers.some((n, i) => items[i] === '' || !Number.isInteger(n) || n < 1)) {
    throw new BenchUsageError(`--${option} must be a comma-separated list of positive integers (e.g. 1,8,64), not '${value}'`);
  }
  return [...new Set(numbers)];
}

function positiveInteger(option: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new BenchUsageError(`--${option} must be a positive integer, not '${value}'`);
  return n;
}

function httpTarget(raw: string, models: string | undefined, headerLines: readonly string[]): HttpTarget {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new BenchUsageError(`--http must be a URL such as http://127.0.0.1:8090/v1/models/NAME/predict, not '${raw}'`);
  }
  if (url.protocol !== 'http:') throw new BenchUsageError(`--http supports http:// URLs, not '${url.protocol}'`);
  const headers: Record<string, string> = {};
  for (const line of headerLines) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw new BenchUsageError(`--header must be 'NAME: VALUE', not '${line}'`);
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const names = models === undefined ? [] : models.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const path = url.pathname.replace(/\/+$/, '');
  if (path === '/v1/predict' || (path === '' && names.length > 1)) {
    if (path === '') url.pathname = '/v1/predict';
    const body = JSON.stringify(names.length === 0 ? {} : { predictions: names.map((model_name) => ({ model_name })) });
    return { url, method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } };
  }
  if (path === '') {
    if (names.length === 0) {
      throw new BenchUsageError('--http with a base URL needs --model NAME (or give the predict route itself)');
    }
    url.pathname = `/v1/models/${encodeURIComponent(names[0] as string)}/predict`;
  } else if (names.length > 0) {
    throw new BenchUsageError('--model goes with a base URL or /v1/predict, not with a model\'s own predict route');
  }
  return { url, method: 'GET', body: null, headers };
}

function parseBenchArgs(argv: readonly string[]): BenchCommand | 'help' {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        batch: { type: 'string' },
        callers: { type: 'string' },
        duration: { type: 'string' },
        threads: { type: 'string' },
        lookback: { type: 'string' },
        http: { type: 'string' },
        model: { type: 'string' },
        header: { type: 'string', multiple: true },
        json: { type: 'string' },
        svg: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    throw new BenchUsageError(error instanceof Error ? error.message : String(error));
  }
  const { values, positionals } = parsed;
  if (values.help === true) return 'help';
  if (positionals.length > 1) throw new BenchUsageError(`expected one MODEL.onnx, got ${positionals.length}: ${positionals.join(' ')}`);
  const model = positionals[0] ?? null;
  if (model === null && values.http === undefined) throw new BenchUsageError('give a MODEL.onnx to measure, or --http URL');
  if (model !== null && values.http !== undefined) throw new BenchUsageError('give either a MODEL.onnx or --http URL, not both');
  if (values.http === undefined) {
    for (const option of ['model', 'header'] as const) {
      if (values[option] !== undefined) throw new BenchUsageError(`--${option} goes with --http`);
    }
  } else {
    for (const option of ['batch', 'threads', 'lookback'] as const) {
      if (values[option] !== undefined) throw new BenchUsageError(`--${option} measures a model file; it does not go with --http`);
    }
  }
  let durationMs = 5000;
  if (values.duration !== undefined) {
    try {
      durationMs = parseDuration(values.duration);
    } catch (error) {
      throw new BenchUsageError(`--duration: ${error instanceof Error ? error.message : String(error)}`);
    }
    if (!(durationMs > 0)) throw new BenchUsageError(`--duration must be above 0, not '${values.duration}'`);
  }
  return {
    model,
    target: values.http === undefined ? null : httpTarget(values.http, values.model, values.header ?? []),
    batches: values.batch === undefined ? [1, 8, 64] : positiveIntegers('batch', values.batch),
    callers: values.callers === undefined ? [1, 32] : positiveIntegers('callers', values.callers),
    durationMs,
    threads: positiveInteger('threads', values.threads, 1),
    lookback: values.lookback === undefined ? null : positiveInteger('lookback', values.lookback, 1),
    json: values.json ?? null,
    svg: values.svg ?? null,
  };
}

/** A progress bar redrawn in place on a terminal; one plain line per point elsewhere (logs, CI, pipes). */
class ProgressDisplay {
  readonly #tty = process.stderr.isTTY === true;
  #lastPoint = -1;

  update(p: { point: number; points: number; label: string; fraction: number }): void {
    if (!this.#tty) {
      if (p.point !== this.#lastPoint) {
        this.#lastPoint = p.point;
        process.stderr.write(`[${p.point + 1}/${p.points}] ${p.label}\n`);
      }
      return;
    }
    const done = (p.point + p.fraction) / p.points;
    const width = 30;
    const filled = Math.round(done * width);
    const bar = `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
    const line = `${bar} ${String(Math.floor(done * 100)).padStart(3)}%  [${p.point + 1}/${p.points}] ${p.label}`;
    const columns = process.stderr.columns ?? 100;
    process.stderr.write(`\r\x1b[2K${line.slice(0, Math.max(10, columns - 1))}`);
  }

  finish(): void {
    if (this.#tty) process.stderr.write('\r\x1b[2K');
  }
}

function table(header: readonly string[], rows: readonly (readonly string[])[], rightAligned: ReadonlySet<number>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (rightAligned.has(i) ? c.padStart(widths[i] as number) : c.padEnd(widths[i] as number)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

export function formatModelResult(result: ModelBenchResult): string {
  const rows = result.points.map((p) => {
    const peer = result.points.find((q) => q.batch === p.batch && q.callers === p.callers && q.runtime === 'onnxruntime-node');
    const ratio = p.runtime === 'forecastd' && peer !== undefined ? `${fmt(p.predictionsPerSecond / peer.predictionsPerSecond, 2)}×` : '';
    return [
      String(p.batch),
      String(p.callers),
      p.runtime,
      fmt(p.predictionsPerSecond, 0),
      ratio,
      fmt(p.p50Ms, 3),
      fmt(p.p99Ms, 3),
      fmt(p.jsCpuUsPerRun),
      fmt(p.processCpuUsPerPrediction),
      fmt(p.loopDelayP99Ms, 2),
    ];
  });
  return [
    `model: ${result.model.path}`,
    `  input ${result.model.input}, output ${result.model.output}; lookback ${result.model.lookback}, ${result.model.variables} variable(s)`,
    `ONNX Runtime ${result.onnxRuntimeVersion} on both sides; ${result.intraOpThreads} intra-op thread(s) per run; forecastd run threads: ${result.forecastdRunThreads}`,
    `${result.hardware}; load average ${fmt(result.loadAverage, 2)} at the end`,
    `${fmt(result.durationMs / 1000, 1)} s per point after a warm-up; both runtimes agreed on the forecast (max difference ${result.maxAbsDifference.toExponential(1)})`,
    '',
    table(
      ['batch', 'callers', 'runtime', 'predictions/s', 'ratio', 'p50 ms', 'p99 ms', 'JS CPU µs/run', 'CPU µs/pred', 'loop p99 ms'],
      rows,
      new Set([0, 1, 3, 4, 5, 6, 7, 8, 9]),
    ),
    '',
    'ratio: forecastd predictions/s ÷ onnxruntime-node\'s. JS CPU: CPU time of the JavaScript thread per run.',
    'CPU/pred: the whole process (every thread) per prediction. loop p99: how late a timer fired (event-loop delay).',
    '',
  ].join('\n');
}

export function formatHttpResult(result: HttpLoadResult): string {
  const rows = result.points.map((p) => [
    String(p.connections),
    String(p.requests),
    fmt(p.requestsPerSecond, 0),
    fmt(p.p50Ms, 3),
    fmt(p.p99Ms, 3),
    fmt(p.maxMs, 3),
    Object.entries(p.statuses).map(([s, n]) => `${s}: ${n}`).join(', ') || '—',
    Object.entries(p.failures).map(([s, n]) => `${s}: ${n}`).join(', ') || '—',
    fmt(p.generatorCpuUsPerRequest),
  ]);
  return [
    `target: ${result.target.method} ${result.target.url}${result.target.body === null ? '' : ` ${result.target.body}`}`,
    `first answer: ${result.probe.status} ${result.probe.body.length > 160 ? `${result.probe.body.slice(0, 160)}…` : result.probe.body}`,
    `${result.hardware}; load average ${fmt(result.loadAverage, 2)} at the end`,
    `${fmt(result.durationMs / 1000, 1)} s per point after a warm-up; closed loop: each connection waits for its answer`,
    '',
    table(
      ['connections', 'requests', 'req/s', 'p50 ms', 'p99 ms', 'max ms', 'statuses', 'no answer', 'client CPU µs/req'],
      rows,
      new Set([0, 1, 2, 3, 4, 5, 8]),
    ),
    '',
    'The load generator runs in Node.js on this machine: its own CPU per request is in the last column, and when',
    'the server is local they share the cores. For the highest rates, compare with wrk.',
    '',
  ].join('\n');
}

function chartFor(result: ModelBenchResult | HttpLoadResult): CurveChart {
  const when = result.date.slice(0, 10);
  if (result.kind === 'http') {
    return {
      title: `${result.target.method} ${result.target.url}`,
      note: `${when}; labels: connections`,
      throughputUnit: 'requests per second',
      series: [
        {
          name: 'all answers',
          points: result.points.map((p) => ({ throughput: p.requestsPerSecond, p50Ms: p.p50Ms, p99Ms: p.p99Ms, label: String(p.connections) })),
        },
      ],
    };
  }
  const callers = [...new Set(result.points.map((p) => p.callers))];
  return {
    title: `${result.model.path}: forecastd against onnxruntime-node`,
    note: `${when}; ${result.intraOpThreads} intra-op thread(s) per run; labels: batch size`,
    throughputUnit: 'predictions per second',
    series: RUNTIMES.flatMap((runtime) =>
      callers.map((c) => ({
        name: `${runtime}, ${c} caller${c === 1 ? '' : 's'}`,
        points: result.points
          .filter((p) => p.runtime === runtime && p.callers === c)
          .map((p) => ({ throughput: p.predictionsPerSecond, p50Ms: p.p50Ms, p99Ms: p.p99Ms, label: String(p.batch) })),
      })),
    ),
  };
}

/** Runs `forecastd bench ARGS`; resolves with the process exit code. */
export async function runBenchCommand(argv: readonly string[]): Promise<number> {
  let command: BenchCommand | 'help';
  try {
    command = parseBenchArgs(argv);
  } catch (error) {
    if (!(error instanceof BenchUsageError)) throw error;
    process.stderr.write(`forecastd bench: ${error.message}\n\n${BENCH_USAGE}`);
    return 1;
  }
  if (command === 'help') {
    process.stdout.write(BENCH_USAGE);
    return 0;
  }
  const progress = new ProgressDisplay();
  let result: ModelBenchResult | HttpLoadResult;
  try {
    result =
      command.target !== null
        ? await benchHttp({
            target: command.target,
            connections: command.callers,
            durationMs: command.durationMs,
            onProgress: (p) => progress.update(p),
          })
        : await benchModel({
            modelPath: command.model as string,
            batches: command.batches,
            callers: command.callers,
            durationMs: command.durationMs,
            intraOpThreads: command.threads,
            lookback: command.lookback,
            onProgress: (p) => progress.update(p),
          });
  } catch (error) {
    progress.finish();
    const message = error instanceof Error ? error.message : String(error);
    const code = error instanceof ForecastdError ? ` [${error.code}]` : '';
    process.stderr.write(`forecastd bench: ${message}${code}\n`);
    return 1;
  }
  progress.finish();
  process.stdout.write(result.kind === 'http' ? formatHttpResult(result) : formatModelResult(result));
  try {
    if (command.json !== null) writeFileSync(command.json, `${JSON.stringify(result, null, 2)}\n`);
    if (command.svg !== null) writeFileSync(command.svg, renderCurves(chartFor(result)));
  } catch (error) {
    process.stderr.write(`forecastd bench: cannot write results: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
  return 0;
}
