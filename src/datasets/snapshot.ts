import type { DatasetSnapshot, LoadedRows } from './types.js';

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
 * as it is, without a copy. Sources read on the dataset reader thread are ordered there; on the serving
 * thread this is then only the check.
 */
export function orderRows(rows: LoadedRows): LoadedRows {
  const { times, rows: n } = rows;
  let ordered = true;
  for (let i = 1; i < n; i++) {
    if (!((times[i] as number) > (times[i - 1] as number))) {
      ordered = false;
      break;
    }
  }
  if (ordered) return rows;
  // Ties keep source order (the index decides), so of rows with equal times the last one wins below.
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  order.sort((a, b) => (times[a] as number) - (times[b] as number) || a - b);
  const keep: number[] = [];
  for (let k = 0; k < n; k++) {
    const i = order[k] as number;
    const next = k + 1 < n ? (order[k + 1] as number) : undefined;
    if (next !== undefined && times[next] === times[i]) continue;
    keep.push(i);
  }
  return gather(rows, keep);
}

/**
 * Merges re-read rows into held ones by timestamp (refresh_mode append): a re-read row replaces the held row
 * with the same time, held rows that were not re-read stay, and the result is in time order. Both inputs are
 * ordered with unique times and the same columns. Keeps only the newest `maxRows` of the result when a cap is
 * given (only the kept rows are copied). Returns `previous` itself when nothing was re-read and nothing is
 * over the cap.
 */
export function mergeByTime(previous: LoadedRows, reread: LoadedRows, maxRows: number | null = null): LoadedRows {
  if (reread.rows === 0) return keepNewest(previous, maxRows);
  if (previous.rows === 0) return keepNewest(reread, maxRows);
  const width = previous.columns.length;
  // Held rows older than every re-read row are kept as they are; only the tail from there on is merged.
  const split = lowerBound(previous.times, previous.rows, reread.times[0] as number);
  // The usual refresh re-reads rows it already holds, unchanged: nothing to copy.
  if (holdsAll(previous, split, reread)) return keepNewest(previous, maxRows);
  const tailCapacity = previous.rows - split + reread.rows;
  const tailTimes = new Float64Array(tailCapacity);
  const tailValues = new Float64Array(tailCapacity * width);
  let tail = 0;
  let i = split;
  let j = 0;
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
  }
  const total = split + tail;
  const kept = maxRows === null ? total : Math.min(total, maxRows);
  const skip = total - kept;
  const times = new Float64Array(kept);
  const values = new Float64Array(kept * width);
  const fromPrevious = Math.max(0, split - skip);
  if (fromPrevious > 0) {
    times.set(previous.times.subarray(skip, split));
    values.set(previous.values.subarray(skip * width, split * width));
  }
  const tailSkip = Math.max(0, skip - split);
  times.set(tailTimes.subarray(tailSkip, tail), fromPrevious);
  values.set(tailValues.subarray(tailSkip * width, tail * width), fromPrevious * width);
  return { columns: previous.columns, times, values, rows: kept };
}

/** True when every row of `reread` is already in `held` (from row `from` on) with the same values. */
function holdsAll(held: LoadedRows, from: number, reread: LoadedRows): boolean {
  const width = held.columns.length;
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
  }
  return true;
}

/** The rows strictly newer than `afterMs`; returns `rows` itself when all are. */
export function rowsAfter(rows: LoadedRows, afterMs: number): LoadedRows {
  return filterRows(rows, (t) => t > afterMs);
}

/** The newest `maxRows` of (ordered) rows; returns `rows` itself when there is no cap or nothing is over it. */
export function keepNewest<T extends LoadedRows>(rows: T, maxRows: number | null): T | LoadedRows {
  if (maxRows === null || rows.rows <= maxRows) return rows;
  const first = rows.rows - maxRows;
  const width = rows.columns.length;
  return {
    columns: rows.columns,
    times: rows.times.slice(first, rows.rows),
    values: rows.values.slice(first * width, rows.rows * width),
    rows: maxRows,
  };
}

/** Drops (ordered) rows older than `cutoffMs`; returns `rows` itself when nothing is dropped. */
export function dropBefore<T extends LoadedRows>(rows: T, cutoffMs: number): T | LoadedRows {
  const first = lowerBound(rows.times, rows.rows, cutoffMs);
  if (first === 0) return rows;
  const width = rows.columns.length;
  return {
    columns: rows.columns,
    times: rows.times.slice(first, rows.rows),
    values: rows.values.slice(first * width, rows.rows * width),
    rows: rows.rows - first,
  };
}

/** Same columns, times and values (NaN equal to NaN): a reload that changed nothing keeps the old snapshot. */
export function sameContent(a: LoadedRows, b: LoadedRows): boolean {
  if (a === b) return true;
  if (a.rows !== b.rows || a.columns.length !== b.columns.length) return false;
  if (a.columns.some((c, i) => c !== b.columns[i])) return false;
  for (let i = 0; i < a.rows; i++) if (a.times[i] !== b.times[i]) return false;
  const n = a.values.length;
  for (let i = 0; i < n; i++) {
    const x = a.values[i] as number;
    const y = b.values[i] as number;
    if (x !== y && !(Number.isNaN(x) && Number.isNaN(y))) return false;
  }
  return true;
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

function filterRows(rows: LoadedRows, keepTime: (t: number) => boolean): LoadedRows {
  const keep: number[] = [];
  for (let i = 0; i < rows.rows; i++) if (keepTime(rows.times[i] as number)) keep.push(i);
  return keep.length === rows.rows ? rows : gather(rows, keep);
}

function gather(rows: LoadedRows, indices: readonly number[]): LoadedRows {
  const width = rows.columns.length;
  const times = new Float64Array(indices.length);
  const values = new Float64Array(indices.length * width);
  indices.forEach((src, dst) => {
    times[dst] = rows.times[src] as number;
    values.set(rows.values.subarray(src * width, src * width + width), dst * width);
  });
  return { columns: rows.columns, times, values, rows: indices.length };
}
