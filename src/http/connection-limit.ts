/**
 * Bounds the connections a server holds (SPEC "Bounded and quiet", connections). Each connection is a file
 * descriptor; when the process runs out of them, accept() fails on every wake-up of the event loop and the
 * server spins without serving anyone. uWebSockets.js (the 20.x builds for Node.js 20) reports no connection
 * opening or closing to JavaScript, so connections are counted as the descriptors the process holds beyond those
 * it held when it started listening, read from /proc/self/fd off the event loop a few times a second. At the
 * limit the listen socket is closed, so a new connection is refused at once by the kernel; below 90% of it the
 * server listens again on the same address. Between two checks a burst may pass the limit by what arrives in
 * that time: the default limit leaves a reserve of descriptors for that, and for the process's own files.
 */
import { readdir } from 'node:fs/promises';
import { readdirSync } from 'node:fs';
import type { Logger } from '../log.js';

/** Descriptors kept free below the open file limit for the process's own files and for bursts. */
export const DESCRIPTOR_RESERVE = 128;

/** How often the descriptors are counted, in ms. */
export const CHECK_INTERVAL_MS = 100;

const FD_DIR = '/proc/self/fd';

/** The default --max-connections for a soft open file limit (-1: unlimited, which gives no limit). */
export function defaultMaxConnections(softLimit: number): number | null {
  if (softLimit < 0) return null;
  return Math.max(16, softLimit - DESCRIPTOR_RESERVE);
}

export interface ConnectionLimitHooks {
  /** Stop accepting: close the listen socket. */
  pause(): void;
  /** Accept again: listen on the same address. */
  resume(): Promise<void>;
}

export class ConnectionLimit {
  private baseline = 0;
  private timer: NodeJS.Timeout | null = null;
  private checking = false;
  private paused = false;
  private stopped = false;

  constructor(
    readonly max: number,
    private readonly logger: Logger,
    private readonly hooks: ConnectionLimitHooks,
  ) {}

  /** Call once listening: the descriptors held now are not connections. */
  start(): void {
    if (!existsFdDir()) {
      this.logger.warn(`${FD_DIR} cannot be read here; --max-connections is not enforced`);
      return;
    }
    this.baseline = readdirSync(FD_DIR).length;
    this.timer = setInterval(() => void this.check(), CHECK_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** Counts the connections (descriptors beyond the baseline) and pauses or resumes accepting. */
  private async check(): Promise<void> {
    if (this.checking || this.stopped) return;
    this.checking = true;
    try {
      let open: number;
      try {
        open = (await readdir(FD_DIR)).length - this.baseline;
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
        await this.hooks.resume();
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

function existsFdDir(): boolean {
  try {
    readdirSync(FD_DIR);
    return true;
  } catch {
    return false;
  }
}
