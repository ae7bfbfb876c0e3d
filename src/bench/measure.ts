/**
 * Measuring a closed loop of calls from the JavaScript thread: throughput, latency percentiles, the time the
 * call itself held the thread, the event loop's busy time and the thread's own CPU time per call, and how late
 * a timer would have fired. One implementation for `forecastd bench` and bench/runtime.ts.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';

/** One call of the thing measured, e.g. one model run; it resolves when the work is done. */
export type MeasuredCall = (iteration: number) => Promise<unknown>;

export interface LoopMeasurement {
  /** Calls completed. */
  readonly runs: number;
  readonly seconds: number;
  readonly runsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** Wall time inside the call itself (before it returned its promise), per call, µs. */
  readonly syncUsPerCall: number;
  /** Event-loop active time per call (eventLoopUtilization), µs; includes time waiting for a CPU. */
  readonly busyUsPerRun: number;
  /** CPU time of the JavaScript thread per call (Linux schedstat), µs; NaN where /proc has none. */
  readonly jsCpuUsPerRun: number;
  /** Process CPU time (every thread, user + system) per call, µs. */
  readonly processCpuUsPerRun: number;
  /** p99 event-loop delay over the loop, ms: how late a timer fired while it ran. */
  readonly loopDelayP99Ms: number;
}

export interface LoopOptions {
  /** Concurrent callers, each awaiting its call before making the next. */
  readonly callers: number;
  readonly durationMs: number;
  /** Called about every 100 ms with the fraction of the duration elapsed (0..1). */
  readonly onProgress?: (fraction: number) => void;
}

const SCHEDSTAT = `/proc/self/task/${process.pid}/schedstat`;

/** CPU time of the JavaScript (main) thread in µs, or NaN where /proc has no schedstat. */
export function jsThreadCpuUs(): number {
  if (!existsSync(SCHEDSTAT)) return NaN;
  return Number(readFileSync(SCHEDSTAT, 'utf8').split(' ')[0]) / 1000;
}

/** The value at percentile p (0-100) of ascending `sorted`; NaN when empty. */
export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

/** Runs `call` from `callers` closed loops for `durationMs` and measures it. */
export async function measureLoop(call: MeasuredCall, options: LoopOptions): Promise<LoopMeasurement> {
  const { callers, durationMs, onProgress } = options;
  const latencies: number[] = [];
  let sync = 0;
  let runs = 0;
  let stop = false;
  const caller = async (offset: number): Promise<void> => {
    for (let i = offset; !stop; i += callers) {
      const t0 = performance.now();
      const promise = call(i);
      const t1 = performance.now();
      await promise;
      latencies.push(performance.now() - t0);
      sync += t1 - t0;
      runs++;
    }
  };
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  const elu = performance.eventLoopUtilization();
  const cpuStart = jsThreadCpuUs();
  const processStart = process.cpuUsage();
  const start = performance.now();
  const timer = setTimeout(() => (stop = true), durationMs);
  const progress =
    onProgress === undefined
      ? undefined
      : setInterval(() => onProgress(Math.min(1, (performance.now() - start) / durationMs)), 100);
  try {
    await Promise.all(Array.from({ length: callers }, (_, c) => caller(c)));
  } finally {
    stop = true;
    clearTimeout(timer);
    if (progress !== undefined) clearInterval(progress);
    delay.disable();
  }
  const seconds = (performance.now() - start) / 1000;
  const busy = performance.eventLoopUtilization(elu);
  const cpu = jsThreadCpuUs() - cpuStart;
  const processCpu = process.cpuUsage(processStart);
  const sorted = Float64Array.from(latencies).sort();
  return {
    runs,
    seconds,
    runsPerSecond: runs / seconds,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    maxMs: sorted.length === 0 ? NaN : (sorted[sorted.length - 1] as number),
    syncUsPerCall: (sync / runs) * 1000,
    busyUsPerRun: (busy.active / runs) * 1000,
    jsCpuUsPerRun: cpu / runs,
    processCpuUsPerRun: (processCpu.user + processCpu.system) / runs,
    loopDelayP99Ms: delay.percentile(99) / 1e6,
  };
}

/** "CPU model, N cores, M GiB RAM, Node.js vX, linux R": the line every report carries. */
export function hardwareSummary(): string {
  let model = os.cpus()[0]?.model ?? 'unknown CPU';
  try {
    const lscpu = execFileSync('lscpu', { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    model = /Model name:\s*(.+)/.exec(lscpu)?.[1]?.trim() ?? model;
  } catch {
    // lscpu is optional; os.cpus() names the model too.
  }
  return `${model}, ${os.availableParallelism()} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node.js ${process.version}, ${os.platform()} ${os.release()}`;
}

/** A number with `digits` decimals, or an em dash when it is not finite. */
export function formatNumber(n: number, digits = 1): string {
  return Number.isFinite(n) ? n.toFixed(digits) : '—';
}
