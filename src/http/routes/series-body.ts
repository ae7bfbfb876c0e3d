/**
 * Parsing POST /v1/timeseries/forecast bodies (up to 4 MiB) without holding the event loop: JSON.parse of a
 * large body costs tens of milliseconds of main-thread time, so bodies above SMALL_BODY_BYTES are decoded
 * and parsed on a worker thread, which also packs each series into a Float64Array (rows of a multivariate
 * series into one flat array) and transfers those buffers back instead of copying them. What comes back is
 * the parsed body with its series packed; client-series reads both forms.
 */
import { Worker } from 'node:worker_threads';

/** Bodies up to this size are parsed on the event loop: well under a millisecond. */
export const SMALL_BODY_BYTES = 64 * 1024;

/** Bodies nested deeper than this (objects and arrays, counted from the top) are refused before parsing. */
export const MAX_BODY_DEPTH = 64;

const TOO_DEEP = `The request body is nested deeper than ${MAX_BODY_DEPTH} levels`;

/**
 * Whether JSON text nests objects and arrays deeper than `limit` (brackets inside strings do not count).
 * Plain JavaScript with no closure, so the parser thread runs the same function from its source.
 */
function nestedDeeperThan(text: string, limit: number): boolean {
  // The regular expression engine skips the numbers and commas that make up most of a body.
  const special = /["\\[\]{}]/g;
  let depth = 0;
  let inString = false;
  let m: RegExpExecArray | null;
  while ((m = special.exec(text)) !== null) {
    const c = m[0];
    if (inString) {
      if (c === '\\') special.lastIndex++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '[' || c === '{') {
      if (++depth > limit) return true;
    } else if (c === ']' || c === '}') depth--;
  }
  return false;
}

export type ParsedBody = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly message: string };

/**
 * The worker's code: plain JavaScript evaluated as a worker script, no imports. Series whose values are all
 * numbers are packed; any other series is left as parsed, for client-series to name its first bad value.
 */
const PACK_SOURCE = `
function packSeries(value, transfer) {
  if (typeof value !== 'object' || value === null || !Array.isArray(value.inputs)) return;
  for (const input of value.inputs) {
    if (typeof input !== 'object' || input === null || !Array.isArray(input.series)) continue;
    const series = input.series;
    if (input.type === 'univariate_time_series') {
      let numeric = true;
      for (let i = 0; i < series.length; i++) if (typeof series[i] !== 'number') { numeric = false; break; }
      if (!numeric) continue;
      const data = Float64Array.from(series);
      input.series = data;
      transfer.push(data.buffer);
    } else if (input.type === 'multivariate_time_series') {
      const first = series[0];
      if (!Array.isArray(first) || first.length === 0) continue;
      const width = first.length;
      let regular = true;
      for (let t = 0; t < series.length && regular; t++) {
        const row = series[t];
        if (!Array.isArray(row) || row.length !== width) { regular = false; break; }
        for (let v = 0; v < width; v++) if (typeof row[v] !== 'number') { regular = false; break; }
      }
      if (!regular) continue;
      const data = new Float64Array(series.length * width);
      for (let t = 0; t < series.length; t++) for (let v = 0; v < width; v++) data[t * width + v] = series[t][v];
      input.series = { packed: 'rows', rows: series.length, width, data };
      transfer.push(data.buffer);
    }
  }
}
`;

