import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI } from '../helpers/cli.js';
import { PodDir, dailyCsv } from '../server/fixtures.js';

/**
 * SPEC "Bounded and quiet", connections: the built CLI under `ulimit -n 256` (soft and hard), with the default
 * --max-connections (the limit less a reserve of 128). 300 idle connections would use up its descriptors: on
 * earlier builds accept() then failed on every wake-up, the server spun, and a new request hung. Now, past the
 * limit, a new connection is refused at once, the connections already open are served, and once enough close
 * the server accepts again.
 */

const LIMIT = 256;
const CONNECTIONS = 300;

type Attempt = { kind: 'connected'; socket: net.Socket } | { kind: 'refused'; code: string };

function connect(port: number): Promise<Attempt> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => resolve({ kind: 'connected', socket }));
    socket.once('error', (error: NodeJS.ErrnoException) => resolve({ kind: 'refused', code: error.code ?? error.message }));
  });
}

/** GET /health on `socket`: its status line, or what happened instead within `waitMs`. */
function health(socket: net.Socket, waitMs: number): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    const timer = setTimeout(() => resolve(`no answer within ${waitMs} ms`), waitMs);
    socket.on('data', (d: Buffer) => {
      text += d.toString();
      if (text.includes('\r\n')) {
        clearTimeout(timer);
        resolve(text.split('\r\n')[0]!);
      }
    });
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(text === '' ? 'closed without an answer' : text.split('\r\n')[0]!);
    });
    socket.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
  });
}

/** A new connection's fate: refused at once, or accepted and answered. */
async function freshRequest(port: number): Promise<string> {
  const attempt = await connect(port);
  if (attempt.kind === 'refused') return attempt.code;
  const line = await health(attempt.socket, 10_000);
  attempt.socket.destroy();
  return line;
}

describe('connections past the descriptor limit', () => {
  const pod = new PodDir('forecastd-max-connections-');
  let child: ChildProcess;
  let out = '';
  let port: number;
  const held: net.Socket[] = [];

  beforeAll(async () => {
    pod.write('data/daily.csv', dailyCsv({ value: [1, 2, 3] }));
    pod.write('spicepod.yaml', 'version: v1beta1\nkind: Spicepod\nname: conns\ndatasets:\n  - from: file:data/daily.csv\n    name: daily\n');
    child = spawn('/bin/sh', ['-c', `ulimit -n ${LIMIT} && exec "$0" "$@"`, process.execPath, CLI, pod.dir, '--http', '127.0.0.1:0', '--no-watch'], {
      env: { ...process.env, FORECASTD_LOG_FORMAT: 'json' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    port = await new Promise<number>((resolve, reject) => {
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const match = /forecastd listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
        if (match !== null) resolve(Number(match[1]));
      });
      child.on('exit', (code) => reject(new Error(`exited with ${code}: ${out}`)));
    });
  });

  afterAll(async () => {
    for (const s of held) s.destroy();
    const exited = new Promise((resolve) => child.on('exit', resolve));
    child.kill('SIGTERM');
    await exited;
    pod.remove();
  });

  it(`refuses new connections at once past the limit, serves the open ones, and accepts again once they close`, async () => {
    // All at once: the descriptors can run out between two counts; that too counts as past the limit.
    for (let i = 0; i < CONNECTIONS; i++) {
      const attempt = await connect(port);
      if (attempt.kind === 'connected') held.push(attempt.socket);
    }
    // Refused by the kernel, or (when it arrived before the count caught up) reset as the listen socket closed.
    expect(['ECONNREFUSED', 'ECONNRESET', 'closed without an answer']).toContain(await freshRequest(port));
    expect(await freshRequest(port)).toBe('ECONNREFUSED');
    expect(await health(held[0]!, 10_000)).toBe('HTTP/1.1 200 OK');
    expect(out).toMatch(/connections are open, at --max-connections 128: new connections are refused until some close/);

    for (const s of held.splice(0, held.length)) s.destroy();
    let line = '';
    for (let i = 0; i < 100 && line !== 'HTTP/1.1 200 OK'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      line = await freshRequest(port);
    }
    expect(line).toBe('HTTP/1.1 200 OK');
    expect(out).toMatch(/below --max-connections again: accepting connections/);
  });
});
