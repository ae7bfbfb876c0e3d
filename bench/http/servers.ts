/** Starting, probing and stopping the servers under test, and reading what they cost in CPU. */
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** USER_HZ, the unit of /proc/PID/stat times: 100 on every Linux this runs on (getconf CLK_TCK). */
const CLOCK_TICKS_PER_SECOND = 100;

/** User + system CPU seconds consumed so far by a process, every thread included (/proc/PID/stat). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may hold spaces: count fields from after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return (utime + stime) / CLOCK_TICKS_PER_SECOND;
}

export interface ServerSpec {
  /** Shown in messages and results. */
  readonly name: string;
  /** Arguments to `node` (the script first). */
  readonly args: readonly string[];
  readonly port: number;
  readonly logFile: string;
  readonly env?: Readonly<Record<string, string>>;
}

interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** A server under test: a `node` child process with its output kept in a log file. */
export class ServerProcess {
  readonly name: string;
  readonly port: number;
  readonly base: string;
  readonly pid: number;
  private readonly logFile: string;
  private readonly child: ChildProcess;
  private readonly exitPromise: Promise<Exit>;
  private exit: Exit | undefined;

  constructor(spec: ServerSpec) {
    this.name = spec.name;
    this.port = spec.port;
    this.logFile = spec.logFile;
    this.base = `http://127.0.0.1:${spec.port}`;
    const log = createWriteStream(spec.logFile);
    this.child = spawn(process.execPath, [...spec.args], {
      env: { ...process.env, ...spec.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    if (this.child.pid === undefined) throw new Error(`cannot start ${spec.name}: node ${spec.args.join(' ')}`);
    this.pid = this.child.pid;
    this.child.stdout?.pipe(log);
    this.child.stderr?.pipe(log);
    this.exitPromise = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
  }

  logTail(lines = 30): string {
    try {
      return readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }

  /** Resolves once GET `readyPath` answers 200; rejects with the log's tail if the process exits first. */
  async waitReady(readyPath: string, timeoutMs = 120_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.exit) {
        throw new Error(`${this.name} exited (${JSON.stringify(this.exit)}) before it was ready:\n${this.logTail()}`);
      }
      try {
        const response = await fetch(`${this.base}${readyPath}`);
        await response.arrayBuffer();
        if (response.status === 200) return;
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    throw new Error(`${this.name} was not ready after ${timeoutMs / 1000} s:\n${this.logTail()}`);
  }

  /** Throws with the log's tail if the process has died (a crash under load must not pass unnoticed). */
  assertAlive(): void {
    if (this.exit) throw new Error(`${this.name} exited (${JSON.stringify(this.exit)}):\n${this.logTail()}`);
  }

  cpuSeconds(): number {
    return cpuSeconds(this.pid);
  }

  async stop(): Promise<Exit> {
    if (this.exit) return this.exit;
    this.child.kill('SIGTERM');
    // forecastd drains in-flight requests for up to 10 s on SIGTERM; beyond that something is wrong.
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 15_000);
    const exit = await this.exitPromise;
    clearTimeout(timer);
    return exit;
  }
}

export interface HistogramTotals {
  readonly sum: number;
  readonly count: number;
}

/**
 * Sum and count over every Prometheus histogram series whose metric name contains `batch_size`, only for the
 * given models where the series has a `model` label. The mean batch size of a run is the change in sum over
 * the change in count between two scrapes.
 */
export function batchSizeTotals(metricsText: string, models?: readonly string[]): HistogramTotals {
  let sum = 0;
  let count = 0;
  for (const line of metricsText.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*batch_size\w*?)_(sum|count)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const labels = match[3];
    if (models && labels) {
      const model = /\bmodel(?:_name)?="([^"]*)"/.exec(labels)?.[1];
      if (model !== undefined && !models.includes(model)) continue;
    }
    if (match[2] === 'sum') sum += Number(match[4]);
    else count += Number(match[4]);
  }
  return { sum, count };
}

export async function fetchText(url: string, init?: RequestInit): Promise<{ status: number; text: string }> {
  const response = await fetch(url, init);
  return { status: response.status, text: await response.text() };
}
