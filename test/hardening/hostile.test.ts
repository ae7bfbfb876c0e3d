import { readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { uwsBuildFor } from '../../src/http/uws.js';
import { linearModel, linearReference, seededRandom, slowModel, uniformWeights } from '../../tools/onnx-builder.js';
import { REPO, servePod } from '../server/fixtures.js';
import { bodyJson, converse, request, sleep, type Conversation, type Sender } from './raw-http.js';

/**
 * Hostile input against a real server (real pod, real addon, real ONNX models, real data): each bad request
 * goes over its own raw socket and must get its documented status and body, or, where uWebSockets.js itself
 * drops malformed HTTP, a closed connection and not one byte. Meanwhile loops of good requests must all
 * succeed with the right forecast, and /health must stay up.
 *
 * The uWebSockets.js build depends on the Node.js (docs/deployment.md, "Node.js and glibc"): 20.30 on
 * Node.js 20, 20.57 on 22 and 24. 20.57 parses HTTP differently before forecastd sees a request; where its
 * outcome differs, the case says so in `on2057`.
 */
const UWS_2057 = uwsBuildFor(process.platform, process.arch, process.versions.modules)?.dependency === '@btc-vision/uwebsockets.js';

const LOOKBACK = 8;
const HORIZON = 3;
const random = seededRandom(42);
const WEIGHTS = uniformWeights(random, LOOKBACK * HORIZON, 0.05);
const BIAS = uniformWeights(random, HORIZON, 1);
const SLOW = { size: 256, depth: 1500, horizon: 2 } as const;

/** The latest LOOKBACK values of the co2 column, oldest first: the window every `lin` prediction reads. */
function latestWindow(): number[] {
  const lines = readFileSync(path.join(REPO, 'test/data/co2_weekly.csv'), 'utf8').trim().split('\n').slice(1);
  return lines.slice(-LOOKBACK).map((line) => Number(line.split(',')[1]));
}
const EXPECTED = Array.from(linearReference({ horizon: HORIZON, weights: WEIGHTS, bias: BIAS }, latestWindow()));

const POD = `
version: v1beta1
kind: Spicepod
name: hostile
datasets:
  - from: file:data/co2_weekly.csv
    name: co2
models:
  - from: file:models/lin.onnx
    name: lin
    datasets: [co2]
  - from: file:models/lin.onnx
    name: lin_uncached
    datasets: [co2]
    params:
      cache_predictions: false
  - from: file:models/slow.onnx
    name: slow
    datasets: [co2]
    params:
      cache_predictions: false
`;

// ---------------------------------------------------------------------------------------------------------
// The cases
// ---------------------------------------------------------------------------------------------------------

type Expected =
  /** One response with this status and exactly this JSON body (keys in this order); then the server closes. */
  | { readonly kind: 'json'; readonly status: number; readonly body: Record<string, unknown>; readonly headers?: Record<string, string> }
  /** No byte back: uWebSockets.js drops the request and closes the connection. */
  | { readonly kind: 'closed' }
  /** uWebSockets.js 20.57's own answer (a short HTML page, `Connection: close`), then the close. */
  | { readonly kind: 'refused'; readonly status: 400 | 431 | 505 }
  /** The client leaves early; all that counts is that the server goes on serving everyone else. */
  | { readonly kind: 'gone' };

interface HostileCase {
  readonly name: string;
  readonly send: Buffer | Sender;
  readonly expected: Expected;
  /** Where uWebSockets.js 20.57 (Node.js 22 and 24) answers otherwise. */
  readonly on2057?: Expected;
  /** On 20.57 the connection stays open after the answer until the client gives up (no idle cut-off). */
  readonly keptOpenOn2057?: boolean;
  /** Responses the server sends before the one checked (e.g. a 400 before a pipelined bad request is dropped). */
  readonly thenClosed?: boolean;
}

const shared = (status: number, word: string, message: string | RegExp, headers?: Record<string, string>): Expected => ({
  kind: 'json',
  status,
  body: { status: word, error_message: typeof message === 'string' ? message : expect.stringMatching(message) },
  ...(headers === undefined ? {} : { headers }),
});
const badRequest = (message: string | RegExp, headers?: Record<string, string>): Expected => shared(400, 'BadRequest', message, headers);
const notFound = (name: string): Expected => ({
  kind: 'json',
  status: 400,
  body: { status: 'BadRequest', error_message: `Model ${name} not found`, model_name: name, duration_ms: expect.any(Number) },
});
const notAllowed = (method: string, allow: string): Expected =>
  shared(405, 'MethodNotAllowed', `Method ${method} is not allowed here; use ${allow}`, { allow });
const tooLarge = (message: string | RegExp): Expected => shared(413, 'PayloadTooLarge', message, { connection: 'close' });
const CLOSED: Expected = { kind: 'closed' };
const REFUSED_400: Expected = { kind: 'refused', status: 400 };
const REFUSED_431: Expected = { kind: 'refused', status: 431 };
const REFUSED_505: Expected = { kind: 'refused', status: 505 };
const GONE: Expected = { kind: 'gone' };
const linSuccess = { status: 'Success', model_name: 'lin', lookback: LOOKBACK, prediction: expect.any(Array), duration_ms: expect.any(Number) };
const postOk = (predictions: readonly unknown[]): Expected => ({
  kind: 'json',
  status: 200,
  body: { duration_ms: expect.any(Number), predictions },
});

const get = (target: string, headers?: readonly string[]): Buffer => request('GET', target, headers === undefined ? {} : { headers });
const post = (body: string | Buffer, headers: readonly string[] = []): Buffer => request('POST', '/v1/predict', { body, headers });
const bytes = (...parts: (string | number[])[]): Buffer =>
  Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : Buffer.from(p))));
