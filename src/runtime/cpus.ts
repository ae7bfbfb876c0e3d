/**
 * How many CPUs this process may use: the smaller of its CPU affinity mask (`os.availableParallelism()`,
 * which on Node 20 does not look at cgroups) and its cgroup CPU quota (v2 `cpu.max`, v1
 * `cpu.cfs_quota_us` / `cpu.cfs_period_us`, the tightest on the way up from the process's own cgroup),
 * rounded up, at least 1. A container given `cpus: 2` (Kubernetes `limits.cpu: 2`) on a 64-core host gets 2.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface CpuProbeOptions {
  /** Where `cgroup` and `mountinfo` of the process are read. Default /proc/self. */
  readonly procSelf?: string;
  /** The affinity-mask count. Default os.availableParallelism(). */
  readonly parallelism?: number;
}

/** The CPUs this process may use, as a whole number of run threads (see the file comment). */
export function availableCpus(options: CpuProbeOptions = {}): number {
  const parallelism = options.parallelism ?? os.availableParallelism();
  const quota = cgroupCpuQuota(options);
  if (quota === null) return Math.max(1, parallelism);
  return Math.max(1, Math.min(parallelism, Math.ceil(quota)));
}

/**
 * The process's cgroup CPU quota in CPUs (1.5 for `150000 100000`), or null when there is none or it cannot
 * be read (no cgroup file system, another OS): the quota only ever lowers the count, never fails a start.
 */
export function cgroupCpuQuota(options: Pick<CpuProbeOptions, 'procSelf'> = {}): number | null {
  const procSelf = options.procSelf ?? '/proc/self';
  const membership = readText(path.join(procSelf, 'cgroup'));
  const mounts = readText(path.join(procSelf, 'mountinfo'));
  if (membership === null || mounts === null) return null;
  let tightest: number | null = null;
  for (const mount of cgroupMounts(mounts)) {
    const cgroupPath = memberPath(membership, mount);
    if (cgroupPath === null) continue;
    const quota = tightestQuota(mount, cgroupPath);
    if (quota !== null && (tightest === null || quota < tightest)) tightest = quota;
  }
  return tightest;
}

interface CgroupMount {
  readonly version: 1 | 2;
  /** The cgroup path that the mount shows at its mount point ("/" on a host, the container's own inside one). */
  readonly root: string;
  readonly mountPoint: string;
}

/** Mountinfo fields: id parent major:minor root mount-point options [optional...] - fstype source super-options. */
function cgroupMounts(mountinfo: string): CgroupMount[] {
  const mounts: CgroupMount[] = [];
  for (const line of mountinfo.split('\n')) {
    const separator = line.indexOf(' - ');
    if (separator < 0) continue;
    const fields = line.slice(0, separator).split(' ');
    const [fsType, , superOptions = ''] = line.slice(separator + 3).split(' ');
    const root = fields[3];
    const mountPoint = fields[4];
    if (root === undefined || mountPoint === undefined) continue;
    if (fsType === 'cgroup2') {
      mounts.push({ version: 2, root: unescapeMountField(root), mountPoint: unescapeMountField(mountPoint) });
    } else if (fsType === 'cgroup' && superOptions.split(',').includes('cpu')) {
      mounts.push({ version: 1, root: unescapeMountField(root), mountPoint: unescapeMountField(mountPoint) });
    }
  }
  return mounts;
}

/** Mountinfo writes space, tab, newline and backslash as octal escapes (\040). */
function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/** The process's cgroup under `mount`, from /proc/self/cgroup lines `ID:CONTROLLERS:PATH`. */
function memberPath(membership: string, mount: CgroupMount): string | null {
  for (const line of membership.split('\n')) {
    const match = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (match === null) continue;
    const [, id, controllers = '', cgroupPath = ''] = match;
    if (mount.version === 2 ? id === '0' && controllers === '' : controllers.split(',').includes('cpu')) return cgroupPath;
  }
  return null;
}

/** The smallest quota from the process's cgroup folder up to the mount point. */
function tightestQuota(mount: CgroupMount, cgroupPath: string): number | null {
  // Inside a container without a cgroup namespace the path is the host's (/kubepods/.../ID) while the mount
  // shows only the container's part: the mount point is then the process's own cgroup.
  const relative = path.posix.relative(mount.root, cgroupPath);
  let dir = relative.startsWith('..') ? mount.mountPoint : path.join(mount.mountPoint, relative);
  let tightest: number | null = null;
  for (;;) {
    const quota = mount.version === 2 ? quotaV2(dir) : quotaV1(dir);
    if (quota !== null && (tightest === null || quota < tightest)) tightest = quota;
    if (dir === mount.mountPoint || !dir.startsWith(mount.mountPoint)) break;
    dir = path.dirname(dir);
  }
  return tightest;
}

/** cpu.max: "QUOTA PERIOD" or "max PERIOD". */
function quotaV2(dir: string): number | null {
  const text = readText(path.join(dir, 'cpu.max'));
  if (text === null) return null;
  const [quota, period] = text.trim().split(/\s+/);
  return ratio(quota, period);
}

/** cpu.cfs_quota_us is -1 when unlimited. */
function quotaV1(dir: string): number | null {
  const quota = readText(path.join(dir, 'cpu.cfs_quota_us'));
  const period = readText(path.join(dir, 'cpu.cfs_period_us'));
  if (quota === null || period === null) return null;
  return ratio(quota.trim(), period.trim());
}

function ratio(quota: string | undefined, period: string | undefined): number | null {
  if (quota === undefined || period === undefined || !/^\d+$/.test(quota) || !/^\d+$/.test(period)) return null;
  const q = Number(quota);
  const p = Number(period);
  return q > 0 && p > 0 ? q / p : null;
}

function readText(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}
