import type { DatasetSnapshot, LoadedRows } from './types.js';
import { copyInto, finishNow, rowsPerSlice, sameNumbers, SLICE_ROWS, sliceOf, type Work } from '../work.js';

let lastVersion = 0;

/** Process-wide, strictly increasing: two snapshots never share a version, whatever dataset they belong to. */
export function nextSnapshotVersion(): number {
  lastVersion += 1;
  return lastVersion;
}

/** Freezes rows into a snapshot with a fresh version. */
export function makeSnapshot(rows: LoadedRows, loadedAt: number): DatasetSnapshot {
  return { columns: rows.columns, times: rows.times, values: rows.values, rows: rows.rows, version: nextSnapshotVersion(), loadedAt };
}

/** orderRows + makeSnapshot. */
export function buildSnapshot(rows: LoadedRows, loadedAt: number): DatasetSnapshot {
  return makeSnapshot(orderRows(rows), loadedAt);
}

/**
 * Sorts rows by time (stable) and keeps, of rows with the same time, the last one in source order: a file that
 * repeats a timestamp is taken to correct the earlier row. Already-sorted input (the usual case) is returned
 * as it is, without a copy. Runs on the dataset reader thread: the serving thread only checks the order
 * (isOrderedWork) and sends rows that are out of order there (orderOffThread).
 */
export function orderRows(rows: LoadedRows): LoadedRows {
  if (finishNow(isOrderedWork(rows))) return rows;
  return finishNow(gatherWork(rows, timeOrder(rows.times, rows.rows)));
}

/**
 * The rows to keep, in time order (stable; of rows with the same time, the last in source order): what
 * orderRows gathers. Needs only the times, so the reader thread can work it out from a copy of them.
 */
export function timeOrder(times: Float64Array, n: number): Uint32Array {
  // Ties keep source order (the index decides), so of rows with equal times the last one wins below.
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  order.sort((a, b) => (times[a] as number) - (times[b] as number) || a - b);
  let kept = 0;
  for (let k = 0; k < n; k++) {
    const i = order[k] as number;
    const next = k + 1 < n ? (order[k + 1] as number) : undefined;
    if (next !== undefined && times[next] === times[i]) continue;
    order[kept++] = i;
  }
  return order.slice(0, kept);
}

/** Whether the rows' times strictly increase (in time order, no time twice). */
export function* isOrderedWork(rows: LoadedRows): Work<boolean> {
  const { times, rows: n } = rows;
  for (let i = 1; i < n; i++) {
    if (!((times[i] as number) > (times[i - 1] as number))) return false;
    if (i % SLICE_ROWS === 0) yield;
  }
  return true;
}

/**
 * Merges re-read rows into held ones by timestamp (refresh_mode append): a re-read row replaces the held row
 * with the same time, held rows that were not re-read stay, and the result is in time order. Both inputs are
 * ordered with unique times and the same columns. Keeps only the newest `maxRows` of the result when a cap is
 * given (only the kept rows are copied). Returns `previous` itself when nothing was re-read and nothing is
 * over the cap.
 */
export function mergeByTime(previous: LoadedRows, reread: LoadedRows, maxRows: number | null = null): LoadedRows {
  return finishNow(mergeByTimeWork(previous, reread, maxRows));
}

export function* mergeByTimeWork(previous: LoadedRows, reread: LoadedRows, maxRows: number | null = null): Work<LoadedRows> {
  if (reread.rows === 0) return yield* keepNewestWork(previous, maxRows);
  if (previous.rows === 0) return yield* keepNewestWork(reread, maxRows);
  const width = previous.columns.length;
  // Held rows older than every re-read row are kept as they are; only the tail from there on is merged.
  const split = lowerBound(previous.times, previous.rows, reread.times[0] as number);
  // The usual refresh re-reads rows it already holds, unchanged: nothing to copy.
  if (yield* holdsAll(previous, split, reread)) return yield* keepNewestWork(previous, maxRows);
  const tailCapacity = previous.rows - split + reread.rows;
  const tailTimes = new Float64Array(tailCapacity);
  const tailValues = new Float64Array(tailCapacity * width);
  let tail = 0;
  let i = split;
  let j = 0;
  const slice = rowsPerSlice(width);
  const take = (from: LoadedRows, row: number): void => {
    tailTimes[tail] = from.times[row] as number;
    tailValues.set(from.values.subarray(row * width, row * width + width), tail * width);
    tail += 1;
  };
  while (i < previous.rows || j < reread.rows) {
    const held = i < previous.rows ? (previous.times[i] as number) : Number.POSITIVE_INFINITY;
    const read = j < reread.rows ? (reread.times[j] as number) : Number.POSITIVE_INFINITY;
    if (read <= held) {
      take(reread, j);
      j += 1;
      // The re-read row replaces the held one with the same time.
      if (read === held) i += 1;
    } else {
      take(previous, i);
      i += 1;
    }
    if (tail % slice === 0) yield;
  }
  const total = split + tail;
  const kept = maxRows === null ? total : Math.min(total, maxRows);
  const skip = total - kept;
  const times = new Float64Array(kept);
  const values = new Float64Array(kept * width);
  const fromPrevious = Math.max(0, split - skip);
  if (fromPrevious > 0) {
    yield* copyInto(times, previous.times.subarray(skip, split));
    yield* copyInto(values, previous.values.subarray(skip * width, split * width));
  }
  const tailSkip = Math.max(0, skip - split);
  yield* copyInto(times, tailTimes.subarray(tailSkip, tail), fromPrevious);
  yield* copyInto(values, tailValues.subarray(tailSkip * width, tail * width), fromPrevious * width);
  return { columns: previous.columns, times, values, rows: kept };
}

