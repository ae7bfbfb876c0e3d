/**
 * The time axis a backtest walks (SPEC "Evaluation"): grid steps counted back from the newest row (or rows,
 * without a frequency), the row holding each step, and the window a request at an earlier origin would have
 * got, built by the serving window code on the rows at or before that origin.
 */
import { lowerBound } from '../datasets/snapshot.js';
import type { DatasetSnapshot, FillMissing } from '../datasets/types.js';
import { windowFor } from '../datasets/window.js';
import { addSteps, formatFrequency } from '../forecast/frequency.js';
import type { Frequency } from '../forecast/frequency.js';
import type { WindowSource } from '../runtime/window.js';

/** Steps of a snapshot's axis, counted back from its newest row: step 0 is the newest row. */
export class StepGrid {
  readonly anchor: number;

  constructor(
    readonly snapshot: DatasetSnapshot,
    readonly frequency: Frequency | null,
  ) {
    this.anchor = snapshot.rows > 0 ? (snapshot.times[snapshot.rows - 1] as number) : 0;
  }

  /** The time of step j back (without a frequency: the time of row rows - 1 - j, or NaN before the first row). */
  timeOf(j: number): number {
    const { snapshot, frequency } = this;
    if (frequency === null) {
      const row = snapshot.rows - 1 - j;
      return row >= 0 && row < snapshot.rows ? (snapshot.times[row] as number) : Number.NaN;
    }
    return addSteps(this.anchor, frequency, -j);
  }

  /**
   * The row exactly at step j back, or -1 when the step holds no row. `hint` is a row likely to be it (the
   * row k places after one known to be k steps earlier, as on a gap-free axis): checked first, searched
   * otherwise.
   */
  rowAt(j: number, hint = -1): number {
    const { snapshot, frequency } = this;
    if (frequency === null) {
      const row = snapshot.rows - 1 - j;
      return row >= 0 && row < snapshot.rows ? row : -1;
    }
    const t = this.timeOf(j);
    if (hint >= 0 && hint < snapshot.rows && snapshot.times[hint] === t) return hint;
    const row = lowerBound(snapshot.times, snapshot.rows, t);
    return row < snapshot.rows && snapshot.times[row] === t ? row : -1;
  }

  /** True once step j lies before the first row: no older step can hold one. */
  beforeFirstRow(j: number): boolean {
    if (this.snapshot.rows === 0) return true;
    if (this.frequency === null) return j >= this.snapshot.rows;
    return this.timeOf(j) < (this.snapshot.times[0] as number);
  }

  /** The name of the step, for messages: "P7D", or "row" without a frequency. */
  get stepName(): string {
    return this.frequency === null ? 'row' : formatFrequency(this.frequency);
  }
}

/**
 * SPEC's default season length m from the frequency: PT1H 24, P1D 7, P7D 52, P1M 12, P3M 4, else 1.
 */
export function defaultSeasonLength(frequency: Frequency | null): number {
  if (frequency === null) return 1;
  switch (formatFrequency(frequency)) {
    case 'PT1H':
      return 24;
    case 'P1D':
      return 7;
    case 'P7D':
      return 52;
    case 'P1M':
      return 12;
    case 'P3M':
      return 4;
    default:
      return 1;
  }
}

/**
 * Per row r, how many of the rows before r hold an empty cell: rows a..b have none when the counts at a and
 * b + 1 are equal.
 */
export function emptyRowCounts(snapshot: DatasetSnapshot): Int32Array {
  const width = snapshot.columns.length;
  const counts = new Int32Array(snapshot.rows + 1);
  const values = snapshot.values;
  for (let r = 0; r < snapshot.rows; r++) {
    let empty = 0;
    for (let c = 0; c < width; c++) {
      if (Number.isNaN(values[r * width + c] as number)) {
        empty = 1;
        break;
      }
    }
    counts[r + 1] = (counts[r] as number) + empty;
  }
  return counts;
}

/**
 * The first row of the window ending at row `origin` when that window is simply the `lookback` rows up to it
 * (every step holds a row, no cell is empty), or -1 when it needs the serving window code (a gap to fill or
 * refuse, a step without a row). Such a window is exactly what windowFor would copy, without building it.
 */
export function plainWindowStart(snapshot: DatasetSnapshot, origin: number, lookback: number, frequency: Frequency | null, emptyRows: Int32Array): number {
  const start = origin - lookback + 1;
  if (start < 0) return -1;
  if (emptyRows[start] !== emptyRows[origin + 1]) return -1;
  if (frequency === null) return start;
  const times = snapshot.times;
  if (frequency.kind === 'fixed') return (times[origin] as number) - (times[start] as number) === (lookback - 1) * frequency.ms ? start : -1;
  const last = times[origin] as number;
  for (let k = 1; k < lookback; k++) if (times[origin - k] !== addSteps(last, frequency, -k)) return -1;
  return start;
}

/**
 * The window of `lookback` steps ending at row `origin`, exactly as a request would have got it when that row
 * was the newest: the serving window code run on the rows at or before it. Only the rows the window and its
 * filling can read are handed over (from the first row a `previous` or `linear` fill may need on), so an
 * origin costs what its window costs, not what the history before it holds. Throws as a request would.
 */
export function windowAt(
  snapshot: DatasetSnapshot,
  origin: number,
  lookback: number,
  fill: FillMissing,
  datasetName: string,
  frequency: Frequency | null,
): WindowSource {
  const width = snapshot.columns.length;
  const { times, values } = snapshot;
  const end = origin + 1;
  // The first row the window covers: `lookback` rows back, or the row at the window's oldest step.
  let start = Math.max(0, end - lookback);
  if (frequency !== null) {
    const oldest = addSteps(times[origin] as number, frequency, -(lookback - 1));
    start = Math.min(start, lowerBound(times, end, oldest));
  }
  // Back until every column has had a value before the window, as filling reads at most that far.
  if (fill !== 'none') {
    let unseen = width;
    const seen = new Uint8Array(width);
    while (start > 0 && unseen > 0) {
      start--;
      for (let c = 0; c < width; c++) {
        if (seen[c] === 0 && !Number.isNaN(values[start * width + c] as number)) {
          seen[c] = 1;
          unseen--;
        }
      }
    }
  }
  const view: DatasetSnapshot = {
    version: snapshot.version,
    columns: snapshot.columns,
    times: times.subarray(start, end),
    values: values.subarray(start * width, end * width),
    rows: end - start,
    loadedAt: snapshot.loadedAt,
  };
  return windowFor(view, lookback, fill, datasetName, frequency);
}
