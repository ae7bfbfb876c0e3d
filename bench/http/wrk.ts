/** Runs wrk (the Debian package) with one thread and the report script, and returns its JSON summary. */
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const SCRIPT = fileURLToPath(new URL('./wrk-report.lua', import.meta.url));
const WRK = process.env.BENCH_WRK ?? 'wrk';

export interface WrkResult {
  readonly requests: number;
  readonly duration_us: number;
  readonly bytes: number;
  readonly errors: {
    readonly connect: number;
    readonly read: number;
    readonly write: number;
    /** Responses with a status outside 2xx and 3xx. */
    readonly status: number;
    readonly timeout: number;
  };
  readonly latency_us: {
    readonly mean: number;
    readonly stdev: number;
    readonly min: number;
    readonly max: number;
    readonly p50: number;
    readonly p90: number;
    readonly p99: number;
    readonly p999: number;
  };
  /** Requests per second over the run. */
  readonly rps: number;
}

export interface WrkRun {
  readonly url: string;
  readonly connections: number;
  /** Whole seconds: wrk's -d takes seconds. */
  readonly seconds: number;
  /** Sends POSTs with this file as the JSON body; GETs without it. */
  readonly postBodyFile?: string;
  readonly timeoutSeconds?: number;
}

/** The wrk version line, or an error saying how to install wrk. */
export function wrkVersion(): string {
  const probe = spawnSync(WRK, ['-v'], { encoding: 'utf8' });
  if (probe.error) {
    throw new Error(`cannot run ${WRK} (${probe.error.message}); install it with: apt-get install wrk`);
  }
  const first = `${probe.stdout}${probe.stderr}`.split('\n')[0] ?? '';
  return first.replace(/\s*Copyright.*$/, '').trim() || WRK;
}

export function runWrk(run: WrkRun): Promise<WrkResult> {
  const args = [
    '-t1',
    `-c${run.connections}`,
    `-d${run.seconds}s`,
    '--timeout',
    `${run.timeoutSeconds ?? 10}s`,
    '-s',
    SCRIPT,
    run.url,
  ];
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (run.postBodyFile) {
    env.WRK_METHOD = 'POST';
    env.WRK_BODY_FILE = run.postBodyFile;
  }
  return new Promise((resolve, reject) => {
    const child = spawn(WRK, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.on('error', (error) => {
      reject(new Error(`cannot run ${WRK}: ${error.message}; install it with: apt-get install wrk`));
    });
    child.on('close', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('WRK_JSON '));
      if (code !== 0 || !line) {
        reject(new Error(`${WRK} ${args.join(' ')} exited with ${code}:\n${out}`));
        return;
      }
      const parsed = JSON.parse(line.slice('WRK_JSON '.length)) as Omit<WrkResult, 'rps'>;
      resolve({ ...parsed, rps: parsed.requests / (parsed.duration_us / 1e6) });
    });
  });
}
