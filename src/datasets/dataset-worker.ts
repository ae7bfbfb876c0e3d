/**
 * The dataset reader thread (see off-thread-reader.ts): reads each file it is asked for with the dataset
 * readers, and runs the queries of PostgreSQL sources (each with its own connection pool, kept here between
 * loads), and hands the rows back, their buffers transferred. Runs only inside a worker.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { ForecastdError } from '../errors.js';
import { preloadDuckDb } from './duckdb-csv-reader.js';
import { readFileRows } from './file-source.js';
import { timeOrder } from './snapshot.js';
import type { DatasetJob, PostgresLoadJob, WorkerReply, WorkerRequest, WorkerStart } from './off-thread-reader.js';
import type { PostgresSource } from './postgres-config.js';
import type { LoadedRows } from './types.js';

const port = parentPort;
if (port === null) throw new Error('dataset-worker runs inside a worker thread');

const running = new Map<number, AbortController>();
const sources = new Map<number, PostgresSource>();

// The thread is started ahead of its first load (warmFileReader): DuckDB's binary loads meanwhile. The
// process holds its exit until this has settled (see WorkerStart), so the flag is set however it ends.
const preloadSettled = new Int32Array((workerData as WorkerStart).preloadSettled);
void preloadDuckDb().finally(() => {
  Atomics.store(preloadSettled, 0, 1);
  Atomics.notify(preloadSettled, 0);
});

let postgresModule: Promise<typeof import('./postgres-table.js')> | null = null;

/**
 * The PostgreSQL table module (and pg), loaded on the first PostgreSQL job: a pod of files never waits for
 * it, and this thread's start, which the first CSV load waits for, is shorter. Every PostgreSQL job awaits
 * the same promise before it touches `sources`, so they still run in the order they came.
 */
function postgresTables(): Promise<typeof import('./postgres-table.js')> {
  postgresModule ??= import('./postgres-table.js');
  return postgresModule;
}

function postgresSource(load: PostgresLoadJob, open: (typeof import('./postgres-table.js'))['openPostgresTable']): PostgresSource {
  let source = sources.get(load.source);
  if (source === undefined) {
    source = open(load.config);
    sources.set(load.source, source);
  }
  return source;
}

async function run(job: DatasetJob, signal: AbortSignal): Promise<LoadedRows | Uint32Array | null> {
  switch (job.kind) {
    case 'file':
      return readFileRows(job.read, signal);
    case 'postgres-load': {
      const { load } = job;
      const source = postgresSource(load, (await postgresTables()).openPostgresTable);
      const options = { notBeforeMs: load.notBeforeMs };
      return load.afterMs === null ? source.loadAll(signal, options) : source.loadNewerThan(load.afterMs, signal, options);
    }
    case 'order':
      return timeOrder(job.times, job.rows);
    case 'postgres-close': {
      await postgresTables();
      const source = sources.get(job.source);
      sources.delete(job.source);
      await source?.close();
      return null;
    }
  }
}

port.on('message', (request: WorkerRequest) => {
  if ('cancel' in request) {
    running.get(request.id)?.abort();
    return;
  }
  const controller = new AbortController();
  running.set(request.id, controller);
  run(request.job, controller.signal).then(
    (rows) => {
      running.delete(request.id);
      const reply: WorkerReply = { id: request.id, ok: true, rows };
      const transfer = rows === null ? [] : rows instanceof Uint32Array ? [rows.buffer as ArrayBuffer] : [rows.times.buffer as ArrayBuffer, rows.values.buffer as ArrayBuffer];
      port.postMessage(reply, transfer);
    },
    (error: unknown) => {
      running.delete(request.id);
      const reply: WorkerReply =
        error instanceof ForecastdError
          ? { id: request.id, ok: false, code: error.code, message: error.message }
          : { id: request.id, ok: false, code: null, message: error instanceof Error ? error.message : String(error) };
      port.postMessage(reply);
    },
  );
});
