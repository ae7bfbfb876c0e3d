/**
 * Bounds the connections a server holds (SPEC "Bounded and quiet", connections). Each connection is a file
 * descriptor, and the descriptors left over are the process's own: a dataset read opens its file, DuckDB opens
 * an instance for every CSV read (and a failed open aborts the whole process), ONNX Runtime and worker threads
 * open theirs. When connections take them all, those fail, and accept() fails with EMFILE on every wake-up of
 * the event loop, so the server spins without serving anyone.
 *
 * uWebSockets.js (the 20.x builds) reports no connection opening or closing to JavaScript, and each time its
 * listen socket is readable it accepts every connection waiting in the kernel's queue. Counted a few times a
 * second, connections would pass the limit by whatever a burst brings between two counts. So they are counted
 * where they are accepted and closed, by the connection gate of the native addon (native/connection_gate.cc):
 * it sees uWebSockets.js's own accept() and close() calls, accepts while fewer than the limit are open, and
 * past it accepts and resets at once every connection still waiting (the oldest are the ones served; a
 * descriptor is kept spare so that this works even when none is left), so the queue always empties and the
 * loop never spins. Files, database connections and threads the process opens do not count.
 *
 * Ten times a second the count is looked at: at the limit the listen socket is closed, so a new connection is
 * refused at once by the kernel; below 90% of it the server listens again on the same address (tried again at
 * every check until it can), gated as before.
 *
 * Where the gate cannot be installed (an addon built before it, or a uWebSockets.js binary it does not
 * recognise), the connections are counted from the kernel's socket tables (/proc/net/tcp and tcp6) at each
 * check, off the event loop: the sockets on the listening port that hold, or are about to hold, a descriptor
 * (established, accepted or waiting to be, and those the client has closed and the server not yet). The tables
 * are opened once, at start, and read again from their beginning each time, so a count needs no descriptor of
 * its own. A burst may then pass the limit by what arrives between two checks; the default limit leaves a
 * reserve of descriptors for that, and for the process's own files. The tables are read only while the process
 * holds at least as many descriptors as the limit (fewer descriptors mean fewer connections; counting
 * /proc/self/fd is cheap, reading the tables is not).
 */
