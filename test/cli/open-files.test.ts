import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI } from '../helpers/cli.js';
import { PodDir, dailyCsv } from '../server/fixtures.js';

/**
 * SPEC "Bounded and quiet", connections: each connection is a descriptor, so at start the soft RLIMIT_NOFILE
 * is raised to the hard limit (Node.js itself already does so when it starts; the server does it again for
 * hosts that do not, and logs the limit it serves under). The built CLI started under `ulimit -Sn 256`, as a
 * service with a low default soft limit would be; its limits read back from /proc.
 */

const SOFT = 256;

function limitsOf(pid: number): { soft: string; hard: string } {
  const line = readFileSync(`/proc/${pid}/limits`, 'utf8').split('\n').find((l) => l.startsWith('Max open files'))!;
  const [soft, hard] = line.replace('Max open files', '').trim().split(/\s+/);
  return { soft: soft!, hard: hard! };
}

describe('the open file limit', () => {
  const pod = new PodDir('forecastd-open-files-');
  let child: ReturnType<typeof spawn>;
  let out = '';

  beforeAll(async () => {
    pod.write('data/daily.csv', dailyCsv({ value: [1, 2, 3] }));
    pod.write('spicepod.yaml', 'version: v1beta1\nkind: Spicepod\nname: files\ndatasets:\n  - from: file:data/daily.csv\n    name: daily\n');
    child = spawn('/bin/sh', ['-c', `ulimit -Sn ${SOFT} && exec "$0" "$@"`, process.execPath, CLI, pod.dir, '--http', '127.0.0.1:0', '--no-watch'], {
      env: { ...process.env, FORECASTD_LOG_FORMAT: 'json' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('forecastd listening on')) resolve();
      });
      child.on('exit', (code) => reject(new Error(`exited with ${code}: ${out}`)));
    });
  });

  afterAll(async () => {
    const exited = new Promise((resolve) => child.on('exit', resolve));
    child.kill('SIGTERM');
    await exited;
    pod.remove();
  });

  it(`is raised from ${SOFT} to the hard limit, and the log says which limit the server runs under`, () => {
    const limits = limitsOf(child.pid!);
    expect(limits.hard).not.toBe(String(SOFT));
    expect(limits.soft).toBe(limits.hard);
    const line = out.split('\n').find((l) => l.includes('open file limit'));
    expect(line).toBeDefined();
    expect(JSON.parse(line!)).toMatchObject({ soft: Number(limits.hard), hard: Number(limits.hard), msg: `open file limit ${limits.hard}` });
  });
});
