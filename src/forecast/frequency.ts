/**
 * The step of a time axis: a fixed duration (hours, days, weeks) or a calendar step of whole months (month,
 * quarter, year), how it is inferred from a dataset's time column, printed as an ISO 8601 duration, and how
 * step k from an origin is computed. Pure arithmetic on epoch milliseconds (UTC): no HTTP, no addon.
 */

/** A fixed step of `ms` milliseconds. */
export interface FixedFrequency {
  readonly kind: 'fixed';
  readonly ms: number;
}

/**
 * A calendar step of `months` months. `day` is the day of the month steps land on, clamped to the month's
 * length (31 lands on Feb 28/29, Apr 30, ...), or 'end' for the last day of every month.
 */
export interface CalendarFrequency {
  readonly kind: 'calendar';
  readonly months: number;
  readonly day: number | 'end';
}

export type Frequency = FixedFrequency | CalendarFrequency;

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** Consecutive-row steps looked at when inferring a frequency: the newest ones, so a long history costs little. */
export const FREQUENCY_SAMPLE_ROWS = 100_000;

/** The ISO 8601 duration of a frequency: PT1H, P7D, P1M, P3M, P1Y, PT0.5S. */
export function formatFrequency(f: Frequency): string {
  if (f.kind === 'calendar') return f.months % 12 === 0 ? `P${f.months / 12}Y` : `P${f.months}M`;
  const ms = f.ms;
  if (ms % DAY === 0) return `P${ms / DAY}D`;
  let rest = ms;
  let out = 'PT';
  const hours = Math.floor(rest / HOUR);
  rest -= hours * HOUR;
  const minutes = Math.floor(rest / MINUTE);
  rest -= minutes * MINUTE;
  const days = Math.floor(hours / 24);
  if (days > 0) out = `P${days}DT`;
  if (hours % 24 > 0) out += `${hours % 24}H`;
  if (minutes > 0) out += `${minutes}M`;
  if (rest > 0) out += `${Number((rest / SECOND).toFixed(3))}S`;
  return out;
}

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month + 1, 0)).getUTCDate();
}

function isMonthEnd(d: Date): boolean {
  return d.getUTCDate() === daysInMonth(d.getUTCFullYear(), d.getUTCMonth());
}

function timeOfDay(ms: number): number {
  return ((ms % DAY) + DAY) % DAY;
}

/**
 * Whole months from `a` to `b` when `b` is a calendar step of `a` at the same time of day: the same day of
 * the month, both at month ends, or a day clamped to a shorter month (Jan 30 to Feb 29, Feb 29 to Mar 30);
 * null otherwise.
 */
function monthsBetween(a: number, b: number): number | null {
  if (b - a < 28 * DAY || timeOfDay(a) !== timeOfDay(b)) return null;
  const da = new Date(a);
  const db = new Date(b);
  const dayA = da.getUTCDate();
  const dayB = db.getUTCDate();
  const endA = isMonthEnd(da);
  const endB = isMonthEnd(db);
  const calendar = dayA === dayB || (endA && endB) || (endA && dayB > dayA) || (endB && dayB < dayA);
  if (!calendar) return null;
  const months = (db.getUTCFullYear() - da.getUTCFullYear()) * 12 + (db.getUTCMonth() - da.getUTCMonth());
  return months > 0 ? months : null;
}

/**
 * The most common step between consecutive rows of an ascending time axis, when it covers more than half of
 * the steps; else null (irregular data). A step counts as calendar months when the two rows fall on the same
 * day of the month (or both at month ends); it also counts as its fixed duration, and the reading that covers
 * more steps wins (a tie goes to the fixed one). Only the newest FREQUENCY_SAMPLE_ROWS rows are looked at.
 */
export function inferFrequency(times: ArrayLike<number>, rows = times.length): Frequency | null {
  const first = Math.max(0, rows - FREQUENCY_SAMPLE_ROWS);
  const steps = rows - first - 1;
  if (steps < 1) return null;
  const fixed = new Map<number, number>();
  const calendar = new Map<number, number>();
  let monthEnds = 0;
  let calendarRows = 0;
  let largestDay = 0;
  for (let i = first + 1; i < rows; i++) {
    const a = times[i - 1] as number;
    const b = times[i] as number;
    const d = b - a;
    if (!(d > 0)) continue;
    fixed.set(d, (fixed.get(d) ?? 0) + 1);
    if (d >= 28 * DAY) {
      const months = monthsBetween(a, b);
      if (months !== null) {
        calendar.set(months, (calendar.get(months) ?? 0) + 1);
        const date = new Date(b);
        calendarRows++;
        if (isMonthEnd(date)) monthEnds++;
        largestDay = Math.max(largestDay, date.getUTCDate());
      }
    }
  }
  let bestFixed = 0;
  let bestFixedCount = 0;
  for (const [d, count] of fixed) {
    if (count > bestFixedCount || (count === bestFixedCount && d < bestFixed)) {
      bestFixed = d;
      bestFixedCount = count;
    }
  }
  let bestMonths = 0;
  let bestMonthsCount = 0;
  for (const [m, count] of calendar) {
    if (count > bestMonthsCount || (count === bestMonthsCount && m < bestMonths)) {
      bestMonths = m;
      bestMonthsCount = count;
    }
  }
  if (bestMonthsCount > bestFixedCount && bestMonthsCount * 2 > steps) {
    // Rows that are all month ends (Jan 31, Feb 28, Apr 30) step to month ends; rows on a day (the 30th,
    // clamped to Feb 29) step to that day.
    const day: number | 'end' = monthEnds === calendarRows ? 'end' : largestDay;
    return { kind: 'calendar', months: bestMonths, day };
  }
  if (bestFixedCount * 2 > steps) return { kind: 'fixed', ms: bestFixed };
  return null;
}

/**
 * The time `k` steps after `origin` (k may be negative). Calendar steps count whole months from the origin
 * and land on the frequency's day clamped to the month's length (Jan 31 + 1 month = Feb 29 in 2024), at the
 * origin's time of day. `offsetMs` shifts the calendar to a time zone (the origin's UTC offset), so a month
 * step from 2024-01-31T00:00+02:00 lands on 2024-02-29T00:00+02:00.
 */
export function addSteps(origin: number, f: Frequency, k: number, offsetMs = 0): number {
  if (f.kind === 'fixed') return origin + k * f.ms;
  const local = origin + offsetMs;
  const date = new Date(local);
  const total = date.getUTCFullYear() * 12 + date.getUTCMonth() + k * f.months;
  const year = Math.floor(total / 12);
  const month = total - year * 12;
  const last = daysInMonth(year, month);
  const day = f.day === 'end' ? last : Math.min(f.day, last);
  return Date.UTC(year, month, day) + timeOfDay(local) - offsetMs;
}

/** The calendar frequency of `months` months stepping on the day of `origin` (KServe's start_timestamp rule). */
export function monthsFrom(origin: number, months: number, offsetMs = 0): CalendarFrequency {
  return { kind: 'calendar', months, day: new Date(origin + offsetMs).getUTCDate() };
}

/** `count` times of the steps after `origin` (1..count). */
export function stepsAfter(origin: number, f: Frequency, count: number, offsetMs = 0): Float64Array {
  const out = new Float64Array(count);
  for (let k = 1; k <= count; k++) out[k - 1] = addSteps(origin, f, k, offsetMs);
  return out;
}

/** A fixed frequency of `ms`. */
export function fixedFrequency(ms: number): FixedFrequency {
  return { kind: 'fixed', ms };
}

export const DURATIONS = { SECOND, MINUTE, HOUR, DAY } as const;