const NOT_JSON = /^The request body is not valid JSON \(.+\); expected \{"predictions": \[\{"model_name": "\.\.\."\}\]\}$/;
const MUST_BE_OBJECT = 'The request body must be a JSON object: {"predictions": [{"model_name": "..."}]}';
const MUST_BE_ARRAY = '"predictions" must be an array of {"model_name": "..."} objects';
const MAX_BODY = 1024 * 1024;

/** Sends `head`, then `total` bytes of body in 64 KiB pieces, stopping as soon as the server answers. */
function streamBody(head: string, total: number, chunked: boolean): Sender {
  return async (c) => {
    await c.write(head);
    const piece = Buffer.alloc(64 * 1024, 0x20);
    for (let sent = 0; sent < total && !c.answered(); sent += piece.length) {
      await c.write(chunked ? Buffer.concat([Buffer.from(piece.length.toString(16) + '\r\n'), piece, Buffer.from('\r\n')]) : piece);
      // Let the server's answer arrive between pieces, as a real uploader's event loop would.
      await sleep(1);
    }
  };
}

/** Writes `data` one byte at a time, `everyMs` apart, until the server closes the connection. */
function trickle(data: string, everyMs: number): Sender {
  return async (c) => {
    for (let i = 0; i < data.length && !c.closed(); i++) {
      await c.write(data[i]!);
      await sleep(everyMs);
    }
  };
}

/** Writes `data`, waits `afterMs`, then drops the connection without reading anything. */
function vanish(data: string | Buffer, afterMs: number, how: 'destroy' | 'end' = 'destroy'): Sender {
  return async (c) => {
    await c.write(data);
    await sleep(afterMs);
    if (how === 'end') c.socket.end();
    else c.socket.destroy();
  };
}

const deepArray = '['.repeat(100_000) + ']'.repeat(100_000);
const NAME_10K = 'm'.repeat(10 * 1024);

