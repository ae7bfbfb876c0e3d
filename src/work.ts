/**
 * Work over a whole dataset (comparing, copying, merging or scanning millions of cells) written once, as a
 * generator that yields between slices, and run either at once (`finishNow`) or spread over turns of the event
 * loop (`finishYielding`), so that a refresh of a large dataset never holds the serving thread for long (SPEC
 * "Bounded and quiet": nothing holds the JavaScript thread more than ~20 ms at a time).
 *
 * A slice is small (SLICE_ELEMENTS elements copied or compared, SLICE_ROWS rows scanned); the yielding runner
 * gives the event loop a turn once about TURN_MS have passed since the last one, so fast machines pay for
 * few turns and slow ones still let requests through.
 */
import { performance } from 'node:perf_hooks';

/** A piece of work that yields between slices and returns its result. */
export type Work<T> = Generator<void, T, void>;

/**
 * Elements (float64) one slice of a copy or comparison handles: 1 MiB. A fraction of a millisecond normally;
 * a copy into memory the process has not touched yet can take far longer (on some virtual machines every new
 * page is a fault on the host), so slices stay small.
 */
export const SLICE_ELEMENTS = 1 << 17;
/** Rows one slice of a per-row loop handles. */
export const SLICE_ROWS = 1 << 16;
/**
 * Rows one slice of a per-row loop handles when each row touches `width` values: SLICE_ROWS, or fewer for wide
 * rows, so that a slice never handles much more than SLICE_ELEMENTS values.
 */
export function rowsPerSlice(width: number): number {
  return Math.max(1, Math.min(SLICE_ROWS, Math.floor(SLICE_ELEMENTS / Math.max(1, width))));
}

/** The most the yielding runner works between two turns of the event loop, ms. */
export const TURN_MS = 5;

/** Runs `work` to the end on the calling thread, without turns in between. */
export function finishNow<T>(work: Work<T>): T {
  let step = work.next();
  while (step.done !== true) step = work.next();
  return step.value;
}

/**
 * Runs `work` to the end, giving the event loop a turn (setImmediate: after pending I/O) whenever TURN_MS have
 * passed since the last one. With a signal, an abort stops the work at the next slice and rejects with what
 * `cancelled` makes.
 */
export async function finishYielding<T>(work: Work<T>, signal?: AbortSignal, cancelled?: () => Error): Promise<T> {
  let turnStarted = performance.now();
  let step = work.next();
  while (step.done !== true) {
    if (performance.now() - turnStarted >= TURN_MS) {
      await nextTurn();
      if (signal?.aborted === true) {
        work.return(undefined as never);
        throw cancelled?.() ?? new Error('cancelled');
      }
      turnStarted = performance.now();
    }
    step = work.next();
  }
  return step.value;
}

export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Copies `source` into `target` at `offset`, a slice at a time. */
export function* copyInto(target: Float64Array, source: Float64Array, offset = 0): Work<void> {
  for (let from = 0; from < source.length; from += SLICE_ELEMENTS) {
    const to = Math.min(source.length, from + SLICE_ELEMENTS);
    target.set(source.subarray(from, to), offset + from);
    yield;
  }
}

/** A copy of `source[from, to)`, made a slice at a time. */
export function* sliceOf(source: Float64Array, from: number, to: number): Work<Float64Array> {
  const out = new Float64Array(Math.max(0, to - from));
  yield* copyInto(out, source.subarray(from, to));
  return out;
}

/**
 * Whether two float64 arrays hold the same numbers, NaN equal to NaN and 0 equal to -0. Slices whose bytes are
 * equal (the usual case: a reload of unchanged data) are compared as bytes; only a slice whose bytes differ is
 * compared number by number.
 */
export function* sameNumbers(a: Float64Array, b: Float64Array): Work<boolean> {
  if (a.length !== b.length) return false;
  for (let from = 0; from < a.length; from += SLICE_ELEMENTS) {
    const to = Math.min(a.length, from + SLICE_ELEMENTS);
    const bytesA = Buffer.from(a.buffer, a.byteOffset + from * 8, (to - from) * 8);
    const bytesB = Buffer.from(b.buffer, b.byteOffset + from * 8, (to - from) * 8);
    if (!bytesA.equals(bytesB)) {
      for (let i = from; i < to; i++) {
        const x = a[i] as number;
        const y = b[i] as number;
        if (x !== y && !(Number.isNaN(x) && Number.isNaN(y))) return false;
      }
    }
    yield;
  }
  return true;
}
