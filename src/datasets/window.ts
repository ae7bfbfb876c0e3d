import { ForecastdError } from '../errors.js';
import { formatFrequency } from '../forecast/frequency.js';
import type { Frequency } from '../forecast/frequency.js';
import { anchoredGrid } from '../forecast/grid.js';
import type { AnchoredGrid } from '../forecast/grid.js';
import type { FloatArray } from '../runtime/types.js';
import type { WindowSource } from '../runtime/window.js';
import { lowerBound } from './snapshot.js';
import { snapshotFrequency, snapshotGrid } from './snapshot-frequency.js';
import type { DatasetSnapshot, FillMissing } from './types.js';

/**
 * The lookback window of a model, oldest first, row-major [L, V]. Without a frequency it is the latest
 * `lookback` rows of a snapshot. With one (SPEC "Frequency of a dataset") it is the latest `lookback` steps
 * of the grid anchored at the newest row that continues it (see forecast/grid.ts): a step with no row is a
 * gap like a row with an empty cell (an error naming its time unless `fill_missing` fills it), so a missing
 * row never shifts the window; rows off the grid never fill a step.
 *
 * Nothing is copied here: the returned WindowSource copies straight from the snapshot into the batch tensor.
 * A window without gaps (the usual case) is one typed-array `set`; a window with gaps filled by
 * `fill_missing` adds the few filled values on top. Errors (too few rows, a gap with fill_missing none, a gap
 * with nothing to fill it from) are thrown here, before the request joins a batch.
 *
 * Filling rules: `previous` carries the last earlier value of the column forward, looking before the window
 * if needed. `linear` interpolates between the nearest earlier and later values of the column (the earlier
 * one may lie before the window), in time between rows, by step index on a grid; at the newest end, with no
 * later value, it carries the earlier one forward, and at the oldest end of the dataset, with no earlier
 * value, it takes the later one. On a grid, fills read only rows that fill a step.
 */
export function windowFor(
  snapshot: DatasetSnapshot,
  lookback: number,
  fillMissing: FillMissing,
  datasetName = 'the dataset',
  frequency: Frequency | null = null,
): WindowSource {
  if (!Number.isSafeInteger(lookback) || lookback < 1) {
    throw new ForecastdError('ERR_INVALID_ARGUMENT', `lookback must be a positive integer, got ${lookback}`);
  }
  const label = datasetName === 'the dataset' ? datasetName : `dataset ${datasetName}`;
  // On a grid, steps count, not rows: fill_missing may fill steps that have none.
  const grid = frequency === null ? null : gridOf(snapshot, frequency);
  if (grid !== null) return new SnapshotWindow(stepWindow(snapshot, lookback, fillMissing, label, grid), null);
  if (snapshot.rows < lookback) {
    throw new ForecastdError(
      'ERR_WINDOW',
      `${label} has ${snapshot.rows} row${snapshot.rows === 1 ? '' : 's'}; the model needs a lookback of ${lookback}`,
    );
  }
  const width = snapshot.columns.length;
  const startRow = snapshot.rows - lookback;
  const view = snapshot.values.subarray(startRow * width, snapshot.rows * width);
  const gaps = gapRows(snapshot);
  if (gaps.length === 0 || (gaps[gaps.length - 1] as number) < startRow) return new SnapshotWindow(view, null);
  return new SnapshotWindow(view, fillFor(snapshot, lookback, fillMissing, label));
}

/** Positions (relative to the window start) and values written over the gaps after the bulk copy. */
interface GapFill {
  readonly positions: Int32Array;
  readonly values: Float64Array;
}

class SnapshotWindow implements WindowSource {
  readonly length: number;

  constructor(
    private readonly view: Float64Array,
    private readonly fill: GapFill | null,
  ) {
    this.length = view.length;
  }

  copyInto(target: FloatArray, offset: number): void {
    // TypedArray.set converts float64 to float32 element by element when the target is a Float32Array.
    target.set(this.view, offset);
    const fill = this.fill;
    if (fill === null) return;
    for (let k = 0; k < fill.positions.length; k++) {
      target[offset + (fill.positions[k] as number)] = fill.values[k] as number;
    }
  }
}

// Per snapshot (snapshots are immutable): rows holding any missing value, ascending, computed once.
const gapRowIndex = new WeakMap<DatasetSnapshot, Int32Array>();
// Per snapshot: the fill of a window, by lookback and fill mode, so repeated requests reuse it.
const fillCache = new WeakMap<DatasetSnapshot, Map<string, GapFill>>();

function gapRows(snapshot: DatasetSnapshot): Int32Array {
  let rows = gapRowIndex.get(snapshot);
  if (rows === undefined) {
    const width = snapshot.columns.length;
    const found: number[] = [];
    const values = snapshot.values;
    for (let r = 0; r < snapshot.rows; r++) {
      for (let c = 0; c < width; c++) {
        if (Number.isNaN(values[r * width + c])) {
          found.push(r);
          break;
        }
      }
    }
    rows = Int32Array.from(found);
    gapRowIndex.set(snapshot, rows);
  }
  return rows;
}

