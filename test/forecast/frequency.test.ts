import { describe, expect, it } from 'vitest';
import { addSteps, formatFrequency, inferFrequency, monthsFrom, stepsAfter } from '../../src/forecast/frequency.js';
import type { Frequency } from '../../src/forecast/frequency.js';
import { anchoredGrid } from '../../src/forecast/grid.js';
import { formatTimestamp, parseTimestamp } from '../../src/forecast/timestamps.js';

const DAY = 86_400_000;
const HOUR = 3_600_000;
const utc = (y: number, m: number, d: number, h = 0): number => Date.UTC(y, m - 1, d, h);
const iso = (ms: number): string => new Date(ms).toISOString().slice(0, 19);
const inferred = (times: number[]): string | null => {
  const f = inferFrequency(Float64Array.from(times));
  return f === null ? null : formatFrequency(f);
};

describe('inferFrequency', () => {
  it('fixed steps: the most common step when it covers most rows', () => {
    expect(inferred(Array.from({ length: 10 }, (_, i) => utc(2024, 1, 1) + i * HOUR))).toBe('PT1H');
    expect(inferred(Array.from({ length: 10 }, (_, i) => utc(2024, 1, 1) + i * 7 * DAY))).toBe('P7D');
    expect(inferred(Array.from({ length: 10 }, (_, i) => utc(2024, 1, 1) + i * 15 * 60_000))).toBe('PT15M');
    expect(inferred(Array.from({ length: 10 }, (_, i) => i * 500))).toBe('PT0.5S');
    expect(inferred(Array.from({ length: 10 }, (_, i) => i * 36 * HOUR))).toBe('P1DT12H');
    // Missing rows leave the step as it is: 7 of 9 steps are one day.
    const daily = Array.from({ length: 12 }, (_, i) => utc(2024, 1, 1) + i * DAY).filter((_, i) => i !== 4 && i !== 8);
    expect(inferred(daily)).toBe('P1D');
  });

  it('calendar steps: same day of the month, or month ends; quarters and years', () => {
    expect(inferred(Array.from({ length: 14 }, (_, i) => Date.UTC(2023, i, 15)))).toBe('P1M');
    expect(inferred(Array.from({ length: 14 }, (_, i) => Date.UTC(2023, i + 1, 0)))).toBe('P1M');
    expect(inferred(Array.from({ length: 9 }, (_, i) => Date.UTC(2022, i * 3, 1)))).toBe('P3M');
    expect(inferred(Array.from({ length: 6 }, (_, i) => Date.UTC(2015 + i, 0, 1)))).toBe('P1Y');
    // 4-weekly data is a fixed step, even where one step happens to span a calendar month.
    expect(inferred(Array.from({ length: 14 }, (_, i) => utc(2023, 2, 1) + i * 28 * DAY))).toBe('P28D');
  });

  it('null when no step covers most rows, or there is nothing to measure', () => {
    expect(inferred([1, 2, 4, 7, 11, 16, 22].map((d) => utc(2024, 1, d)))).toBeNull();
    expect(inferred([utc(2024, 1, 1)])).toBeNull();
    expect(inferred([])).toBeNull();
    // Half the steps are one day and half two days: neither is most.
    expect(inferred([1, 2, 4, 5, 7].map((d) => utc(2024, 1, d)))).toBeNull();
  });

  it('a series on the 30th steps on the 30th, clamped in February; month ends stay month ends', () => {
    const thirtieths = [utc(2023, 11, 30), utc(2023, 12, 30), utc(2024, 1, 30), utc(2024, 2, 29), utc(2024, 3, 30)];
    const f = inferFrequency(Float64Array.from(thirtieths))!;
    expect(f).toEqual({ kind: 'calendar', months: 1, day: 30 });
    expect(iso(addSteps(utc(2024, 3, 30), f, 1))).toBe('2024-04-30T00:00:00');
    expect(iso(addSteps(utc(2024, 4, 30), f, 1))).toBe('2024-05-30T00:00:00');
    const ends = inferFrequency(Float64Array.from([utc(2024, 1, 31), utc(2024, 2, 29), utc(2024, 3, 31), utc(2024, 4, 30)]))!;
    expect(ends).toEqual({ kind: 'calendar', months: 1, day: 'end' });
    expect(Array.from(stepsAfter(utc(2024, 4, 30), ends, 3), iso)).toEqual(['2024-05-31T00:00:00', '2024-06-30T00:00:00', '2024-07-31T00:00:00']);
    expect(iso(addSteps(utc(2024, 4, 30), ends, -2))).toBe('2024-02-29T00:00:00');
  });
});