const CASES: readonly HostileCase[] = [
  // --- model names in the URL: looked up in the pod's table only, never used as a path ---
  { name: 'unknown model', send: get('/v1/models/nope/predict'), expected: notFound('nope') },
  { name: 'raw .. as model name', send: get('/v1/models/../predict'), expected: notFound('..') },
  { name: 'percent-encoded .. (%2e%2e)', send: get('/v1/models/%2e%2e/predict'), expected: notFound('..') },
  { name: 'encoded slash (%2F)', send: get('/v1/models/lin%2F..%2Flin/predict'), expected: notFound('lin/../lin') },
  { name: 'encoded path traversal', send: get('/v1/models/%2F..%2F..%2Fetc%2Fpasswd/predict'), expected: notFound('/../../etc/passwd') },
  { name: 'backslash traversal', send: get('/v1/models/..%5C..%5Cmodels%5Clin.onnx/predict'), expected: notFound('..\\..\\models\\lin.onnx') },
  { name: 'model file name instead of model name', send: get('/v1/models/lin.onnx/predict'), expected: notFound('lin.onnx') },
  { name: 'percent-encoded NUL', send: get('/v1/models/lin%00/predict'), expected: badRequest('The model name in the URL contains a control character') },
  { name: 'percent-encoded newline (log injection)', send: get('/v1/models/lin%0D%0AX-Injected:%201/predict'), expected: badRequest('The model name in the URL contains a control character') },
  { name: 'raw NUL byte in the URL', send: bytes('GET /v1/models/lin', [0], '/predict HTTP/1.1\r\nHost: x\r\n\r\n'), expected: CLOSED, on2057: REFUSED_505 },
  { name: 'invalid UTF-8, percent-encoded (%ff)', send: get('/v1/models/a%ffb/predict'), expected: badRequest('The model name in the URL is not valid percent-encoded UTF-8') },
  { name: 'overlong UTF-8 encoding of / (%c0%af)', send: get('/v1/models/%c0%af/predict'), expected: badRequest('The model name in the URL is not valid percent-encoded UTF-8') },
  { name: 'truncated percent escape', send: get('/v1/models/lin%2/predict'), expected: badRequest('The model name in the URL is not valid percent-encoded UTF-8') },
  { name: 'invalid UTF-8, raw bytes', send: bytes('GET /v1/models/a', [0xff, 0xfe], '/predict HTTP/1.1\r\nHost: x\r\n\r\n'), expected: badRequest('The model name in the URL holds bytes that are not printable ASCII; percent-encode them') },
  { name: 'raw UTF-8 (unencoded é)', send: bytes('GET /v1/models/caf', [0xc3, 0xa9], '/predict HTTP/1.1\r\nHost: x\r\n\r\n'), expected: badRequest('The model name in the URL holds bytes that are not printable ASCII; percent-encode them') },
  { name: 'encoded non-ASCII name', send: get('/v1/models/caf%C3%A9/predict'), expected: notFound('café') },
  { name: 'empty model name', send: get('/v1/models//predict'), expected: shared(404, 'NotFound', 'No route for GET /v1/models//predict') },
  { name: 'extra path segment', send: get('/v1/models/lin/predict/x'), expected: shared(404, 'NotFound', 'No route for GET /v1/models/lin/predict/x') },
  { name: 'very long URL (20 KB)', send: get(`/v1/models/${'a'.repeat(20_000)}/predict`), expected: badRequest('The request URL is 20019 characters long; at most 8192 are accepted', { connection: 'close' }) },
  { name: 'model name of 10 KB in the URL', send: get(`/v1/models/${NAME_10K}/predict`), expected: badRequest(`The request URL is ${NAME_10K.length + 19} characters long; at most 8192 are accepted`, { connection: 'close' }) },
  { name: 'very long query string', send: get(`/health?${'q'.repeat(9000)}`), expected: badRequest('The request URL is 9008 characters long; at most 8192 are accepted', { connection: 'close' }) },
  { name: 'query-string oddities on predict', send: get('/v1/models/lin/predict?&&=&%zz=%&a=1&a=2&status=%00'), expected: { kind: 'json', status: 200, body: linSuccess } },
  { name: 'status query neither true nor false', send: get('/v1/models?status=yes'), expected: badRequest("Query parameter status must be true or false, not 'yes'") },
  { name: 'NUL in the format query', send: get('/v1/models?format=%00'), expected: badRequest("Query parameter format must be json or csv, not '\u0000'") },
  { name: 'fragment in the request target', send: get('/health#frag'), expected: shared(404, 'NotFound', 'No route for GET /health#frag') },
  { name: 'absolute-form URL', send: get('http://localhost/health'), expected: CLOSED, on2057: REFUSED_505 },
  { name: 'request target without a leading slash', send: get('health'), expected: CLOSED, on2057: REFUSED_505 },
  { name: 'space inside the request target', send: get('/v1/models/a b/predict'), expected: CLOSED, on2057: REFUSED_505 },

  // --- methods ---
  { name: 'PATCH /v1/predict', send: request('PATCH', '/v1/predict', { body: '{}' }), expected: notAllowed('PATCH', 'POST') },
  { name: 'DELETE a model', send: request('DELETE', '/v1/models/lin/predict'), expected: notAllowed('DELETE', 'GET') },
  { name: 'PUT /health', send: request('PUT', '/health', { body: 'x' }), expected: notAllowed('PUT', 'GET') },
  { name: 'TRACE /v1/models', send: request('TRACE', '/v1/models'), expected: notAllowed('TRACE', 'GET') },
  { name: 'POST to a GET route', send: request('POST', '/v1/models/lin/predict', { body: '{}' }), expected: notAllowed('POST', 'GET') },
  { name: 'GET /v1/predict', send: get('/v1/predict'), expected: notAllowed('GET', 'POST') },
  { name: 'PATCH an unknown path', send: request('PATCH', '/nowhere'), expected: shared(404, 'NotFound', 'No route for PATCH /nowhere') },
  { name: 'PROPFIND (WebDAV)', send: request('PROPFIND', '/v1/models'), expected: CLOSED, on2057: notAllowed('PROPFIND', 'GET') },
  { name: 'garbage method', send: request('F@@!', '/health'), expected: CLOSED, on2057: notAllowed('F@@!', 'GET') },
  { name: 'lower-case method', send: request('get', '/health'), expected: CLOSED, on2057: notAllowed('get', 'GET') },
  { name: 'OPTIONS *', send: request('OPTIONS', '*'), expected: CLOSED, on2057: REFUSED_505 },
  { name: 'CONNECT tunnel', send: request('CONNECT', 'example.com:443'), expected: CLOSED, on2057: REFUSED_505 },

  // --- protocol framing ---
  { name: 'HTTP/1.0', send: bytes('GET /health HTTP/1.0\r\nHost: x\r\n\r\n'), expected: CLOSED, on2057: REFUSED_505 },
  { name: 'HTTP/2.0 in the request line', send: bytes('GET /health HTTP/2.0\r\nHost: x\r\n\r\n'), expected: CLOSED, on2057: REFUSED_505 },
  { name: 'no HTTP version', send: bytes('GET /health\r\nHost: x\r\n\r\n'), expected: CLOSED },
  { name: 'missing Host', send: request('GET', '/health', { host: false }), expected: CLOSED, on2057: REFUSED_400 },
  { name: 'bare LF line endings', send: bytes('GET /health HTTP/1.1\nHost: x\n\n'), expected: CLOSED, on2057: REFUSED_505 },
  { name: 'empty line before the request', send: bytes('\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n'), expected: CLOSED },
  { name: 'header line without a colon', send: get('/health', ['NoColonHere']), expected: CLOSED, on2057: REFUSED_400 },
  { name: 'space before the header colon', send: get('/health', ['X-Thing : 1']), expected: CLOSED, on2057: REFUSED_400 },
  { name: 'obsolete header line folding', send: get('/health', ['X-A: a', ' folded']), expected: CLOSED, on2057: REFUSED_400 },
  { name: 'NUL in a header value', send: get('/health', ['X-A: a\u0000b']), expected: CLOSED, on2057: REFUSED_400 },
  { name: 'control character in a header value', send: get('/health', ['X-A: a\u0001b']), expected: CLOSED, on2057: REFUSED_400 },
  { name: '200 headers', send: get('/health', Array.from({ length: 200 }, (_, i) => `X-H${i}: v`)), expected: CLOSED, on2057: REFUSED_431 },
  { name: 'very long header (16 KB) is read', send: get('/health', [`X-Big: ${'b'.repeat(16 * 1024)}`]), expected: { kind: 'json', status: 200, body: {} } },
  { name: 'header block of 1 MB', send: get('/health', [`X-Huge: ${'h'.repeat(1024 * 1024)}`]), expected: CLOSED, on2057: REFUSED_431 },
  { name: 'two Content-Length headers', send: bytes('POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n{}'), expected: badRequest('The request has 2 Content-Length headers; send one', { connection: 'close' }) },
  { name: 'two equal Content-Length headers', send: bytes('POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}'), expected: badRequest('The request has 2 Content-Length headers; send one', { connection: 'close' }) },
  { name: 'Content-Length on a GET, twice', send: bytes('GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\n'), expected: badRequest('The request has 2 Content-Length headers; send one', { connection: 'close' }) },
  { name: 'Content-Length and chunked together', send: bytes('POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n'), expected: CLOSED, on2057: REFUSED_400 },
  { name: 'unsupported Transfer-Encoding', send: bytes('POST /v1/predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n{}'), expected: CLOSED, on2057: REFUSED_400 },
  { name: 'chunk size not hex', send: bytes('POST /v1/predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n'), expected: CLOSED, on2057: REFUSED_400 },
  { name: 'negative chunk size', send: bytes('POST /v1/predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-2\r\n{}\r\n0\r\n\r\n'), expected: CLOSED, on2057: REFUSED_400 },
  { name: 'chunk size past 2^64', send: bytes('POST /v1/predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\n{}\r\n0\r\n\r\n'), expected: CLOSED, on2057: REFUSED_400 },
  { name: 'negative Content-Length', send: bytes('POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n{}'), expected: CLOSED, on2057: REFUSED_400 },
  { name: 'non-numeric Content-Length', send: bytes('POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: two\r\n\r\n{}'), expected: CLOSED, on2057: REFUSED_400 },
  { name: 'Content-Length past 2^64', send: bytes('POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n{}'), expected: CLOSED, on2057: REFUSED_400 },
  {
    name: 'Content-Length shorter than the body (rest read as a next request)',
    send: bytes('POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n{"predictions":[]}'),
    expected: badRequest(NOT_JSON),
  },
  { name: 'Content-Length longer than the body, then half-close', send: vanish(bytes('POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"predictions":[]}'), 20, 'end'), expected: CLOSED },
  { name: 'garbage pipelined after a good request', send: bytes('GET /health HTTP/1.1\r\nHost: x\r\n\r\nNOT HTTP AT ALL\r\n\r\n'), expected: { kind: 'json', status: 200, body: {} }, on2057: REFUSED_505 },
  { name: 'HEAD gets headers only', send: request('HEAD', '/v1/models'), expected: { kind: 'json', status: 405, body: {}, headers: { allow: 'GET', connection: 'close', 'content-length': '0' } } },

  // --- bodies of POST /v1/predict ---
  { name: 'malformed JSON', send: post('{"predictions": ['), expected: badRequest(NOT_JSON) },
  { name: 'truncated JSON', send: post('{"predictions":[{"model_name":"lin"}'), expected: badRequest(NOT_JSON) },
  { name: 'trailing garbage after JSON', send: post('{} x'), expected: badRequest(NOT_JSON) },
  { name: 'single-quoted JSON', send: post("{'predictions': []}"), expected: badRequest(NOT_JSON) },
  { name: 'trailing comma', send: post('{"predictions":[{"model_name":"lin"},]}'), expected: badRequest(NOT_JSON) },
  { name: 'JSON with a comment', send: post('{"predictions":[] /* all */}'), expected: badRequest(NOT_JSON) },
  { name: 'NaN literal', send: post('{"predictions":NaN}'), expected: badRequest(NOT_JSON) },
  { name: 'form-encoded body', send: post('predictions=lin', ['Content-Type: application/x-www-form-urlencoded']), expected: badRequest(NOT_JSON) },
  { name: 'raw NUL inside a JSON string', send: post(bytes('{"predictions":[{"model_name":"l', [0], 'in"}]}')), expected: badRequest(NOT_JSON) },
  { name: 'invalid UTF-8 inside a name', send: post(bytes('{"predictions":[{"model_name":"l', [0xff, 0xc0], 'in"}]}')), expected: badRequest('The request body is not valid UTF-8 (JSON text must be UTF-8)') },
  { name: 'UTF-16 body with its BOM', send: post(Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('{"predictions":[]}', 'utf16le')])), expected: badRequest('The request body is not valid UTF-8 (JSON text must be UTF-8)') },
  { name: 'UTF-16 body without a BOM', send: post(Buffer.from('{"predictions":[]}', 'utf16le')), expected: badRequest(NOT_JSON) },
  { name: 'JSON array body', send: post('[]'), expected: badRequest(MUST_BE_OBJECT) },
  { name: 'JSON string body', send: post('"lin"'), expected: badRequest(MUST_BE_OBJECT) },
  { name: 'JSON null body', send: post('null'), expected: badRequest(MUST_BE_OBJECT) },
  { name: 'JSON number 1e400 body', send: post('1e400'), expected: badRequest(MUST_BE_OBJECT) },
  { name: 'predictions as an object', send: post('{"predictions":{"model_name":"lin"}}'), expected: badRequest(MUST_BE_ARRAY) },
  { name: 'predictions as a string', send: post('{"predictions":"lin"}'), expected: badRequest(MUST_BE_ARRAY) },
  { name: 'predictions null', send: post('{"predictions":null}'), expected: badRequest(MUST_BE_ARRAY) },
  { name: 'predictions 1e400', send: post('{"predictions":1e400}'), expected: badRequest(MUST_BE_ARRAY) },
  { name: 'item is a string', send: post('{"predictions":["lin"]}'), expected: badRequest('predictions[0] must be an object like {"model_name": "..."}') },
  { name: 'item is null', send: post('{"predictions":[{"model_name":"lin"},null]}'), expected: badRequest('predictions[1] must be an object like {"model_name": "..."}') },
  { name: 'item is an array', send: post('{"predictions":[["lin"]]}'), expected: badRequest('predictions[0] must be an object like {"model_name": "..."}') },
  { name: 'item without model_name', send: post('{"predictions":[{"name":"lin"}]}'), expected: badRequest('predictions[0] has no "model_name"') },
  { name: 'model_name 1e400', send: post('{"predictions":[{"model_name":1e400}]}'), expected: badRequest('predictions[0].model_name must be a string') },
  { name: 'model_name 2^64', send: post('{"predictions":[{"model_name":18446744073709551616}]}'), expected: badRequest('predictions[0].model_name must be a string') },
  { name: 'model_name null', send: post('{"predictions":[{"model_name":null}]}'), expected: badRequest('predictions[0].model_name must be a string') },
  { name: 'model_name an object', send: post('{"predictions":[{"model_name":{"$ne":""}}]}'), expected: badRequest('predictions[0].model_name must be a string') },
  { name: 'model_name true', send: post('{"predictions":[{"model_name":true}]}'), expected: badRequest('predictions[0].model_name must be a string') },
  { name: 'model_name empty', send: post('{"predictions":[{"model_name":""}]}'), expected: badRequest('predictions[0].model_name is empty') },
  { name: 'model_name with an escaped NUL', send: post('{"predictions":[{"model_name":"lin\\u0000"}]}'), expected: badRequest('predictions[0].model_name contains a control character') },
  { name: '100k nested arrays', send: post(`{"predictions":[${deepArray}]}`), expected: badRequest('predictions[0] must be an object like {"model_name": "..."}') },
  { name: '100k unclosed [', send: post('['.repeat(100_000)), expected: badRequest(NOT_JSON) },
  {
    name: '1001 items',
    send: post(JSON.stringify({ predictions: Array.from({ length: 1001 }, () => ({ model_name: 'lin' })) })),
    expected: badRequest('"predictions" holds 1001 items; at most 1000 are allowed in one request'),
  },
  {
    name: 'model_name of 10 KB in the body',
    send: post(JSON.stringify({ predictions: [{ model_name: NAME_10K }] })),
    expected: postOk([{ status: 'BadRequest', error_message: `Model ${NAME_10K} not found`, model_name: NAME_10K, duration_ms: expect.any(Number) }]),
  },
  {
    name: 'items with extra keys, huge numbers and __proto__',
    send: post('{"predictions":[{"model_name":"lin","extra":1e400,"n":18446744073709551616,"__proto__":{"model_name":"x"}}],"__proto__":{"predictions":[]}}'),
    expected: postOk([linSuccess]),
  },
  { name: 'duplicate predictions keys (the last wins)', send: post('{"predictions":[{"model_name":"nope"}],"predictions":[{"model_name":"lin"}]}'), expected: postOk([linSuccess]) },
  { name: 'JSON with a UTF-8 BOM', send: post(bytes([0xef, 0xbb, 0xbf], '{"predictions":[{"model_name":"lin"}]}')), expected: postOk([linSuccess]) },
  {
    name: '10 MB body with Content-Length: 413 before it is sent',
    send: streamBody(`POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: ${10 * MAX_BODY}\r\n\r\n`, 10 * MAX_BODY, false),
    expected: tooLarge(`The request body is ${10 * MAX_BODY} bytes; the limit is ${MAX_BODY} bytes`),
  },
  {
    name: '10 MB chunked body: 413 while streaming',
    send: streamBody('POST /v1/predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n', 10 * MAX_BODY, true),
    expected: tooLarge(`The request body is over the limit of ${MAX_BODY} bytes`),
  },

  // --- clients that misbehave in time ---
  { name: 'upload aborted half-way', send: vanish(bytes('POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"predictions":[{"model_'), 20), expected: GONE },
  { name: 'client vanishes mid-inference (GET)', send: vanish(get('/v1/models/slow/predict'), 5), expected: GONE },
  { name: 'client vanishes mid-inference (POST)', send: vanish(post('{"predictions":[{"model_name":"slow"},{"model_name":"slow"},{"model_name":"lin"}]}'), 5), expected: GONE },
  { name: 'client resets right after its request', send: vanish(get('/v1/models/lin_uncached/predict'), 0), expected: GONE },
  { name: 'headers sent byte by byte (slowloris)', send: trickle(`GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: ${'p'.repeat(200)}\r\n\r\n`, 100), expected: CLOSED, on2057: { kind: 'json', status: 200, body: {} }, keptOpenOn2057: true },
  { name: 'body sent byte by byte', send: async (c) => { await c.write('POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 400\r\n\r\n'); await trickle(' '.repeat(400), 100)(c); }, expected: CLOSED },
  { name: 'POST headers and then nothing', send: bytes('POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n'), expected: CLOSED },
  { name: 'connect and send nothing', send: async () => undefined, expected: CLOSED },
];

