import { describe, expect, test } from 'vitest';
import { formatDuration, parseDuration } from '../../src/duration.js';
import { ForecastdError } from '../../src/errors.js';

describe('parseDuration', () => {
  test.each([
    ['500ms', 500],
    ['30s', 30_000],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['365d', 31_536_000_000],
    ['1.5h', 5_400_000],
    ['1h30m', 5_400_000],
    ['1h 30m 15s', 5_415_000],
    [' 10s ', 10_000],
    ['0s', 0],
  ])('%s is %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  test('a number is milliseconds already', () => {
    expect(parseDuration(250)).toBe(250);
  });

  test.each([
    ['30', 'invalid duration "30": it has no unit; write e.g. "30s" or "30ms" (units: ms, s, m, h, d)'],
    ['', 'invalid duration "": expected a number with a unit (ms, s, m, h or d), e.g. "30s"'],
    ['5 minutes', 'invalid duration "5 minutes": expected a number with a unit (ms, s, m, h or d), e.g. "30s", "5m" or "1h30m"'],
    ['-5s', 'invalid duration "-5s": expected a number with a unit (ms, s, m, h or d), e.g. "30s", "5m" or "1h30m"'],
    ['1w', 'invalid duration "1w": expected a number with a unit (ms, s, m, h or d), e.g. "30s", "5m" or "1h30m"'],
  ])('%j is rejected', (text, message) => {
    expect(() => parseDuration(text)).toThrow(new ForecastdError('ERR_INVALID_ARGUMENT', message));
  });

  test('negative and non-finite numbers are rejected', () => {
    expect(() => parseDuration(-1)).toThrow('invalid duration -1');
    expect(() => parseDuration(Number.NaN)).toThrow('invalid duration NaN');
  });

  test('formatDuration reads back through parseDuration', () => {
    for (const ms of [1, 999, 1000, 90_000, 3_600_000, 86_400_000, 5_400_000]) {
      expect(parseDuration(formatDuration(ms))).toBe(ms);
    }
    expect(formatDuration(30_000)).toBe('30s');
  });
});
