import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildSnapshot } from '../../src/datasets/snapshot.js';
import { snapshotFrequency, snapshotGrid, snapshotOffGridRows } from '../../src/datasets/snapshot-frequency.js';
import type { DatasetSnapshot, FillMissing } from '../../src/datasets/types.js';
import { windowFor } from '../../src/datasets/window.js';
import { ForecastdError } from '../../src/errors.js';
import { formatFrequency } from '../../src/forecast/frequency.js';

/**
 * Property tests of the anchored grid (SPEC "The grid is anchored at the newest row"): series at every
 * frequency forecastd infers, with random deletions, off-grid insertions and day changes in history, are
 * checked against a deliberately naive oracle written here from the SPEC's words: find the anchor by
 * looking at every row, list the grid points from it back, look each one up by scanning every row, fill
 * gaps step by step. Daily and weekly rows are written at local midnight in real zones, their offsets
 * read from Intl.DateTimeFormat. fast-check prints the seed and the shrunk counter-example of a failure.
 */

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const TOLERANCE = 3 * HOUR;

// ---------------------------------------------------------------------------------------------------------------
// Naive calendar arithmetic, independent of src/: Date with setUTCFullYear (so years below 100 stay there).
// ---------------------------------------------------------------------------------------------------------------

function utcDate(year: number, month0: number, day: number, timeOfDay = 0): number {
  const d = new Date(0);
  d.setUTCFullYear(year, month0, day);
  return d.getTime() + timeOfDay;
}

function daysIn(year: number, month0: number): number {
  return new Date(utcDate(year, month0 + 1, 0)).getUTCDate();
}

function parts(t: number): { year: number; month0: number; day: number; timeOfDay: number; monthIndex: number; monthEnd: boolean } {
  const d = new Date(t);
  const year = d.getUTCFullYear();
  const month0 = d.getUTCMonth();
  const day = d.getUTCDate();
  const timeOfDay = t - utcDate(year, month0, day);
  return { year, month0, day, timeOfDay, monthIndex: year * 12 + month0, monthEnd: day === daysIn(year, month0) };
}

/** The calendar point `k` steps of `months` after `t` (k negative: before), on `day` clamped, or the month end. */
function monthStep(t: number, months: number, day: number | 'end', k: number): number {
  const p = parts(t);
  const index = p.monthIndex + k * months;
  const year = Math.floor(index / 12);
  const month0 = index - year * 12;
  const last = daysIn(year, month0);
  return utcDate(year, month0, day === 'end' ? last : Math.min(day, last), p.timeOfDay);
}

// ---------------------------------------------------------------------------------------------------------------
// Time zones: offsets from Intl.DateTimeFormat, never from a table.
// ---------------------------------------------------------------------------------------------------------------

const ZONES = ['America/New_York', 'Europe/London', 'Australia/Lord_Howe', 'Asia/Kolkata', 'UTC'] as const;
const formatters = new Map<string, Intl.DateTimeFormat>();

/** The zone's offset from UTC at `t`, in ms, read from Intl's "GMT-05:00" form. */
function zoneOffset(zone: string, t: number): number {
  let f = formatters.get(zone);
  if (f === undefined) {
    f = new Intl.DateTimeFormat('en-US', { timeZone: zone, timeZoneName: 'longOffset' });
    formatters.set(zone, f);
  }
  const name = f.formatToParts(new Date(t)).find((p) => p.type === 'timeZoneName')?.value ?? 'GMT';
  const m = /^GMT(?:([+-])(\d{2}):(\d{2}))?$/.exec(name);
  if (m === null) throw new Error(`unexpected zone name ${name}`);
  if (m[1] === undefined) return 0;
  return (m[1] === '-' ? -1 : 1) * (Number(m[2]) * HOUR + Number(m[3]) * MINUTE);
}

/** UTC ms of local midnight on a calendar date in a zone. */
function localMidnight(zone: string, year: number, month0: number, day: number): number {
  const wall = utcDate(year, month0, day);
  let t = wall - zoneOffset(zone, wall);
  t = wall - zoneOffset(zone, t);
  return wall - zoneOffset(zone, t);
}

// ---------------------------------------------------------------------------------------------------------------
// The frequencies generated, and how their grid points are laid out.
// ---------------------------------------------------------------------------------------------------------------

