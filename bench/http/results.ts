/** The shape of one HTTP benchmark run, as saved to bench/results/http-DATE.json and rendered by report.ts. */
import type { InferenceCeilingReport } from './inference-ceiling.js';

export type ServerKey =
  | 'forecastd-cache-off'
  | 'forecastd-baseline'
  | 'forecastd-cache-on'
  | 'peer'
  | 'peer-one-thread'
  | 'http-ceiling';

/** The heavy models' workloads (bench/http/models.ts): the ones the goals hold to the peers and the baseline. */
export const HEAVY_WORKLOADS: readonly string[] = ['heavy', 'gru', 'conv'];

/** The two settings of the peer: onnxruntime-node's default session options, and intraOpNumThreads 1. */
export const PEER_KEYS: readonly ServerKey[] = ['peer', 'peer-one-thread'];

export const SERVER_LABELS: Readonly<Record<ServerKey, string>> = {
  'forecastd-cache-off': 'forecastd, cache off',
  'forecastd-baseline': 'forecastd baseline, cache off',
  'forecastd-cache-on': 'forecastd, cache on',
  peer: 'peer (Fastify + onnxruntime-node), default threads',
  'peer-one-thread': 'peer (Fastify + onnxruntime-node), intraOpNumThreads 1',
  'http-ceiling': 'HTTP ceiling (uWS, fixed body)',
};

/** Short names of the peers, for saying which one was the faster at a point. */
export const PEER_SHORT_LABELS: Readonly<Partial<Record<ServerKey, string>>> = {
  peer: 'default-threads peer',
  'peer-one-thread': '1-thread peer',
};

/** A server's label in a run: the baseline is named after what it is (e.g. "forecastd 21a3013"). */
export function serverLabel(key: ServerKey, environment?: Pick<Environment, 'baselineLabel'>): string {
  if (key === 'forecastd-baseline' && environment?.baselineLabel !== undefined) {
    return `${environment.baselineLabel} (baseline), cache off`;
  }
  return SERVER_LABELS[key];
}

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
   * The share of the machine's CPU time the hypervisor gave to others during the measured seconds (steal, from
   * /proc/stat), in percent; null where not reported; absent in runs from before it was recorded.
   */
  readonly stealPercent?: number | null;
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
  readonly stealPercent?: number | null;
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
  /** The peer with onnxruntime-node's default session options. */
  readonly peer: string;
  /** The peer with intraOpNumThreads 1 (absent in runs from before both peers were measured). */
  readonly peerOneThread?: string;
  /** What the "forecastd baseline" target is (another build or setting), when measured. */
  readonly baseline?: string;
  /** The baseline's short name, e.g. "forecastd 21a3013" for a build of that commit. */
  readonly baselineLabel?: string;
  /** Measurements per point (alternating between targets); the point holds the medians. */
  readonly repeats?: number;
  /** The connection counts and workloads measured `repeats` times (absent: every point, in older runs). */
  readonly repeatConnections?: readonly number[];
  readonly repeatWorkloads?: readonly string[];
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
