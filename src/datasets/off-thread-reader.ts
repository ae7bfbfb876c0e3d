/**
 * Runs dataset reads on a worker thread (dataset-worker.ts), so that parsing a large file or a large query
 * result and collecting its rows never holds the JavaScript thread that serves requests. The rows come back as
 * typed arrays whose buffers are transferred, not copied. One worker per process, started on first use,
 * unref'd so that it never keeps the process alive; reads run on it concurrently. Errors keep their code and
 * message; a cancelled read is cancelled there too.
 *
 * File reads are self-contained jobs. A PostgreSQL source lives on the worker (its connection pool, its
 * table plan) under a process-unique id; every request carries the source's config, so that a worker that
 * failed and was replaced opens the source again on its next load.
 */
import { Worker } from 'node:worker_threads';
import { ForecastdError, type ErrorCode } from '../errors.js';
import type { FileReadJob, PostgresLoadJob } from './reader-jobs.js';
import type { LoadedRows } from './types.js';

export type { FileReadJob, PostgresLoadJob } from './reader-jobs.js';

export type DatasetJob =
  | { readonly kind: 'file'; readonly read: FileReadJob }
  | { readonly kind: 'postgres-load'; readonly load: PostgresLoadJob }
  | { readonly kind: 'postgres-close'; readonly source: number }
  | { readonly kind: 'order'; readonly times: Float64Array; readonly rows: number };

export type WorkerRequest = { readonly id: number; readonly job: DatasetJob } | { readonly id: number; readonly cancel: true };

export type WorkerReply =
  | {
      readonly id: number;
      readonly ok: true;
      /** The rows read; the kept rows' order for an 'order' job; null for a job that reads none (closing a source). */
      readonly rows: LoadedRows | Uint32Array | null;
    }
  | { readonly id: number; readonly ok: false; readonly code: string | null; readonly message: string };

interface Pending {
  readonly resolve: (result: LoadedRows | Uint32Array | null) => void;
  readonly reject: (error: Error) => void;
  /** Prefixes messages about this job: the file, or `postgres:TABLE at ENDPOINT`. */
  readonly origin: string;
}