type Spec =
  | { readonly kind: 'fixed'; readonly step: number; readonly expected: string }
  | { readonly kind: 'zoned'; readonly days: number; readonly expected: string }
  | { readonly kind: 'calendar'; readonly months: number; readonly expected: string };

const SPECS: readonly Spec[] = [
  { kind: 'fixed', step: SECOND, expected: 'PT1S' },
  { kind: 'fixed', step: 30 * SECOND, expected: 'PT30S' },
  { kind: 'fixed', step: 5 * MINUTE, expected: 'PT5M' },
  { kind: 'fixed', step: 15 * MINUTE, expected: 'PT15M' },
  { kind: 'fixed', step: HOUR, expected: 'PT1H' },
  { kind: 'fixed', step: 6 * HOUR, expected: 'PT6H' },
  { kind: 'zoned', days: 1, expected: 'P1D' },
  { kind: 'zoned', days: 7, expected: 'P7D' },
  // Calendar steps: at local midnight in a zone, or UTC midnight in years below 100 and above 9900.
  { kind: 'calendar', months: 1, expected: 'P1M' },
  { kind: 'calendar', months: 3, expected: 'P3M' },
  { kind: 'calendar', months: 12, expected: 'P1Y' },
];

interface Case {
  readonly spec: number;
  readonly n: number;
  readonly zone: number;
  /** Calendar: the day rows land on (29..31 clamp in short months; 32 means month ends). */
  readonly day: number;
  /** Calendar: the day older history was written on, and from which step back it was (0: no change). */
  readonly oldDay: number;
  readonly changeAt: number;
  readonly yearPick: number;
  readonly start: number;
  readonly deletions: readonly number[];
  readonly insertions: readonly { readonly at: number; readonly frac: number }[];
  readonly values: readonly number[];
  readonly lookback: number;
}

const caseArbitrary: fc.Arbitrary<Case> = fc.record({
  spec: fc.integer({ min: 0, max: SPECS.length - 1 }),
  n: fc.integer({ min: 8, max: 48 }),
  zone: fc.integer({ min: 0, max: ZONES.length - 1 }),
  day: fc.integer({ min: 1, max: 32 }),
  oldDay: fc.integer({ min: 1, max: 28 }),
  changeAt: fc.integer({ min: 0, max: 47 }),
  yearPick: fc.integer({ min: 0, max: 2 }),
  start: fc.integer({ min: 0, max: 1_000_000 }),
  deletions: fc.array(fc.integer({ min: 0, max: 47 }), { maxLength: 10 }),
  insertions: fc.array(fc.record({ at: fc.integer({ min: -1, max: 47 }), frac: fc.double({ min: 0, max: 1, noNaN: true }) }), { maxLength: 6 }),
  values: fc.array(fc.integer({ min: -1000, max: 1000 }), { minLength: 64, maxLength: 64 }),
  lookback: fc.integer({ min: 1, max: 12 }),
});

interface Series {
  readonly times: Float64Array;
  readonly values: Float64Array;
  readonly expected: string;
}

