/**
 * Bounds the connections a server holds (SPEC "Bounded and quiet", connections). Each connection is a file
 * descriptor; when the process runs out of them, accept() fails on every wake-up of the event loop and the
 * server spins without serving anyone. uWebSockets.js (the 20.x builds for Node.js 20) reports no connection
 * opening or closing to JavaScript, so connections are counted from the kernel's socket tables
 * (/proc/net/tcp and tcp6), read off the event loop a few times a second: the sockets on the listening port that
 * hold, or are about to hold, a descriptor (established, accepted or waiting to be, and those the client has
 * closed and the server not yet). Files, database connections and threads the process opens do not count. The
 * tables are read only while the process holds at least as many descriptors as the limit (fewer descriptors mean
 * fewer connections; counting /proc/self/fd is cheap, reading the tables is not). At the
 * limit the listen socket is closed, so a new connection is refused at once by the kernel; below 90% of it the
 * server listens again on the same address (tried again at every check until it can). Between two checks a burst
 * may pass the limit by what arrives in that time: the default limit leaves a reserve of descriptors for that,
 * and for the process's own files.
 */
import { readdir, readFile } from 'node:fs/promises';
import { accessSync, constants } from 'node:fs';
import type { Logger } from '../log.js';

/** Descriptors kept free below the open file limit for the process's own files and for bursts. */
export const DESCRIPTOR_RESERVE = 128;

/** How often the descriptors are counted, in ms. */
export const CHECK_INTERVAL_MS = 100;

const TCP_TABLES = ['/proc/net/tcp', '/proc/net/tcp6'] as const;

/** ESTABLISHED and CLOSE_WAIT: the states in which a socket on the listening port holds a descriptor here. */
const HELD_STATES = new Set(['01', '08']);

/**
 * The connections on local port `port` in the text of /proc/net/tcp or tcp6 that hold a descriptor (or will,
 * once accepted): lines whose local address ends in the port (hex) and whose state is ESTABLISHED or CLOSE_WAIT.
 */
export function countConnections(table: string, port: number): number {
  const suffix = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  let count = 0;
  for (const line of table.split('\n')) {
    // "  sl  local_address rem_address   st ..."; the header line has no address.
    const fields = line.trim().split(/\s+/);
    const local = fields[1];
    if (local === undefined || !local.endsWith(suffix) || !HELD_STATES.has(fields[3] ?? '')) continue;
    count++;
  }
  return count;
}

/** The default --max-connections for a soft open file limit (-1: unlimited, which gives no limit). */
export function defaultMaxConnections(softLimit: number): number | null {
  if (softLimit < 0) return null;
  return Math.max(16, softLimit - DESCRIPTOR_RESERVE);
}

export interface ConnectionLimitHooks {
  /** Stop accepting: close the listen socket. */
  pause(): void;
  /** Accept again: listen on the same address; false when that failed (it is tried again at the next check). */
  resume(): Promise<boolean>;
}

export class ConnectionLimit {
  private timer: NodeJS.Timeout | null = null;
  private checking = false;
  private paused = false;
  private stopped = false;

  constructor(
    readonly max: number,
    /** The listening port whose connections count. */
    private readonly port: number,
    private readonly logger: Logger,
    private readonly hooks: ConnectionLimitHooks,
  ) {}

  /** Call once listening. */
  start(): void {
    if (!readable(TCP_TABLES[0])) {
      this.logger.warn(`${TCP_TABLES[0]} cannot be read here; --max-connections is not enforced`);
      return;
    }
    this.timer = setInterval(() => void this.check(), CHECK_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** The connections on the listening port that hold, or are about to hold, a descriptor (see HELD_STATES). */
  private async connectionsOnPort(): Promise<number> {
    let open = 0;
    for (const table of TCP_TABLES) {
      const text = await readFile(table, 'latin1').catch((error: NodeJS.ErrnoException) => {
        // A host without IPv6 has no tcp6 table.
        if (error.code === 'ENOENT') return '';
        throw error;
      });
      open += countConnections(text, this.port);
    }
    return open;
  }

  /** Counts the connections on the listening port and pauses or resumes accepting. */
  private async check(): Promise<void> {
    if (this.checking || this.stopped) return;
    this.checking = true;
    try {
      let open: number;
      try {
        // Every accepted connection holds a descriptor: while the process holds fewer descriptors than the
        // count that matters (the limit; 90% of it while paused), so do its connections, and the socket tables
        // are not read. Reading them walks the kernel's whole table of established sockets, about 5 ms per
        // table on a 24 GiB machine: done 10 times a second, that cost a quarter of the throughput under load.
        const descriptors = await openDescriptors();
        const threshold = this.paused ? Math.floor(this.max * 0.9) : this.max;
        if (descriptors !== null && descriptors < threshold) {
          if (!this.paused) return;
          open = descriptors;
        } else {
          open = await this.connectionsOnPort();
        }
      } catch (error) {
        // No descriptor left even to count them: a burst used them all. That is past any limit.
        const code = (error as NodeJS.ErrnoException).code;
        if (code !== 'EMFILE' && code !== 'ENFILE') throw error;
        open = Number.POSITIVE_INFINITY;
      }
      if (this.stopped) return;
      if (!this.paused && open >= this.max) {
        this.paused = true;
        this.hooks.pause();
        // With the listen socket closed, the last connection's close would leave the process with nothing to
        // wait for: the check keeps it alive until it listens again.
        this.timer?.ref();
        const count = Number.isFinite(open) ? String(open) : 'all descriptors used:';
        this.logger.warn(
          { connections: Number.isFinite(open) ? open : null, maxConnections: this.max },
          `${count} connections are open, at --max-connections ${this.max}: new connections are refused until some close`,
        );
      } else if (this.paused && open < Math.floor(this.max * 0.9)) {
        if (!(await this.hooks.resume())) return;
        this.paused = false;
        this.timer?.unref();
        this.logger.info({ connections: open, maxConnections: this.max }, 'below --max-connections again: accepting connections');
      }
    } catch (error) {
      this.logger.warn({ err: error }, 'could not count open connections');
    } finally {
      this.checking = false;
    }
  }
}

/** Descriptors the process holds now (the entries of /proc/self/fd, less the one reading it); null where unreadable. */
async function openDescriptors(): Promise<number | null> {
  try {
    return (await readdir('/proc/self/fd')).length - 1;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EMFILE' || code === 'ENFILE') throw error;
    return null;
  }
}

/** Whether the file can be read, without reading it (reading a socket table is what costs). */
function readable(file: string): boolean {
  try {
    accessSync(file, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}