import { closeSync, openSync, read, readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { promisify } from 'node:util';
import type { Logger } from '../log.js';

/**
 * Descriptors kept free below the open file limit for the process's own files (and, where connections are
 * counted from the kernel's tables, for a burst between two counts).
 */
export const DESCRIPTOR_RESERVE = 128;

/** How often the count is looked at, in ms. */
export const CHECK_INTERVAL_MS = 100;

const TCP_TABLES = ['/proc/net/tcp', '/proc/net/tcp6'] as const;

/** ESTABLISHED and CLOSE_WAIT: the states in which a socket on the listening port holds a descriptor here. */
const HELD_STATES = new Set(['01', '08']);

/** Bytes asked for per read of a socket table (the kernel hands over a page or so at a time anyway). */
const READ_BYTES = 64 * 1024;

const readAt = promisify(read);

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

/** The native connection gate of one server (native/connection_gate.cc). */
export interface ConnectionGate {
  /** Gates the listen socket on `port`; false when no single one is found there. */
  attach(port: number): boolean;
  /** Stops gating the listen socket (before it is closed); its connections are still counted as they close. */
  detach(): void;
  /** The connections open now, and those reset at once past the limit so far. */
  check(): { readonly open: number; readonly refused: number };
  /** Stops gating and counting. */
  release(): void;
}

/**
 * Descriptors the process holds now (the entries of /proc/self/fd, less the one reading it); null where that
 * cannot be read, also when no descriptor is left to read it with (the tables, opened at start, are read then).
 */
async function openDescriptors(): Promise<number | null> {
  try {
    return (await readdir('/proc/self/fd')).length - 1;
  } catch {
    return null;
  }
}

export interface ConnectionLimitHooks {
  /** Stop accepting: close the listen socket. */
  pause(): void;
  /** Accept again: listen on the same address; false when that failed (it is tried again at the next check). */
  resume(): Promise<boolean>;
  /** A connection gate for this limit; null where none can be installed (the hook says why). */
  gate(max: number): ConnectionGate | null;
}

export class ConnectionLimit {
  private timer: NodeJS.Timeout | null = null;
  private checking = false;
  private paused = false;
  private stopped = false;
  private gate: ConnectionGate | null = null;
  /** Connections the gate had reset at the last pause. */
  private refusedBefore = 0;
  /** Without a gate: the socket tables, opened at start; null for one this host lacks (no IPv6). */
  private tables: (number | null)[] = [];

  constructor(
    readonly max: number,
    /** The listening port whose connections count. */
    private readonly port: number,
    private readonly logger: Logger,
    private readonly hooks: ConnectionLimitHooks,
  ) {}

  /** Call once listening. */
  start(): void {
    const gate = this.hooks.gate(this.max);
    if (gate !== null && gate.attach(this.port)) {
      this.gate = gate;
    } else {
      if (gate !== null) {
        gate.release();
        this.logger.warn({ port: this.port }, 'cannot gate the listen socket; connections are counted from the kernel tables');
      }
      if (!this.openTables()) return;
    }
    this.timer = setInterval(() => void this.check(), CHECK_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.gate?.release();
    this.gate = null;
    // A count in flight still reads them: it closes them when it ends (a closed number could be reused meanwhile).
    if (!this.checking) this.closeTables();
  }

  /** Counting from the kernel's tables instead of the gate; false (and said) when they cannot be read. */
  private openTables(): boolean {
    try {
      this.tables = TCP_TABLES.map((table, i) => {
        try {
          return openSync(table, 'r');
        } catch (error) {
          // A host without IPv6 has no tcp6 table.
          if (i > 0 && (error as NodeJS.ErrnoException).code === 'ENOENT') return null;
          throw error;
        }
      });
      // Read once here, so that a table that opens but cannot be read says so now rather than at each count.
      readFileSync(TCP_TABLES[0], 'latin1');
      return true;
    } catch {
      this.closeTables();
      this.logger.warn(`${TCP_TABLES[0]} cannot be read here; --max-connections is not enforced`);
      return false;
    }
  }

  private closeTables(): void {
    for (const fd of this.tables) if (fd !== null) closeSync(fd);
    this.tables = [];
  }

  /** The text of an open socket table, read from its start. */
  private async readTable(fd: number): Promise<string> {
    const chunks: Buffer[] = [];
    let position = 0;
    for (;;) {
      const buffer = Buffer.allocUnsafe(READ_BYTES);
      const { bytesRead } = await readAt(fd, buffer, 0, READ_BYTES, position);
      if (bytesRead === 0) break;
      chunks.push(buffer.subarray(0, bytesRead));
      position += bytesRead;
    }
    return Buffer.concat(chunks).toString('latin1');
  }

  /** The connections open now, and those reset at once since the last pause (0 without a gate). */
  private async count(): Promise<{ open: number; refused: number }> {
    if (this.gate !== null) {
      const counts = this.gate.check();
      return { open: counts.open, refused: counts.refused - this.refusedBefore };
    }
    // Every accepted connection holds a descriptor: while the process holds fewer descriptors than the count
    // that matters (the limit; 90% of it while paused), so do its connections, and the tables are not read.
    // Reading one walks the kernel's whole table of established sockets (about 5 ms on a 24 GiB machine, more
    // with more sockets), which ten times a second cost serving a quarter of its throughput under load.
    const descriptors = await openDescriptors();
    const threshold = this.paused ? Math.floor(this.max * 0.9) : this.max;
    if (descriptors !== null && descriptors < threshold) return { open: descriptors, refused: 0 };
    let open = 0;
    for (const fd of this.tables) if (fd !== null) open += countConnections(await this.readTable(fd), this.port);
    return { open, refused: 0 };
  }

  /** Looks at the connections on the listening port and pauses or resumes accepting. */
  private async check(): Promise<void> {
    if (this.checking || this.stopped) return;
    this.checking = true;
    try {
      const { open, refused } = await this.count();
      if (this.stopped) return;
      if (!this.paused && open >= this.max) {
        this.paused = true;
        this.gate?.detach();
        this.hooks.pause();
        this.refusedBefore += refused;
        // With the listen socket closed, the last connection's close would leave the process with nothing to
        // wait for: the check keeps it alive until it listens again.
        this.timer?.ref();
        this.logger.warn(
          { connections: open, maxConnections: this.max, ...(this.gate === null ? {} : { reset: refused }) },
          `${open} connections are open, at --max-connections ${this.max}: new connections are refused until some close`,
        );
      } else if (this.paused && open < Math.floor(this.max * 0.9)) {
        if (!(await this.hooks.resume())) return;
        // At once, before the event loop turns, so that no connection is accepted on the new socket ungated.
        if (this.gate !== null && !this.stopped && !this.gate.attach(this.port)) {
          this.logger.warn('cannot gate the new listen socket; connections are counted from the kernel tables from now on');
          this.gate.release();
          this.gate = null;
          if (!this.openTables()) this.stop();
        }
        this.paused = false;
        this.timer?.unref();
        this.logger.info({ connections: open, maxConnections: this.max }, 'below --max-connections again: accepting connections');
      }
    } catch (error) {
      this.logger.warn({ err: error }, 'could not count open connections');
    } finally {
      this.checking = false;
      if (this.stopped) this.closeTables();
    }
  }
}
