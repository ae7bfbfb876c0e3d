/**
 * The scale-out harness: forecastd replicas (the built CLI, each with its own copy of the pod folder) on
 * loopback ports, a real HAProxy or nginx in front running the configs shipped in deploy/, and a closed-loop
 * load of GET and POST predictions that checks every answer against references computed outside the server.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { REPO, replaceFile } from '../server/fixtures.js';
import { accepts, freePort } from '../helpers/sockets.js';

const CLI = path.join(REPO, 'dist/cli.js');

export type BalancerKind = 'haproxy' | 'nginx';

/** The program a balancer runs from, or null when it is not installed. */
export function balancerProgram(kind: BalancerKind): string | null {
  for (const dir of ['/usr/sbin', '/usr/local/sbin', '/usr/bin', '/usr/local/bin']) {
    const file = path.join(dir, kind);
    if (existsSync(file)) return file;
  }
  return null;
}

/**
 * Like the PostgreSQL probe: under CI=true a missing balancer fails the file (.ci/run installs both);
 * elsewhere a banner says the tests are skipped and why.
 */
export function probeBalancer(kind: BalancerKind): boolean {
  if (balancerProgram(kind) !== null) return true;
  const reason = `${kind} is not installed (apt-get install ${kind})`;
  if (process.env.CI === 'true') throw new Error(`${reason}; CI=true requires it (.ci/run installs it)`);
  const line = '!'.repeat(100);
  console.warn(`\n${line}\n!! SKIPPED: scale-out tests behind ${kind}.\n!! ${reason}\n${line}\n`);
  return false;
}

async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      res.on('error', reject);
    });
    req.setTimeout(5_000, () => req.destroy(new Error(`no answer from ${url} in 5 s`)));
    req.on('error', reject);
  });
}

export { get as httpGet };

/** Polls until `probe` returns a value; `what` names the condition in the error. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000, everyMs = 50): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  let last: unknown;
  while (performance.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`gave up waiting for ${what}${last === undefined ? '' : `: ${String(last)}`}`);
}

/** One forecastd process on a fixed loopback port, restartable, with its own copy of the pod folder. */
export class Replica {
  readonly dir: string;
  child: ChildProcess | null = null;
  exited: Promise<number | null> = Promise.resolve(null);
  #log: string;
  #starts = 0;