/** Builds the rows of a case: grid points from the newest back, less deletions, plus off-grid rows. */
function seriesOf(c: Case): Series {
  const spec = SPECS[c.spec] as Spec;
  const zone = ZONES[c.zone] as string;
  const point: (j: number) => number = (() => {
    if (spec.kind === 'fixed') {
      const newest = Date.UTC(2000, 0, 1) + Math.floor((c.start * 997 * SECOND) / spec.step) * spec.step;
      return (j: number) => newest - j * spec.step;
    }
    if (spec.kind === 'zoned') {
      const base = utcDate(2019, 0, 1) + (c.start % 2500) * DAY;
      return (j: number) => {
        const p = parts(base - j * spec.days * DAY);
        return localMidnight(zone, p.year, p.month0, p.day);
      };
    }
    // Rows at local midnight in a zone for years 1975-2094 (zone rules before 1970 carry odd offsets); UTC
    // midnight in years 0060-0149 and 9900-9989.
    const years = [60 + (c.start % 90), 1975 + (c.start % 120), 9900 + (c.start % 90)];
    const calendarZone = c.yearPick === 1 ? zone : 'UTC';
    const newestMonth = (years[c.yearPick] as number) * 12 + (c.start % 12);
    return (j: number) => {
      const index = newestMonth - j * spec.months;
      const year = Math.floor(index / 12);
      const month0 = index - year * 12;
      const last = daysIn(year, month0);
      const changed = c.changeAt > 0 && j >= c.changeAt;
      const day = changed ? c.oldDay : c.day;
      const dayOfMonth = day >= 32 ? last : Math.min(day, last);
      return calendarZone === 'UTC' ? utcDate(year, month0, dayOfMonth) : localMidnight(calendarZone, year, month0, dayOfMonth);
    };
  })();
  // Few enough changes that the generated step still covers most steps between rows.
  const budget = Math.max(0, Math.floor((c.n - 1) / 3) - 1 - (spec.kind === 'calendar' && c.changeAt > 0 && c.changeAt < c.n ? 1 : 0));
  const deleted = new Set(c.deletions.filter((j) => j < c.n).slice(0, budget));
  const insertions = c.insertions.filter((x) => x.at < c.n - 1).slice(0, Math.max(0, budget - deleted.size));
  const rows = new Map<number, number>();
  let v = 0;
  const nextValue = (): number => (c.values[v++ % c.values.length] as number) + v * 0.5;
  for (let j = c.n - 1; j >= 0; j--) if (!deleted.has(j)) rows.set(point(j), nextValue());
  for (const x of insertions) {
    // Between grid points j + 1 and j (j = -1: after the newest), never within reach of either.
    const newer = x.at < 0 ? point(0) + (point(0) - point(1)) : point(x.at);
    const older = point(x.at + 1);
    const span = newer - older;
    let t: number;
    if (spec.kind === 'fixed') {
      if (span < 2) continue;
      t = older + 1 + Math.floor(x.frac * (span - 2));
    } else if (spec.kind === 'zoned') {
      t = older + 5 * HOUR + Math.floor(x.frac * (span - 10 * HOUR));
    } else {
      t = older + HOUR + Math.floor(x.frac * (span - 2 * HOUR));
    }
    rows.set(t, nextValue());
  }
  const sorted = [...rows.entries()].sort((a, b) => a[0] - b[0]);
  return { times: Float64Array.from(sorted, (r) => r[0]), values: Float64Array.from(sorted, (r) => r[1]), expected: spec.expected };
}

// ---------------------------------------------------------------------------------------------------------------
// The naive oracle: SPEC's rules, by looking at every row.
// ---------------------------------------------------------------------------------------------------------------

interface OracleGrid {
  readonly point: (j: number) => number;
  /** Inclusive range of the times that may fill step j. */
  readonly range: (j: number) => [number, number];
  /** The row that fills step j, or -1. */
  readonly rowOf: (j: number) => number;
  readonly anchor: number;
}

/** The offset that puts `t` at midnight: rows written at local midnight read in their writer's calendar. */
function midnightOffset(t: number): number {
  const timeOfDay = ((t % DAY) + DAY) % DAY;
  if (timeOfDay === 0) return 0;
  return timeOfDay >= DAY / 2 ? DAY - timeOfDay : -timeOfDay;
}

/** A time moved to the nearest midnight when within 3 h of it. */
function snapped(t: number): number {
  const off = midnightOffset(t);
  return Math.abs(off) <= TOLERANCE ? t + off : t;
}