const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
${PACK_SOURCE}
${nestedDeeperThan.toString()}
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });
parentPort.on('message', ({ id, bytes }) => {
  let text;
  try {
    text = decoder.decode(bytes);
  } catch {
    parentPort.postMessage({ id, ok: false, message: 'The request body is not valid UTF-8 (JSON text must be UTF-8)' });
    return;
  }
  if (nestedDeeperThan(text, ${MAX_BODY_DEPTH})) {
    parentPort.postMessage({ id, ok: false, message: ${JSON.stringify(TOO_DEEP)} });
    return;
  }
  let value;
  try {
    value = JSON.parse(text);
  } catch (error) {
    parentPort.postMessage({ id, ok: false, message: 'The request body is not valid JSON (' + (error && error.message) + ')' });
    return;
  }
  const transfer = [];
  packSeries(value, transfer);
  parentPort.postMessage({ id, ok: true, value }, transfer);
});
`;

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

interface WorkerReply {
  readonly id: number;
  readonly ok: boolean;
  readonly value?: unknown;
  readonly message?: string;
}

interface QueuedBody {
  readonly bytes: Uint8Array<ArrayBuffer>;
  readonly resolve: (reply: ParsedBody) => void;
}

/**
 * One worker thread for the process, started on the first large body; it never keeps the process alive. It is
 * handed one body at a time and the rest wait here, so a body that breaks the worker (one nested so deeply
 * that its parsed value cannot be posted back ends the thread) fails only itself: the worker is replaced and
 * the bodies behind it are parsed by the new one.
 */
export class BodyParser {
  private worker: Worker | null = null;

  /** `source` is the worker's script; the server's is WORKER_SOURCE. */
  constructor(private readonly source: string = WORKER_SOURCE) {}

  private nextId = 0;
  private inHand: { readonly id: number; readonly resolve: (reply: ParsedBody) => void } | null = null;
  private readonly waiting: QueuedBody[] = [];
  private waitingHead = 0;

  parse(bytes: Uint8Array): Promise<ParsedBody> {
    // The worker takes the memory over; a buffer that is a slice of a larger one (a pool) is copied first.
    const buffer = bytes.buffer;
    const whole = buffer instanceof ArrayBuffer && bytes.byteOffset === 0 && buffer.byteLength === bytes.byteLength;
    const owned = whole ? new Uint8Array(buffer) : Uint8Array.from(bytes);
    return new Promise((resolve) => {
      this.waiting.push({ bytes: owned, resolve });
      this.next();
    });
  }

  /** Hands the oldest waiting body to the worker when it holds none. */
  private next(): void {
    if (this.inHand !== null) return;
    if (this.waitingHead === this.waiting.length) {
      this.waiting.length = 0;
      this.waitingHead = 0;
      this.worker?.unref();
      return;
    }
    const body = this.waiting[this.waitingHead]!;
    this.waiting[this.waitingHead++] = undefined as unknown as QueuedBody;
    const worker = this.start();
    const id = this.nextId++;
    this.inHand = { id, resolve: body.resolve };
    worker.ref();
    worker.postMessage({ id, bytes: body.bytes }, [body.bytes.buffer]);
  }

  private start(): Worker {
    if (this.worker !== null) return this.worker;
    const worker = new Worker(this.source, { eval: true });
    worker.unref();
    worker.on('message', (reply: WorkerReply) => {
      const inHand = this.inHand;
      if (inHand === null || inHand.id !== reply.id) return;
      this.inHand = null;
      inHand.resolve(
        reply.ok ? { ok: true, value: reply.value } : { ok: false, message: reply.message ?? 'The request body could not be parsed' },
      );
      this.next();
    });
    const fail = (error: unknown): void => {
      if (this.worker !== worker) return;
      // Whatever stopped the worker, only the body it held fails; the next body starts a new worker.
      this.worker = null;
      const inHand = this.inHand;
      this.inHand = null;
      inHand?.resolve({ ok: false, message: `The request body could not be parsed: ${describeFailure(error)}` });
      this.next();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`the parser thread exited (${code})`)));
    this.worker = worker;
    return worker;
  }
}

/** Why the worker stopped, in the request's terms where it is known. */
function describeFailure(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  if (/call stack/i.test(message)) return 'it is nested too deeply to be read';
  return message;
}

const parser = new BodyParser();

/**
 * Decodes (strict UTF-8, a leading BOM dropped) and parses a JSON body: on the event loop for small bodies
 * (their series stay arrays), on the parser thread for larger ones (numeric series come back packed).
 */
export function parseSeriesBody(bytes: Buffer): Promise<ParsedBody> {
  if (bytes.byteLength > SMALL_BODY_BYTES) return parser.parse(bytes);
  let text: string;
  try {
    text = strictUtf8.decode(bytes);
  } catch {
    return Promise.resolve({ ok: false, message: 'The request body is not valid UTF-8 (JSON text must be UTF-8)' });
  }
  if (nestedDeeperThan(text, MAX_BODY_DEPTH)) return Promise.resolve({ ok: false, message: TOO_DEEP });
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return Promise.resolve({ ok: false, message: `The request body is not valid JSON (${error instanceof Error ? error.message : String(error)})` });
  }
  return Promise.resolve({ ok: true, value });
}