describe('addSteps', () => {
  it('counts calendar months from the origin and clamps to the month: Jan 31, Feb 29, Mar 31', () => {
    const f = monthsFrom(utc(2024, 1, 31), 1);
    expect(Array.from(stepsAfter(utc(2024, 1, 31), f, 3), iso)).toEqual(['2024-02-29T00:00:00', '2024-03-31T00:00:00', '2024-04-30T00:00:00']);
    expect(iso(addSteps(utc(2023, 1, 31), f, 1))).toBe('2023-02-28T00:00:00');
    expect(iso(addSteps(utc(2024, 1, 31), f, -2))).toBe('2023-11-30T00:00:00');
    const year: Frequency = monthsFrom(utc(2024, 2, 29), 12);
    expect(iso(addSteps(utc(2024, 2, 29), year, 1))).toBe('2025-02-28T00:00:00');
    expect(iso(addSteps(utc(2024, 2, 29), year, 4))).toBe('2028-02-29T00:00:00');
  });

  it('keeps the time of day, and the calendar of a zone offset', () => {
    const f = monthsFrom(utc(2024, 1, 31, 18), 1);
    expect(iso(addSteps(utc(2024, 1, 31, 18), f, 1))).toBe('2024-02-29T18:00:00');
    // 2024-01-31T00:00+02:00 is Jan 30 22:00 UTC; a month later there is Feb 29 00:00+02:00.
    const origin = utc(2024, 1, 30, 22);
    const zoned = monthsFrom(origin, 1, 2 * HOUR);
    expect(iso(addSteps(origin, zoned, 1, 2 * HOUR))).toBe('2024-02-28T22:00:00');
  });
});

describe('timestamps', () => {
  it('parses ISO 8601 with and without zones; without a zone is UTC', () => {
    expect(parseTimestamp('2024-01-31T00:00:00Z')).toEqual({ ms: utc(2024, 1, 31), offsetMs: 0 });
    expect(parseTimestamp('2024-01-31T00:00:00')).toEqual({ ms: utc(2024, 1, 31), offsetMs: 0 });
    expect(parseTimestamp('2024-01-31')).toEqual({ ms: utc(2024, 1, 31), offsetMs: 0 });
    expect(parseTimestamp('2024-01-31 12:30')).toEqual({ ms: utc(2024, 1, 31, 12) + 30 * 60_000, offsetMs: 0 });
    expect(parseTimestamp('2024-01-31T02:00:00+02:00')).toEqual({ ms: utc(2024, 1, 31), offsetMs: 2 * HOUR });
    expect(parseTimestamp('2024-01-31T00:00:00-0530')).toEqual({ ms: utc(2024, 1, 31, 5) + 30 * 60_000, offsetMs: -5.5 * HOUR });
    expect(parseTimestamp('2024-01-31T00:00:00.250Z')).toEqual({ ms: utc(2024, 1, 31) + 250, offsetMs: 0 });
    expect(parseTimestamp('20240131T000000Z')).toEqual({ ms: utc(2024, 1, 31), offsetMs: 0 });
    expect(parseTimestamp('2024-01-31T24:00:00Z')).toEqual({ ms: utc(2024, 2, 1), offsetMs: 0 });
  });

  it('refuses dates that do not exist and text that is not ISO 8601', () => {
    for (const text of ['2023-02-29', '2024-13-01', '2024-04-31T00:00:00Z', '2024-01-01T25:00:00Z', '2024-01-01T00:60:00Z', 'yesterday', '1706659200', '2024/01/31', '']) {
      expect(parseTimestamp(text), text).toBeNull();
    }
  });

  it('prints YYYY-MM-DDTHH:MM:SSZ', () => {
    expect(formatTimestamp(utc(2024, 2, 29, 13))).toBe('2024-02-29T13:00:00Z');
    expect(formatTimestamp(utc(2024, 2, 29) + 5)).toBe('2024-02-29T00:00:00.005Z');
  });
});

