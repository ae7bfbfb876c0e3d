import type { TimeFormat } from './types.js';

// YYYY-MM-DD, optionally followed by [T ]HH:MM[:SS[.fraction]] and a zone (Z, +HH, +HHMM, +HH:MM).
const ISO_TIME =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?$/;
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
// Spellings of "no value" that CSV writers (pandas, R, spreadsheets) produce for a missing cell.
const MISSING_TOKENS = new Set(['', 'nan', 'null', 'na', 'n/a', 'none']);

const MAX_DATE_MS = 8.64e15;
const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** Epoch milliseconds of an ISO 8601 time; a time without a zone is UTC. NaN when it is not one. */
export function parseIsoTime(text: string): number {
  const m = ISO_TIME.exec(text.trim());
  if (m === null) return Number.NaN;
  const year = Number(m[1]);
  const month = Number(m[2]);
  const day = Number(m[3]);
  const hour = m[4] === undefined ? 0 : Number(m[4]);
  const minute = m[5] === undefined ? 0 : Number(m[5]);
  const second = m[6] === undefined ? 0 : Number(m[6]);
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const monthDays = month === 2 && leap ? 29 : (DAYS_IN_MONTH[month - 1] ?? 0);
  if (month < 1 || month > 12 || day < 1 || day > monthDays || hour > 23 || minute > 59 || second > 59) {
    return Number.NaN;
  }
  const date = new Date(Date.UTC(2000, month - 1, day, hour, minute, second));
  date.setUTCFullYear(year); // Date.UTC maps years 0-99 to 1900-1999
  let ms = date.getTime();
  if (m[7] !== undefined) ms += Number(`0.${m[7]}`) * 1000;
  const zone = m[8];
  if (zone !== undefined && zone !== 'Z' && zone !== 'z') {
    const sign = zone.startsWith('-') ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    const offsetMinutes = Number(digits.slice(0, 2)) * 60 + (digits.length > 2 ? Number(digits.slice(2, 4)) : 0);
    ms -= sign * offsetMinutes * 60_000;
  }
  return ms;
}

/** What a time cell should look like, for messages. */
export function timeFormatHint(format: TimeFormat | null): string {
  switch (format) {
    case 'iso8601':
      return 'an ISO 8601 time such as 2001-12-29T00:00:00Z (time_format: iso8601)';
    case 'unix_seconds':
      return 'a number of seconds since 1970 (time_format: unix_seconds)';
    case 'unix_millis':
      return 'a number of milliseconds since 1970 (time_format: unix_millis)';
    default:
      return 'an ISO 8601 time or a number of seconds since 1970';
  }
}

/**
 * Epoch milliseconds of a time cell, NaN when it cannot be read. Native timestamps (Date) are taken as they
 * are; numbers follow `format` (default unix seconds); strings are ISO 8601 unless `format` says unix_*,
 * and with no format a purely numeric string (as every CSV cell is a string) counts as a number.
 */
export function parseTimeValue(raw: unknown, format: TimeFormat | null): number {
  if (raw instanceof Date) return raw.getTime(); // NaN for an invalid Date
  let numeric: number;
  if (typeof raw === 'number') numeric = raw;
  else if (typeof raw === 'bigint') numeric = Number(raw);
  else if (typeof raw === 'string') {
    const text = raw.trim();
    if (format === 'iso8601') return parseIsoTime(text);
    if (!DECIMAL.test(text)) return format === null ? parseIsoTime(text) : Number.NaN;
    numeric = Number(text);
  } else return Number.NaN;
  if (!Number.isFinite(numeric) || format === 'iso8601') return Number.NaN;
  const ms = format === 'unix_millis' ? numeric : numeric * 1000;
  // Beyond what Date (and so ISO output in /v1/datasets and messages) can represent.
  return Math.abs(ms) > MAX_DATE_MS ? Number.NaN : ms;
}

/**
 * A value cell as a number: NaN for a missing value (empty, null, "NaN", "NA"...), null when the cell holds
 * something that is not a number.
 */
export function parseNumericValue(raw: unknown): number | null {
  if (typeof raw === 'number') {
    if (Number.isNaN(raw)) return Number.NaN;
    return Number.isFinite(raw) ? raw : null;
  }
  if (raw === null || raw === undefined) return Number.NaN;
  if (typeof raw === 'string') {
    const text = raw.trim();
    if (DECIMAL.test(text)) return Number(text);
    return MISSING_TOKENS.has(text.toLowerCase()) ? Number.NaN : null;
  }
  if (typeof raw === 'bigint') return Number(raw);
  return null;
}
