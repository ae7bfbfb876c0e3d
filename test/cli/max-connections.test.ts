import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, renameSync } from 'node:fs';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI } from '../helpers/cli.js';
import { PodDir, dailyCsv } from '../server/fixtures.js';

/**
 * SPEC "Bounded and quiet", connections: the built CLI under `ulimit -n 256` (soft and hard), with the default
 * --max-connections (the limit less a reserve of 128). 300 idle connections would use up its descriptors: on
 * earlier builds accept() then failed on every wake-up, the server spun, and a new request hung. Now, past the
 * limit, a new connection is closed at once (reset as it arrives, then refused once the listen socket is
 * closed), the connections the server holds are served, and once enough close the server accepts again.
 */

const LIMIT = 256;
/** The default --max-connections under LIMIT. */
const MAX = LIMIT - 128;
const CONNECTIONS = 300;

type Attempt = { kind: 'connected'; socket: net.Socket } | { kind: 'refused'; code: string };

function connect(port: number): Promise<Attempt> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      // A reset afterwards is seen as the connection's close (see request()).
      socket.on('error', () => undefined);
      resolve({ kind: 'connected', socket });
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve({ kind: 'refused', code: error.code ?? error.message }));
  });
}

/** GET `path` on `socket`: the whole answer (status line, headers, body), or what happened instead within `waitMs`. */
function request(socket: net.Socket, path: string, waitMs: number): Promise<{ status: string; body: string }> {
  return new Promise((resolve) => {
    // A connection the server (or its end) has already closed gets no answer: say so rather than wait.
    if (socket.destroyed) {
      resolve({ status: 'closed before the request', body: '' });
      return;
    }
    let text = '';
    const done = (status: string, body = ''): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      resolve({ status, body });
    };
    const onData = (d: Buffer): void => {
      text += d.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) return;
      const length = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, end));
      const body = text.slice(end + 4);
      if (length !== null && Buffer.byteLength(body, 'latin1') < Number(length[1])) return;
      done(text.split('\r\n')[0]!, Buffer.from(body, 'latin1').toString('utf8'));
    };
    const onClose = (): void => done(text === '' ? 'closed without an answer' : text.split('\r\n')[0]!);
    const timer = setTimeout(() => done(`no answer within ${waitMs} ms`), waitMs);
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
  });
}

/** GET /health on `socket`: its status line, or what happened instead within `waitMs`. */
async function health(socket: net.Socket, waitMs: number): Promise<string> {
  return (await request(socket, '/health', waitMs)).status;
}

/** A new connection's fate: refused at once, or accepted and answered. */
async function freshRequest(port: number, path = '/health'): Promise<{ status: string; body: string }> {
  const attempt = await connect(port);
  if (attempt.kind === 'refused') return { status: attempt.code, body: '' };
  const answer = await request(attempt.socket, path, 10_000);
  attempt.socket.destroy();
  return answer;
}

/** Waits (up to 10 s) for `condition`. */
async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((r) => setTimeout(r, 50));
}

/** The server's connections on `port` from the kernel's table (IPv4: the server listens on 127.0.0.1). */
function serverConnections(port: number): number {
  const suffix = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  return readFileSync('/proc/net/tcp', 'latin1')
    .split('\n')
    .filter((line) => {
      const fields = line.trim().split(/\s+/);
      return fields[1]?.endsWith(suffix) === true && fields[3] === '01';
    }).length;
}

/**
 * After a burst: the server holds at most the limit, every connection of the burst is either served or was
 * closed by the server (none is left unanswered), and the server is still running. Returns one served.
 */
async function expectServed(held: readonly net.Socket[], server: Server): Promise<net.Socket> {
  const how = (): string => `the server: ${server.child.exitCode ?? server.child.signalCode ?? 'still running'}\n${server.output()}`;
  await until(() => serverConnections(server.port) <= MAX);
  expect(serverConnections(server.port), how()).toBeLessThanOrEqual(MAX);
  const answers = await Promise.all(held.map((s) => health(s, 10_000)));
  expect(answers.filter((a) => a !== 'HTTP/1.1 200 OK' && !a.startsWith('closed')), how()).toEqual([]);
  const served = held.filter((_, i) => answers[i] === 'HTTP/1.1 200 OK');
  expect(served.length, how()).toBeGreaterThan(0);
  expect(server.child.exitCode ?? server.child.signalCode, how()).toBeNull();
  return served[0]!;
}

interface Server {
  readonly child: ChildProcess;
  readonly port: number;
  /** Everything it wrote, stdout and stderr. */
  readonly output: () => string;
  /** Settles when it exits, however and whenever that happens (recorded from the start). */
  readonly exited: Promise<string>;
}

/** The built CLI under `ulimit -n LIMIT` (soft and hard), serving `pod` on a free port. */
async function startServer(pod: PodDir, args: readonly string[] = []): Promise<Server> {
  const child = spawn(
    '/bin/sh',
    ['-c', `ulimit -n ${LIMIT} && exec "$0" "$@"`, process.execPath, CLI, pod.dir, '--http', '127.0.0.1:0', '--no-watch', ...args],
    { env: { ...process.env, FORECASTD_LOG_FORMAT: 'json' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<string>((resolve) => child.once('exit', (code, signal) => resolve(signal ?? `exit code ${code}`)));
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const match = /forecastd listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (match !== null) resolve(Number(match[1]));
    });
    void exited.then((how) => reject(new Error(`exited (${how}): ${out}`)));
  });
  return { child, port, output: () => out, exited };
}

