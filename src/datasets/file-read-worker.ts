/**
 * The file reader thread (see off-thread-reader.ts): reads each file it is asked for with the dataset readers
 * and hands the rows back, their buffers transferred. Runs only inside a worker.
 */
import { parentPort } from 'node:worker_threads';
import { ForecastdError } from '../errors.js';
import { readFileRows } from './file-source.js';
import type { WorkerReply, WorkerRequest } from './off-thread-reader.js';

const port = parentPort;
if (port === null) throw new Error('file-read-worker runs inside a worker thread');

const running = new Map<number, AbortController>();

port.on('message', (request: WorkerRequest) => {
  if ('cancel' in request) {
    running.get(request.id)?.abort();
    return;
  }
  const controller = new AbortController();
  running.set(request.id, controller);
  const { job } = request;
  readFileRows(job, controller.signal).then(
    (rows) => {
      running.delete(request.id);
      const reply: WorkerReply = { id: request.id, ok: true, ...rows };
      port.postMessage(reply, [rows.times.buffer as ArrayBuffer, rows.values.buffer as ArrayBuffer]);
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
