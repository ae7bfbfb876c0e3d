import { performance } from 'node:perf_hooks';
import type { HttpRequest, HttpResponse, TemplatedApp, us_listen_socket } from 'uWebSockets.js';
import type { Logger } from '../log.js';
import { Cancellation } from '../runtime/cancellation.js';
import type { RouteLabel, ServerMetrics } from '../metrics.js';
import { ApiKeyCheck } from './auth.js';
import { FailureLog } from './failure-log.js';
import { errorMessage, ForecastdError } from '../errors.js';
import { statusLine } from './errors.js';
import { listenExclusive, listenFailure } from './listen.js';
import { ConnectionLimit } from './connection-limit.js';
import { createConnectionGate } from '../runtime/runtime.js';
import type { ApiStatus } from './errors.js';
import { entryNameFromUrl, modelNameFromUrl, parsePredictRequest } from './predict-request.js';
import { answerForecast, kserveErrorBody, timeseriesModelsBody } from './routes/kserve.js';
import { parseSeriesBody } from './routes/series-body.js';
import { parseInclude } from './routes/spice.js';
import {
  datasetsJson,
  errorBody,
  evaluationJson,
  modelDetailsJson,
  modelsCsv,
  modelsJson,
  predictResponseBody,
  predictErrorMessage,
  predictHttp,
  predictManyBody,
} from './responses.js';
import type { TimedOutcome } from './responses.js';
import type { DrawKeys, IncludeOptions, PredictOutcome, ServingBackend } from './types.js';
import { DashboardAssets } from './routes/dashboard.js';
import type { StaticAnswer, StaticRequest } from './routes/dashboard.js';
import { datasetRowsPieces, parseLastRows } from './routes/dataset-rows.js';
import { openApiJson } from './openapi.js';
import { assertNativeUws, uWS } from './uws.js';

/** Largest POST body accepted; a larger one is answered 413 as soon as it is known. */
export const MAX_BODY_BYTES = 1024 * 1024;

/** Largest POST /v1/timeseries/forecast body (SPEC: 4 MiB). */
export const MAX_SERIES_BODY_BYTES = 4 * 1024 * 1024;

/** KServe's error `type` for the shared statuses, on the /v1/timeseries routes. */
const KSERVE_TYPE: Readonly<Record<ApiStatus, string>> = {
  Success: 'success',
  BadRequest: 'invalid_request',
  InternalError: 'internal_error',
  NotFound: 'not_found',
  MethodNotAllowed: 'method_not_allowed',
  Unauthorized: 'unauthorized',
  PayloadTooLarge: 'payload_too_large',
};

/**
 * Longest request target (path and query) answered; a longer one is 400. uWebSockets.js itself takes header
 * blocks of hundreds of kilobytes, and no route here needs more than a model name.
 */
export const MAX_URL_LENGTH = 8192;

/**
 * A 413 asks the client to close (Connection: close) instead of closing at once: uWebSockets.js closes hard, and
 * a client still uploading would then get a reset that destroys the 413 before it reads it. The rest of the
 * body is read and dropped (no memory kept) until the client closes, or the idle timeout of uWebSockets.js
 * (about 10 s without enough data) closes the connection.
 */
const LINGERING_CLOSE: readonly (readonly [string, string])[] = [['connection', 'close']];

const NO_HEADERS: readonly (readonly [string, string])[] = [];

/** A request that carries nothing a variants entry draws by (the pod has no sticky variants). */
const NO_DRAW_KEYS: DrawKeys = { apiKey: null, headers: new Map() };

const BEARER_TOKEN = /^Bearer[ \t]+(.+)$/i;

/**
 * What the pod's variants entries draw by, read while the request is alive (uWebSockets.js frees it when the
 * handler returns): the API key (X-API-Key, else the Bearer token) and the headers `sticky` names.
 */
function drawKeys(req: HttpRequest, names: readonly string[]): DrawKeys {
  if (names.length === 0) return NO_DRAW_KEYS;
  const headers = new Map<string, string>();
  for (const name of names) {
    const value = req.getHeader(name);
    if (value !== '') headers.set(name, value);
  }
  const xApiKey = headers.get('x-api-key') ?? '';
  const bearer = BEARER_TOKEN.exec(headers.get('authorization') ?? '');
  const apiKey = xApiKey !== '' ? xApiKey : bearer !== null ? (bearer[1] as string).trim() : null;
  return { apiKey, headers };
}

/** What a static file's answer depends on in the request. */
function cacheRequest(req: HttpRequest): StaticRequest {
  return { acceptEncoding: req.getHeader('accept-encoding'), ifNoneMatch: req.getHeader('if-none-match') };
}

