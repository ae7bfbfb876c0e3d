/**
 * The CPUs a process may use: its affinity mask (taskset) and its cgroup CPU quota, for run threads and
 * `max_concurrent_runs: 0`. Cgroup v1 and v2 layouts are read from real files laid out as the kernel does
 * (a host, a container with its own cgroup mount); the affinity mask and, where this machine lets the test
 * create one, a real cgroup with a quota are applied to a real child process.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { availableCpus, cgroupCpuQuota } from '../../src/runtime/cpus.js';
import { REPO, linearFixture } from '../server/fixtures.js';

const root = mkdtempSync(path.join(tmpdir(), 'forecastd-cpus-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let fakes = 0;
/** A /proc/self (cgroup, mountinfo) and a cgroup file system in a folder; returns the fake /proc/self. */
function fakeSystem(o: { cgroup: string; mounts: (fs: string) => string; files: Record<string, string> }): string {
  const dir = path.join(root, `sys${fakes++}`);
  const fs = path.join(dir, 'fs');
  for (const [file, content] of Object.entries(o.files)) {
    mkdirSync(path.dirname(path.join(fs, file)), { recursive: true });
    writeFileSync(path.join(fs, file), content);
  }
  mkdirSync(path.join(dir, 'proc'), { recursive: true });
  writeFileSync(path.join(dir, 'proc/cgroup'), o.cgroup);
  writeFileSync(path.join(dir, 'proc/mountinfo'), o.mounts(fs));
  return path.join(dir, 'proc');
}

describe('cgroup CPU quota', () => {
  it('cgroup v2 on a host: the tightest cpu.max from the process cgroup up', () => {
    const procSelf = fakeSystem({
      cgroup: '0::/kubepods.slice/pod1/ctr\n',
      mounts: (fs) => `29 23 0:26 / ${fs} rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n`,
      files: {
        'cpu.max': 'max 100000\n',
        'kubepods.slice/cpu.max': '400000 100000\n',
        'kubepods.slice/pod1/cpu.max': 'max 100000\n',
        'kubepods.slice/pod1/ctr/cpu.max': '150000 100000\n',
      },
    });
    expect(cgroupCpuQuota({ procSelf })).toBe(1.5);
    expect(availableCpus({ procSelf, parallelism: 64 })).toBe(2);
    // The affinity mask still wins when it is smaller.
    expect(availableCpus({ procSelf, parallelism: 1 })).toBe(1);
  });

  it('cgroup v2 in a container: the mount shows only the container cgroup, a parent holds the limit', () => {
    const procSelf = fakeSystem({
      // Without a cgroup namespace the path is the host's, the mount the container's own.
      cgroup: '0::/kubepods/burstable/pod9/abc\n',
      mounts: (fs) => `1 0 0:26 /kubepods/burstable/pod9/abc ${fs} ro,nosuid - cgroup2 cgroup2 rw\n`,
      files: { 'cpu.max': '250000 100000\n' },
    });
    expect(cgroupCpuQuota({ procSelf })).toBe(2.5);
    expect(availableCpus({ procSelf, parallelism: 16 })).toBe(3);
  });

  it('cgroup v1 (cpu,cpuacct): cfs quota over period; -1 is no limit', () => {
    const procSelf = fakeSystem({
      cgroup: '12:memory:/docker/x\n4:cpu,cpuacct:/docker/x\n0::/\n',
      mounts: (fs) =>
        [
          `30 24 0:27 / ${fs}/memory rw - cgroup cgroup rw,memory`,
          `31 24 0:28 / ${fs}/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct`,
          '',
        ].join('\n'),
      files: {
        'cpu,cpuacct/cpu.cfs_quota_us': '-1\n',
        'cpu,cpuacct/cpu.cfs_period_us': '100000\n',
        'cpu,cpuacct/docker/cpu.cfs_quota_us': '-1\n',
        'cpu,cpuacct/docker/cpu.cfs_period_us': '100000\n',
        'cpu,cpuacct/docker/x/cpu.cfs_quota_us': '50000\n',
        'cpu,cpuacct/docker/x/cpu.cfs_period_us': '100000\n',
      },
    });
    expect(cgroupCpuQuota({ procSelf })).toBe(0.5);
    // Half a CPU still runs one thread.
    expect(availableCpus({ procSelf, parallelism: 8 })).toBe(1);
  });

  it('no limit, no cgroup files, or garbage: the affinity count alone', () => {
    const unlimited = fakeSystem({
      cgroup: '0::/user.slice\n',
      mounts: (fs) => `29 23 0:26 / ${fs} rw - cgroup2 cgroup2 rw\n`,
      files: { 'cpu.max': 'max 100000\n', 'user.slice/cpu.max': 'max 100000\n' },
    });
    expect(cgroupCpuQuota({ procSelf: unlimited })).toBeNull();
    expect(availableCpus({ procSelf: unlimited, parallelism: 6 })).toBe(6);
    const garbage = fakeSystem({
      cgroup: '0::/a\n',
      mounts: (fs) => `29 23 0:26 / ${fs} rw - cgroup2 cgroup2 rw\n`,
      files: { 'a/cpu.max': 'lots\n' },
    });
    expect(cgroupCpuQuota({ procSelf: garbage })).toBeNull();
    expect(cgroupCpuQuota({ procSelf: path.join(root, 'nowhere') })).toBeNull();
    expect(availableCpus({ procSelf: path.join(root, 'nowhere'), parallelism: 3 })).toBe(3);
  });
});

