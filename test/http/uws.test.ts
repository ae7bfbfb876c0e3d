/**
 * The server on the running Node.js: it serves on the uWebSockets.js build for this Node.js where that
 * build loads, and otherwise refuses to start with a message naming the Node.js/glibc pairs that serve.
 * CI runs this file on Node.js 20, 22 and 24; which outcome is right is decided from the Node.js and glibc
 * the test finds (Node.js 22 and 24 on glibc older than 2.38, as on Debian 12, must be refused).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { SERVING_COMBINATIONS, uwsBinary, uwsBuildFor } from '../../src/http/uws.js';
import { PodDir, REPO, writeLinearPod } from '../server/fixtures.js';

const CLI = path.join(REPO, 'dist/cli.js');

function glibc(): number[] | null {
  const report = process.report.getReport() as { header?: { glibcVersionRuntime?: string } };
  const version = report.header?.glibcVersionRuntime;
  return version === undefined ? null : version.split('.').map(Number);
}

function atLeast(version: number[] | null, floor: readonly number[]): boolean {
  if (version === null) return false;
  for (let i = 0; i < floor.length; i++) {
    const a = version[i] ?? 0;
    if (a !== floor[i]) return a > (floor[i] as number);
  }
  return true;
}

interface Exited {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

interface Started {
  readonly url: string;
  stop(): Promise<Exited>;
}

/**
 * Runs the CLI on this Node.js; resolves once it listens and has loaded its models (with its URL), or when it
 * exits (with its output).
 */
function startCli(dir: string): Promise<Started | Exited> {
  const child = spawn(process.execPath, [CLI, dir, '--http', '127.0.0.1:0'], {
    env: { ...process.env, FORECASTD_LOG_FORMAT: 'json' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const exited = new Promise<Exited>((resolve) => child.on('exit', (code) => resolve({ code, stdout, stderr })));
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  return new Promise((resolve) => {
    void exited.then(resolve);
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      const lines = stdout.split('\n');
      const line = lines.find((l) => l.includes('forecastd listening on'));
      if (line !== undefined && lines.some((l) => /loaded \d+ of \d+ models/.test(l))) {
        resolve({
          url: (JSON.parse(line) as { url: string }).url,
          stop: () => {
            child.kill('SIGTERM');
            return exited;
          },
        });
      }
    });
  });
}

describe('choosing uWebSockets.js for the running Node.js', () => {
  it('maps each supported Node.js to the build that has its binary, and nothing else', () => {
    expect(uwsBuildFor('linux', 'x64', '115')?.label).toBe('@trufflesuite/uws-js-unofficial 20.30.0');
    expect(uwsBuildFor('linux', 'x64', '127')?.label).toBe('@btc-vision/uwebsockets.js 20.57.0');
    expect(uwsBuildFor('linux', 'x64', '137')?.label).toBe('@btc-vision/uwebsockets.js 20.57.0');
    expect(uwsBuildFor('linux', 'x64', '127')?.glibc).toBe('2.38');
    expect(uwsBuildFor('linux', 'x64', '108')).toBeUndefined(); // Node.js 18
    expect(uwsBuildFor('linux', 'x64', '131')).toBeUndefined(); // Node.js 23
    expect(uwsBuildFor('linux', 'arm64', '115')).toBeUndefined();
    expect(uwsBuildFor('darwin', 'x64', '127')).toBeUndefined();
    // Each is installed with its binary for that Node.js.
    for (const abi of ['115', '127', '137']) {
      const build = uwsBuildFor('linux', 'x64', abi);
      if (build === undefined) throw new Error(`no build for module ABI ${abi}`);
      expect(existsSync(uwsBinary(build, 'linux', 'x64', abi)), `${build.label} for module ABI ${abi}`).toBe(true);
    }
  });
});

describe(`the server on Node.js ${process.version}`, () => {
  const pod = new PodDir('forecastd-uws-');
  const abi = process.versions.modules;
  const found = glibc();
  const build = uwsBuildFor(process.platform, process.arch, abi);
  const serves = build !== undefined && atLeast(found, build.glibc.split('.').map(Number));

  beforeAll(() => {
    expect(existsSync(CLI), 'dist/cli.js is missing: run npm run build:ts (npm test does)').toBe(true);
    writeLinearPod(pod, 'uws');
  });
  afterAll(() => pod.remove());

  it.runIf(serves)(`serves on ${build?.label ?? 'no build'} with glibc ${found?.join('.') ?? 'none'}`, async () => {
    const started = await startCli(pod.dir);
    if (!('url' in started)) throw new Error(`the server did not start (exit ${started.code}):\n${started.stderr}`);
    try {
      const health = await fetch(`${started.url}/health`);
      expect(health.status).toBe(200);
      expect(await health.text()).toBe('ok');
      // A 16 KiB header (a long token, cookies) is read, as Node's own http server reads it.
      const bigHeader = await fetch(`${started.url}/health`, { headers: { 'x-token': 't'.repeat(16 * 1024) } });
      expect(bigHeader.status).toBe(200);
      expect(await bigHeader.text()).toBe('ok');
      const response = await fetch(`${started.url}/v1/models/lin/predict`);
      const body = await response.text();
      expect(response.status, body).toBe(200);
      expect(JSON.parse(body)).toMatchObject({ status: 'Success', model_name: 'lin', lookback: 4 });
      expect((JSON.parse(body) as { prediction: number[] }).prediction).toHaveLength(2);
    } finally {
      const exited = await started.stop();
      expect(exited.code).toBe(0);
    }
  });

  it.runIf(!serves)(`refuses to start, naming the Node.js/glibc pairs that serve (glibc ${found?.join('.') ?? 'none'})`, async () => {
    const result = await startCli(pod.dir);
    if ('url' in result) {
      await result.stop();
      throw new Error(`the server started on Node.js ${process.version} with glibc ${found?.join('.')}, which no build serves on`);
    }
    expect(result.code).toBe(1);
    expect(result.stdout).not.toMatch(/listening/);
    expect(result.stderr).toContain(`Node.js ${process.version}, module ABI ${abi}`);
    expect(result.stderr).toContain(`forecastd serves on ${SERVING_COMBINATIONS}.`);
    if (build !== undefined) {
      // A build exists for this Node.js but its binary needs a newer glibc than this one.
      expect(result.stderr).toContain(`${build.label} needs glibc ${build.glibc} or newer`);
      expect(result.stderr).toMatch(new RegExp(`GLIBC_${build.glibc.replace('.', '\\.')}' not found`));
    } else {
      expect(result.stderr).toContain('uWebSockets.js has no native build for this Node.js');
    }
  });
});