function oracleGrid(times: Float64Array, expected: string): OracleGrid | null {
  const fixed: Record<string, number> = { PT1S: SECOND, PT30S: 30 * SECOND, PT5M: 5 * MINUTE, PT15M: 15 * MINUTE, PT1H: HOUR, PT6H: 6 * HOUR, P1D: DAY, P7D: 7 * DAY };
  const months: Record<string, number> = { P1M: 1, P3M: 3, P1Y: 12 };
  const near = (g: number, tolerance: number, except: number): boolean => times.some((t) => t !== except && Math.abs(t - g) <= tolerance);
  for (let i = times.length - 1; i >= 0; i--) {
    const a = times[i] as number;
    const step = fixed[expected];
    if (step !== undefined) {
      const tolerance = step >= DAY ? TOLERANCE : 0;
      if (![1, 2, 3].some((k) => near(a - k * step, tolerance, a))) continue;
      const range = (j: number): [number, number] => [a - j * step - tolerance, a - j * step + tolerance];
      return { anchor: a, point: (j) => a - j * step, range, rowOf: (j) => nearestIn(times, range(j), a - j * step) };
    }
    const m = months[expected] as number;
    // Months are read in the calendar where the anchor is midnight; a row within 3 h of a midnight there
    // belongs to that day.
    const off = midnightOffset(a);
    const local = a + off;
    const p = parts(local);
    const options: (number | 'end')[] = p.monthEnd ? [p.day, 'end'] : [p.day];
    if (![1, 2, 3].some((k) => options.some((o) => near(monthStep(local, m, o, -k) - off, TOLERANCE, a)))) continue;
    const periodOf = (t: number): number => Math.floor(parts(snapped(t + off)).monthIndex / m);
    const rowIn = (period: number, g: number): number => {
      let best = -1;
      for (let r = 0; r < times.length; r++) {
        if (periodOf(times[r] as number) !== period) continue;
        if (best < 0 || Math.abs((times[r] as number) - g) <= Math.abs((times[best] as number) - g)) best = r;
      }
      return best;
    };
    let day: number | 'end' = p.day;
    if (p.monthEnd) {
      // The month end, when the row one step before (on the month-end grid) is a month end too.
      const g = monthStep(local, m, 'end', -1) - off;
      const before = rowIn(periodOf(g), g);
      if (before >= 0 && parts((times[before] as number) + off).monthEnd) day = 'end';
    }
    const point = (j: number): number => monthStep(local, m, day, -j) - off;
    const range = (j: number): [number, number] => {
      const first = periodOf(point(j)) * m;
      const from = utcDate(Math.floor(first / 12), first % 12, 1) - off - TOLERANCE;
      const to = utcDate(Math.floor((first + m) / 12), (first + m) % 12, 1) - 1 - off + TOLERANCE;
      return [from, to];
    };
    return { anchor: a, point, range, rowOf: (j) => rowIn(periodOf(point(j)), point(j)) };
  }
  return null;
}

/** The row in `range` nearest `g`, the later on a tie; -1 if none. */
function nearestIn(times: Float64Array, range: [number, number], g: number): number {
  let best = -1;
  for (let r = 0; r < times.length; r++) {
    const t = times[r] as number;
    if (t < range[0] || t > range[1]) continue;
    if (best < 0 || Math.abs(t - g) <= Math.abs((times[best] as number) - g)) best = r;
  }
  return best;
}

type Expected = { readonly error: string } | { readonly window: number[] };

function oracleWindow(times: Float64Array, values: Float64Array, grid: OracleGrid | null, lookback: number, mode: FillMissing): Expected {
  if (grid === null) {
    if (times.length < lookback) return { error: `has ${times.length} row` };
    return { window: Array.from(values.slice(times.length - lookback)) };
  }
  const first = times[0] as number;
  if (grid.range(lookback - 1)[1] < first) {
    return { error: times.length < lookback ? `has ${times.length} row${times.length === 1 ? '' : 's'}; the model needs a lookback of ${lookback}` : 'before its first row' };
  }
  const valueAt = (j: number): number | null => {
    const r = grid.rowOf(j);
    return r < 0 ? null : (values[r] as number);
  };
  const out: number[] = [];
  for (let j = lookback - 1; j >= 0; j--) {
    const v = valueAt(j);
    if (v !== null) {
      out.push(v);
      continue;
    }
    const iso = new Date(grid.point(j)).toISOString();
    if (mode === 'none') return { error: `gap in dataset d at ${iso}: no row for this step` };
    // The nearest earlier filled step, walking back while steps can still hold rows.
    let earlier: [number, number] | null = null;
    for (let k = j + 1; grid.range(k)[1] >= first; k++) {
      const e = valueAt(k);
      if (e !== null) {
        earlier = [k, e];
        break;
      }
    }
    if (mode === 'previous') {
      if (earlier === null) return { error: `gap in dataset d at ${iso}: column "v" has no earlier value to carry forward` };
      out.push(earlier[1]);
      continue;
    }
    let later: [number, number] | null = null;
    for (let k = j - 1; k >= 0; k--) {
      const l = valueAt(k);
      if (l !== null) {
        later = [k, l];
        break;
      }
    }
    if (earlier === null && later === null) return { error: 'has no value to interpolate from' };
    if (later === null) out.push((earlier as [number, number])[1]);
    else if (earlier === null) out.push(later[1]);
    else out.push(earlier[1] + ((later[1] - earlier[1]) * (earlier[0] - j)) / (earlier[0] - later[0]));
  }
  return { window: out };
}