  constructor(
    readonly name: string,
    readonly port: number,
    podSource: string,
    readonly root: string,
    readonly extraArgs: readonly string[] = [],
  ) {
    this.dir = path.join(root, name);
    cpSync(podSource, this.dir, { recursive: true });
    this.#log = path.join(root, `${name}.log`);
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  start(): void {
    this.#starts += 1;
    const out = createWriteStream(this.#log, { flags: 'a' });
    const child = spawn(process.execPath, [CLI, this.dir, '--http', `127.0.0.1:${this.port}`, ...this.extraArgs], {
      env: { ...process.env, FORECASTD_LOG_FORMAT: 'json', FORECASTD_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.pipe(out);
    child.stderr!.pipe(out);
    this.child = child;
    this.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve(code ?? (signal === null ? null : -1))));
  }

  /** Resolves once /v1/ready answers 200. */
  async ready(): Promise<void> {
    await waitFor(`${this.name} ready`, async () => ((await get(`${this.url}/v1/ready`)).status === 200 ? true : undefined));
  }

  /** Sends `signal` and resolves with the exit code (-1 when killed by a signal). */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    const child = this.child;
    if (child === null || child.exitCode !== null || child.signalCode !== null) return this.exited;
    child.kill(signal);
    return this.exited;
  }

  log(): string {
    return existsSync(this.#log) ? readFileSync(this.#log, 'utf8') : '';
  }

  /** Replaces a file in this replica's pod folder atomically (as a deploy tool or a ConfigMap swap does). */
  replace(relative: string, content: string | Uint8Array): void {
    replaceFile(path.join(this.dir, relative), content);
  }
}

/** Replaces the server/listen addresses of a shipped balancer config with the test's loopback ports. */
export function renderBalancerConfig(
  kind: BalancerKind,
  ports: { front: number; stats: number; replicas: readonly number[] },
  /** nginx: replicas (by index) marked `down`, the way to take one out of an open-source nginx. */
  down: ReadonlySet<number> = new Set(),
): string {
  const file = kind === 'haproxy' ? 'deploy/haproxy/haproxy.cfg' : 'deploy/nginx/forecastd.conf';
  const lines = readFileSync(path.join(REPO, file), 'utf8').split('\n');
  const out: string[] = [];
  let replica = 0;
  for (const line of lines) {
    const server = kind === 'haproxy' ? /^(\s*server\s+\S+\s+)\S+:\d+(.*)$/.exec(line) : /^(\s*server\s+)\S+:\d+(.*)$/.exec(line);
    if (server !== null) {
      const port = ports.replicas[replica];
      const rest = down.has(replica) ? server[2]!.replace(/;$/, ' down;') : server[2]!;
      if (port !== undefined) out.push(`${server[1]}127.0.0.1:${port}${rest}`);
      replica++;
      continue;
    }
    if (/^\s*bind 127\.0\.0\.1:8080\s*$/.test(line) || /^\s*listen 127\.0\.0\.1:8080;\s*$/.test(line)) {
      out.push(line.replace('8080', String(ports.front)));
    } else if (/^\s*bind 127\.0\.0\.1:8404\s*$/.test(line)) {
      out.push(line.replace('8404', String(ports.stats)));
    } else {
      out.push(line);
    }
  }
  if (replica !== 3) throw new Error(`${file} should list 3 servers, found ${replica}`);
  return out.join('\n');
}

/** A running HAProxy or nginx in front of the replicas. */
export class Balancer {
  readonly url: string;
  readonly #child: ChildProcess;
  readonly #exited: Promise<void>;
  #output = '';

  private constructor(
    readonly kind: BalancerKind,
    readonly port: number,
    readonly statsPort: number,
    readonly dir: string,
    child: ChildProcess,
  ) {
    this.url = `http://127.0.0.1:${port}`;
    this.#child = child;
    child.stdout!.on('data', (d: Buffer) => (this.#output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (this.#output += d.toString()));
    this.#exited = new Promise((resolve) => child.on('exit', () => resolve()));
  }

  /** Starts `kind` with `config` (a full haproxy.cfg, or an nginx `http` block snippet). */
  static async start(kind: BalancerKind, replicas: readonly Replica[], root: string, configText?: (ports: { front: number; stats: number }) => string): Promise<Balancer> {
    const program = balancerProgram(kind);
    if (program === null) throw new Error(`${kind} is not installed`);
    const front = await freePort();
    const stats = await freePort();
    const dir = mkdtempSync(path.join(root, `${kind}-`));
    const config =
      configText?.({ front, stats }) ?? renderBalancerConfig(kind, { front, stats, replicas: replicas.map((r) => r.port) });
    let child: ChildProcess;
    if (kind === 'haproxy') {
      const file = path.join(dir, 'haproxy.cfg');
      writeFileSync(file, config);
      const check = spawnSync(program, ['-c', '-f', file], { encoding: 'utf8' });
      if (check.status !== 0) throw new Error(`haproxy rejects the config:\n${check.stdout}${check.stderr}`);
      child = spawn(program, ['-db', '-f', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    } else {
      mkdirSync(path.join(dir, 'logs'));
      writeFileSync(path.join(dir, 'forecastd.conf'), config);
      writeFileSync(
        path.join(dir, 'nginx.conf'),
        [
          'worker_processes 1;',
          `pid ${dir}/nginx.pid;`,
          `error_log ${dir}/logs/error.log warn;`,
          'events { worker_connections 1024; }',
          'http {',
          '  log_format upstreams \'$status "$upstream_status" "$upstream_addr" $request_time "$request"\';',
          `  access_log ${dir}/logs/access.log upstreams;`,
          `  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy;`,
          `  fastcgi_temp_path ${dir}/fastcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;`,
          `  include ${dir}/forecastd.conf;`,
          '}',
          '',
        ].join('\n'),
      );
      const args = ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-g', 'daemon off; master_process on;'];
      const check = spawnSync(program, ['-t', ...args], { encoding: 'utf8' });
      if (check.status !== 0) throw new Error(`nginx rejects the config:\n${check.stdout}${check.stderr}`);
      child = spawn(program, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    }
    const balancer = new Balancer(kind, front, stats, dir, child);
    await waitFor(`${kind} listening`, async () => {
      if (child.exitCode !== null) throw new Error(`${kind} exited: ${balancer.#output}`);
      return (await accepts(front)) ? true : undefined;
    });
    return balancer;
  }

  /**
   * nginx: rewrites the upstream with `down` replicas and reloads (SIGHUP), resolving once every worker
   * runs the new configuration (the old ones finished their requests and exited).
   */
  async reconfigure(replicas: readonly Replica[], down: ReadonlySet<number>): Promise<void> {
    if (this.kind !== 'nginx') throw new Error('reconfigure is for nginx');
    const master = this.#child.pid!;
    const before = workerPids(master);
    writeFileSync(path.join(this.dir, 'forecastd.conf'), renderBalancerConfig('nginx', { front: this.port, stats: this.statsPort, replicas: replicas.map((r) => r.port) }, down));
    this.#child.kill('SIGHUP');
    await waitFor('nginx workers on the new configuration', async () => {
      const now = workerPids(master);
      return now.length > 0 && now.every((pid) => !before.includes(pid)) ? true : undefined;
    });
  }

  /** HAProxy's view of each server: name → status (UP, DOWN, ...). */
  async serverStates(): Promise<Map<string, string>> {
    if (this.kind !== 'haproxy') throw new Error('nginx (open source) has no server states to read');
    const { body } = await get(`http://127.0.0.1:${this.statsPort}/stats;csv`);
    const states = new Map<string, string>();
    for (const line of body.split('\n')) {
      const [proxy, server, ...rest] = line.split(',');
      if (proxy === 'forecastd' && server !== undefined && server !== 'BACKEND' && server !== 'FRONTEND') {
        states.set(server, rest[15] ?? '');
      }
    }
    return states;
  }

  /** Waits until HAProxy reports `server` with `state` (UP or DOWN). */
  async waitForState(server: string, state: 'UP' | 'DOWN', timeoutMs = 60_000): Promise<void> {
    await waitFor(`${server} ${state} in haproxy`, async () => ((await this.serverStates()).get(server)?.startsWith(state) ? true : undefined), timeoutMs);
  }

  /** What the balancer logged: HAProxy's request lines (stdout) or nginx's access log. */
  requestLog(): string[] {
    const text = this.kind === 'haproxy' ? this.#output : readOr(path.join(this.dir, 'logs/access.log'));
    return text.split('\n').filter((l) => l.trim() !== '');
  }

  output(): string {
    return this.#output + (this.kind === 'nginx' ? readOr(path.join(this.dir, 'logs/error.log')) : '');
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode === null && this.#child.signalCode === null) {
      this.#child.kill(this.kind === 'nginx' ? 'SIGQUIT' : 'SIGTERM');
      const killer = setTimeout(() => this.#child.kill('SIGKILL'), 5_000);
      await this.#exited;
      clearTimeout(killer);
    }
  }
}

/** Child processes of `parent` (nginx's workers). */
function workerPids(parent: number): number[] {
  const result = spawnSync('pgrep', ['-P', String(parent)], { encoding: 'utf8' });
  return result.stdout.split('\n').filter((l) => l !== '').map(Number);
}

function readOr(file: string): string {
  return existsSync(file) ? readFileSync(file, 'utf8') : '';
}

/** A folder for one scale-out test; remove() deletes it. */
export function scratchDir(prefix: string): { dir: string; remove(): void } {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