// ---------------------------------------------------------------------------------------------------------
// The run: every hostile case at once, beside a stream of good requests
// ---------------------------------------------------------------------------------------------------------

interface GoodTally {
  sent: number;
  failures: string[];
  health: number;
}

function closeTo(actual: unknown, expected: readonly number[]): boolean {
  return (
    Array.isArray(actual) &&
    actual.length === expected.length &&
    actual.every((v, i) => typeof v === 'number' && Math.abs(v - expected[i]!) <= 1e-4 * Math.max(1, Math.abs(expected[i]!)))
  );
}

/** One loop of good requests until `stop()`, checking every answer. */
async function goodLoop(url: string, tally: GoodTally, stop: () => boolean, loop: number): Promise<void> {
  for (let i = 0; !stop() && i < 5000; i++) {
    const kind = (i + loop) % 4;
    const what = ['GET lin', 'GET lin_uncached', 'POST lin+lin_uncached', 'GET /health'][kind]!;
    tally.sent++;
    try {
      if (kind === 3) {
        const res = await fetch(`${url}/health`);
        const text = await res.text();
        if (res.status !== 200 || text !== 'ok') tally.failures.push(`${what}: ${res.status} ${text}`);
        else tally.health++;
      } else if (kind === 2) {
        const res = await fetch(`${url}/v1/predict`, {
          method: 'POST',
          body: '{"predictions":[{"model_name":"lin"},{"model_name":"lin_uncached"}]}',
        });
        const body = (await res.json()) as { predictions: { status: string; prediction: unknown }[] };
        const ok = res.status === 200 && body.predictions.length === 2 && body.predictions.every((p) => p.status === 'Success' && closeTo(p.prediction, EXPECTED));
        if (!ok) tally.failures.push(`${what}: ${res.status} ${JSON.stringify(body)}`);
      } else {
        const name = kind === 0 ? 'lin' : 'lin_uncached';
        const res = await fetch(`${url}/v1/models/${name}/predict`);
        const body = (await res.json()) as { status: string; prediction: unknown };
        if (res.status !== 200 || body.status !== 'Success' || !closeTo(body.prediction, EXPECTED)) {
          tally.failures.push(`${what}: ${res.status} ${JSON.stringify(body)}`);
        }
      }
    } catch (error) {
      tally.failures.push(`${what}: ${error instanceof Error ? error.message : String(error)}`);
    }
    await sleep(2);
  }
}

