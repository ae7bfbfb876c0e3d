/**
 * Runs file readers on a worker thread, so that parsing a large file and collecting its rows never holds the
 * JavaScript thread that serves requests. The rows come back as typed arrays whose buffers are transferred,
 * not copied. One worker per process, started on first use, unref'd so that it never keeps the process alive;
 * loads run on it concurrently. Errors keep their code and message; a cancelled load is cancelled there too.
 */
import { Worker } from 'node:worker_threads';
import { ForecastdError, type ErrorCode } from '../errors.js';
import type { FileReadJob } from './file-source.js';
import type { LoadedRows } from './types.js';

export type WorkerRequest = { readonly id: number; readonly job: FileReadJob } | { readonly id: number; readonly cancel: true };

export type WorkerReply =
  | {
      readonly id: number;
      readonly ok: true;
      readonly columns: readonly string[];
      readonly times: Float64Array;
      readonly values: Float64Array;
      readonly rows: number;
    }
  | { readonly id: number; readonly ok: false; readonly code: string | null; readonly message: string };

interface Pending {
  readonly resolve: (rows: LoadedRows) => void;
  readonly reject: (error: Error) => void;
  readonly origin: string;
}

const WORKER_MODULE = new URL(`./file-read-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);

function startWorker(): Worker {
  if (WORKER_MODULE.pathname.endsWith('.js')) return new Worker(WORKER_MODULE);
  // Running from TypeScript sources (tests, tsx): the worker loads them through tsx, as this thread does.
  const code = `import('tsx/esm/api').then((api) => { api.register(); return import(${JSON.stringify(WORKER_MODULE.href)}); })`;
  return new Worker(code, { eval: true });
}

let worker: Worker | null = null;
let nextId = 1;
const pending = new Map<number, Pending>();

function fail(error: Error): void {
  const waiting = [...pending.values()];
  pending.clear();
  worker = null;
  for (const p of waiting) {
    p.reject(new ForecastdError('ERR_DATASET', `${p.origin}: the file reader thread failed: ${error.message}`, { cause: error }));
  }
}

function ensureWorker(): Worker {
  if (worker !== null) return worker;
  const started = startWorker();
  started.unref();
  started.on('message', (reply: WorkerReply) => {
    const p = pending.get(reply.id);
    if (p === undefined) return;
    pending.delete(reply.id);
    if (pending.size === 0) started.unref();
    if (reply.ok) {
      p.resolve({ columns: reply.columns, times: reply.times, values: reply.values, rows: reply.rows });
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
  worker = started;
  return started;
}

/** Reads `job` on the reader thread; rejects as the reader would (ERR_DATASET naming the file). */
export function readOffThread(job: FileReadJob, signal: AbortSignal): Promise<LoadedRows> {
  if (signal.aborted) {
    return Promise.reject(new ForecastdError('ERR_DATASET', `${job.spec.origin}: loading was cancelled`));
  }
  const thread = ensureWorker();
  const id = nextId++;
  return new Promise<LoadedRows>((resolve, reject) => {
    // The caller hears of the cancellation at once, even while the reader thread waits on the file (a pipe
    // that nobody writes); the reader stops there and its late answer is dropped.
    const onAbort = (): void => {
      if (!pending.delete(id)) return;
      if (pending.size === 0) thread.unref();
      thread.postMessage({ id, cancel: true } satisfies WorkerRequest);
      reject(new ForecastdError('ERR_DATASET', `${job.spec.origin}: loading was cancelled`));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    const settle = <T>(fn: (value: T) => void) => (value: T): void => {
      signal.removeEventListener('abort', onAbort);
      fn(value);
    };
    pending.set(id, { resolve: settle(resolve), reject: settle(reject), origin: job.spec.origin });
    // Referenced while a load is in flight, so that awaiting it keeps the process alive like any read.
    thread.ref();
    thread.postMessage({ id, job } satisfies WorkerRequest);
  });
}
