import { createServer, connect, type Server, type Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import { openSync, closeSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CHECK_INTERVAL_MS, ConnectionLimit, countConnections } from '../../src/http/connection-limit.js';
import { silentLogger } from '../../src/log.js';

/**
 * --max-connections counts the sockets on the listening port from the kernel's tables, so that files, database
 * connections and threads the process opens after it starts listening are never taken for clients.
 */

const TABLE = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F9A 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F9A 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:D2F0 0100007F:1F9A 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 20 4 30 10 -1
   3: 0100007F:1F9A 0100007F:D2F2 08 00000000:00000000 00:00000000 00000000     0        0 4 1 0000000000000000 20 4 30 10 -1
   4: 0100007F:1F9A 0100007F:D2F4 06 00000000:00000000 00:00000000 00000000     0        0 0 1 0000000000000000 20 4 30 10 -1
   5: 0100007F:1F9B 0100007F:D2F6 01 00000000:00000000 00:00000000 00000000     0        0 5 1 0000000000000000 20 4 30 10 -1
`;

function liveCount(port: number): number {
  return ['/proc/net/tcp', '/proc/net/tcp6'].reduce((n, file) => {
    let text = '';
    try {
      text = readFileSync(file, 'latin1');
    } catch {
      return n;
    }
    return n + countConnections(text, port);
  }, 0);
}

/** A plain TCP server on a free local port, and the sockets it has accepted. */
async function listening(): Promise<{ server: Server; port: number; accepted: Socket[] }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const accepted: Socket[] = [];
  server.on('connection', (s) => accepted.push(s));
  return { server, port: (server.address() as { port: number }).port, accepted };
}

describe('countConnections', () => {
  it('counts the established and client-closed sockets on the port, not the listener, the client ends, TIME_WAIT or other ports', () => {
    // Port 8090 is 1F9A: rows 1 (ESTABLISHED) and 3 (CLOSE_WAIT) count.
    expect(countConnections(TABLE, 8090)).toBe(2);
    expect(countConnections(TABLE, 8091)).toBe(1);
    expect(countConnections(TABLE, 9999)).toBe(0);
  });

  it("follows a real listener's connections, and ignores files the process opens", async () => {
    const { server, port, accepted } = await listening();
    expect(liveCount(port)).toBe(0);
    const files = Array.from({ length: 20 }, () => openSync('/proc/self/status', 'r'));
    const clients = await Promise.all(
      Array.from({ length: 5 }, () => new Promise<Socket>((resolve) => {
        const c = connect(port, '127.0.0.1', () => resolve(c));
      })),
    );
    expect(liveCount(port)).toBe(5);
    for (const f of files) closeSync(f);
    for (const c of clients) c.destroy();
    for (const s of accepted) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('without a gate, counts from the tables opened at start and pauses at the limit', async () => {
    const { server, port, accepted } = await listening();
    let pauses = 0;
    const limit = new ConnectionLimit(5, port, silentLogger(), {
      pause: () => void pauses++,
      resume: () => Promise.resolve(true),
      gate: () => null,
    });
    limit.start();
    const clients = await Promise.all(
      Array.from({ length: 6 }, () => new Promise<Socket>((resolve) => {
        const c = connect(port, '127.0.0.1', () => resolve(c));
      })),
    );
    for (let i = 0; i < 100 && pauses === 0; i++) await new Promise((r) => setTimeout(r, CHECK_INTERVAL_MS / 2));
    expect(pauses).toBe(1);
    limit.stop();
    for (const c of clients) c.destroy();
    for (const s of accepted) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
});
