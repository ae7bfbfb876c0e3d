import { describe, expect, test } from 'vitest';
import { parseIsoTime, parseNumericValue, parseTimeValue } from '../../src/datasets/parse-values.js';

describe('parseIsoTime', () => {
  test.each([
    ['2001-12-29T00:00:00Z', Date.UTC(2001, 11, 29)],
    ['2001-12-29', Date.UTC(2001, 11, 29)],
    ['2001-12-29T06:07:08', Date.UTC(2001, 11, 29, 6, 7, 8)],
    ['2001-12-29 06:07', Date.UTC(2001, 11, 29, 6, 7)],
    ['2001-12-29T06:07:08.5Z', Date.UTC(2001, 11, 29, 6, 7, 8, 500)],
    ['2001-12-29T06:07:08,25', Date.UTC(2001, 11, 29, 6, 7, 8, 250)],
    ['2001-12-29T06:07:08+05:30', Date.UTC(2001, 11, 29, 0, 37, 8)],
    ['2001-12-29T06:07:08-0100', Date.UTC(2001, 11, 29, 7, 7, 8)],
    ['2001-12-29T06:07:08+02', Date.UTC(2001, 11, 29, 4, 7, 8)],
    ['2000-02-29', Date.UTC(2000, 1, 29)],
    ['0050-01-01', -60_589_296_000_000],
  ])('%s', (text, ms) => {
    expect(parseIsoTime(text)).toBe(ms);
  });

  test.each(['2001-02-29', '2001-13-01', '2001-12-32', '2001-12-29T24:00', '2001-12-29T10:60', '29/12/2001', 'yesterday', ''])(
    '%j is not a time',
    (text) => {
      expect(parseIsoTime(text)).toBeNaN();
    },
  );
});

describe('parseTimeValue', () => {
  test('native dates, numbers and strings by format', () => {
    expect(parseTimeValue(new Date(5000), 'unix_seconds')).toBe(5000);
    expect(parseTimeValue(5, null)).toBe(5000);
    expect(parseTimeValue(5n, 'unix_millis')).toBe(5);
    expect(parseTimeValue('5', null)).toBe(5000);
    expect(parseTimeValue(5, 'iso8601')).toBeNaN();
    expect(parseTimeValue('1e20', 'unix_seconds')).toBeNaN(); // beyond what a Date can hold
    expect(parseTimeValue(null, null)).toBeNaN();
  });
});

describe('parseNumericValue', () => {
  test('numbers, gaps and junk', () => {
    expect(parseNumericValue(' 1.5 ')).toBe(1.5);
    expect(parseNumericValue('-.5e1')).toBe(-5);
    expect(parseNumericValue(7n)).toBe(7);
    for (const gap of ['', 'NaN', 'nan', 'NA', 'n/a', 'null', 'None', null, undefined, Number.NaN]) expect(parseNumericValue(gap)).toBeNaN();
    for (const junk of ['abc', '0x10', 'Infinity', Number.POSITIVE_INFINITY, true, {}, '1,5']) expect(parseNumericValue(junk)).toBe(null);
  });
});
