/**
 * The HTTP/1.0 trap, shown with the real parts. forecastd's HTTP layer (the uWebSockets.js build it ships)
 * drops an HTTP/1.0 request before any forecastd code sees it: no answer, and the connection closes only
 * on uWebSockets.js's idle timeout. nginx speaks HTTP/1.0 to upstreams unless told otherwise, and a bare
 * HAProxy `option httpchk` sends an HTTP/1.0 OPTIONS: the shipped configs with those two lines reverted
 * fail, the shipped configs (test/scale-out/*.test.ts) work. Prints the measured times as `[scale-out]`.
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PodDir, REPO, dailyCsv, linearFixture } from '../server/fixtures.js';
import { Balancer, Replica, httpGet, probeBalancer, renderBalancerConfig, scratchDir } from './harness.js';
import { freePort } from '../helpers/sockets.js';

const haproxy = probeBalancer('haproxy');
const nginx = probeBalancer('nginx');

/** Sends `request` raw and waits for the connection to close: what came back, and after how long. */
async function rawExchange(port: number, request: string): Promise<{ received: string; closedAfterMs: number }> {
  const socket = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const started = performance.now();
  let received = '';
  socket.on('data', (d: Buffer) => (received += d.toString()));
  socket.write(request);
  await new Promise<void>((resolve) => {
    socket.on('close', () => resolve());
    socket.on('error', () => resolve());
  });
  return { received, closedAfterMs: Math.round(performance.now() - started) };
}

describe.concurrent('HTTP/1.0 towards forecastd', () => {
  const scratch = scratchDir('forecastd-http10-');
  const pod = new PodDir();
  const replicas: Replica[] = [];

  beforeAll(async () => {
    const model = linearFixture({ lookback: 8, horizon: 2, seed: 5 });
    pod.write('models/m.onnx', model.bytes);
    pod.write('data/d.csv', dailyCsv({ v: Array.from({ length: 20 }, (_, i) => i * 1.5) }));
    pod.write(
      'spicepod.yaml',
      ['version: v1beta1', 'kind: Spicepod', 'name: http10', 'datasets:', '  - from: file:data/d.csv', '    name: d',
        'models:', '  - from: file:models/m.onnx', '    name: m', '    datasets: [d]', ''].join('\n'),
    );
    for (let i = 1; i <= 3; i++) replicas.push(new Replica(`forecastd${i}`, await freePort(), pod.dir, scratch.dir));
    for (const r of replicas) r.start();
    await Promise.all(replicas.map((r) => r.ready()));
  });

  afterAll(async () => {
    await Promise.all(replicas.map((r) => r.stop('SIGKILL')));
    pod.remove();
    scratch.remove();
  });

  it('gets no answer from forecastd itself, only a close on the idle timeout; HTTP/1.1 is answered', async () => {
    const port = replicas[0]!.port;
    const [old, nginxStyle, current] = await Promise.all([
      rawExchange(port, 'GET /health HTTP/1.0\r\nHost: forecastd\r\n\r\n'),
      rawExchange(port, 'GET /health HTTP/1.0\r\nHost: forecastd\r\nConnection: close\r\n\r\n'),
      rawExchange(port, 'GET /health HTTP/1.1\r\nHost: forecastd\r\nConnection: close\r\n\r\n'),
    ]);
    expect(old.received).toBe('');
    expect(nginxStyle.received).toBe('');
    expect(current.received).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nok$/);
    console.info(`[scale-out] http10 raw ${JSON.stringify({ http10ClosedAfterMs: [old.closedAfterMs, nginxStyle.closedAfterMs], http11Ms: current.closedAfterMs })}`);
  });

  it.skipIf(!nginx)('behind nginx without proxy_http_version 1.1: a 502 after the idle timeout', async () => {
    const balancer = await Balancer.start('nginx', replicas, scratch.dir, (ports) =>
      renderBalancerConfig('nginx', { ...ports, replicas: replicas.map((r) => r.port) })
        .split('\n')
        .filter((l) => !/proxy_http_version|proxy_set_header Connection/.test(l))
        .join('\n'),
    );
    try {
      const answer = await rawExchange(balancer.port, 'GET /health HTTP/1.1\r\nHost: forecastd\r\nConnection: close\r\n\r\n');
      expect(answer.received).toMatch(/^HTTP\/1\.1 502 Bad Gateway\r\n[\s\S]*<center>nginx[^<]*<\/center>/);
      expect(balancer.output()).toMatch(/upstream prematurely closed connection/);
      const shipped = readFileSync(path.join(REPO, 'deploy/nginx/forecastd.conf'), 'utf8');
      expect(shipped).toMatch(/^\s*proxy_http_version 1\.1;$/m);
      console.info(`[scale-out] http10 nginx-default ${JSON.stringify({ status: 502, answeredAfterMs: answer.closedAfterMs })}`);
    } finally {
      await balancer.stop();
    }
  });

  it.skipIf(!haproxy)('behind HAProxy with a bare option httpchk: every server DOWN, 503 from HAProxy', async () => {
    const balancer = await Balancer.start('haproxy', replicas, scratch.dir, (ports) =>
      renderBalancerConfig('haproxy', { ...ports, replicas: replicas.map((r) => r.port) })
        .split('\n')
        .filter((l) => !/http-check (send|expect)/.test(l))
        .join('\n'),
    );
    try {
      const started = performance.now();
      for (const r of replicas) await balancer.waitForState(r.name, 'DOWN');
      const downAfterMs = Math.round(performance.now() - started);
      const answer = await httpGet(`${balancer.url}/health`);
      expect(answer.status).toBe(503);
      expect(answer.body).toMatch(/No server is available/);
      console.info(`[scale-out] http10 haproxy-httpchk ${JSON.stringify({ allDownAfterMs: downAfterMs, status: answer.status })}`);
    } finally {
      await balancer.stop();
    }
  });
});
