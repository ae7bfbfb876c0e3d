/**
 * `forecastd bench --http URL`: a closed-loop load generator (each connection sends its next request when the
 * previous answer has arrived) against a running forecastd or any server speaking Spice's predict routes,
 * reporting what a client sees: throughput, latency percentiles, and errors by status.
 */
import http from 'node:http';
import os from 'node:os';
import { performance } from 'node:perf_hooks';

import { ForecastdError } from '../errors.js';
import { hardwareSummary, percentile } from './measure.js';

export interface HttpTarget {
  readonly url: URL;
  readonly method: 'GET' | 'POST';
  /** JSON body of a POST. */
  readonly body: string | null;
  readonly headers: Readonly<Record<string, string>>;
}

export interface HttpLoadOptions {
  readonly target: HttpTarget;
  /** Connection counts, one point each. */
  readonly connections: readonly number[];
  readonly durationMs: number;
  readonly onProgress?: (progress: { point: number; points: number; label: string; fraction: number }) => void;
}

export interface HttpLoadPoint {
  readonly connections: number;
  readonly requests: number;
  readonly seconds: number;
  /** Every answered request, whatever its status. */
  readonly requestsPerSecond: number;
  /** 2xx answers per second. */
  readonly okPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** Answers by HTTP status, e.g. { "200": 5120, "503": 3 }. */
  readonly statuses: Readonly<Record<string, number>>;
  /** Requests that got no HTTP answer, by error code (ECONNRESET, ECONNREFUSED, ...). */
  readonly failures: Readonly<Record<string, number>>;
  /** CPU of this load generator per request, µs (it shares the machine with the server when both are local). */
  readonly generatorCpuUsPerRequest: number;
}

export interface HttpLoadResult {
  readonly kind: 'http';
  readonly date: string;
  readonly hardware: string;
  readonly loadAverage: number;
  readonly target: { readonly url: string; readonly method: string; readonly body: string | null };
  readonly durationMs: number;
  /** The first answer, before measuring: what one request returns. */
  readonly probe: { readonly status: number; readonly body: string };
  readonly points: readonly HttpLoadPoint[];
}

interface Answer {
  readonly status: number;
  readonly body: string;
}

function send(agent: http.Agent, target: HttpTarget, keepBody: boolean): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      target.url,
      { method: target.method, agent, headers: target.headers },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => {
          if (keepBody) chunks.push(chunk);
        });
        response.on('end', () =>
          resolve({ status: response.statusCode ?? 0, body: keepBody ? Buffer.concat(chunks).toString('utf8') : '' }),
        );
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.end(target.body ?? undefined);
  });
}

function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : error instanceof Error ? error.message : String(error);
}

/**
 * Sends requests to `target` from `connections` closed loops until `stop` resolves (for a fixed time, or until
 * something the caller waits for happens), and reports what a client saw.
 */
export async function closedLoop(
  target: HttpTarget,
  connections: number,
  stop: Promise<unknown>,
  onTick?: (elapsedMs: number) => void,
): Promise<HttpLoadPoint> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  const failures: Record<string, number> = {};
  let stopped = false;
  void stop.finally(() => (stopped = true));
  const loop = async (): Promise<void> => {
    while (!stopped) {
      const t0 = performance.now();
      try {
        const answer = await send(agent, target, false);
        latencies.push(performance.now() - t0);
        statuses[answer.status] = (statuses[answer.status] ?? 0) + 1;
      } catch (error) {
        const code = errorCode(error);
        failures[code] = (failures[code] ?? 0) + 1;
        // A refused or reset connection answers at once; do not spin on it.
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    }
  };
  const cpu = process.cpuUsage();
  const start = performance.now();
  const progress = onTick === undefined ? undefined : setInterval(() => onTick(performance.now() - start), 100);
  try {
    await Promise.all(Array.from({ length: connections }, loop));
  } finally {
    if (progress !== undefined) clearInterval(progress);
    agent.destroy();
  }
  const seconds = (performance.now() - start) / 1000;
  const used = process.cpuUsage(cpu);
  const sorted = Float64Array.from(latencies).sort();
  const ok = Object.entries(statuses).reduce((sum, [status, n]) => (status.startsWith('2') ? sum + n : sum), 0);
  return {
    connections,
    requests: latencies.length,
    seconds,
    requestsPerSecond: latencies.length / seconds,
    okPerSecond: ok / seconds,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    maxMs: sorted.length === 0 ? NaN : (sorted[sorted.length - 1] as number),
    statuses,
    failures,
    generatorCpuUsPerRequest: (used.user + used.system) / Math.max(1, latencies.length),
  };
}

const after = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Sends one request first (a server that cannot be reached is an error), then loads it at each count. */
export async function benchHttp(options: HttpLoadOptions): Promise<HttpLoadResult> {
  const { target } = options;
  const probeAgent = new http.Agent({ keepAlive: false });
  let probe: Answer;
  try {
    probe = await send(probeAgent, target, true);
  } catch (error) {
    throw new ForecastdError('ERR_INVALID_ARGUMENT', `cannot reach ${target.url.href}: ${errorCode(error)}`);
  } finally {
    probeAgent.destroy();
  }
  const points: HttpLoadPoint[] = [];
  for (const [index, connections] of options.connections.entries()) {
    const label = `${connections} connection${connections === 1 ? '' : 's'}`;
    const report = (fraction: number): void =>
      options.onProgress?.({ point: index, points: options.connections.length, label, fraction });
    report(0);
    // A short warm-up on the same number of connections opens them and lets the server settle.
    await closedLoop(target, connections, after(Math.min(500, options.durationMs / 4)));
    points.push(await closedLoop(target, connections, after(options.durationMs), (ms) => report(Math.min(1, ms / options.durationMs))));
    report(1);
  }
  return {
    kind: 'http',
    date: new Date().toISOString(),
    hardware: hardwareSummary(),
    loadAverage: os.loadavg()[0] ?? NaN,
    target: { url: target.url.href, method: target.method, body: target.body },
    durationMs: options.durationMs,
    probe: { status: probe.status, body: probe.body.length > 500 ? `${probe.body.slice(0, 500)}…` : probe.body },
    points,
  };
}
