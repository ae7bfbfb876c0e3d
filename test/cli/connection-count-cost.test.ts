import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI } from '../helpers/cli.js';
import { STRACE } from '../helpers/strace.js';
import { PodDir, dailyCsv } from '../server/fixtures.js';

/**
 * --max-connections counts connections from the kernel's socket tables (/proc/net/tcp, tcp6), and reading them
 * walks every established socket of the host: milliseconds per read, ten reads a second, which took a quarter
 * of the server's throughput under load. Far below the limit there is nothing to count them for: every
 * connection holds a descriptor, and the process holds far fewer descriptors than the limit. Run under strace,
 * the built CLI serving 32 held connections for two seconds (20 checks) must not open the tables at all.
 */

const HELD = 32;
const HOLD_MS = 2_000;

function healthOn(socket: net.Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (d: Buffer): void => {
      text += d.toString();
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) return;
      const length = Number(/content-length: (\d+)/i.exec(text)?.[1] ?? 0);
      if (text.length < end + 4 + length) return;
      socket.off('data', onData);
      resolve(text.split('\r\n')[0]!);
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
  });
}

describe.skipIf(STRACE === undefined)('the connection count far below --max-connections', () => {
  const pod = new PodDir('forecastd-connection-cost-');
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'forecastd-connection-cost-trace-'));
  afterAll(() => {
    pod.remove();
    rmSync(scratch, { recursive: true, force: true });
  });

  it('does not read the kernel socket tables while the process holds fewer descriptors than the limit', async () => {
    pod.write('data/daily.csv', dailyCsv({ value: [1, 2, 3] }));
    pod.write('spicepod.yaml', 'version: v1beta1\nkind: Spicepod\nname: cost\ndatasets:\n  - from: file:data/daily.csv\n    name: daily\n');
    const traceFile = path.join(scratch, 'trace');
    const child = spawn(
      STRACE!,
      ['-f', '-qq', '-e', 'trace=openat,open', '-o', traceFile, process.execPath, CLI, pod.dir, '--http', '127.0.0.1:0', '--no-watch', '--max-connections', '1000'],
      { env: { ...process.env, FORECASTD_LOG_FORMAT: 'json' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    let out = '';
    const { port, pid } = await new Promise<{ port: number; pid: number }>((resolve, reject) => {
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const match = /"pid":(\d+),.*forecastd listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
        if (match !== null) resolve({ pid: Number(match[1]), port: Number(match[2]) });
      });
      void exited.then((code) => reject(new Error(`forecastd exited with ${code} before listening\n${out}`)));
    });
    const sockets: net.Socket[] = [];
    try {
      for (let i = 0; i < HELD; i++) {
        const socket = net.connect({ host: '127.0.0.1', port });
        await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
        sockets.push(socket);
      }
      expect(await Promise.all(sockets.map(healthOn))).toEqual(Array.from({ length: HELD }, () => 'HTTP/1.1 200 OK'));
      await new Promise((r) => setTimeout(r, HOLD_MS));
      // Still served after the checks came round.
      expect(await healthOn(sockets[0]!)).toBe('HTTP/1.1 200 OK');
    } finally {
      for (const s of sockets) s.destroy();
      // strace does not pass signals on to the program it traces.
      process.kill(pid, 'SIGTERM');
      await exited;
    }
    const trace = readFileSync(traceFile, 'utf8');
    // The trace did see the process open files (the pod, its data), so an empty answer below is meaningful.
    expect(trace).toContain('daily.csv');
    expect(trace.split('\n').filter((line) => line.includes('/proc/net/tcp'))).toEqual([]);
  });
});
