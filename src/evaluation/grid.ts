/**
 * The time axis a backtest walks (SPEC "Evaluation"): grid steps counted back from the newest row (or rows,
 * without a frequency), the row holding each step, and the window a request at an earlier origin would have
 * got, built by the serving window code on the rows at or before that origin.
 */
import { lowerBound } from '../datasets/snapshot.js';
import type { DatasetSnapshot, FillMissing } from '../datasets/types.js';
import { windowFor } from '../datasets/window.js';
import { addSteps, calendarOffset, formatFrequency } from '../forecast/frequency.js';
import { anchoredGrid } from '../forecast/grid.js';
import type { AnchoredGrid } from '../forecast/grid.js';
import type { Frequency } from '../forecast/frequency.js';
import type { WindowSource } from '../runtime/window.js';

/**
 * Steps of a snapshot's axis, counted back from the grid's anchor (SPEC "The grid is anchored at the newest row
 * that continues it"): step 0 is the anchor row, and each step is filled by the row the serving window code
 * would take for it (the same AnchoredGrid). Without a frequency, or when no row anchors the grid, steps are
 * rows counted back from the newest, as windows then are.
 */
export class StepGrid {
  /** The grid's frequency, or null when steps are rows. */
  readonly frequency: Frequency | null;
  private readonly grid: AnchoredGrid | null;

  constructor(
    readonly snapshot: DatasetSnapshot,
    frequency: Frequency | null,
  ) {
    this.grid = frequency === null || snapshot.rows === 0 ? null : anchoredGrid(snapshot.times, snapshot.rows, frequency);
    this.frequency = this.grid === null ? null : frequency;
  }

  /** The time of step j back (without a frequency: the time of row rows - 1 - j, or NaN before the first row). */
  timeOf(j: number): number {
    if (this.grid !== null) return this.grid.pointBack(j);
    const { snapshot } = this;
    const row = snapshot.rows - 1 - j;
    return row >= 0 && row < snapshot.rows ? (snapshot.times[row] as number) : Number.NaN;
  }

  /**
   * The row that fills step j back, or -1 when the step holds no row. `hint` is a row likely to be it (the row
   * k places after one known to be k steps earlier, as on a gap-free axis): taken at once when it lies exactly
   * on the step's grid point, where no other row can be nearer.
   */
  rowAt(j: number, hint = -1): number {
    if (this.grid !== null) {
      if (j < 0) return -1;
      const { snapshot } = this;
      if (hint >= 0 && hint < snapshot.rows && hint <= this.grid.anchorRow && snapshot.times[hint] === this.grid.pointBack(j)) return hint;
      return this.grid.rowFor(j);
    }
    const row = this.snapshot.rows - 1 - j;
    return row >= 0 && row < this.snapshot.rows ? row : -1;
  }

  /** True once step j lies before the first row: no older step can hold one. */
  beforeFirstRow(j: number): boolean {
    const { snapshot } = this;
    if (snapshot.rows === 0) return true;
    if (this.grid === null) return j >= snapshot.rows;
    return this.grid.rangeOf(j).to < (snapshot.times[0] as number);
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
  const last = times[origin] as number;
  // Every row exactly on its grid point: the window the serving code builds from these rows is these rows.
  if (frequency.kind === 'fixed') {
    for (let k = 1; k < lookback; k++) if (times[origin - k] !== last - k * frequency.ms) return -1;
    return start;
  }
  const offset = calendarOffset(last);
  for (let k = 1; k < lookback; k++) if (times[origin - k] !== addSteps(last, frequency, -k, offset)) return -1;
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
    // One step further back than the window's oldest step: rows within a step's tolerance of it are included.
    const beyond = addSteps(times[origin] as number, frequency, -lookback);
    start = Math.min(start, lowerBound(times, end, beyond));
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
