export interface PredictionCacheOptions {
  /** Most entries kept; the oldest inserted goes first. Default 1024. */
  readonly maxEntries?: number;
}

interface Entry<V> {
  readonly promise: Promise<V>;
  /** The value once the computation succeeded. */
  value?: V;
}

/**
 * Reuses a prediction while its inputs are unchanged, and lets concurrent identical requests share one
 * computation (single flight). The key must name everything the result depends on — for a forecast, the
 * model's session and the dataset snapshot's version — and the caller must take the key and the window
 * from the same snapshot: then a refresh or reload changes the key and an older window is never served.
 *
 * Failures are not cached: every caller waiting on a failed computation gets its error, and the next get()
 * computes again. Cached values are shared between callers and must not be modified.
 */
export class PredictionCache<V> {
  /** get() calls answered without computing (a stored value, or one already being computed). */
  hits = 0;
  /** get() calls that started a computation. */
  misses = 0;

  readonly #maxEntries: number;
  readonly #entries = new Map<string, Entry<V>>();

  constructor(options: PredictionCacheOptions = {}) {
    const max = options.maxEntries ?? 1024;
    if (!Number.isInteger(max) || max < 1) {
      throw new RangeError(`maxEntries must be a positive integer, got ${max}`);
    }
    this.#maxEntries = max;
  }

  /** Entries held, including computations in progress. */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * The stored value when its computation has finished successfully (counted as a hit), else undefined: lets
   * a caller answer at once without waiting on a promise or arming a deadline.
   */
  peek(key: string): V | undefined {
    const value = this.#entries.get(key)?.value;
    if (value !== undefined) this.hits++;
    return value;
  }

  get(key: string, compute: () => Promise<V>): Promise<V> {
    const found = this.#entries.get(key);
    if (found !== undefined) {
      this.hits++;
      return found.promise;
    }
    this.misses++;
    let promise: Promise<V>;
    try {
      promise = compute();
    } catch (err) {
      promise = Promise.reject(err);
    }
    const entry: Entry<V> = { promise };
    this.#entries.set(key, entry);
    if (this.#entries.size > this.#maxEntries) {
      const oldest = this.#entries.keys().next();
      if (!oldest.done) this.#entries.delete(oldest.value);
    }
    promise.then(
      (value) => {
        entry.value = value;
      },
      () => {
        // Only this computation's own entry goes: after clear() or a newer set, the key may hold another.
        if (this.#entries.get(key) === entry) this.#entries.delete(key);
      },
    );
    return promise;
  }

  /** Forgets one key (a computation in progress still answers those already waiting on it). */
  delete(key: string): void {
    this.#entries.delete(key);
  }

  /** Forgets everything, e.g. when the model is reloaded. */
  clear(): void {
    this.#entries.clear();
  }
}
