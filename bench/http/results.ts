/** The shape of one HTTP benchmark run, as saved to bench/results/http-DATE.json and rendered by report.ts. */
import type { InferenceCeilingReport } from './inference-ceiling.js';

export type ServerKey = 'forecastd-cache-off' | 'forecastd-baseline' | 'forecastd-cache-on' | 'peer' | 'http-ceiling';

export const SERVER_LABELS: Readonly<Record<ServerKey, string>> = {
  'forecastd-cache-off': 'forecastd, cache off',
  'forecastd-baseline': 'forecastd baseline, cache off',
  'forecastd-cache-on': 'forecastd, cache on',
  peer: 'peer (Fastify + onnxruntime-node)',
  'http-ceiling': 'HTTP ceiling (uWS, fixed body)',
};

export interface Workload {
  readonly id: string;
  readonly title: string;
  readonly method: 'GET' | 'POST';
  readonly path: string;
  /** Models one request runs (one item each). */
  readonly models: readonly string[];
  /** Response size in bytes (forecastd's, cache off), which the HTTP ceiling returns. */
  readonly responseBytes: number;
  /** The inference ceiling in requests per second: predictions per second combined over `models`. */
  readonly inferenceCeilingRps: number;
}

export interface Point {
  readonly workload: string;
  readonly server: ServerKey;
  readonly connections: number;
  readonly requests: number;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly meanMs: number;
  readonly maxMs: number;
  /** Socket errors and timeouts. */
  readonly socketErrors: number;
  /** Responses outside 2xx/3xx. */
  readonly non2xx: number;
  /** Server process CPU (user + system, every thread) per 1000 requests. */
  readonly cpuSecondsPer1k: number;
  /** Items per inference during the run; null when no inference ran (every answer from the cache). */
  readonly meanBatchSize: number | null;
  /**
   * With BENCH_REPEATS > 1: every repetition (the targets alternate within each one); the point's own numbers
   * are then their medians (each field on its own), and its request and error counts their sums.
   */
  readonly repeats?: readonly RepeatSample[];
}

export interface RepeatSample {
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

export interface Environment {
  readonly date: string;
  readonly command: string;
  readonly quick: boolean;
  readonly cpuModel: string;
  readonly cores: number;
  readonly node: string;
  readonly kernel: string;
  readonly os: string;
  readonly wrk: string;
  readonly forecastd: string;
  readonly peer: string;
  /** What the "forecastd baseline" target is (another build or setting), when measured. */
  readonly baseline?: string;
  /** Measurements per point (alternating between targets); the point holds the medians. */
  readonly repeats?: number;
  readonly warmupSeconds: number;
  readonly seconds: number;
  readonly loadAverageAtStart: readonly number[];
}

export interface HttpBenchResults {
  readonly environment: Environment;
  readonly workloads: readonly Workload[];
  readonly connections: readonly number[];
  readonly inference: InferenceCeilingReport;
  readonly points: readonly Point[];
  /** Checks made before measuring (forecastd and the peer return the same predictions, ...). */
  readonly checks: readonly string[];
}