/** True when every row of `reread` is already in `held` (from row `from` on) with the same values. */
function* holdsAll(held: LoadedRows, from: number, reread: LoadedRows): Work<boolean> {
  const width = held.columns.length;
  const slice = rowsPerSlice(width);
  let i = from;
  for (let j = 0; j < reread.rows; j++) {
    const t = reread.times[j] as number;
    while (i < held.rows && (held.times[i] as number) < t) i += 1;
    if (i >= held.rows || held.times[i] !== t) return false;
    for (let c = 0; c < width; c++) {
      const a = held.values[i * width + c] as number;
      const b = reread.values[j * width + c] as number;
      if (a !== b && !(Number.isNaN(a) && Number.isNaN(b))) return false;
    }
    if (j % slice === 0) yield;
  }
  return true;
}

/** The rows strictly newer than `afterMs`; returns `rows` itself when all are. */
export function* rowsAfterWork(rows: LoadedRows, afterMs: number): Work<LoadedRows> {
  const keep = new Uint32Array(rows.rows);
  let kept = 0;
  for (let i = 0; i < rows.rows; i++) {
    if ((rows.times[i] as number) > afterMs) keep[kept++] = i;
    if (i % SLICE_ROWS === 0) yield;
  }
  return kept === rows.rows ? rows : yield* gatherWork(rows, keep.subarray(0, kept));
}

/** The newest `maxRows` of (ordered) rows; returns `rows` itself when there is no cap or nothing is over it. */
export function keepNewest<T extends LoadedRows>(rows: T, maxRows: number | null): T | LoadedRows {
  return finishNow(keepNewestWork(rows, maxRows));
}

export function* keepNewestWork<T extends LoadedRows>(rows: T, maxRows: number | null): Work<T | LoadedRows> {
  if (maxRows === null || rows.rows <= maxRows) return rows;
  const first = rows.rows - maxRows;
  const width = rows.columns.length;
  return {
    columns: rows.columns,
    times: yield* sliceOf(rows.times, first, rows.rows),
    values: yield* sliceOf(rows.values, first * width, rows.rows * width),
    rows: maxRows,
  };
}

/**
 * Drops (ordered) rows older than `cutoffMs`; returns `rows` itself when nothing is dropped. The rows kept are
 * a view of the same buffers, not a copy: retention drops a few old rows at a time, and copying every kept
 * row each time would cost a full copy of the dataset per drop. Once the rows dropped outnumber the rows kept,
 * the kept ones are copied (a slice at a time), so the memory held stays at most twice what is served.
 */
export function dropBefore<T extends LoadedRows>(rows: T, cutoffMs: number): T | LoadedRows {
  return finishNow(dropBeforeWork(rows, cutoffMs));
}

export function* dropBeforeWork<T extends LoadedRows>(rows: T, cutoffMs: number): Work<T | LoadedRows> {
  const first = lowerBound(rows.times, rows.rows, cutoffMs);
  if (first === 0) return rows;
  const width = rows.columns.length;
  const kept = rows.rows - first;
  const held = rows.times.buffer.byteLength / Float64Array.BYTES_PER_ELEMENT;
  const compact = kept * 2 < held;
  return {
    columns: rows.columns,
    times: compact ? yield* sliceOf(rows.times, first, rows.rows) : rows.times.subarray(first, rows.rows),
    values: compact ? yield* sliceOf(rows.values, first * width, rows.rows * width) : rows.values.subarray(first * width, rows.rows * width),
    rows: kept,
  };
}

/** Same columns, times and values (NaN equal to NaN): a reload that changed nothing keeps the old snapshot. */
export function sameContent(a: LoadedRows, b: LoadedRows): boolean {
  return finishNow(sameContentWork(a, b));
}

export function* sameContentWork(a: LoadedRows, b: LoadedRows): Work<boolean> {
  if (a === b) return true;
  if (a.rows !== b.rows || a.columns.length !== b.columns.length) return false;
  if (a.columns.some((c, i) => c !== b.columns[i])) return false;
  const width = a.columns.length;
  if (!(yield* sameNumbers(a.times.subarray(0, a.rows), b.times.subarray(0, b.rows)))) return false;
  return yield* sameNumbers(a.values.subarray(0, a.rows * width), b.values.subarray(0, b.rows * width));
}

/** First index i with times[i] >= t (times ascending). */
export function lowerBound(times: Float64Array, rows: number, t: number): number {
  let lo = 0;
  let hi = rows;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((times[mid] as number) < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** `rows` gathered in the order of `indices` (the rows kept, in time order), a slice at a time. */
export function* gatherWork(rows: LoadedRows, indices: Uint32Array): Work<LoadedRows> {
  const width = rows.columns.length;
  const slice = rowsPerSlice(width);
  const times = new Float64Array(indices.length);
  const values = new Float64Array(indices.length * width);
  const from = rows.values;
  for (let dst = 0; dst < indices.length; dst++) {
    const src = indices[dst] as number;
    times[dst] = rows.times[src] as number;
    for (let c = 0, a = src * width, b = dst * width; c < width; c++) values[b + c] = from[a + c] as number;
    if (dst % slice === 0) yield;
  }
  return { columns: rows.columns, times, values, rows: indices.length };
}
