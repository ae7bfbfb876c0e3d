import { watch } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import * as nodePath from 'node:path';
import { ForecastdError } from '../errors.js';
import type { Logger } from '../log.js';

export const DEFAULT_WATCH_INTERVAL_MS = 2000;
export const DEFAULT_WATCH_DEBOUNCE_MS = 150;

export interface PodWatcherOptions {
  /** The files to watch (absolute paths); asked again after every check, as the pod may have changed. */
  readonly files: () => readonly string[];
  /**
   * Compares the files with what is loaded and applies what changed. Resolves with the ms after which a
   * change still settling is worth another look (null: none). Should not reject.
   */
  readonly check: () => Promise<number | null>;
  /** Period of the fallback check; default 2 s. */
  readonly intervalMs?: number;
  /** Quiet time after the last file event before checking; default 150 ms. */
  readonly debounceMs?: number;
  readonly logger: Logger;
}

/**
 * Notices changes to the spicepod and model files. It watches each file's folder rather than the file, so an
 * editor that saves by writing a new file and renaming it over the old one is seen (a watch on the file
 * itself would stay on the replaced inode). Events only trigger a check after a quiet period, since one save
 * produces several. Watches are not reliable everywhere (network file systems, some containers), so a cheap
 * periodic check runs as well. The check itself decides what changed (by file signature), so a spurious
 * event costs a few stat calls and nothing more. A change that is still settling asks for another look one
 * settle time later (checkIn), not at the next period. Nothing here keeps the process alive.
 */
export class PodWatcher {
  private readonly options: PodWatcherOptions;
  private readonly intervalMs: number;
  private readonly debounceMs: number;
  /** Folder -> its watch and the file names in it that matter. */
  private readonly folders = new Map<string, { watcher: FSWatcher | null; names: Set<string> }>();
  private interval: NodeJS.Timeout | null = null;
  private debounce: NodeJS.Timeout | null = null;
  private recheck: NodeJS.Timeout | null = null;
  private recheckAt = Infinity;
  private running: Promise<void> | null = null;
  private again = false;
  private closed = false;

  constructor(options: PodWatcherOptions) {
    this.options = options;
    this.intervalMs = positive('intervalMs', options.intervalMs ?? DEFAULT_WATCH_INTERVAL_MS);
    this.debounceMs = nonNegative('debounceMs', options.debounceMs ?? DEFAULT_WATCH_DEBOUNCE_MS);
  }

  start(): void {
    if (this.closed || this.interval !== null) return;
    this.syncFolders();
    this.interval = setInterval(() => this.trigger(), this.intervalMs);
    this.interval.unref();
  }

  /** Stops watching; resolves once a check in progress has finished. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.interval !== null) clearInterval(this.interval);
    if (this.debounce !== null) clearTimeout(this.debounce);
    if (this.recheck !== null) clearTimeout(this.recheck);
    this.interval = null;
    this.debounce = null;
    this.recheck = null;
    for (const folder of this.folders.values()) folder.watcher?.close();
    this.folders.clear();
    await this.running;
  }

  private schedule(): void {
    if (this.closed) return;
    if (this.debounce !== null) clearTimeout(this.debounce);
    this.debounce = setTimeout(() => {
      this.debounce = null;
      this.trigger();
    }, this.debounceMs);
    this.debounce.unref();
  }

  /**
   * Checks again after `ms` (a change is settling): sooner than the periodic check, which may be far off.
   * An earlier pending recheck is kept.
   */
  checkIn(ms: number): void {
    if (this.closed) return;
    const at = Date.now() + ms;
    if (this.recheck !== null && this.recheckAt <= at) return;
    if (this.recheck !== null) clearTimeout(this.recheck);
    this.recheckAt = at;
    this.recheck = setTimeout(() => {
      this.recheck = null;
      this.recheckAt = Infinity;
      this.trigger();
    }, Math.max(1, ms));
    this.recheck.unref();
  }

  /** Runs one check at a time; a trigger during a check runs one more right after it. */
  private trigger(): void {
    if (this.closed) return;
    if (this.running !== null) {
      this.again = true;
      return;
    }
    this.running = this.options
      .check()
      .then((waitMs) => {
        if (waitMs !== null) this.checkIn(waitMs);
      })
      .catch((error: unknown) => this.options.logger.error({ err: error }, 'checking the spicepod and model files for changes failed'))
      .finally(() => {
        this.running = null;
        if (this.closed) return;
        this.syncFolders();
        if (this.again) {
          this.again = false;
          this.trigger();
        }
      });
  }

  /** Watches exactly the folders of the current files. */
  private syncFolders(): void {
    const wanted = new Map<string, Set<string>>();
    for (const file of this.options.files()) {
      const dir = nodePath.dirname(file);
      let names = wanted.get(dir);
      if (names === undefined) wanted.set(dir, (names = new Set()));
      names.add(nodePath.basename(file));
    }
    for (const [dir, folder] of this.folders) {
      if (!wanted.has(dir)) {
        folder.watcher?.close();
        this.folders.delete(dir);
      }
    }
    for (const [dir, names] of wanted) {
      const folder = this.folders.get(dir);
      if (folder !== undefined) {
        folder.names = names;
        // A folder that could not be watched (missing, then created) is tried again.
        if (folder.watcher === null) folder.watcher = this.watchFolder(dir);
      } else {
        this.folders.set(dir, { watcher: this.watchFolder(dir), names });
      }
    }
  }

  private watchFolder(dir: string): FSWatcher | null {
    let watcher: FSWatcher;
    try {
      watcher = watch(dir, { persistent: false }, (_event, filename) => {
        const names = this.folders.get(dir)?.names;
        // Kubernetes swaps a ConfigMap's files by renaming its `..data` link: an event on a `..` name is a change too.
        const name = filename?.toString() ?? null;
        if (name === null || names === undefined || names.has(name) || name.startsWith('..')) this.schedule();
      });
    } catch {
      // The folder is missing or cannot be watched: the periodic check still covers its files.
      return null;
    }
    watcher.on('error', () => {
      // E.g. the folder was removed. Drop the watch; the next sync tries again.
      watcher.close();
      const folder = this.folders.get(dir);
      if (folder !== undefined && folder.watcher === watcher) folder.watcher = null;
    });
    return watcher;
  }
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) throw new ForecastdError('ERR_INVALID_ARGUMENT', `watch ${name} must be a number of milliseconds above 0, got ${value}`);
  return value;
}

function nonNegative(name: string, value: number): number {
  if (!Number.isFinite(value) || value < 0) throw new ForecastdError('ERR_INVALID_ARGUMENT', `watch ${name} must be a number of milliseconds >= 0, got ${value}`);
  return value;
}