describe('hostile input', () => {
  const served = servePod(
    (pod) => {
      pod.copyTestData('co2_weekly.csv');
      pod.write('models/lin.onnx', linearModel({ lookback: LOOKBACK, horizon: HORIZON, weights: WEIGHTS, bias: BIAS }));
      pod.write('models/slow.onnx', slowModel(SLOW));
      pod.write('spicepod.yaml', POD);
    },
    { prefix: 'forecastd-hostile-' },
  );
  const results = new Map<string, Conversation>();
  const tally: GoodTally = { sent: 0, failures: [], health: 0 };

  beforeAll(async () => {
    const { server } = served;
    for (const m of server.registry.models()) expect(m.status, `${m.name}: ${m.error}`).toBe('Ready');

    let hostileDone = false;
    const loops = [0, 1, 2, 3].map((loop) => goodLoop(server.url, tally, () => hostileDone, loop));
    // A little apart, so the good loops are already running when the first bad bytes arrive.
    const hostile = CASES.map(async (c, i) => {
      await sleep(10 + (i % 20) * 5);
      results.set(c.name, await converse(server.port, c.send));
    });
    await Promise.all(hostile);
    hostileDone = true;
    await Promise.all(loops);
  }, 120_000);

  it('has at least 50 distinct bad requests', () => {
    expect(new Set(CASES.map((c) => c.name)).size).toBe(CASES.length);
    expect(CASES.length).toBeGreaterThanOrEqual(50);
  });

  it.each(CASES.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const result = results.get(c.name)!;
    // Every connection ends with the server closing it (at once, or at its idle timeout): none hangs, but
    // for the one case where 20.57 is known to keep it open.
    expect(result.endedBy).toBe(UWS_2057 && c.keptOpenOn2057 === true ? 'limit' : 'server');
    const expected = UWS_2057 ? (c.on2057 ?? c.expected) : c.expected;
    if (expected.kind === 'gone') return;
    if (expected.kind === 'closed') {
      expect(result.received.toString('latin1')).toBe('');
      return;
    }
    if (expected.kind === 'refused') {
      // uWebSockets.js's own page: nothing of forecastd's (no request id, no JSON), and nothing after it.
      expect(result.responses.map((r) => r.status)).toEqual([expected.status]);
      const response = result.responses[0]!;
      expect(response.headers).toEqual({ connection: 'close' });
      expect(response.body.toString('latin1')).toMatch(/^<h1>[A-Za-z ]+<\/h1>/);
      return;
    }
    expect(result.responses.length, result.received.toString('latin1').slice(0, 300)).toBeGreaterThanOrEqual(1);
    const response = result.responses[0]!;
    expect(response.status).toBe(expected.status);
    expect(response.headers['x-request-id']).toMatch(/^[\w.:-]+$/);
    for (const [name, value] of Object.entries(expected.headers ?? {})) expect(response.headers[name], name).toBe(value);
    if (Object.keys(expected.body).length === 0) return;
    expect(response.headers['content-type']).toBe('application/json');
    const body = bodyJson(response) as Record<string, unknown>;
    expect(Object.keys(body)).toEqual(Object.keys(expected.body));
    expect(body).toEqual(expected.body);
    const predictions = body['predictions'];
    if (Array.isArray(predictions)) {
      for (const p of predictions as Record<string, unknown>[]) {
        if (p['status'] === 'Success') expect(closeTo(p['prediction'], EXPECTED), JSON.stringify(p)).toBe(true);
      }
    }
    if (body['status'] === 'Success') expect(closeTo(body['prediction'], EXPECTED), JSON.stringify(body)).toBe(true);
  });

  it('answers a 10 MB upload before the client has sent it all', () => {
    for (const name of ['10 MB body with Content-Length: 413 before it is sent', '10 MB chunked body: 413 while streaming']) {
      expect(results.get(name)!.sentBeforeResponse, name).toBeLessThan(10 * MAX_BODY);
    }
  });

  it('served every good request correctly meanwhile, /health included', async () => {
    expect(tally.failures).toEqual([]);
    expect(tally.sent).toBeGreaterThan(0);
    expect(tally.health).toBeGreaterThan(0);
    const health = await fetch(`${served.server.url}/health`);
    expect([health.status, await health.text()]).toEqual([200, 'ok']);
  });

  it('forgets every abandoned request: nothing left in flight', async () => {
    // Clients that vanished mid-inference leave their runs to finish; none may stay counted in flight.
    let inFlight = -1;
    for (let i = 0; i < 200 && inFlight !== 1; i++) {
      const text = await (await fetch(`${served.server.url}/metrics`)).text();
      // The scrape itself is the one request in flight.
      inFlight = Number(/^http_requests_in_flight (\d+)$/m.exec(text)?.[1]);
      if (inFlight !== 1) await sleep(50);
    }
    expect(inFlight).toBe(1);
  });

  it('reports dataset age and process memory in /metrics', async () => {
    const text = await (await fetch(`${served.server.url}/metrics`)).text();
    expect(text).toMatch(/^forecastd_dataset_age_seconds\{dataset="co2"\} \d+(\.\d+)?(e[-+]?\d+)?$/m);
    expect(text).toMatch(/^forecastd_dataset_rows\{dataset="co2"\} 2284$/m);
    expect(text).toMatch(/^process_resident_memory_bytes [1-9]\d*$/m);
    expect(text).toMatch(/^nodejs_heap_size_used_bytes [1-9]\d*$/m);
    expect(Number(/^http_requests_total\{route="\/v1\/predict",status="413"\} (\d+)$/m.exec(text)?.[1])).toBeGreaterThanOrEqual(2);
  });
});
