import { existsSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { availableCpus } from '../../src/runtime/cpus.js';
import { serverRunAhead } from '../../src/server/model-slot.js';
import { CLI, startCli, type CliProcess } from '../helpers/cli.js';
import { accepts, freePort } from '../helpers/sockets.js';
import { PodDir, dailyCsv, linearFixture, writeLinearPod } from '../server/fixtures.js';

const run = startCli;
type Running = CliProcess;

/** Starts the CLI on a free port and returns it with its URL (read from the listen log line). */
async function serve(pod: PodDir, extra: readonly string[] = [], port = 0): Promise<{ cli: Running; url: string; port: number }> {
  const cli = run([pod.dir, '--http', `127.0.0.1:${port}`, ...extra]);
  const line = await cli.line(/forecastd listening on/);
  const url = (JSON.parse(line) as { url: string }).url;
  await cli.line(/loaded \d+ of \d+ models/);
  return { cli, url, port: Number(new URL(url).port) };
}

/** Opens a POST whose body is only partly sent: the request is in flight until `finish` is called. */
async function partialPost(port: number): Promise<{ finish: () => void; response: Promise<string> }> {
  const body = '{"predictions": [{"model_name": "lin"}]}';
  const socket = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve) => socket.on('connect', () => resolve()));
  let received = '';
  const response = new Promise<string>((resolve) => {
    socket.on('data', (d) => {
      received += d.toString();
    });
    socket.on('close', () => resolve(received));
    socket.on('error', () => resolve(received));
  });
  socket.write(`POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 10)}`);
  return { finish: () => socket.write(body.slice(10)), response };
}

/** Waits until the server counts `count` requests in flight besides the /metrics request asking. */
async function inFlight(url: string, count: number): Promise<void> {
  for (;;) {
    const text = await (await fetch(url + '/metrics')).text();
    const match = /^http_requests_in_flight (\d+)$/m.exec(text);
    if (match !== null && Number(match[1]) - 1 >= count) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A GET on a connection of its own (no keep-alive pool), so each request is a new accept on the listen socket. */
function freshGet(port: number, target: string): Promise<{ status: number; requestId: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: target, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, requestId: String(res.headers['x-request-id']), body }));
    });
    req.on('error', reject);
  });
}

/** Resolves with the exit code of a CLI expected to fail at start; one that starts listening is killed, and fails the test. */
async function exitAtStart(cli: Running): Promise<number | null> {
  const listened = cli.line(/forecastd listening on/).then(
    () => {
      cli.child.kill('SIGKILL');
      return true;
    },
    () => false,
  );
  const code = await cli.exit;
  expect(await listened, `it started listening:\n${cli.stdout()}`).toBe(false);
  return code;
}

