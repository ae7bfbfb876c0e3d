import type { ChildProcess } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { startCli, type CliProcess } from '../helpers/cli.js';
import { accepts } from '../helpers/sockets.js';
import { PodDir, dailyCsv, spinModel, writeLinearPod } from '../server/fixtures.js';

/**
 * The shutdown sequence of the CLI as an orchestrator drives it: SIGTERM, /v1/ready 503 while connections are
 * still accepted for --shutdown-delay, then the listen socket closes, the drain, and a bounded teardown even
 * while ONNX Runtime is busy inside a run and a warm-up that neither a drain nor a dispose can interrupt.
 */

type Cli = CliProcess;

const running = new Set<ChildProcess>();

function start(args: readonly string[]): Cli {
  const cli = startCli(args);
  running.add(cli.child);
  void cli.exit.then(() => running.delete(cli.child));
  return cli;
}

async function listening(cli: Cli): Promise<{ url: string; port: number }> {
  const url = (JSON.parse(await cli.line(/forecastd listening on/)) as { url: string }).url;
  return { url, port: Number(new URL(url).port) };
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

afterEach(() => {
  // A test that failed may leave its server behind; it must not outlive the suite.
  for (const child of running) child.kill('SIGKILL');
});

describe('forecastd shutdown', () => {
  it('SIGTERM: /v1/ready answers 503 at once, connections are still accepted for --shutdown-delay, then the socket closes and it exits 0', async () => {
    const pod = new PodDir('forecastd-shutdown-');
    try {
      writeLinearPod(pod, 's');
      // Long enough to ask a few questions during it on a busy machine; nothing waits for it to pass.
      const cli = start([pod.dir, '--http', '127.0.0.1:0', '--shutdown-delay', '4000']);
      const { url, port } = await listening(cli);
      await cli.line(/loaded 1 of 1 models/);
      const ready = await fetch(url + '/v1/ready');
      expect([ready.status, await ready.text()]).toEqual([200, 'ready']);

      cli.child.kill('SIGTERM');
      await cli.line(/still accepting for 4000 ms/);
      const unready = await fetch(url + '/v1/ready');
      expect([unready.status, await unready.text()]).toEqual([503, 'not ready']);
      // A new connection during the delay is accepted and served: the load balancer has not noticed yet.
      expect(await accepts(port)).toBe(true);
      const predict = await fetch(url + '/v1/models/lin/predict');
      expect(predict.status).toBe(200);
      expect(await predict.text()).toMatch(/^\{"status":"Success","model_name":"lin","lookback":4,"prediction":\[/);

      await cli.line(/shutting down: no new connections/);
      expect(await accepts(port)).toBe(false);
      expect(await cli.exit).toBe(0);
      expect(cli.stdout()).toMatch(/"drained":true/);
    } finally {
      pod.remove();
    }
  });

  it('--shutdown-delay must be milliseconds', async () => {
    const cli = start(['.', '--shutdown-delay', 'soon']);
    expect(await cli.exit).toBe(1);
  });

  it('is bounded with a model warming up and a long run in flight: exits 1 (a request was cut off) without waiting for them', async () => {
    const pod = new PodDir('forecastd-shutdown-');
    try {
      // The newest value sets how often the served model loops: 1e8 turns (minutes) for the request below.
      pod.write('data/series.csv', dailyCsv({ value: [1, 2, 3, 4, 5, 1e8] }));
      pod.write('models/spin.onnx', spinModel({ lookback: 4, horizon: 2 }));
      // Its warm-up (a window of zeros) loops 1e8 times: it stays Initializing for minutes.
      pod.write('models/warming.onnx', spinModel({ lookback: 4, horizon: 2, extraIterations: 1e8 }));
      pod.write(
        'spicepod.yaml',
        'version: v1beta1\nkind: Spicepod\nname: s\ndatasets:\n  - from: file:data/series.csv\n    name: series\n' +
          'models:\n  - from: file:models/spin.onnx\n    name: spin\n    datasets: [series]\n' +
          '  - from: file:models/warming.onnx\n    name: warming\n    datasets: [series]\n',
      );
      const cli = start([pod.dir, '--http', '127.0.0.1:0', '--drain-timeout', '300']);
      const { url } = await listening(cli);
      await cli.line(/model spin ready/);
      const models = (await (await fetch(url + '/v1/models?status=true')).json()) as { name: string; status: string }[];
      expect(models.map((m) => `${m.name}:${m.status}`)).toEqual(['spin:Ready', 'warming:Initializing']);
      const request = fetch(url + '/v1/models/spin/predict').then(
        (res) => `answered ${res.status}`,
        () => 'cut off',
      );
      await inFlight(url, 1);

      cli.child.kill('SIGTERM');
      // The run and the warm-up would take minutes: exiting at all proves the teardown did not wait for them.
      expect(await cli.exit).toBe(1);
      expect(await request).toBe('cut off');
      const out = cli.stdout();
      expect(out).toMatch(/requests still in flight after 300 ms; closing anyway/);
      expect(out).toMatch(/models still running after 2000 ms; not waiting for them/);
      expect(out).toMatch(/"drained":false/);
    } finally {
      pod.remove();
    }
  }, 60_000);
});