/** A real process's view: CPUs, the addon's run threads, and a forecaster's run limit with max_concurrent_runs 0. */
const PROBE = `
import os from 'node:os';
import { availableCpus, configureRuntime, InferenceSession, BatchingForecaster } from './dist/index.js';
const session = await InferenceSession.load(process.argv[1]);
const forecaster = new BatchingForecaster(session, { maxConcurrentRuns: 0 });
console.log(JSON.stringify({
  parallelism: os.availableParallelism(),
  cpus: availableCpus(),
  runThreads: configureRuntime().runThreads,
  maxConcurrentRuns: forecaster.settings.maxConcurrentRuns,
}));
await forecaster.close();
session.dispose();
`;

interface ProbeResult {
  parallelism: number;
  cpus: number;
  runThreads: number;
  maxConcurrentRuns: number;
}

function probe(prefix: readonly string[]): ProbeResult {
  const model = path.join(root, 'probe.onnx');
  writeFileSync(model, linearFixture({ lookback: 4, horizon: 1 }).bytes);
  const [command, ...args] = [...prefix, process.execPath, '--input-type=module', '-e', PROBE, model];
  const result = spawnSync(command!, args, { cwd: REPO, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`probe failed (${result.status}): ${result.stderr}`);
  return JSON.parse(result.stdout.trim().split('\n').at(-1)!) as ProbeResult;
}

/** A cgroup v1 cpu folder this test may create, or why not. */
function makeCpuCgroup(): { dir: string } | { reason: string } {
  for (const base of ['/sys/fs/cgroup/cpu', '/sys/fs/cgroup/cpu,cpuacct']) {
    const dir = path.join(base, `forecastd-test-${process.pid}`);
    try {
      mkdirSync(dir);
    } catch {
      continue;
    }
    try {
      writeFileSync(path.join(dir, 'cpu.cfs_period_us'), '100000');
      writeFileSync(path.join(dir, 'cpu.cfs_quota_us'), '100000');
      return { dir };
    } catch (error) {
      rmdirSync(dir);
      return { reason: `cannot set a quota in ${dir}: ${String(error)}` };
    }
  }
  return { reason: 'no writable cgroup v1 cpu hierarchy (needs root and /sys/fs/cgroup/cpu)' };
}

describe('a real process', () => {
  it('follows its CPU affinity mask (taskset -c 0): one run thread, one concurrent run', () => {
    const free = probe([]);
    const pinned = probe(['taskset', '-c', '0']);
    expect(free.cpus).toBe(os.availableParallelism());
    expect(free.runThreads).toBe(free.cpus);
    expect(free.maxConcurrentRuns).toBe(free.cpus);
    expect(pinned).toEqual({ parallelism: 1, cpus: 1, runThreads: 1, maxConcurrentRuns: 1 });
  });

  const cgroup = makeCpuCgroup();
  if ('reason' in cgroup) console.warn(`!! SKIPPED: the real cgroup quota test: ${cgroup.reason}`);

  it.skipIf('reason' in cgroup)('follows a cgroup CPU quota of one CPU that os.availableParallelism() ignores', () => {
    const dir = (cgroup as { dir: string }).dir;
    try {
      const inside = probe(['sh', '-c', `echo $$ > ${dir}/cgroup.procs && exec "$@"`, 'sh']);
      expect(inside.cpus).toBe(1);
      expect(inside.runThreads).toBe(1);
      expect(inside.maxConcurrentRuns).toBe(1);
    } finally {
      rmdirSync(dir);
    }
  });
});
