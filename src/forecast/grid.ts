/**
 * The step grid of a time axis, anchored at the newest row that continues it (SPEC "The grid is anchored at
 * the newest row"): which grid point each step is, which row (if any) fills it, and which rows are off the
 * grid. Fixed steps under a day take a row exactly on the point; fixed steps of a day or more take the
 * nearest row within ±3 h (the later on a tie); calendar steps take the row in the step's month (quarter,
 * year) nearest the grid day. Pure arithmetic on epoch milliseconds: no HTTP, no addon.
 */
import { addSteps, calendarOffset, DAY_STEP_TOLERANCE_MS, dayOfMonth, DURATIONS, isMonthEnd, monthIndexOf, monthStart } from './frequency.js';
import type { CalendarFrequency, Frequency } from './frequency.js';
import { finishNow, SLICE_ROWS, type Work } from '../work.js';

/** How many steps before a row another row must be found for the row to anchor the grid. */
const ANCHOR_REACH = 3;

/** Inclusive bounds of the times that may fill one step. */
interface StepRange {
  readonly from: number;
  readonly to: number;
}

/** The first index in `times[0..rows)` whose value is >= `value`. */
function lowerBound(times: ArrayLike<number>, rows: number, value: number): number {
  let lo = 0;
  let hi = rows;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((times[mid] as number) < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export class AnchoredGrid {
  /** The grid's frequency; a calendar one carries the grid day read from the anchor. */
  readonly frequency: Frequency;
  /** Epoch ms of the anchor row: step 0. */
  readonly anchor: number;
  /** Index of the anchor row. */
  readonly anchorRow: number;
  private readonly tolerance: number;
  private readonly aligned: boolean;
  private readonly anchorPeriod: number;
  private readonly anchorMonth: number;
  /**
   * Calendar grids: the offset that puts the anchor at midnight (see calendarOffset), so months are those of
   * the writer's calendar; 0 for fixed grids.
   */
  readonly offsetMs: number;

  constructor(
    private readonly times: ArrayLike<number>,
    private readonly rows: number,
    frequency: Frequency,
    anchorRow: number,
  ) {
    this.frequency = frequency;
    this.anchorRow = anchorRow;
    this.anchor = times[anchorRow] as number;
    this.offsetMs = frequency.kind === 'calendar' ? calendarOffset(this.anchor) : 0;
    this.tolerance = frequency.kind === 'fixed' && frequency.ms < DURATIONS.DAY ? 0 : DAY_STEP_TOLERANCE_MS;
    const months = frequency.kind === 'calendar' ? frequency.months : 1;
    // Quarters and years are calendar quarters and years; other month counts are spans from the anchor's month.
    this.aligned = 12 % months === 0;
    this.anchorMonth = monthIndexOf(this.anchor + this.offsetMs);
    this.anchorPeriod = this.periodOfMonth(this.anchorMonth);
  }

  private periodOfMonth(monthIndex: number): number {
    const months = this.frequency.kind === 'calendar' ? this.frequency.months : 1;
    return this.aligned ? Math.floor(monthIndex / months) : Math.floor((monthIndex - this.anchorMonth) / months);
  }

  /** Epoch ms of the grid point `j` steps before the anchor (negative j: after it). */
  pointBack(j: number): number {
    return addSteps(this.anchor, this.frequency, -j, this.offsetMs);
  }

  /** `count` forecast times: the grid points after the anchor. */
  stepsAfterAnchor(count: number): Float64Array {
    const out = new Float64Array(count);
    for (let k = 1; k <= count; k++) out[k - 1] = this.pointBack(-k);
    return out;
  }

  /** The step (counted back from the anchor) whose range a time is nearest to or inside. */
  stepOf(t: number): number {
    const f = this.frequency;
    if (f.kind === 'fixed') return Math.round((this.anchor - t) / f.ms);
    return this.anchorPeriod - this.periodOfMonth(monthIndexOf(snapToMidnight(t + this.offsetMs)));
  }

  /** The times that may fill step `j`. */
  rangeOf(j: number): StepRange {
    const f = this.frequency;
    if (f.kind === 'fixed') {
      const g = this.anchor - j * f.ms;
      return { from: g - this.tolerance, to: g + this.tolerance };
    }
    const period = this.anchorPeriod - j;
    const first = this.aligned ? period * f.months : this.anchorMonth + period * f.months;
    // Rows up to 3 h across the edge may belong here (see snapToMidnight); rowFor checks each one's step.
    return {
      from: monthStart(first) - this.offsetMs - DAY_STEP_TOLERANCE_MS,
      to: monthStart(first + f.months) - 1 - this.offsetMs + DAY_STEP_TOLERANCE_MS,
    };
  }

  /** The row that fills step `j`: the one in its range nearest its grid point, the later on a tie; -1 if none. */
  rowFor(j: number): number {
    const { from, to } = this.rangeOf(j);
    const g = this.pointBack(j);
    const times = this.times;
    let best = -1;
    let bestDistance = Number.POSITIVE_INFINITY;
    const calendar = this.frequency.kind === 'calendar';
    for (let r = lowerBound(times, this.rows, from); r < this.rows && (times[r] as number) <= to; r++) {
      if (calendar && this.stepOf(times[r] as number) !== j) continue;
      const distance = Math.abs((times[r] as number) - g);
      if (distance <= bestDistance) {
        best = r;
        bestDistance = distance;
      }
    }
    return best;
  }

  /** Whether row `r` fills a step of the grid. */
  isOnGrid(r: number): boolean {
    if (r > this.anchorRow) return false;
    const j = this.stepOf(this.times[r] as number);
    return j >= 0 && this.rowFor(j) === r;
  }

  /** Rows that fill no step (rows newer than the anchor, rows between grid points, the farther of two candidates). */
  offGridRows(): number {
    return finishNow(this.offGridRowsWork());
  }

  /** offGridRows() as work that yields between slices of rows (see work.ts). */
  *offGridRowsWork(): Work<number> {
    const times = this.times;
    const f = this.frequency;
    if (f.kind === 'fixed') {
      // The usual case, kept to arithmetic: rows are read once, newest first, a step at a time.
      let filled = 0;
      let step = -1;
      let found = false;
      for (let r = this.anchorRow; r >= 0; r--) {
        const t = times[r] as number;
        const j = Math.round((this.anchor - t) / f.ms);
        if (j !== step) {
          if (found) filled++;
          step = j;
          found = false;
        }
        if (Math.abs(t - (this.anchor - j * f.ms)) <= this.tolerance) found = true;
        if (r % SLICE_ROWS === 0) yield;
      }
      if (found) filled++;
      return this.rows - filled;
    }
    let onGrid = 0;
    let r = this.anchorRow;
    let sinceYield = 0;
    // Rows of one step are consecutive (the step of a time falls as the time rises): one pass, one winner each.
    while (r >= 0) {
      const j = this.stepOf(times[r] as number);
      const { from, to } = this.rangeOf(j);
      let found = false;
      while (r >= 0 && this.stepOf(times[r] as number) === j) {
        const t = times[r] as number;
        if (t >= from && t <= to) found = true;
        r--;
        sinceYield++;
      }
      if (found && j >= 0) onGrid++;
      if (sinceYield >= SLICE_ROWS) {
        sinceYield = 0;
        yield;
      }
    }
    return this.rows - onGrid;
  }
}


/**
 * A time in a calendar grid's frame moved to its midnight when it lies within 3 h of it (a row written at
 * local midnight when the offset was an hour different counts for its own day); otherwise as it is.
 */
function snapToMidnight(t: number): number {
  const day = DURATIONS.DAY;
  let d = ((t % day) + day) % day;
  if (d > day / 2) d -= day;
  return Math.abs(d) <= DAY_STEP_TOLERANCE_MS ? t - d : t;
}

/** Whether a row lies within `tolerance` of `g`. */
function rowNear(times: ArrayLike<number>, rows: number, g: number, tolerance: number): number {
  const r = lowerBound(times, rows, g - tolerance);
  return r < rows && (times[r] as number) <= g + tolerance ? r : -1;
}

/**
 * The grid of a time axis at frequency `f`, anchored at the newest row that has another row on its grid
 * within the three steps before it; null when no row does (the axis has no grid to speak of).
 */
export function anchoredGrid(times: ArrayLike<number>, rows: number, f: Frequency): AnchoredGrid | null {
  const tolerance = f.kind === 'fixed' && f.ms < DURATIONS.DAY ? 0 : DAY_STEP_TOLERANCE_MS;
  for (let i = rows - 1; i > 0; i--) {
    const t = times[i] as number;
    if (f.kind === 'fixed') {
      for (let k = 1; k <= ANCHOR_REACH; k++) {
        if (rowNear(times, i, t - k * f.ms, tolerance) >= 0) return new AnchoredGrid(times, rows, f, i);
      }
      continue;
    }
    const offset = calendarOffset(t);
    const onDay: CalendarFrequency = { kind: 'calendar', months: f.months, day: dayOfMonth(t + offset) };
    const candidates: CalendarFrequency[] = [onDay];
    if (isMonthEnd(t + offset)) candidates.push({ kind: 'calendar', months: f.months, day: 'end' });
    for (let k = 1; k <= ANCHOR_REACH; k++) {
      for (const c of candidates) {
        if (rowNear(times, i, addSteps(t, c, -k, offset), tolerance) < 0) continue;
        // The grid day is the anchor's day, or the month end when the row one step before is a month end too.
        let day: CalendarFrequency = onDay;
        if (candidates.length > 1) {
          const ends = new AnchoredGrid(times, rows, candidates[1] as CalendarFrequency, i);
          const before = ends.rowFor(1);
          if (before >= 0 && isMonthEnd((times[before] as number) + offset)) day = candidates[1] as CalendarFrequency;
        }
        return new AnchoredGrid(times, rows, day, i);
      }
    }
  }
  return null;
}
