import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { startServer, type ForecastdServer } from '../../src/server/start.js';
import { linearModel, uniformWeights, seededRandom } from '../../tools/onnx-builder.js';
import { PodDir } from '../server/fixtures.js';
import { bodyJson, converse, request } from './raw-http.js';

/**
 * runtime.auth.api-key end to end: several keys from the environment, both header forms, the open routes,
 * the shared 401 body, and keys that never show up in a log line or a response.
 */

const KEY_A = 'fk_live_4d1c9e0b7a2f4e6c8b3a5d7e9f1a2b3c';
const KEY_B = 'second-key-Zq8w';
const UNAUTHORIZED = { status: 'Unauthorized', error_message: 'Missing or invalid API key: send X-API-Key: KEY or Authorization: Bearer KEY' };

const POD = `
version: v1beta1
kind: Spicepod
name: guarded
runtime:
  auth:
    api-key:
      enabled: true
      keys: ["\${env:KEY_A}", "\${env:KEY_B}"]
datasets:
  - from: file:data/co2_weekly.csv
    name: co2
models:
  - from: file:models/lin.onnx
    name: lin
    datasets: [co2]
`;

describe('API keys', () => {
  let pod: PodDir;
  let server: ForecastdServer;
  let logText = '';

  beforeAll(async () => {
    pod = new PodDir('forecastd-auth-');
    pod.copyTestData('co2_weekly.csv');
    const random = seededRandom(3);
    pod.write('models/lin.onnx', linearModel({ lookback: 4, horizon: 2, weights: uniformWeights(random, 8, 0.1) }));
    pod.write('spicepod.yaml', POD);
    const logs = new PassThrough();
    logs.on('data', (d: Buffer) => {
      logText += d.toString('utf8');
    });
    // Every request logs at debug, so a key anywhere near a log call would be caught.
    const logger = createLogger({ format: 'json', level: 'trace', destination: logs });
    server = await startServer({ spicepod: pod.dir, port: 0, logger, env: { KEY_A, KEY_B } });
    await server.loaded();
  });

  afterAll(async () => {
    await server?.close();
    pod?.remove();
  });

  const send = async (method: string, target: string, headers: readonly string[] = [], body?: string) => {
    const conversation = await converse(server.port, request(method, target, { headers: [...headers, 'Connection: close'], ...(body === undefined ? {} : { body }) }));
    const response = conversation.responses[0];
    if (response === undefined) throw new Error(`no response to ${method} ${target}`);
    return response;
  };

  it.each([
    ['X-API-Key, first key', [`X-API-Key: ${KEY_A}`]],
    ['X-API-Key, second key', [`X-API-Key: ${KEY_B}`]],
    ['Bearer, first key', [`Authorization: Bearer ${KEY_A}`]],
    ['Bearer, second key', [`Authorization: Bearer ${KEY_B}`]],
    ['bearer in lower case', [`Authorization: bearer ${KEY_A}`]],
    ['Bearer with extra spaces', [`Authorization: Bearer    ${KEY_B}  `]],
    ['a wrong X-API-Key beside a right Bearer', ['X-API-Key: nope', `Authorization: Bearer ${KEY_A}`]],
  ])('accepts %s', async (_label, headers) => {
    const response = await send('GET', '/v1/models/lin/predict', headers);
    expect(response.status).toBe(200);
    expect(bodyJson(response)).toMatchObject({ status: 'Success', model_name: 'lin' });
  });

  it.each([
    ['no credentials', []],
    ['an empty X-API-Key', ['X-API-Key: ']],
    ['a wrong key', ['X-API-Key: wrong']],
    ['a key with one character missing', [`X-API-Key: ${KEY_A.slice(0, -1)}`]],
    ['a key with one character more', [`X-API-Key: ${KEY_A}x`]],
    ['a key in the wrong case', [`X-API-Key: ${KEY_A.toUpperCase()}`]],
    ['both keys joined', [`X-API-Key: ${KEY_A},${KEY_B}`]],
    ['Bearer without a token', ['Authorization: Bearer']],
    ['Bearer with a wrong token', ['Authorization: Bearer wrong']],
    ['Basic with the key', [`Authorization: Basic ${KEY_A}`]],
    ['Basic with base64 of user:key', [`Authorization: Basic ${Buffer.from(`u:${KEY_A}`).toString('base64')}`]],
    ['the key as the whole Authorization value', [`Authorization: ${KEY_A}`]],
    ['Bearer glued to the key', [`Authorization: Bearer${KEY_A}`]],
    ['the key in the query string', []],
    ['the key under another header name', [`X-Api-Token: ${KEY_A}`]],
  ])('refuses %s with 401 and the shared body', async (label, headers) => {
    const target = label === 'the key in the query string' ? `/v1/models/lin/predict?api_key=${KEY_A}` : '/v1/models/lin/predict';
    const response = await send('GET', target, headers);
    expect(response.status).toBe(401);
    expect(response.headers['www-authenticate']).toBe('Bearer');
    expect(response.headers['content-type']).toBe('application/json');
    expect(Object.keys(bodyJson(response) as object)).toEqual(['status', 'error_message']);
    expect(bodyJson(response)).toEqual(UNAUTHORIZED);
  });

  it('guards every route but /health and /v1/ready, whatever the method or path', async () => {
    const guarded: [string, string, string?][] = [
      ['GET', '/v1/models'],
      ['GET', '/v1/models?status=true&format=csv'],
      ['GET', '/v1/datasets'],
      ['GET', '/metrics'],
      ['GET', '/v1/models/lin/predict'],
      ['GET', '/v1/models/nope/predict'],
      ['POST', '/v1/predict', '{"predictions":[{"model_name":"lin"}]}'],
      ['POST', '/v1/predict', '{not json'],
      ['DELETE', '/v1/models'],
      ['GET', '/nowhere'],
    ];
    for (const [method, target, body] of guarded) {
      const response = await send(method, target, [], body);
      expect(response.status, `${method} ${target}`).toBe(401);
      expect(bodyJson(response)).toEqual(UNAUTHORIZED);
    }
    const health = await send('GET', '/health');
    expect([health.status, health.body.toString()]).toEqual([200, 'ok']);
    const ready = await send('GET', '/v1/ready');
    expect([ready.status, ready.body.toString()]).toEqual([200, 'ready']);
    // Open routes answer other methods with 405, not 401: there is nothing to protect.
    const post = await send('POST', '/health', [], 'x');
    expect(post.status).toBe(405);
  });

  it('a valid key reaches every route', async () => {
    for (const target of ['/v1/models', '/v1/datasets', '/metrics']) {
      const response = await send('GET', target, [`X-API-Key: ${KEY_B}`]);
      expect(response.status, target).toBe(200);
    }
    const post = await send('POST', '/v1/predict', [`Authorization: Bearer ${KEY_A}`], '{"predictions":[{"model_name":"lin"}]}');
    expect(post.status).toBe(200);
    expect(bodyJson(post)).toMatchObject({ predictions: [{ status: 'Success', model_name: 'lin' }] });
  });

  it('refuses two credentials of one kind, even when one is right (400, connection closed)', async () => {
    for (const [headers, message] of [
      [[`X-API-Key: ${KEY_A}`, 'X-API-Key: wrong'], 'The request has 2 X-API-Key headers; send one'],
      [['X-API-Key: wrong', `X-API-Key: ${KEY_A}`], 'The request has 2 X-API-Key headers; send one'],
      [[`Authorization: Bearer ${KEY_A}`, `Authorization: Bearer ${KEY_B}`], 'The request has 2 Authorization headers; send one'],
    ] as const) {
      const conversation = await converse(server.port, request('GET', '/v1/models', { headers }));
      expect(conversation.responses).toHaveLength(1);
      const response = conversation.responses[0]!;
      expect(response.status).toBe(400);
      expect(response.headers['connection']).toBe('close');
      expect(bodyJson(response)).toEqual({ status: 'BadRequest', error_message: message });
    }
  });

  it('never writes a key into a log line or a response', async () => {
    // Requests that carry keys, right and wrong, in every place a key can travel.
    const bodies: string[] = [];
    for (const headers of [[`X-API-Key: ${KEY_A}`], [`Authorization: Bearer ${KEY_B}`], [`X-API-Key: ${KEY_A}x`], [`Authorization: Basic ${KEY_B}`]]) {
      for (const target of ['/v1/models/lin/predict', '/v1/models/nope/predict', '/nowhere', '/v1/models?format=xml']) {
        const response = await send('GET', target, headers);
        bodies.push(response.body.toString('utf8'), JSON.stringify(response.headers));
      }
      const post = await send('POST', '/v1/predict', headers, '{"predictions":[{"model_name":"nope"}, {"model_name":"lin"}]}');
      bodies.push(post.body.toString('utf8'), JSON.stringify(post.headers));
      const bad = await send('POST', '/v1/predict', headers, '{"predictions":');
      bodies.push(bad.body.toString('utf8'));
    }
    expect(logText).toContain('"msg":"request"');
    expect(logText).toContain('"reqId"');
    for (const key of [KEY_A, KEY_B]) {
      expect(logText.includes(key), 'a key in the log').toBe(false);
      expect(bodies.join('\n').includes(key), 'a key in a response').toBe(false);
    }
    // Nor any recognisable fragment of one.
    expect(logText.includes(KEY_A.slice(8, 24))).toBe(false);
  });
});
