import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { linearModel } from '../../tools/onnx-builder.js';
import { CLI } from '../helpers/cli.js';
import { STRACE } from '../helpers/strace.js';
import { PodDir, dailyCsv } from '../server/fixtures.js';

/**
 * SPEC "Bounded and quiet", quiet: forecastd, run as users run it (the built CLI, a real pod with a real ONNX
 * model, a prediction served), under strace with a fresh $HOME and $TMPDIR. ONNX Runtime's telemetry is on by
 * default in its Linux builds: it looks up Microsoft's collector, writes a device id and an event database under
 * $HOME/.cache and debug logs as /tmp/mat-debug-PID.log. None of that may happen: no name lookup, no connection
 * to anything but this host, nothing written to $HOME, no mat-debug file.
 */

/** How long the server runs before it is stopped and its trace read. */
const OBSERVE_MS = 15_000;

const POD = `
version: v1beta1
kind: Spicepod
name: quiet
datasets:
  - from: file:data/daily.csv
    name: daily
models:
  - from: file:models/mean.onnx
    name: mean
    datasets: [daily]
`;

interface Traced {
  readonly trace: string;
  readonly pids: readonly number[];
  readonly predict: { status: number; body: string };
  readonly exitCode: number | null;
}

/** Runs the CLI under strace until it served one prediction, then stops it with SIGTERM. */
async function runTraced(pod: PodDir, home: string, tmp: string, traceFile: string): Promise<Traced> {
  const child = spawn(
    STRACE!,
    ['-f', '-qq', '-e', 'trace=network', '-o', traceFile, process.execPath, CLI, pod.dir, '--http', '127.0.0.1:0', '--no-watch'],
    {
      // Only what a service manager would pass: no inherited settings that could turn telemetry off or on.
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: home, TMPDIR: tmp, FORECASTD_LOG_FORMAT: 'json' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  // The server's own pid (strace's child): strace does not pass signals on to the program it traces.
  const { url, pid } = await new Promise<{ url: string; pid: number }>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const match = /"pid":(\d+),.*forecastd listening on (http:\/\/[\d.:]+)/.exec(out);
      if (match !== null) resolve({ pid: Number(match[1]), url: match[2]! });
    });
    void exit.then((code) => reject(new Error(`forecastd exited with ${code} before listening\n${out}\n${err}`)));
  });
  let predict = { status: 0, body: '' };
  try {
    for (;;) {
      const res = await fetch(`${url}/v1/models/mean/predict`);
      predict = { status: res.status, body: await res.text() };
      if (res.status !== 503) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    // ONNX Runtime 1.30's uploader first looks up its collector about 9 s after the library loaded (seen under
    // strace): a negative check has to watch longer than that.
    await new Promise((r) => setTimeout(r, OBSERVE_MS));
  } finally {
    process.kill(pid, 'SIGTERM');
  }
  const exitCode = await exit;
  const trace = readFileSync(traceFile, 'utf8');
  const pids = [...new Set(trace.split('\n').map((l) => Number(/^(\d+) /.exec(l)?.[1])).filter((p) => p > 0))];
  return { trace, pids, predict, exitCode };
}

/** The traced calls that reach past this host, or that look up a name (DNS on port 53, nscd, systemd-resolved). */
function outbound(trace: string): string[] {
  return trace.split('\n').filter((line) => {
    if (!/\b(connect|sendto|sendmsg)\(/.test(line)) return false;
    if (/htons\(53\)/.test(line)) return true;
    if (/sun_path="[^"]*(nscd|resolve)/.test(line)) return true;
    const v4 = /sin_addr=inet_addr\("([\d.]+)"\)/.exec(line);
    if (v4 !== null) return !v4[1]!.startsWith('127.');
    const v6 = /inet_pton\(AF_INET6, "([^"]+)"/.exec(line);
    if (v6 !== null) return v6[1] !== '::1' && !v6[1]!.startsWith('::ffff:127.');
    return false;
  });
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' });
}

describe.skipIf(STRACE === undefined)('quiet: forecastd makes no outbound connection and writes nothing to $HOME', () => {
  const pod = new PodDir('forecastd-quiet-');
  let traced: Traced;
  let home: string;
  let tmp: string;
  let startedAt = 0;

  beforeAll(async () => {
    pod.write('data/daily.csv', dailyCsv({ value: [1, 2, 3, 4, 5, 6, 7, 8] }));
    pod.write('models/mean.onnx', linearModel({ lookback: 4, horizon: 2, weights: new Float32Array(8).fill(0.25) }));
    pod.write('spicepod.yaml', POD);
    home = pod.path('home');
    tmp = pod.path('tmp');
    mkdirSync(home);
    mkdirSync(tmp);
    startedAt = Date.now();
    traced = await runTraced(pod, home, tmp, pod.path('network.trace'));
  }, 60_000 + OBSERVE_MS);

  afterAll(() => pod.remove());

  it('serves a prediction and exits cleanly under strace', () => {
    expect(traced.predict.status).toBe(200);
    // The mean of the last four rows (5, 6, 7, 8) at both steps.
    expect(JSON.parse(traced.predict.body)).toMatchObject({ status: 'Success', model_name: 'mean', prediction: [6.5, 6.5] });
    expect(traced.exitCode).toBe(0);
    expect(traced.pids.length).toBeGreaterThan(1);
  });

  it('no name lookup and no connection leaves the host', () => {
    expect(outbound(traced.trace)).toEqual([]);
  });

  it('nothing is written to $HOME or $TMPDIR, and no /tmp/mat-debug-PID.log appears', () => {
    expect(filesUnder(home)).toEqual([]);
    expect(filesUnder(tmp)).toEqual([]);
    // Only a file made while the server ran: another program (onnxruntime-node, an older build) may have left
    // one for the same process id earlier, which the traced process then happened to get.
    const made = traced.pids
      .map((pid) => `/tmp/mat-debug-${pid}.log`)
      .filter((f) => existsSync(f) && statSync(f).mtimeMs >= startedAt - 1_000);
    expect(made).toEqual([]);
  });
});

describe('the strace check itself', () => {
  it('sees a name lookup and an outbound connection attempt for what they are', () => {
    expect(
      outbound(
        [
          '12 connect(21, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("127.0.0.53")}, 16) = 0',
          '12 connect(22, {sa_family=AF_INET, sin_port=htons(443), sin_addr=inet_addr("13.69.109.130")}, 16) = -1 ENETUNREACH',
          '12 connect(23, {sa_family=AF_INET, sin_port=htons(5432), sin_addr=inet_addr("127.0.0.1")}, 16) = 0',
          '12 connect(24, {sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "2603:1030::1", &sin6_addr), sin6_scope_id=0}, 28) = -1',
          '12 sendto(25, "abc", 3, MSG_NOSIGNAL, NULL, 0) = 3',
        ].join('\n'),
      ).map((l) => /\((\d+),/.exec(l)?.[1]),
    ).toEqual(['21', '22', '24']);
  });
});
