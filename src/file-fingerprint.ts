import { stat } from 'node:fs/promises';

/**
 * When a changed file may be read: its fingerprint, and the settle rule every watched file follows (the
 * spicepod, model files, data files). A writer that rewrites a file in place in several writes is never seen
 * half-way as long as it pauses for less than the settle time: a change is read only once the fingerprint is
 * the same at two looks at least the settle time apart, and used only if it is still the same after the read.
 * An atomic rename (and Kubernetes' ConfigMap symlink swap, which stat follows) changes the inode at once
 * to a complete file, so it is only ever seen whole.
 */

/** Default settle time (ms): `--settle-ms`. */
export const DEFAULT_SETTLE_MS = 1000;
/** A failed read of an unchanged file is retried after the settle time, doubling up to this. */
const MAX_RETRY_MS = 60_000;

/**
 * What a file looks like on disk, cheaply: device, inode, size and modification time in nanoseconds. A write in
 * place changes mtime (to the nanosecond, so same-size rewrites are seen), a rename over the file changes the
 * inode. A file that cannot be stat'ed gets a fingerprint naming why (`unreadable:ENOENT`), so its coming
 * back is a change as well.
 */
export async function fileFingerprint(path: string): Promise<string> {
  try {
    const s = await stat(path, { bigint: true });
    return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}`;
  } catch (error) {
    return `unreadable:${(error as NodeJS.ErrnoException).code ?? 'unknown'}`;
  }
}

export function isUnreadable(fingerprint: string): boolean {
  return fingerprint.startsWith('unreadable:');
}

/** What to do about a file after a look at its fingerprint. */
export type SettleVerdict =
  /** As last read: nothing to do. */
  | { readonly kind: 'unchanged' }
  /** Changed and settled: read it now, then call afterRead(). */
  | { readonly kind: 'read' }
  /** Changed but not settled (or a failed read waits for its retry): look again in `ms`. */
  | { readonly kind: 'wait'; readonly ms: number };

/**
 * The settle state of one file. `applied` is the fingerprint of the content in use; a change is a different
 * fingerprint, and becomes readable once the same fingerprint has been seen for the settle time. A failed
 * read does not record the new fingerprint, so it is retried (after the settle time, then backing off while
 * the file stays the same).
 */
export class FileSettle {
  #applied: string | null;
  #candidate: string | null = null;
  #candidateSince = 0;
  #changedSince: number | null = null;
  #retryAt = 0;
  #failures = 0;

  constructor(
    readonly settleMs: number,
    applied: string | null,
  ) {
    this.#applied = applied;
  }

  /** The fingerprint of the content in use (null before the first read). */
  get applied(): string | null {
    return this.#applied;
  }

  /** Epoch ms since when the file has differed from what is in use without being read; null when it has not. */
  get changedSince(): number | null {
    return this.#changedSince;
  }

  /** Judges a fingerprint just taken at `now` (epoch ms). */
  observe(fingerprint: string, now: number): SettleVerdict {
    if (fingerprint === this.#applied) {
      this.#candidate = null;
      this.#changedSince = null;
      this.#failures = 0;
      return { kind: 'unchanged' };
    }
    this.#changedSince ??= now;
    if (fingerprint !== this.#candidate) {
      this.#candidate = fingerprint;
      this.#candidateSince = now;
      this.#failures = 0;
      this.#retryAt = 0;
      return { kind: 'wait', ms: this.settleMs };
    }
    const due = Math.max(this.#candidateSince + this.settleMs, this.#retryAt);
    return now >= due ? { kind: 'read' } : { kind: 'wait', ms: due - now };
  }

  /**
   * After a read that started from `read`: true when the file is still as it was judged (use what was read),
   * false when it changed meanwhile (drop it; the change waits to settle again).
   */
  afterRead(fingerprint: string, now: number): boolean {
    if (fingerprint === this.#candidate) return true;
    this.#candidate = fingerprint;
    this.#candidateSince = now;
    return false;
  }

  /** What was read is in use: its fingerprint is the new baseline. */
  succeeded(fingerprint: string): void {
    this.#applied = fingerprint;
    this.#candidate = null;
    this.#changedSince = null;
    this.#failures = 0;
    this.#retryAt = 0;
  }

  /** The read failed: the fingerprint is not recorded; the same file is tried again later, backing off. */
  failed(now: number): void {
    this.#retryAt = now + Math.min(this.settleMs * 2 ** this.#failures, MAX_RETRY_MS);
    this.#failures++;
  }
}