const WORKER_MODULE = new URL(`./dataset-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);

/** What the reader thread is started with (dataset-worker.ts reads it). */
export interface WorkerStart {
  /**
   * One Int32 the reader thread sets to 1 (and notifies) once DuckDB's background load has settled, loaded or
   * not. Until then, the process must not end: a thread stopped while DuckDB registers its native module
   * aborts the whole process (`terminate ... Napi::Error`, exit 134) or hangs it.
   */
  readonly preloadSettled: SharedArrayBuffer;
}

/**
 * The longest the process waits at exit for DuckDB's load to settle; the load takes well under a second
 * normally, this only keeps a broken installation from holding the exit forever.
 */
const EXIT_WAIT_MS = 30_000;

/** The flag of every reader thread started so far whose DuckDB load has not been seen settled. */
const preloading = new Set<Int32Array>();
let exitHooked = false;

/**
 * Holds the process's exit (any exit: process.exit(), the event loop running dry, an uncaught error) until
 * every reader thread's DuckDB load has settled. 'exit' listeners run before Node.js stops worker threads, and
 * the wait blocks only this thread: the reader thread finishes its load meanwhile.
 */
function holdExitForPreloads(): void {
  if (exitHooked) return;
  exitHooked = true;
  process.on('exit', () => {
    const deadline = Date.now() + EXIT_WAIT_MS;
    for (const flag of preloading) {
      const left = deadline - Date.now();
      if (left > 0) Atomics.wait(flag, 0, 0, left);
    }
  });
}

/**
 * The reader thread's V8 young generation, MiB. DuckDB's result chunks (a few hundred KiB of native memory
 * each) are freed only when V8 collects their small JavaScript wrappers; a young generation smaller than V8's
 * default is collected more often, so fewer finished chunks wait to be freed. On a 10,000,000 × 15 CSV the
 * load's peak fell from 1,445-1,448 to 1,436-1,438 MiB (npm run bench:dataset-load -- --only plain), within
 * SPEC's rows + process + 64 MiB (1,451 MiB there). csv-parse loads of 1,000,000 gzip rows took 9.9-13.2 s
 * against 7.5-10.0 s with the default, two runs each on a shared machine: within its noise, not proven equal.
 */
const READER_LIMITS = { maxYoungGenerationSizeMb: 8 } as const;

function startWorker(): Worker {
  const start: WorkerStart = { preloadSettled: new SharedArrayBuffer(4) };
  const flag = new Int32Array(start.preloadSettled);
  preloading.add(flag);
  holdExitForPreloads();
  let started: Worker;
  if (WORKER_MODULE.pathname.endsWith('.js')) {
    started = new Worker(WORKER_MODULE, { workerData: start, resourceLimits: READER_LIMITS });
  } else {
    // Running from TypeScript sources (tests, tsx): the worker loads them through tsx, as this thread does.
    const code = `import('tsx/esm/api').then((api) => { api.register(); return import(${JSON.stringify(WORKER_MODULE.href)}); })`;
    started = new Worker(code, { eval: true, workerData: start, resourceLimits: READER_LIMITS });
  }
  // A thread that ended (crashed, or its load settled and it later failed) has nothing left to wait for.
  started.once('exit', () => preloading.delete(flag));
  return started;
}

let worker: Worker | null = null;
let nextId = 1;
const pending = new Map<number, Pending>();

function fail(error: Error): void {
  const waiting = [...pending.values()];
  pending.clear();
  worker = null;
  for (const p of waiting) {
    p.reject(new ForecastdError('ERR_DATASET', `${p.origin}: the dataset reader thread failed: ${error.message}`, { cause: error }));
  }
}

function ensureWorker(): Worker {
  if (worker !== null) return worker;
  const started = startWorker();
  started.on('message', (reply: WorkerReply) => {
    const p = pending.get(reply.id);
    if (p === undefined) return;
    pending.delete(reply.id);
    if (pending.size === 0) started.unref();
    if (reply.ok) {
      p.resolve(reply.rows);
    } else if (reply.code !== null) {
      p.reject(new ForecastdError(reply.code as ErrorCode, reply.message));
    } else {
      p.reject(new ForecastdError('ERR_DATASET', `${p.origin}: ${reply.message}`));
    }
  });
  started.on('error', (error) => {
    if (worker === started) fail(error);
  });
  started.on('exit', (code) => {
    if (worker === started) fail(new Error(`it exited with code ${code}`));
  });
  // After the listeners: adding a 'message' listener refs the thread again.
  started.unref();
  worker = started;
  return started;
}

/**
 * Starts the reader thread ahead of its first load, so that its start (and DuckDB's) overlaps the server's
 * own start instead of adding to the first load. Unref'd like the thread itself: it keeps nothing alive.
 */
export function warmFileReader(): void {
  ensureWorker();
}

/**
 * Runs `job` on the reader thread. With a signal, an abort rejects at once with `cancelled()` (even while the
 * reader thread waits on a pipe nobody writes, or on a database); the reader stops there and its late answer
 * is dropped.
 */
function runOffThread(
  job: DatasetJob,
  origin: string,
  signal: AbortSignal | null,
  cancelled: () => Error,
  transfer: readonly ArrayBuffer[] = [],
): Promise<LoadedRows | Uint32Array | null> {
  if (signal?.aborted === true) return Promise.reject(cancelled());
  const thread = ensureWorker();
  const id = nextId++;
  return new Promise<LoadedRows | Uint32Array | null>((resolve, reject) => {
    const onAbort = (): void => {
      if (!pending.delete(id)) return;
      if (pending.size === 0) thread.unref();
      thread.postMessage({ id, cancel: true } satisfies WorkerRequest);
      reject(cancelled());
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    const settle = <T>(fn: (value: T) => void) => (value: T): void => {
      signal?.removeEventListener('abort', onAbort);
      fn(value);
    };
    pending.set(id, { resolve: settle(resolve), reject: settle(reject), origin });
    // Referenced while a job is in flight, so that awaiting it keeps the process alive like any read.
    thread.ref();
    thread.postMessage({ id, job } satisfies WorkerRequest, [...transfer]);
  });
}

function rowsOf(result: LoadedRows | Uint32Array | null, origin: string): LoadedRows {
  if (result === null || result instanceof Uint32Array) {
    throw new ForecastdError('ERR_DATASET', `${origin}: the dataset reader thread answered a load without rows`);
  }
  return result;
}

/** Reads `job` on the reader thread; rejects as the reader would (ERR_DATASET naming the file). */
export async function readOffThread(job: FileReadJob, signal: AbortSignal): Promise<LoadedRows> {
  const origin = job.spec.origin;
  const cancelled = (): Error => new ForecastdError('ERR_DATASET', `${origin}: loading was cancelled`);
  return rowsOf(await runOffThread({ kind: 'file', read: job }, origin, signal, cancelled), origin);
}

/**
 * Loads rows of a PostgreSQL source on the reader thread. `origin` (`postgres:TABLE at ENDPOINT`) prefixes
 * the messages made here: cancellation and a failed reader thread.
 */
export async function loadPostgresOffThread(load: PostgresLoadJob, origin: string, signal: AbortSignal): Promise<LoadedRows> {
  const cancelled = (): Error => new ForecastdError('ERR_DATASET', `${origin}: the load was cancelled`);
  return rowsOf(await runOffThread({ kind: 'postgres-load', load }, origin, signal, cancelled), origin);
}

/** Closes a PostgreSQL source's connections on the reader thread; nothing to do when that thread is not running. */
export async function closePostgresOffThread(source: number, origin: string): Promise<void> {
  if (worker === null) return;
  await runOffThread({ kind: 'postgres-close', source }, origin, null, () => new Error('not cancellable'));
}

/**
 * The order rows out of order are to be kept in (see timeOrder), worked out on the reader thread, so that
 * sorting them never holds the serving thread. `times` is transferred there: it must be the caller's own copy,
 * and is unusable here afterwards. Only the times cross, not the values.
 */
export async function timeOrderOffThread(times: Float64Array, rows: number, origin: string, signal: AbortSignal): Promise<Uint32Array> {
  const cancelled = (): Error => new ForecastdError('ERR_DATASET', `${origin}: loading was cancelled`);
  const order = await runOffThread({ kind: 'order', times, rows }, origin, signal, cancelled, [times.buffer as ArrayBuffer]);
  if (!(order instanceof Uint32Array)) throw new ForecastdError('ERR_DATASET', `${origin}: the dataset reader thread answered an ordering without one`);
  return order;
}