/** The outcome of a backend call that rejected against its promise. */
function backendFailure(name: string, error: unknown): PredictOutcome {
  return {
    kind: 'failure',
    model: { name, version: null, lookback: null },
    reason: 'ERR_INFERENCE',
    message: 'the prediction failed unexpectedly; the server log has the details',
    detail: errorMessage(error),
  };
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

const JSON_TYPE = 'application/json';
// Written on every answer: bytes, so uWebSockets.js need not convert a string each time.
const JSON_TYPE_BYTES = Buffer.from(JSON_TYPE);
const CONTENT_TYPE_HEADER = Buffer.from('content-type');
const REQUEST_ID_HEADER = Buffer.from('x-request-id');
const TEXT_TYPE = 'text/plain; charset=utf-8';
const CSV_TYPE = 'text/csv; charset=utf-8';

/** Bytes of a streamed answer held for one connection at most (SPEC "Nothing holds the event loop long"). */
export const DEFAULT_WRITE_BUFFER_BYTES = 1024 * 1024;

/** The smallest write buffer accepted. */
export const MIN_WRITE_BUFFER_BYTES = 1024;

/** A client that takes no byte of a streamed answer for this long is disconnected. */
export const DEFAULT_WRITE_STALL_MS = 30_000;

/** Largest piece of a streamed answer made at once: well under a millisecond of work. */
const STREAM_PIECE_BYTES = 64 * 1024;

/** Longest a streamed answer holds the event loop before letting other work run. */
const STREAM_SLICE_MS = 4;

/** Answers longer than this (in characters) are written through the streamed path. */
const LARGE_ANSWER_CHARS = 256 * 1024;

/** `text` in pieces of about `pieceChars` characters, never splitting a surrogate pair. */
function* stringPieces(text: string, pieceChars: number): Generator<string, void, undefined> {
  for (let start = 0; start < text.length; ) {
    let end = Math.min(text.length, start + pieceChars);
    const last = text.charCodeAt(end - 1);
    if (end < text.length && last >= 0xd800 && last <= 0xdbff) end--;
    yield text.slice(start, end);
    start = end;
  }
}

/** What is written to a connection whose buffer is full, so that its socket is tried again. */
const STREAM_TRICKLE_BYTES = 64;

/** The size line and line ends of one chunk of a chunked answer, at most. */
const CHUNK_FRAMING_BYTES = 16;

export interface HttpServerOptions {
  readonly backend: ServingBackend;
  readonly metrics: ServerMetrics;
  readonly logger: Logger;
  /** API keys from runtime.auth; null = no auth. */
  readonly apiKeys: readonly string[] | null;
  readonly maxBodyBytes?: number;
  /** At most this many bytes of a large answer are held for a connection that does not read. Default 1 MiB. */
  readonly writeBufferBytes?: number;
  /** A connection that takes nothing of a large answer for this long is closed, in ms. Default 30,000. */
  readonly writeStallMs?: number;
}

/** The settings a streamed answer runs under. */
interface StreamLimits {
  readonly pieceBytes: number;
  /** What uWebSockets.js may hold for one connection (the write buffer less one piece, held here). */
  readonly bufferBytes: number;
  readonly stallMs: number;
}

/** A client-supplied request id is echoed when it looks like one; anything else gets a fresh id. */
const REQUEST_ID = /^[\w.:\-]{1,128}$/;
const ID_PREFIX = process.pid.toString(36) + '-';

/**
 * One request/response pair. uWebSockets.js invalidates `req` when the handler returns and forbids writing
 * to a response after its client went away, so everything is read up front and every write goes through
 * `send`, which does nothing once the exchange is finished or aborted.
 */
class Exchange {
  aborted = false;
  finished = false;
  /** The request target has a query string (without one, no query parameter needs looking up). */
  hasQuery = false;
  /** The handler returned without answering: writes need their own cork, and the abort handler is attached. */
  private async = false;
  /** A streamed answer is under way: its own code ends the exchange. */
  private streamStop: (() => void) | null = null;
  readonly start = performance.now();
  private cancellation: Cancellation | null = null;

  constructor(
    private readonly server: HttpServer,
    readonly res: HttpResponse,
    readonly route: RouteLabel,
    readonly requestId: string,
    readonly method: string,
    readonly url: string,
    /** A HEAD request: its response carries the headers and no body. */
    readonly head: boolean,
    /** A /v1/timeseries route: errors use KServe's body. */
    readonly kserve: boolean,
  ) {
    server.requestStarted();
  }

  /**
   * Called when the handler returned without answering: from then on the client may go away, and uWebSockets.js
   * must be told to say so (a response answered inside its handler never needs this).
   */
  goAsync(): void {
    if (this.finished || this.async) return;
    this.async = true;
    this.res.onAborted(() => {
      this.aborted = true;
      this.streamStop?.();
      this.cancellation?.abort();
      if (!this.finished) this.server.requestEnded(this, 0);
    });
  }

  /** Aborts when the client disconnects, so queued work for it can be dropped. */
  get signal(): Cancellation {
    this.cancellation ??= new Cancellation();
    return this.cancellation;
  }

  /** Whole milliseconds since the handler was entered. */
  elapsedMs(): number {
    return Math.floor(performance.now() - this.start);
  }

  send(
    httpStatus: number,
    contentType: string,
    body: string | Uint8Array,
    headers: readonly (readonly [string, string])[] = NO_HEADERS,
    closeConnection = false,
  ): void {
    if (this.finished || this.aborted) return;
    // A large answer already made (a KServe answer for 1000 series, say) is still written as the client drains
    // it, so a client that does not read holds at most the write buffer in uWebSockets.js, and is disconnected
    // after the stall time.
    if (typeof body === 'string' && body.length > LARGE_ANSWER_CHARS && !this.head && headers.length === 0 && !closeConnection) {
      this.stream(httpStatus, contentType, (pieceBytes) => stringPieces(body, pieceBytes));
      return;
    }
    this.finished = true;
    const close = closeConnection || this.server.draining;
    // Inside its handler the response is corked already; later, one cork makes the answer one write.
    if (this.async) this.res.cork(() => this.write(httpStatus, contentType, body, headers, close));
    else this.write(httpStatus, contentType, body, headers, close);
    this.server.requestEnded(this, httpStatus);
  }

  private write(httpStatus: number, contentType: string, body: string | Uint8Array, headers: readonly (readonly [string, string])[], close: boolean): void {
    const res = this.res;
    // uWebSockets.js writes "200 OK" itself when no status is given.
    if (httpStatus !== 200) res.writeStatus(statusLine(httpStatus));
    res.writeHeader(CONTENT_TYPE_HEADER, contentType === JSON_TYPE ? JSON_TYPE_BYTES : contentType);
    res.writeHeader(REQUEST_ID_HEADER, this.requestId);
    for (const [name, value] of headers) res.writeHeader(name, value);
    // A body after a HEAD response would be read by the client as the start of the next response; this
    // uWebSockets.js build writes nothing at all for endWithoutBody, so HEAD gets an empty body and a close.
    if (this.head) res.end('', true);
    else res.end(body, close);
  }

  /**
   * Answers with a body made piece by piece by `pieces`, as the client drains it (chunked): each step holds the
   * event loop for a few milliseconds at most, and what uWebSockets.js holds for the connection stays under
   * the server's write buffer setting: uWebSockets.js keeps whatever the socket did not take, and a write that
   * reports no backpressure means it holds nothing, so an upper bound of what it holds is kept here and only
   * as much is written as fits under the setting (a few bytes at a time when it is full, which is what makes
   * it drain). A client that takes nothing for the stall time is disconnected; one that does not read stalls
   * only itself.
   */
  stream(httpStatus: number, contentType: string, pieces: (pieceBytes: number) => Iterator<string>): void {
    if (this.finished || this.aborted) return;
    const limits = this.server.streamLimits;
    const source = pieces(limits.pieceBytes);
    const first = source.next();
    const second = first.done === true ? first : source.next();
    // One piece is the whole body: answered as any other.
    if (first.done === true || second.done === true || this.head) {
      this.send(httpStatus, contentType, first.done === true || this.head ? '' : first.value);
      return;
    }
    const res = this.res;
    const budget = limits.bufferBytes;
    let stopped = false;
    const queued: string[] = [first.value, second.value];
    let current: Buffer | null = null;
    // At least what uWebSockets.js holds for this connection: 0 after a write without backpressure.
    let held = 0;
    let stallTimer: NodeJS.Timeout | null = null;
    const disarm = (): void => {
      if (stallTimer !== null) clearTimeout(stallTimer);
      stallTimer = null;
    };
    const arm = (): void => {
      disarm();
      stallTimer = setTimeout(() => {
        stallTimer = null;
        if (stopped) return;
        this.server.streamStalled(this, limits.stallMs);
        // Runs onAborted, which ends the exchange.
        res.close();
      }, limits.stallMs);
      stallTimer.unref();
    };
    const stop = (): void => {
      stopped = true;
      disarm();
      this.streamStop = null;
    };
    this.streamStop = stop;
    const next = (): Buffer | null => {
      const piece = queued.length > 0 ? queued.shift()! : source.next();
      if (typeof piece === 'string') return Buffer.from(piece);
      return piece.done === true ? null : Buffer.from(piece.value);
    };
    // Writes until uWebSockets.js reports backpressure (onWritable goes on), the body ends, or the slice is used.
    const pump = (): void => {
      if (stopped) return;
      try {
        const until = performance.now() + STREAM_SLICE_MS;
        for (;;) {
          current ??= next();
          if (current === null) {
            stop();
            this.finished = true;
            res.end(undefined, this.server.draining);
            this.server.requestEnded(this, httpStatus);
            return;
          }
          let chunk = current;
          if (held + chunk.byteLength > budget) {
            // Full: a few bytes make uWebSockets.js try the socket with what it holds.
            chunk = current.subarray(0, Math.max(STREAM_TRICKLE_BYTES, budget - held));
          }
          current = chunk.byteLength === current.byteLength ? null : current.subarray(chunk.byteLength);
          if (res.write(chunk)) {
            held = 0;
          } else {
            held += chunk.byteLength + CHUNK_FRAMING_BYTES;
            arm();
            return;
          }
          if (performance.now() >= until) {
            setImmediate(() => {
              if (!stopped) res.cork(pump);
            });
            return;
          }
        }
      } catch (error) {
        stop();
        this.server.streamFailed(this, error);
        res.close();
      }
    };
    res.onWritable(() => {
      if (!stopped) {
        disarm();
        pump();
      }
      return true;
    });
    const begin = (): void => {
      if (httpStatus !== 200) res.writeStatus(statusLine(httpStatus));
      res.writeHeader(CONTENT_TYPE_HEADER, contentType === JSON_TYPE ? JSON_TYPE_BYTES : contentType);
      res.writeHeader(REQUEST_ID_HEADER, this.requestId);
      pump();
    };
    // After the handler returned (an awaited answer), writes must be corked, as send() does.
    if (this.async) res.cork(begin);
    else begin();
  }

  sendError(httpStatus: number, status: ApiStatus, message: string, headers: readonly (readonly [string, string])[] = [], closeConnection = false): void {
    const body = this.kserve ? kserveErrorBody(KSERVE_TYPE[status], message, null, httpStatus) : errorBody(status, message);
    this.send(httpStatus, JSON_TYPE, body, headers, closeConnection);
  }
}

type Handler = (ex: Exchange, req: HttpRequest) => void;

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

/** The HTTP API of SPEC "HTTP API" over uWebSockets.js. */
export class HttpServer {
  draining = false;
  /** Set when shutdown begins: /v1/ready answers 503 from then on, while requests are still served. */
  private unready = false;
  private readonly app: TemplatedApp;
  private readonly backend: ServingBackend;
  private readonly metrics: ServerMetrics;
  private readonly logger: Logger;
  private auth: ApiKeyCheck | null;
  private readonly maxBodyBytes: number;
  private readonly dashboard = DashboardAssets.load();
  private listenSocket: us_listen_socket | null = null;
  private address: ListenAddress | null = null;
  private connectionLimit: ConnectionLimit | null = null;
  private inFlight = 0;
  private idleWaiters: (() => void)[] = [];
  private nextId = 0;
  private readonly failureLog: FailureLog;
  readonly streamLimits: StreamLimits;

  constructor(options: HttpServerOptions) {
    assertNativeUws();
    this.backend = options.backend;
    this.metrics = options.metrics;
    this.logger = options.logger;
    this.auth = options.apiKeys === null ? null : new ApiKeyCheck(options.apiKeys);
    this.maxBodyBytes = options.maxBodyBytes ?? MAX_BODY_BYTES;
    this.failureLog = new FailureLog(options.logger);
    const writeBufferBytes = options.writeBufferBytes ?? DEFAULT_WRITE_BUFFER_BYTES;
    const writeStallMs = options.writeStallMs ?? DEFAULT_WRITE_STALL_MS;
    if (!Number.isInteger(writeBufferBytes) || writeBufferBytes < MIN_WRITE_BUFFER_BYTES) {
      throw new ForecastdError('ERR_INVALID_ARGUMENT', `writeBufferBytes must be a whole number of bytes >= ${MIN_WRITE_BUFFER_BYTES}, got ${writeBufferBytes}`);
    }
    if (!Number.isFinite(writeStallMs) || writeStallMs <= 0) {
      throw new ForecastdError('ERR_INVALID_ARGUMENT', `writeStallMs must be a number of milliseconds above 0, got ${writeStallMs}`);
    }
    const pieceBytes = Math.min(STREAM_PIECE_BYTES, Math.floor(writeBufferBytes / 4));
    this.streamLimits = { pieceBytes, bufferBytes: writeBufferBytes - pieceBytes, stallMs: writeStallMs };
    this.app = uWS.App();
    this.metrics.trackInFlight(() => this.inFlight);
    this.routes();
  }

  /** Replaces the API keys (a reloaded spicepod changed runtime.auth); null turns auth off. */
  setApiKeys(apiKeys: readonly string[] | null): void {
    this.auth = apiKeys === null ? null : new ApiKeyCheck(apiKeys);
  }

  /** Requests received and not yet answered or abandoned. */
  get pending(): number {
    return this.inFlight;
  }

  listen(host: string, port: number): Promise<ListenAddress> {
    return new Promise((resolve, reject) => {
      listenExclusive(this.app, host, port, (socket) => {
        if (socket === false) {
          void listenFailure(host, port).then(reject);
          return;
        }
        this.listenSocket = socket;
        const address = { host, port: uWS.us_socket_local_port(socket as unknown as Parameters<typeof uWS.us_socket_local_port>[0]) };
        this.address = address;
        resolve(address);
      });
    });
  }

  /**
   * Holds open connections to `max` (see ConnectionLimit): connections past it are reset as they arrive, and
   * the listen socket is closed so that new ones are refused; below 90% of it, the server listens on the same
   * address again.
   */
  limitConnections(max: number): void {
    this.connectionLimit?.stop();
    if (this.address === null) throw new Error('limitConnections needs a listening server');
    const limit = new ConnectionLimit(max, this.address.port, this.logger, {
      pause: () => {
        if (this.draining || this.listenSocket === null) return;
        uWS.us_listen_socket_close(this.listenSocket);
        this.listenSocket = null;
      },
      resume: async () => {
        // Draining for shutdown: not listening again, and nothing to gate (false keeps the limit paused).
        if (this.draining) return false;
        if (this.listenSocket !== null || this.address === null) return true;
        const { host, port } = this.address;
        return new Promise<boolean>((resolve) => {
          listenExclusive(this.app, host, port, (socket) => {
            if (socket === false) {
              this.logger.error({ host, port }, 'could not listen again after --max-connections was reached; trying again');
              resolve(false);
              return;
            }
            if (this.draining) uWS.us_listen_socket_close(socket);
            else this.listenSocket = socket;
            resolve(!this.draining);
          });
        });
      },
      gate: (limitTo) => {
        try {
          return createConnectionGate(limitTo);
        } catch (error) {
          this.logger.warn(
            { err: error, maxConnections: limitTo },
            'connections are counted from the kernel tables ten times a second: a burst may pass --max-connections until the next count',
          );
          return null;
        }
      },
    });
    limit.start();
    this.connectionLimit = limit;
  }

  /** Shutdown has begun: /v1/ready answers 503 (a load balancer stops sending), everything else still serves. */
  beginShutdown(): void {
    this.unready = true;
  }

  /** Closes the listen socket: no new connections; open ones still get answers, with Connection: close. */
  stopAccepting(): void {
    this.draining = true;
    this.connectionLimit?.stop();
    if (this.listenSocket !== null) {
      uWS.us_listen_socket_close(this.listenSocket);
      this.listenSocket = null;
    }
  }

  /** Resolves true once no request is in flight, false if `timeoutMs` passes first. */
  drain(timeoutMs: number): Promise<boolean> {
    if (this.inFlight === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.idleWaiters = this.idleWaiters.filter((w) => w !== done);
        resolve(false);
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      this.idleWaiters.push(done);
    });
  }

  /** Closes every connection at once (after draining, or when giving up on it). */
  closeConnections(): void {
    this.stopAccepting();
    // Present in this uWebSockets.js build, missing from its type declarations.
    (this.app as TemplatedApp & { close(): void }).close();
  }

  requestStarted(): void {
    this.inFlight++;
  }

  requestEnded(ex: Exchange, httpStatus: number): void {
    this.inFlight--;
    const seconds = (performance.now() - ex.start) / 1000;
    if (httpStatus !== 0) this.metrics.request(ex.route, httpStatus, seconds);
    if (this.logger.isLevelEnabled('debug')) {
      this.logger.debug(
        { reqId: ex.requestId, method: ex.method, url: ex.url, status: httpStatus || 'aborted', ms: seconds * 1000 },
        httpStatus === 0 ? 'client went away before the response' : 'request',
      );
    }
    if (this.inFlight === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** A streamed answer failed part-way: its connection is closed (its status line was sent long ago). */
  streamFailed(ex: Exchange, error: unknown): void {
    this.logger.error({ reqId: ex.requestId, err: error }, 'a streamed answer failed part-way; its connection is closed');
  }

  streamStalled(ex: Exchange, stallMs: number): void {
    this.metrics.stalledClient();
    this.logger.info({ reqId: ex.requestId, stallMs }, 'a client took nothing of its answer for the stall time; its connection is closed');
  }

  private requestId(req: HttpRequest): string {
    const given = req.getHeader('x-request-id');
    if (given !== '' && REQUEST_ID.test(given)) return given;
    return ID_PREFIX + (this.nextId++).toString(36);
  }

  /** Wraps a handler: request id, auth, and a 500 (never a crash) for anything it throws. */
  private handle(route: RouteLabel, needsAuth: boolean, handler: Handler, routeMethod: 'GET' | 'POST' | null = null) {
    return (res: HttpResponse, req: HttpRequest): void => {
      const debug = this.logger.isLevelEnabled('debug');
      // A GET or POST route's handler knows its method (only the debug log shows the client's own spelling).
      // getMethod() lower-cases the request's method in place, so the case-sensitive read comes first, and once.
      const method = routeMethod !== null && !debug ? routeMethod : req.getCaseSensitiveMethod();
      const ex = new Exchange(
        this,
        res,
        route,
        this.requestId(req),
        method,
        debug ? req.getUrl() : '',
        method === 'HEAD',
        route === '/v1/timeseries/forecast' || route === '/v1/timeseries/models',
      );
      // An exception escaping a uWebSockets.js handler would end the process: it is this request's 500 instead.
      try {
        // getQuery() is undefined when there is no query string, whatever its declared type says.
        const query: string | undefined = req.getQuery();
        ex.hasQuery = query !== undefined;
        const problem = this.malformed(req, needsAuth, query);
        if (problem !== null) {
          ex.sendError(400, 'BadRequest', problem, [], true);
          return;
        }
        if (needsAuth && this.auth !== null) {
          if (!this.auth.allows(req.getHeader('x-api-key'), req.getHeader('authorization'))) {
            ex.sendError(401, 'Unauthorized', 'Missing or invalid API key: send X-API-Key: KEY or Authorization: Bearer KEY', [
              ['www-authenticate', 'Bearer'],
            ]);
            return;
          }
        }
        handler(ex, req);
      } catch (error) {
        this.internalError(ex, error);
      }
      ex.goAsync();
    };
  }

  /**
   * What uWebSockets.js lets through but no route should act on: an over-long URL, and headers whose meaning
   * depends on which copy a reader takes (two Content-Lengths: uWebSockets.js reads the first, a proxy in front
   * may read the last; two credentials). The connection is closed after the 400, so nothing left over on it
   * is read as a next request.
   */
  private malformed(req: HttpRequest, needsAuth: boolean, query: string | undefined): string | null {
    const length = req.getUrl().length + (query === undefined ? 0 : query.length + 1);
    if (length > MAX_URL_LENGTH) {
      return `The request URL is ${length} characters long; at most ${MAX_URL_LENGTH} are accepted`;
    }
    const checkCredentials = needsAuth && this.auth !== null;
    if (!checkCredentials && req.getHeader('content-length') === '') return null;
    let contentLengths = 0;
    let apiKeys = 0;
    let authorizations = 0;
    req.forEach((name) => {
      if (name === 'content-length') contentLengths++;
      else if (name === 'x-api-key') apiKeys++;
      else if (name === 'authorization') authorizations++;
    });
    if (contentLengths > 1) return `The request has ${contentLengths} Content-Length headers; send one`;
    if (checkCredentials && apiKeys > 1) return `The request has ${apiKeys} X-API-Key headers; send one`;
    if (checkCredentials && authorizations > 1) return `The request has ${authorizations} Authorization headers; send one`;
    return null;
  }

  private internalError(ex: Exchange, error: unknown): void {
    this.logger.error({ reqId: ex.requestId, err: error }, 'request failed');
    ex.sendError(500, 'InternalError', `The server failed to answer this request; its log has the details (request id ${ex.requestId})`);
  }

  private routes(): void {
    const app = this.app;
    const get = (pattern: string, route: RouteLabel, needsAuth: boolean, handler: Handler): void => {
      app.get(pattern, this.handle(route, needsAuth, handler, 'GET'));
    };
    const post = (pattern: string, route: RouteLabel, handler: Handler): void => {
      app.post(pattern, this.handle(route, true, handler, 'POST'));
    };
    get('/health', '/health', false, (ex) => ex.send(200, TEXT_TYPE, 'ok'));
    get('/v1/ready', '/v1/ready', false, (ex) => {
      if (!this.unready && this.backend.ready()) ex.send(200, TEXT_TYPE, 'ready');
      else ex.send(503, TEXT_TYPE, 'not ready');
    });
    get('/metrics', '/metrics', true, (ex) => this.metricsText(ex));
    get('/v1/models', '/v1/models', true, (ex, req) => this.listModels(ex, req));
    get('/v1/datasets', '/v1/datasets', true, (ex) => ex.send(200, JSON_TYPE, datasetsJson(this.backend.datasets())));
    get('/v1/models/:name/predict', '/v1/models/:name/predict', true, (ex, req) => this.predictOne(ex, req));
    post('/v1/predict', '/v1/predict', (ex, req) => this.predictMany(ex, req));
    get('/v1/models/:name', '/v1/models/:name', true, (ex, req) => this.modelDetails(ex, req));
    get('/v1/models/:name/evaluation', '/v1/models/:name/evaluation', true, (ex, req) => this.modelEvaluation(ex, req));
    post('/v1/timeseries/forecast', '/v1/timeseries/forecast', (ex, req) => this.forecastSeries(ex, req));
    get('/v1/timeseries/models', '/v1/timeseries/models', true, (ex) => ex.send(200, JSON_TYPE, timeseriesModelsBody(this.backend)));
    get('/v1/datasets/:name/rows', '/v1/datasets/:name/rows', true, (ex, req) => this.datasetRows(ex, req));
    get('/openapi.json', '/openapi.json', false, (ex) => ex.send(200, JSON_TYPE, openApiJson()));
    get('/', '/', false, (ex, req) => this.sendStatic(ex, this.dashboard.page(this.auth !== null, cacheRequest(req))));
    get('/assets/:build/:file', '/assets/*', false, (ex, req) =>
      this.sendStatic(ex, this.dashboard.asset(req.getParameter(0), req.getParameter(1), cacheRequest(req))),
    );

    const allowed: readonly [string, RouteLabel, string][] = [
      ['/health', '/health', 'GET'],
      ['/v1/ready', '/v1/ready', 'GET'],
      ['/metrics', '/metrics', 'GET'],
      ['/v1/models', '/v1/models', 'GET'],
      ['/v1/datasets', '/v1/datasets', 'GET'],
      ['/v1/models/:name/predict', '/v1/models/:name/predict', 'GET'],
      ['/v1/predict', '/v1/predict', 'POST'],
      ['/v1/models/:name', '/v1/models/:name', 'GET'],
      ['/v1/models/:name/evaluation', '/v1/models/:name/evaluation', 'GET'],
      ['/v1/timeseries/forecast', '/v1/timeseries/forecast', 'POST'],
      ['/v1/timeseries/models', '/v1/timeseries/models', 'GET'],
      ['/v1/datasets/:name/rows', '/v1/datasets/:name/rows', 'GET'],
      ['/openapi.json', '/openapi.json', 'GET'],
      ['/', '/', 'GET'],
      ['/assets/:build/:file', '/assets/*', 'GET'],
    ];
    const open = new Set<RouteLabel>(['/health', '/v1/ready', '/openapi.json', '/', '/assets/*']);
    for (const [pattern, route, methods] of allowed) {
      const needsAuth = !open.has(route);
      app.any(
        pattern,
        this.handle(route, needsAuth, (ex, req) =>
          ex.sendError(405, 'MethodNotAllowed', `Method ${ex.method} is not allowed here; use ${methods}`, [
            ['allow', methods],
          ]),
        ),
      );
    }
    app.any(
      '/*',
      this.handle('unmatched', true, (ex, req) =>
        ex.sendError(404, 'NotFound', `No route for ${ex.method} ${req.getUrl()}`),
      ),
    );
  }

  private sendStatic(ex: Exchange, answer: StaticAnswer): void {
    if (answer.kind === 'missing') ex.sendError(404, 'NotFound', answer.message);
    else ex.send(answer.httpStatus, answer.contentType, answer.body, answer.headers);
  }

  private datasetRows(ex: Exchange, req: HttpRequest): void {
    const parsed = entryNameFromUrl(req.getParameter(0), 'dataset');
    if (!parsed.ok) {
      ex.sendError(400, 'BadRequest', parsed.message);
      return;
    }
    const last = parseLastRows(req.getQuery('last'));
    if (!last.ok) {
      ex.sendError(400, 'BadRequest', last.message);
      return;
    }
    const rows = this.backend.datasetRows(parsed.name, last.last);
    if (rows === null) ex.sendError(404, 'NotFound', `Dataset ${parsed.name} not found`);
    else ex.stream(200, JSON_TYPE, (pieceBytes) => datasetRowsPieces(parsed.name, rows, pieceBytes));
  }

  private metricsText(ex: Exchange): void {
    this.metrics
      .text()
      .then((text) => ex.send(200, this.metrics.contentType, text))
      .catch((error: unknown) => this.internalError(ex, error));
  }

  private listModels(ex: Exchange, req: HttpRequest): void {
    const statusParam = req.getQuery('status') ?? '';
    const format = (req.getQuery('format') ?? 'json').toLowerCase();
    if (statusParam !== '' && statusParam !== 'true' && statusParam !== 'false') {
      ex.sendError(400, 'BadRequest', `Query parameter status must be true or false, not '${statusParam}'`);
      return;
    }
    const withStatus = statusParam === 'true';
    const models = this.backend.models();
    if (format === 'json') ex.send(200, JSON_TYPE, modelsJson(models, withStatus));
    else if (format === 'csv') ex.send(200, CSV_TYPE, modelsCsv(models, withStatus));
    else ex.sendError(400, 'BadRequest', `Query parameter format must be json or csv, not '${format}'`);
  }

  /** The backend promises never to reject; should it, the failure still lands in this item. */
  private predict(name: string, signal: Cancellation, include: IncludeOptions, keys: DrawKeys): Promise<PredictOutcome> {
    return this.backend.predict(name, signal, include, keys).catch((error: unknown) => backendFailure(name, error));
  }

  private modelDetails(ex: Exchange, req: HttpRequest): void {
    const parsed = modelNameFromUrl(req.getParameter(0));
    if (!parsed.ok) {
      ex.sendError(400, 'BadRequest', parsed.message);
      return;
    }
    const details = this.backend.modelDetails(parsed.name);
    if (details === undefined) ex.sendError(404, 'NotFound', `Model ${parsed.name} not found`);
    else ex.send(200, JSON_TYPE, modelDetailsJson(details));
  }

  private modelEvaluation(ex: Exchange, req: HttpRequest): void {
    const parsed = modelNameFromUrl(req.getParameter(0));
    if (!parsed.ok) {
      ex.sendError(400, 'BadRequest', parsed.message);
      return;
    }
    const report = this.backend.evaluation(parsed.name);
    if (report === undefined) ex.sendError(404, 'NotFound', `Model ${parsed.name} not found`);
    else ex.send(200, JSON_TYPE, evaluationJson(report));
  }

  private predictOne(ex: Exchange, req: HttpRequest): void {
    const parsed = modelNameFromUrl(req.getParameter(0));
    if (!parsed.ok) {
      ex.sendError(400, 'BadRequest', parsed.message);
      return;
    }
    const include = parseInclude(ex.hasQuery ? req.getQuery('include') : undefined);
    if (typeof include === 'string') {
      ex.sendError(400, 'BadRequest', include);
      return;
    }
    const name = parsed.name;
    // One reaction for both outcomes (no promises chained per request); the answer is shaped inside a try, so
    // a fault there is this request's 500, never an unhandled rejection that ends the process.
    const answer = (outcome: PredictOutcome): void => {
      try {
        if (ex.aborted) return;
        const http = predictHttp(outcome);
        const body = predictResponseBody(outcome, ex.elapsedMs());
        if (http.httpStatus >= 500) this.logFailure(ex, name, outcome);
        ex.send(http.httpStatus, JSON_TYPE, body, http.retryAfter === null ? NO_HEADERS : [['retry-after', String(http.retryAfter)]]);
      } catch (error) {
        this.internalError(ex, error);
      }
    };
    const keys = drawKeys(req, this.backend.drawHeaders());
    // A cached prediction (or a model not ready) is answered here and now, without a promise.
    const now = this.backend.predictNow(name, include, keys);
    if (now !== undefined) answer(now);
    else this.backend.predict(name, ex.signal, include, keys).then(answer, (error: unknown) => answer(backendFailure(name, error)));
  }

  private logFailure(ex: Exchange, name: string, outcome: PredictOutcome): void {
    if (outcome.kind !== 'failure') return;
    this.failureLog.log(ex.requestId, name, outcome.reason, outcome.detail ?? predictErrorMessage(outcome) ?? '');
  }

  private predictMany(ex: Exchange, req: HttpRequest): void {
    const include = parseInclude(ex.hasQuery ? req.getQuery('include') : undefined);
    if (typeof include === 'string') {
      ex.sendError(400, 'BadRequest', include);
      return;
    }
    const keys = drawKeys(req, this.backend.drawHeaders());
    this.readBody(ex, req, this.maxBodyBytes, (bytes) => this.answerMany(ex, bytes, include, keys));
  }

  private forecastSeries(ex: Exchange, req: HttpRequest): void {
    const keys = drawKeys(req, this.backend.drawHeaders());
    this.readBody(ex, req, Math.max(this.maxBodyBytes, MAX_SERIES_BODY_BYTES), (bytes) => {
      parseSeriesBody(bytes)
        .then((parsed) => {
          if (ex.aborted) return undefined;
          if (!parsed.ok) {
            ex.send(400, JSON_TYPE, kserveErrorBody('invalid_request', parsed.message, null, 400));
            return undefined;
          }
          return answerForecast(this.backend, parsed.value, ex.signal, keys).then((answer) => {
            if (ex.aborted) return;
            ex.send(answer.httpStatus, JSON_TYPE, answer.body, answer.retryAfter === null ? NO_HEADERS : [['retry-after', String(answer.retryAfter)]]);
          });
        })
        .catch((error: unknown) => this.internalError(ex, error));
    });
  }

  /** Reads a request body of at most `limit` bytes (413 beyond it) and hands it over whole. */
  private readBody(ex: Exchange, req: HttpRequest, limit: number, then: (bytes: Buffer) => void): void {
    const declared = req.getHeader('content-length');
    if (declared !== '' && Number(declared) > limit) {
      ex.sendError(413, 'PayloadTooLarge', `The request body is ${declared} bytes; the limit is ${limit} bytes`, LINGERING_CLOSE);
      return;
    }
    const chunks: Buffer[] = [];
    let total = 0;
    ex.res.onData((chunk, isLast) => {
      if (ex.finished || ex.aborted) return;
      try {
        total += chunk.byteLength;
        if (total > limit) {
          chunks.length = 0;
          ex.sendError(413, 'PayloadTooLarge', `The request body is over the limit of ${limit} bytes`, LINGERING_CLOSE);
          return;
        }
        // uWebSockets.js reuses the chunk's memory after this callback returns: copy it.
        if (chunk.byteLength > 0) chunks.push(Buffer.from(new Uint8Array(chunk)));
        if (isLast) then(Buffer.concat(chunks, total));
      } catch (error) {
        // An exception escaping a uWebSockets.js callback would end the process.
        this.internalError(ex, error);
      }
    });
  }

  private answerMany(ex: Exchange, bytes: Buffer, include: IncludeOptions, keys: DrawKeys): void {
    let body: string;
    try {
      // A leading byte order mark is dropped (some clients write one); any other invalid UTF-8 is refused
      // rather than replaced, so a name never matches by accident.
      body = strictUtf8.decode(bytes);
    } catch {
      ex.sendError(400, 'BadRequest', 'The request body is not valid UTF-8 (JSON text must be UTF-8)');
      return;
    }
    const request = parsePredictRequest(body);
    if (!request.ok) {
      ex.sendError(400, 'BadRequest', request.message);
      return;
    }
    const names = request.names ?? this.backend.readyModelNames();
    const signal = ex.signal;
    // Each distinct model is computed once per request: a thousand items naming one model are one prediction.
    // A variants entry is the exception: each item is its own draw.
    const itemKeys = names.map((name, i) => (this.backend.drawsPerCall(name) ? `${name}\u0000${i}` : name));
    const distinct = new Map<string, { name: string; result: Promise<TimedOutcome>; index: number }>();
    itemKeys.forEach((key, i) => {
      if (distinct.has(key)) return;
      const name = names[i] as string;
      const dispatched = performance.now();
      const result = this.predict(name, signal, include, keys).then((outcome) => ({ outcome, durationMs: Math.floor(performance.now() - dispatched) }));
      distinct.set(key, { name, result, index: i });
    });
    Promise.all(itemKeys.map((key) => (distinct.get(key) as { result: Promise<TimedOutcome> }).result))
      .then((results) => {
        if (ex.aborted) return;
        for (const { name, index } of distinct.values()) {
          const outcome = results[index]!.outcome;
          if (predictHttp(outcome).httpStatus >= 500) this.logFailure(ex, name, outcome);
        }
        ex.send(200, JSON_TYPE, predictManyBody(results, ex.elapsedMs()));
      })
      .catch((error: unknown) => this.internalError(ex, error));
  }
}