function oracleOffGrid(times: Float64Array, grid: OracleGrid | null): number {
  if (grid === null) return 0;
  const chosen = new Set<number>();
  for (let j = 0; grid.range(j)[1] >= (times[0] as number); j++) {
    const r = grid.rowOf(j);
    if (r >= 0) chosen.add(r);
  }
  return times.length - chosen.size;
}

// ---------------------------------------------------------------------------------------------------------------

function actualWindow(snapshot: DatasetSnapshot, lookback: number, mode: FillMissing): Expected {
  try {
    const w = windowFor(snapshot, lookback, mode, 'd', snapshotFrequency(snapshot));
    const out = new Float64Array(w.length);
    w.copyInto(out, 0);
    return { window: Array.from(out) };
  } catch (error) {
    if (!(error instanceof ForecastdError)) throw error;
    return { error: error.message };
  }
}

function agree(actual: Expected, expected: Expected): void {
  if ('error' in expected) {
    expect(actual).toHaveProperty('error');
    expect((actual as { error: string }).error).toContain(expected.error);
  } else {
    expect(actual).toEqual(expected);
  }
}

function snapshotOf(times: Float64Array, values: Float64Array): DatasetSnapshot {
  return buildSnapshot({ columns: ['v'], times, values, rows: times.length }, 0);
}

describe('the anchored grid agrees with a naive reading of the SPEC', () => {
  it('frequency, window (none, previous, linear), off-grid rows and forecast timestamps', () => {
    fc.assert(
      fc.property(caseArbitrary, (c) => {
        const { times, values, expected } = seriesOf(c);
        const snapshot = snapshotOf(times, values);
        const f = snapshotFrequency(snapshot);
        expect(f === null ? null : formatFrequency(f)).toBe(expected);
        const grid = oracleGrid(times, expected);
        const actualGrid = snapshotGrid(snapshot);
        expect(actualGrid?.anchor ?? null).toBe(grid?.anchor ?? null);
        for (const mode of ['none', 'previous', 'linear'] as const) {
          agree(actualWindow(snapshot, c.lookback, mode), oracleWindow(times, values, grid, c.lookback, mode));
        }
        expect(snapshotOffGridRows(snapshot)).toBe(oracleOffGrid(times, grid));
        if (grid !== null && actualGrid !== null) {
          const forecast = Array.from(actualGrid.stepsAfterAnchor(3));
          expect(forecast).toEqual([grid.point(-1), grid.point(-2), grid.point(-3)]);
        }
      }),
      { numRuns: 2500 },
    );
  });

  it('an irregular series has no frequency, and its window is the latest L rows', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 1, max: 60_000 }), { minLength: 3, maxLength: 40 }),
        fc.integer({ min: 0, max: 1_000_000 }),
        fc.integer({ min: 1, max: 45 }),
        (gaps, start, lookback) => {
          // Every gap between rows differs (and is well under a day, out of reach of the ±3 h of a day step): no
          // step covers most of them.
          const times = new Float64Array(gaps.length + 1);
          times[0] = Date.UTC(2010, 0, 1) + start * SECOND;
          for (let i = 0; i < gaps.length; i++) times[i + 1] = (times[i] as number) + (gaps[i] as number) * SECOND;
          const values = Float64Array.from(times, (_, i) => i * 3 - 7);
          const snapshot = snapshotOf(times, values);
          expect(snapshotFrequency(snapshot)).toBeNull();
          expect(snapshotOffGridRows(snapshot)).toBe(0);
          agree(actualWindow(snapshot, lookback, 'none'), oracleWindow(times, values, null, lookback, 'none'));
        },
      ),
      { numRuns: 500 },
    );
  });
});
