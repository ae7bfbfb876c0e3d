/**
 * ISO 8601 times as clients send them (KServe's start_timestamp): calendar dates with an optional time and
 * zone, in the extended (2024-01-31T12:00:00+02:00) or basic (20240131T120000Z) format; a time without a zone
 * is UTC. And the one output form, YYYY-MM-DDTHH:MM:SSZ.
 */
import { daysInMonth } from './frequency.js';

export interface ParsedTimestamp {
  /** Epoch milliseconds. */
  readonly ms: number;
  /** The zone's offset from UTC as written (+02:00 is 7,200,000); 0 for Z or no zone. */
  readonly offsetMs: number;
}

const EXTENDED =
  /^([+-]\d{6}|\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2})(?::(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?)?\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?$/;
const BASIC = /^(\d{4})(\d{2})(\d{2})(?:T(\d{2})(?:(\d{2})(?:(\d{2})(?:[.,](\d{1,9}))?)?)?)?(Z|[+-]\d{2}(?:\d{2})?)?$/;


/** Parses an ISO 8601 date or date-time; null when the text is not one, or names a date that does not exist. */
export function parseTimestamp(text: string): ParsedTimestamp | null {
  const m = EXTENDED.exec(text.trim()) ?? BASIC.exec(text.trim());
  if (m === null) return null;
  const year = Number(m[1]);
  const month = Number(m[2]);
  const day = Number(m[3]);
  const hour = m[4] === undefined ? 0 : Number(m[4]);
  const minute = m[5] === undefined ? 0 : Number(m[5]);
  const second = m[6] === undefined ? 0 : Number(m[6]);
  const fraction = m[7] === undefined ? 0 : Math.round(Number(`0.${m[7]}`) * 1000);
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return null;
  // 24:00:00 is the end of the day (ISO 8601); any other time past 23:59:59 (leap seconds too) is refused.
  if (hour > 24 || minute > 59 || second > 59 || (hour === 24 && (minute > 0 || second > 0 || fraction > 0))) return null;
  let offsetMs = 0;
  const zone = m[8];
  if (zone !== undefined && zone !== 'Z' && zone !== 'z') {
    const sign = zone[0] === '-' ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    const hours = Number(digits.slice(0, 2));
    const minutes = digits.length > 2 ? Number(digits.slice(2, 4)) : 0;
    if (hours > 23 || minutes > 59) return null;
    offsetMs = sign * (hours * 3_600_000 + minutes * 60_000);
  }
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  date.setUTCHours(hour, minute, second, fraction);
  const ms = date.getTime() - offsetMs;
  if (!Number.isFinite(ms)) return null;
  return { ms, offsetMs };
}

/** YYYY-MM-DDTHH:MM:SSZ (with milliseconds only when there are some). */
export function formatTimestamp(ms: number): string {
  const iso = new Date(ms).toISOString();
  return iso.endsWith('.000Z') ? `${iso.slice(0, -5)}Z` : iso;
}