describe('years 0000 to 9999 and the anchored grid', () => {
  const at = (y: number, m: number, d: number): number => {
    const date = new Date(0);
    date.setUTCFullYear(y, m - 1, d);
    return date.getTime();
  };

  it('calendar steps and parsing hold for years below 100 (not 19xx) and year 0', () => {
    expect(parseTimestamp('0000-02-29T00:00:00Z')).toEqual({ ms: at(0, 2, 29), offsetMs: 0 });
    expect(parseTimestamp('0001-02-29')).toBeNull();
    const f = monthsFrom(at(98, 11, 30), 1);
    expect(new Date(addSteps(at(98, 11, 30), f, 3)).toISOString()).toBe('0099-02-28T00:00:00.000Z');
    expect(new Date(addSteps(at(99, 12, 31), { kind: 'calendar', months: 12, day: 'end' }, 1)).toISOString()).toBe('0100-12-31T00:00:00.000Z');
    expect(new Date(addSteps(at(9999, 12, 31), monthsFrom(at(9999, 12, 31), 1), -1)).toISOString()).toBe('9999-11-30T00:00:00.000Z');
  });

  it('a stray newest row does not move the grid; it is one off-grid row', () => {
    const times = Float64Array.from([utc(2024, 1, 1), utc(2024, 2, 1), utc(2024, 3, 1), utc(2024, 4, 1), utc(2024, 4, 17)]);
    const f = inferFrequency(times)!;
    expect(formatFrequency(f)).toBe('P1M');
    const grid = anchoredGrid(times, times.length, f)!;
    expect(iso(grid.anchor)).toBe('2024-04-01T00:00:00');
    expect(grid.offGridRows()).toBe(1);
    expect(Array.from(stepsAfter(grid.anchor, grid.frequency, 2), iso)).toEqual(['2024-05-01T00:00:00', '2024-06-01T00:00:00']);
    // Hourly rows with a 10:30 row after rows on the hour.
    const hourly = Float64Array.from([0, 1, 2, 3].map((h) => utc(2024, 1, 1, h)).concat(utc(2024, 1, 1, 3) + 90 * 60_000));
    const hGrid = anchoredGrid(hourly, hourly.length, inferFrequency(hourly) ?? { kind: 'fixed', ms: HOUR })!;
    expect(iso(hGrid.anchor)).toBe('2024-01-01T03:00:00');
    expect(hGrid.offGridRows()).toBe(1);
  });
});

describe('which row fills a step', () => {
  it('days: the nearest row within ±3 h, the later on a tie; months: the row in the month nearest the grid day', () => {
    const days = Float64Array.from([utc(2024, 1, 1), utc(2024, 1, 2) - 2 * HOUR, utc(2024, 1, 2) + 2 * HOUR, utc(2024, 1, 3) - HOUR, utc(2024, 1, 3) + 2 * HOUR, utc(2024, 1, 4) - 4 * HOUR, utc(2024, 1, 5)]);
    const grid = anchoredGrid(days, days.length, { kind: 'fixed', ms: DAY })!;
    expect(iso(grid.anchor)).toBe('2024-01-05T00:00:00');
    expect(grid.rowFor(1)).toBe(-1); // 4 h early is out of reach: Jan 4 is a gap
    expect(grid.rowFor(2)).toBe(3); // 1 h early beats 2 h late
    expect(grid.rowFor(3)).toBe(2); // 2 h either side: the later
    expect(grid.offGridRows()).toBe(3);
    const months = Float64Array.from([utc(2024, 1, 14), utc(2024, 1, 20), utc(2024, 2, 10), utc(2024, 2, 25), utc(2024, 3, 15), utc(2024, 4, 15)]);
    const monthly = anchoredGrid(months, months.length, { kind: 'calendar', months: 1, day: 15 })!;
    expect([monthly.rowFor(0), monthly.rowFor(1), monthly.rowFor(2), monthly.rowFor(3)]).toEqual([5, 4, 2, 0]);
  });
});
