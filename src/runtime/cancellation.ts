/**
 * What the forecaster (and the HTTP layer's backend) read of a cancellation signal. An AbortSignal is one;
 * so is a Cancellation, which costs a fraction of one to create and to listen to (Node's AbortSignal is an
 * EventTarget: creating it and adding and removing a listener take microseconds, paid on every request).
 */
export interface AbortSignalLike {
  readonly aborted: boolean;
  /** Why it aborted; undefined while it has not. */
  readonly reason: unknown;
  addEventListener(type: 'abort', listener: () => void, options?: { readonly once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

/**
 * A one-shot cancellation signal without EventTarget: abort() calls each listener once, in the order added.
 * Listeners are always one-shot (as with `{ once: true }`), since a Cancellation aborts at most once.
 */
export class Cancellation implements AbortSignalLike {
  #aborted = false;
  #reason: unknown = undefined;
  // Nearly always zero or one listener: the first has its own slot, the rest share an array.
  #first: (() => void) | undefined = undefined;
  #more: (() => void)[] | undefined = undefined;

  get aborted(): boolean {
    return this.#aborted;
  }

  get reason(): unknown {
    return this.#reason;
  }

  /** `options` is accepted as AbortSignal accepts it; every listener here is one-shot anyway. */
  addEventListener(type: 'abort', listener: () => void, _options?: { readonly once?: boolean }): void {
    if (type !== 'abort' || this.#aborted) return;
    if (this.#first === undefined) this.#first = listener;
    else (this.#more ??= []).push(listener);
  }

  removeEventListener(type: 'abort', listener: () => void): void {
    if (type !== 'abort') return;
    if (this.#first === listener) {
      this.#first = this.#more?.shift();
      return;
    }
    const more = this.#more;
    if (more === undefined) return;
    const at = more.indexOf(listener);
    if (at >= 0) more.splice(at, 1);
  }

  /** Aborts with `reason` (default: an AbortError, as AbortController.abort() gives); later calls do nothing. */
  abort(reason?: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason ?? new DOMException('This operation was aborted', 'AbortError');
    const first = this.#first;
    const more = this.#more;
    this.#first = undefined;
    this.#more = undefined;
    if (first !== undefined) call(first);
    if (more !== undefined) for (const listener of more) call(listener);
  }
}

/** As EventTarget does: a listener that throws is reported as an uncaught exception, and the rest still run. */
function call(listener: () => void): void {
  try {
    listener();
  } catch (error) {
    process.nextTick(() => {
      throw error;
    });
  }
}