function fillFor(snapshot: DatasetSnapshot, lookback: number, mode: FillMissing, label: string): GapFill {
  const key = `${lookback}:${mode}`;
  let byKey = fillCache.get(snapshot);
  const cached = byKey?.get(key);
  if (cached !== undefined) return cached;
  const fill = computeFill(snapshot, lookback, mode, label);
  if (byKey === undefined) {
    byKey = new Map();
    fillCache.set(snapshot, byKey);
  }
  byKey.set(key, fill);
  return fill;
}

function computeFill(snapshot: DatasetSnapshot, lookback: number, mode: FillMissing, label: string): GapFill {
  const { values, times, columns } = snapshot;
  const width = columns.length;
  const startRow = snapshot.rows - lookback;
  const gaps = gapRows(snapshot);
  const at = (row: number, col: number): number => values[row * width + col] as number;
  const iso = (row: number): string => new Date(times[row] as number).toISOString();

  let g = lowerBoundInt(gaps, startRow);
  if (mode === 'none') {
    const row = gaps[g] as number;
    let col = 0;
    while (col < width && !Number.isNaN(at(row, col))) col++;
    throw new ForecastdError(
      'ERR_WINDOW',
      `gap in ${label} at ${iso(row)}: column "${columns[col]}" has no value (fill_missing is none; set it to previous or linear to fill gaps)`,
    );
  }

  // lastValid[c]: the newest row before the current one with a value in column c (-1: none yet).
  const lastValid = new Int32Array(width).fill(-1);
  for (let c = 0; c < width; c++) {
    let r = startRow - 1;
    while (r >= 0 && Number.isNaN(at(r, c))) r--;
    lastValid[c] = r;
  }
  // nextValid[c]: the next row with a value in column c after a run of gaps (cached while inside the run).
  const nextValid = new Int32Array(width).fill(-2);
  const positions: number[] = [];
  const filled: number[] = [];
  let previousGapRow = startRow - 1;
  for (; g < gaps.length; g++) {
    const row = gaps[g] as number;
    // Rows between two gap rows have every value, so they are the newest valid row of every column.
    if (row - 1 > previousGapRow) lastValid.fill(row - 1);
    previousGapRow = row;
    for (let c = 0; c < width; c++) {
      const v = at(row, c);
      if (!Number.isNaN(v)) {
        lastValid[c] = row;
        continue;
      }
      const before = lastValid[c] as number;
      let value: number;
      if (mode === 'previous') {
        if (before < 0) {
          throw new ForecastdError(
            'ERR_WINDOW',
            `gap in ${label} at ${iso(row)}: column "${columns[c]}" has no earlier value to carry forward (fill_missing: previous)`,
          );
        }
        value = at(before, c);
      } else {
        let after = nextValid[c] as number;
        if (after !== -1 && after <= row) {
          after = row + 1;
          while (after < snapshot.rows && Number.isNaN(at(after, c))) after++;
          if (after >= snapshot.rows) after = -1;
          nextValid[c] = after;
        }
        if (before < 0 && after < 0) {
          throw new ForecastdError('ERR_WINDOW', `gap in ${label} at ${iso(row)}: column "${columns[c]}" has no value to interpolate from (fill_missing: linear)`);
        }
        if (after < 0) value = at(before, c);
        else if (before < 0) value = at(after, c);
        else {
          const t0 = times[before] as number;
          const t1 = times[after] as number;
          const v0 = at(before, c);
          value = v0 + ((at(after, c) - v0) * ((times[row] as number) - t0)) / (t1 - t0);
        }
      }
      positions.push((row - startRow) * width + c);
      filled.push(value);
    }
  }
  return { positions: Int32Array.from(positions), values: Float64Array.from(filled) };
}

/** The grid of a snapshot at `f`: the snapshot's own (cached) when `f` is its inferred frequency. */
function gridOf(snapshot: DatasetSnapshot, f: Frequency): AnchoredGrid | null {
  if (f === snapshotFrequency(snapshot)) return snapshotGrid(snapshot);
  return anchoredGrid(snapshot.times, snapshot.rows, f);
}

// Per snapshot: windows built from the step grid, by lookback and fill mode.
const stepWindows = new WeakMap<DatasetSnapshot, Map<string, Float64Array>>();

/**
 * The window of the latest `lookback` steps as values: the row filling each step, NaN where none does, then
 * filled as `mode` says, by step index, from rows that fill steps (before the window too, when needed).
 */
