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

/** Days from 1970-01-01 to the proleptic Gregorian date (month 1..12); valid for every year, 0000 included. */
export function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const mp = (month + 9) % 12;
  const doy = Math.floor((153 * mp + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146_097 + doe - 719_468;
}

/** The proleptic Gregorian date of a day count from 1970-01-01 (the inverse of daysFromCivil). */
export function civilFromDays(days: number): { year: number; month: number; day: number } {
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  return { year: yoe + era * 400 + (month <= 2 ? 1 : 0), month, day };
}

/** Days in a month (1..12) of a proleptic Gregorian year. */
export function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/** A time split into its UTC calendar date, its month index (year * 12 + month - 1) and its time of day. */
interface CivilTime {
  readonly year: number;
  readonly month: number;
  readonly day: number;
  readonly monthIndex: number;
  readonly timeOfDay: number;
  readonly monthEnd: boolean;
}

function civil(ms: number): CivilTime {
  const days = Math.floor(ms / DAY);
  const { year, month, day } = civilFromDays(days);
  return { year, month, day, monthIndex: year * 12 + month - 1, timeOfDay: ms - days * DAY, monthEnd: day === daysInMonth(year, month) };
}

/** The month index (year * 12 + month - 1) of a time, in UTC. */
export function monthIndexOf(ms: number): number {
  return civil(ms).monthIndex;
}

/** Epoch ms of the first instant of a month index. */
export function monthStart(monthIndex: number): number {
  const year = Math.floor(monthIndex / 12);
  return daysFromCivil(year, monthIndex - year * 12 + 1, 1) * DAY;
}

/** The first and last instants of the years 0000 to 9999, the range calendar arithmetic is defined for. */
export const CALENDAR_MIN_MS = daysFromCivil(0, 1, 1) * DAY;
export const CALENDAR_MAX_MS = daysFromCivil(10_000, 1, 1) * DAY - 1;

/** Whether a time lies in the years 0000 to 9999. */
export function inCalendarRange(ms: number): boolean {
  return ms >= CALENDAR_MIN_MS && ms <= CALENDAR_MAX_MS;
}

/** The largest distance between a row and its step that still counts for steps of a day or more. */
export const DAY_STEP_TOLERANCE_MS = 3 * HOUR;

/**
 * The offset of the calendar a calendar grid is read in: the one that puts the anchor at midnight (-5 h for
 * a row at 05:00Z, +1 h for one at 23:00Z), so rows written at local midnight with a UTC offset (the 1st at
 * 00:00+01:00 is the 31st at 23:00Z) fall in their own month, whatever daylight saving did to the offset.
 */
export function calendarOffset(anchor: number): number {
  const day = DAY;
  const timeOfDay = ((anchor % day) + day) % day;
  if (timeOfDay === 0) return 0;
  return timeOfDay >= day / 2 ? day - timeOfDay : -timeOfDay;
}

/** The signed difference of two times of day, wrapped to (-12 h, 12 h]. */
function timeOfDayDelta(from: number, to: number): number {
  let d = (to - from) % DAY;
  if (d > DAY / 2) d -= DAY;
  if (d <= -DAY / 2) d += DAY;
  return d;
}

/**
 * Whole months from `a` to `b` when `b` is a calendar step of `a`: the same day of the month, both at month
 * ends, or a day clamped to a shorter month (Jan 30 to Feb 29, Feb 29 to Mar 30), at a time of day within
 * DAY_STEP_TOLERANCE_MS of `a`'s (rows written at local midnight across a daylight saving change); null
 * otherwise.
 */
function monthsBetween(a: number, b: number): number | null {
  const delta = timeOfDayDelta(a, b);
  if (Math.abs(delta) > DAY_STEP_TOLERANCE_MS) return null;
  // Both read in the calendar where `a` is at midnight: rows at local midnight keep their local dates.
  const offset = calendarOffset(a);
  const ca = civil(a + offset);
  const cb = civil(b - delta + offset);
  const calendar =
    ca.day === cb.day || (ca.monthEnd && cb.monthEnd) || (ca.monthEnd && cb.day > ca.day) || (cb.monthEnd && cb.day < ca.day);
  if (!calendar) return null;
  const months = cb.monthIndex - ca.monthIndex;
  return months > 0 ? months : null;
}

/** The fixed step a gap between two rows counts as: exact under a day, the nearest whole days (±3 h) from a day on. */
function fixedStepOf(d: number): number {
  if (d < DAY) return d;
  const days = Math.round(d / DAY);
  return Math.abs(d - days * DAY) <= DAY_STEP_TOLERANCE_MS ? days * DAY : d;
}

/**
 * The most common step between consecutive rows of an ascending time axis, when it covers more than half of
 * the steps; else null (irregular data). Rows a day or more apart count as a fixed step of whole days when
 * their gap is within ±3 h of one, and as calendar months when it is a whole number of them; the reading
 * that covers more steps wins, and on equal counts the calendar step (4 yearly rows are P1Y, not P365D).
 * Only the newest FREQUENCY_SAMPLE_ROWS rows are looked at. A calendar frequency's `day` is the newest row's
 * day of the month, or 'end' when it and the row before it are both month ends (the grid reads the day from
 * its anchor again; see grid.ts).
 */
export function inferFrequency(times: ArrayLike<number>, rows = times.length): Frequency | null {
  const first = Math.max(0, rows - FREQUENCY_SAMPLE_ROWS);
  const steps = rows - first - 1;
  if (steps < 1) return null;
  const fixed = new Map<number, number>();
  const calendar = new Map<number, number>();
  for (let i = first + 1; i < rows; i++) {
    const a = times[i - 1] as number;
    const b = times[i] as number;
    const d = b - a;
    if (!(d > 0)) continue;
    const step = fixedStepOf(d);
    fixed.set(step, (fixed.get(step) ?? 0) + 1);
    if (d >= 28 * DAY - DAY_STEP_TOLERANCE_MS) {
      const months = monthsBetween(a, b);
      if (months !== null) calendar.set(months, (calendar.get(months) ?? 0) + 1);
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
  if (bestMonthsCount > 0 && bestMonthsCount >= bestFixedCount && bestMonthsCount * 2 > steps) {
    const newest = civil(times[rows - 1] as number);
    const before = civil(times[rows - 2] as number);
    return { kind: 'calendar', months: bestMonths, day: newest.monthEnd && before.monthEnd ? 'end' : newest.day };
  }
  if (bestFixedCount * 2 > steps) return { kind: 'fixed', ms: bestFixed };
  return null;
}

/**
 * The time `k` steps after `origin` (k may be negative). Calendar steps count whole months from the origin
 * and land on the frequency's day clamped to the month's length (Jan 31 + 1 month = Feb 29 in 2024), at the
 * origin's time of day, in the proleptic Gregorian calendar (years below 100 are not 19xx). `offsetMs`
 * shifts the calendar to a time zone (the origin's UTC offset), so a month step from 2024-01-31T00:00+02:00
 * lands on 2024-02-29T00:00+02:00. This is the one implementation of calendar stepping.
 */
export function addSteps(origin: number, f: Frequency, k: number, offsetMs = 0): number {
  if (f.kind === 'fixed') return origin + k * f.ms;
  const local = civil(origin + offsetMs);
  const total = local.monthIndex + k * f.months;
  const year = Math.floor(total / 12);
  const month = total - year * 12 + 1;
  const last = daysInMonth(year, month);
  const day = f.day === 'end' ? last : Math.min(f.day, last);
  return daysFromCivil(year, month, day) * DAY + local.timeOfDay - offsetMs;
}

/** The calendar frequency of `months` months stepping on the day of `origin` (KServe's start_timestamp rule). */
export function monthsFrom(origin: number, months: number, offsetMs = 0): CalendarFrequency {
  return { kind: 'calendar', months, day: civil(origin + offsetMs).day };
}

/** The day of the month of a time (UTC). */
export function dayOfMonth(ms: number): number {
  return civil(ms).day;
}

/** Whether a time is the last day of its month (UTC). */
export function isMonthEnd(ms: number): boolean {
  return civil(ms).monthEnd;
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