/** Sends SIGTERM and waits for the exit; a server that already ended is not waited for again. */
async function stop(server: Server | undefined): Promise<void> {
  if (server === undefined) return;
  server.child.kill('SIGTERM');
  await server.exited;
}

describe('connections past the descriptor limit', () => {
  const pod = new PodDir('forecastd-max-connections-');
  let server: Server;
  const held: net.Socket[] = [];

  beforeAll(async () => {
    pod.write('data/daily.csv', dailyCsv({ value: [1, 2, 3] }));
    pod.write('spicepod.yaml', 'version: v1beta1\nkind: Spicepod\nname: conns\ndatasets:\n  - from: file:data/daily.csv\n    name: daily\n');
    server = await startServer(pod);
  });

  afterAll(async () => {
    for (const s of held) s.destroy();
    await stop(server);
    pod.remove();
  });

  it(`refuses new connections at once past the limit, serves the open ones, and accepts again once they close`, async () => {
    const { port, output } = server;
    for (let i = 0; i < CONNECTIONS; i++) {
      const attempt = await connect(port);
      if (attempt.kind === 'connected') held.push(attempt.socket);
    }
    // Past the limit: reset at once as it arrives, or refused by the kernel once the listen socket is closed.
    expect(['ECONNREFUSED', 'ECONNRESET', 'closed without an answer', 'closed before the request']).toContain((await freshRequest(port)).status);
    await until(() => /new connections are refused until some close/.test(output()));
    expect(output()).toMatch(new RegExp(`${MAX} connections are open, at --max-connections ${MAX}: new connections are refused until some close`));
    expect((await freshRequest(port)).status).toBe('ECONNREFUSED');
    await expectServed(held, server);

    for (const s of held.splice(0, held.length)) s.destroy();
    let line = '';
    for (let i = 0; i < 100 && line !== 'HTTP/1.1 200 OK'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      line = (await freshRequest(port)).status;
    }
    expect(line).toBe('HTTP/1.1 200 OK');
    expect(output()).toMatch(/below --max-connections again: accepting connections/);
  });
});

/**
 * The descriptors the limit leaves free are the server's own: reading a dataset opens its file, and DuckDB
 * (the CSV reader for numeric times) opens an instance for every read. A burst that arrives faster than the
 * connections are counted must not take them: on earlier builds every connection in the burst was accepted
 * until none were left, so the next read failed (a failed DuckDB open even aborted the whole process).
 */
describe('a burst past the limit', () => {
  const pod = new PodDir('forecastd-max-connections-burst-');
  let server: Server | undefined;
  const held: net.Socket[] = [];
  const DAY = 86_400;
  const csv = (values: readonly number[]): string =>
    'ts,value\n' + values.map((v, i) => `${1_704_067_200 + i * DAY},${v}`).join('\n') + '\n';

  beforeAll(async () => {
    pod.write('data/daily.csv', csv([1, 2, 3]));
    pod.write(
      'spicepod.yaml',
      'version: v1beta1\nkind: Spicepod\nname: burst\ndatasets:\n  - from: file:data/daily.csv\n    name: daily\n' +
        '    acceleration:\n      refresh_check_interval: 100ms\n',
    );
    server = await startServer(pod, ['--settle-ms', '50']);
  });

  afterAll(async () => {
    for (const s of held) s.destroy();
    await stop(server);
    pod.remove();
  });

  it('leaves the server the descriptors for its own files: a refresh after it still reads the dataset', async () => {
    const { port, output } = server!;
    let rows: unknown = null;
    for (let i = 0; i < 200 && rows !== 3; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 50));
      const answer = await freshRequest(port, '/v1/datasets');
      if (answer.status === 'HTTP/1.1 200 OK') rows = (JSON.parse(answer.body) as { rows: number }[])[0]?.rows;
    }
    expect(rows).toBe(3);

    // Every connection at once, so they all wait in the kernel's queue before the server counts any.
    const attempts = await Promise.all(Array.from({ length: CONNECTIONS }, () => connect(port)));
    for (const a of attempts) if (a.kind === 'connected') held.push(a.socket);
    const served = await expectServed(held, server!);

    // Replaced whole (a rename takes no descriptor of the server's), so the refresh reads it at once.
    pod.write('data/daily.next.csv', csv([1, 2, 3, 4]));
    renameSync(pod.path('data/daily.next.csv'), pod.path('data/daily.csv'));
    // Asked on a connection the server accepted: new ones are refused while the burst holds its connections.
    let dataset: { rows?: number; status?: string; error?: string | null } = {};
    for (let i = 0; i < 200 && dataset.rows !== 4 && (dataset.error ?? null) === null; i++) {
      await new Promise((r) => setTimeout(r, 50));
      const answer = await request(served, '/v1/datasets', 10_000);
      expect(answer.status, output()).toBe('HTTP/1.1 200 OK');
      dataset = (JSON.parse(answer.body) as (typeof dataset)[])[0] ?? {};
    }
    expect(dataset).toMatchObject({ rows: 4, status: 'Ready', error: null });
    expect(server!.child.exitCode ?? server!.child.signalCode).toBeNull();
  });
});