describe('forecastd CLI', () => {
  const pod = new PodDir('forecastd-cli-');
  beforeAll(() => {
    expect(existsSync(CLI), 'dist/cli.js is missing: run npm run build:ts (npm test does)').toBe(true);
    writeLinearPod(pod, 'cli');
  });
  afterAll(() => pod.remove());

  it('--version and --help', async () => {
    const version = run(['--version']);
    expect(await version.exit).toBe(0);
    expect(version.stdout()).toBe('forecastd 0.1.0\n');
    const help = run(['--help']);
    expect(await help.exit).toBe(0);
    expect(help.stdout()).toMatch(/^Usage: forecastd \[PATH\]/);
  });

  it('without PATH and without ./spicepod.yaml: usage on stderr, exit 1', async () => {
    const empty = new PodDir('forecastd-empty-');
    try {
      const cli = run([], { cwd: empty.dir });
      expect(await cli.exit).toBe(1);
      expect(cli.stderr()).toMatch(/^forecastd: no PATH given and there is no \.\/spicepod\.yaml\n\nUsage: forecastd/);
    } finally {
      empty.remove();
    }
  });

  it('a bad option: message and usage, exit 1', async () => {
    const cli = run([pod.dir, '--http', 'nowhere']);
    expect(await cli.exit).toBe(1);
    expect(cli.stderr()).toMatch(/^forecastd: --http must be HOST:PORT/);
  });

  it('a fatal pod error: exit 1 with the file, line and key', async () => {
    const bad = new PodDir('forecastd-bad-');
    try {
      bad.write(
        'spicepod.yaml',
        'version: v1beta1\nkind: Spicepod\nname: bad\ndatasets:\n  - from: file:data/x.csv\n    name: x\n' +
          'models:\n  - from: file:models/m.onnx\n    name: m\n    datasets: [nope]\n',
      );
      const cli = run([bad.dir]);
      expect(await cli.exit).toBe(1);
      expect(cli.stderr()).toMatch(/^forecastd: cannot start \[ERR_SPICEPOD\]: .*spicepod\.yaml:10:\d+.*nope/);
    } finally {
      bad.remove();
    }
  });

  it('refuses to serve on the JavaScript imitation of uWebSockets.js', async () => {
    const cli = run([pod.dir, '--http', '127.0.0.1:0'], { env: { UWS_USE_FALLBACK: '1' } });
    expect(await cli.exit).toBe(1);
    expect(cli.stderr()).toMatch(/UWS_USE_FALLBACK asks uWebSockets\.js for its slow JavaScript imitation, which forecastd will not serve on/);
    expect(cli.stderr()).toMatch(/Node\.js 20/);
  });

  it('runs one batch ahead with max_concurrent_runs 0 on more than one CPU, and keeps a given number exactly', async () => {
    expect([serverRunAhead(0, 1), serverRunAhead(0, 2), serverRunAhead(0, 16)]).toEqual([false, true, true]);
    expect([serverRunAhead(1, 8), serverRunAhead(2, 2), serverRunAhead(40, 2)]).toEqual([false, false, false]);
    const explicit = new PodDir('forecastd-cli-runs-');
    try {
      explicit.write('data/series.csv', dailyCsv({ value: [1, 2, 3, 4, 5, 6] }));
      explicit.write('models/lin.onnx', linearFixture({ lookback: 4, horizon: 2 }).bytes);
      explicit.write(
        'spicepod.yaml',
        'version: v1beta1\nkind: Spicepod\nname: runs\ndatasets:\n  - from: file:data/series.csv\n    name: series\n' +
          'models:\n  - from: file:models/lin.onnx\n    name: lin\n    datasets: [series]\n' +
          '  - from: file:models/lin.onnx\n    name: two\n    datasets: [series]\n    params:\n      max_concurrent_runs: 2\n',
      );
      const { cli } = await serve(explicit);
      const ready = (name: string) =>
        cli.line(new RegExp(`"msg":"model ${name} ready"`)).then((l) => JSON.parse(l) as { maxConcurrentRuns: number; runAhead: boolean });
      const cpus = availableCpus();
      expect(await ready('lin')).toMatchObject({ maxConcurrentRuns: cpus, runAhead: cpus > 1 });
      expect(await ready('two')).toMatchObject({ maxConcurrentRuns: 2, runAhead: false });
      cli.child.kill('SIGTERM');
      expect(await cli.exit).toBe(0);
    } finally {
      explicit.remove();
    }
  });

  it('serves, and on SIGTERM stops accepting, finishes the request in flight and exits 0', async () => {
    const { cli, url, port } = await serve(pod);
    expect(await (await fetch(url + '/health')).text()).toBe('ok');
    const pending = await partialPost(port);
    await inFlight(url, 1);
    cli.child.kill('SIGTERM');
    await cli.line(/shutting down/);
    expect(await accepts(port)).toBe(false);
    pending.finish();
    const response = await pending.response;
    expect(response).toMatch(/^HTTP\/1.1 200 OK\r\n/);
    expect(response).toContain('"model_name":"lin","lookback":4,"prediction":[');
    expect(await cli.exit).toBe(0);
  });

  it('exits 1 when the drain timeout passes with a request still in flight', async () => {
    const { cli, url, port } = await serve(pod, ['--drain-timeout', '100']);
    const pending = await partialPost(port);
    await inFlight(url, 1);
    cli.child.kill('SIGTERM');
    expect(await cli.exit).toBe(1);
    expect(cli.stdout()).toMatch(/requests still in flight after 100 ms/);
    pending.finish();
  });

  it('a second signal exits at once with 1', async () => {
    const { cli, url, port } = await serve(pod, ['--drain-timeout', '600000']);
    const pending = await partialPost(port);
    await inFlight(url, 1);
    cli.child.kill('SIGINT');
    await cli.line(/shutting down/);
    cli.child.kill('SIGINT');
    expect(await cli.exit).toBe(1);
    expect(cli.stdout()).toMatch(/second signal: exiting now/);
    pending.finish();
  });
  it('a second forecastd on the same address exits 1 at once; the first keeps every connection', async () => {
    // A port given explicitly: on port 0, uWebSockets.js never shares, so only this shows the old behaviour.
    const { cli: first, url, port } = await serve(pod, [], await freePort());
    try {
      const second = run([pod.dir, '--http', `127.0.0.1:${port}`]);
      expect(await exitAtStart(second)).toBe(1);
      expect(second.stderr()).toBe(
        `forecastd: cannot start [ERR_ADDRESS_IN_USE]: 127.0.0.1:${port} is already in use (another process listens there)\n`,
      );
      // Request ids start with the serving process's id: every new connection went to the first forecastd.
      const prefix = first.child.pid!.toString(36) + '-';
      for (let i = 0; i < 24; i++) {
        const health = await freshGet(port, '/health');
        expect([health.status, health.body, health.requestId.startsWith(prefix)]).toEqual([200, 'ok', true]);
      }
      const predict = await fetch(url + '/v1/models/lin/predict');
      expect(predict.status).toBe(200);
      expect(await predict.text()).toContain('"model_name":"lin"');
    } finally {
      first.child.kill('SIGTERM');
    }
    expect(await first.exit).toBe(0);
  });

  it('an address held by another program (a plain Node.js server) exits 1 naming it', async () => {
    const holder = net.createServer((socket) => socket.end('held\n'));
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const port = (holder.address() as net.AddressInfo).port;
    try {
      const cli = run([pod.dir, '--http', `127.0.0.1:${port}`]);
      expect(await exitAtStart(cli)).toBe(1);
      expect(cli.stderr()).toBe(
        `forecastd: cannot start [ERR_ADDRESS_IN_USE]: 127.0.0.1:${port} is already in use (another process listens there)\n`,
      );
    } finally {
      await new Promise((resolve) => holder.close(resolve));
    }
  });
});