function stepWindow(snapshot: DatasetSnapshot, lookback: number, mode: FillMissing, label: string, grid: AnchoredGrid): Float64Array {
  const key = `${lookback}:${mode}:${grid.anchor}:${formatFrequency(grid.frequency)}`;
  let byKey = stepWindows.get(snapshot);
  const cached = byKey?.get(key);
  if (cached !== undefined) return cached;
  const { times, values, columns } = snapshot;
  const width = columns.length;
  const n = snapshot.rows;
  const step = formatFrequency(grid.frequency);
  const oldestRange = grid.rangeOf(lookback - 1);
  if (oldestRange.to < (times[0] as number)) {
    if (n < lookback) {
      throw new ForecastdError('ERR_WINDOW', `${label} has ${n} row${n === 1 ? '' : 's'}; the model needs a lookback of ${lookback}`);
    }
    throw new ForecastdError(
      'ERR_WINDOW',
      `${label} has ${n} row${n === 1 ? '' : 's'} from ${iso(times[0] as number)}; the model needs a lookback of ${lookback} steps of ${step}, back to ${iso(grid.pointBack(lookback - 1))}, before its first row`,
    );
  }
  // Window position w (oldest first) is step lookback - 1 - w.
  const rowOf = new Int32Array(lookback);
  const out = new Float64Array(lookback * width).fill(Number.NaN);
  let gaps = 0;
  for (let w = 0; w < lookback; w++) {
    const row = grid.rowFor(lookback - 1 - w);
    rowOf[w] = row;
    if (row >= 0) out.set(values.subarray(row * width, row * width + width), w * width);
    for (let c = 0; c < width; c++) if (Number.isNaN(out[w * width + c])) gaps++;
  }
  if (gaps > 0) fillSteps(snapshot, grid, lookback, mode, label, rowOf, out, oldestRange.to);
  if (byKey === undefined) {
    byKey = new Map();
    stepWindows.set(snapshot, byKey);
  }
  byKey.set(key, out);
  return out;
}

/** Fills the NaN cells of a step window in place, or throws the gap error `mode` calls for. */
function fillSteps(
  snapshot: DatasetSnapshot,
  grid: AnchoredGrid,
  lookback: number,
  mode: FillMissing,
  label: string,
  rowOf: Int32Array,
  out: Float64Array,
  windowTo: number,
): void {
  const { times, values, columns } = snapshot;
  const width = columns.length;
  const step = formatFrequency(grid.frequency);
  const pointAt = (w: number): number => grid.pointBack(lookback - 1 - w);
  if (mode === 'none') {
    for (let w = 0; w < lookback; w++) {
      const row = rowOf[w] as number;
      if (row < 0) {
        throw new ForecastdError(
          'ERR_WINDOW',
          `gap in ${label} at ${iso(pointAt(w))}: no row for this step of ${step} (fill_missing is none; set it to previous or linear to fill gaps)`,
        );
      }
      for (let c = 0; c < width; c++) {
        if (Number.isNaN(out[w * width + c])) {
          throw new ForecastdError(
            'ERR_WINDOW',
            `gap in ${label} at ${iso(times[row] as number)}: column "${columns[c]}" has no value (fill_missing is none; set it to previous or linear to fill gaps)`,
          );
        }
      }
    }
  }
  // Before the window: rows of steps older than its oldest, newest first, that fill a step of the grid.
  const beforeRow = lowerBound(times, snapshot.rows, windowTo + 1) - 1;
  for (let c = 0; c < width; c++) {
    // The value before the window to start from: window position (negative) and value; found lazily.
    let earlierAt = Number.NaN;
    let earlierValue = Number.NaN;
    let searched = false;
    const findEarlier = (): void => {
      searched = true;
      for (let r = beforeRow; r >= 0; r--) {
        const v = values[r * width + c] as number;
        if (Number.isNaN(v) || grid.stepOf(times[r] as number) < lookback || !grid.isOnGrid(r)) continue;
        earlierAt = lookback - 1 - grid.stepOf(times[r] as number);
        earlierValue = v;
        return;
      }
    };
    let lastAt = Number.NaN;
    let lastValue = Number.NaN;
    // The next window position with a value, found once per run of gaps.
    let next = -1;
    for (let w = 0; w < lookback; w++) {
      const v = out[w * width + c] as number;
      if (!Number.isNaN(v)) {
        lastAt = w;
        lastValue = v;
        continue;
      }
      if (Number.isNaN(lastAt)) {
        if (!searched) findEarlier();
        lastAt = earlierAt;
        lastValue = earlierValue;
      }
      const row = rowOf[w] as number;
      const at = iso(row >= 0 ? (times[row] as number) : pointAt(w));
      if (mode === 'previous') {
        if (Number.isNaN(lastAt)) {
          throw new ForecastdError('ERR_WINDOW', `gap in ${label} at ${at}: column "${columns[c]}" has no earlier value to carry forward (fill_missing: previous)`);
        }
        out[w * width + c] = lastValue;
        continue;
      }
      if (next <= w) {
        next = w + 1;
        while (next < lookback && Number.isNaN(out[next * width + c])) next++;
      }
      if (next >= lookback) {
        if (Number.isNaN(lastAt)) {
          throw new ForecastdError('ERR_WINDOW', `gap in ${label} at ${at}: column "${columns[c]}" has no value to interpolate from (fill_missing: linear)`);
        }
        out[w * width + c] = lastValue;
      } else {
        const nextValue = out[next * width + c] as number;
        out[w * width + c] = Number.isNaN(lastAt) ? nextValue : lastValue + ((nextValue - lastValue) * (w - lastAt)) / (next - lastAt);
      }
    }
  }
}


function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function lowerBoundInt(sorted: Int32Array, value: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((sorted[mid] as number) < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
