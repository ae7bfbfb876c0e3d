import { describe, expect, test } from 'vitest';
import { ForecastdError } from '../../src/errors.js';
import { FileSource } from '../../src/datasets/file-source.js';
import { buildSnapshot } from '../../src/datasets/snapshot.js';
import type { DatasetSnapshot } from '../../src/datasets/types.js';
import { windowFor } from '../../src/datasets/window.js';
import { CO2_CSV, NILE_CSV, never } from './helpers.js';

const DAY = 86_400_000;

/** A snapshot with one row per day from 2020-01-01 and the given rows of values. */
function daily(columns: string[], rows: number[][]): DatasetSnapshot {
  return buildSnapshot(
    {
      columns,
      times: Float64Array.from(rows.map((_, i) => Date.UTC(2020, 0, 1) + i * DAY)),
      values: Float64Array.from(rows.flat()),
      rows: rows.length,
    },
    0,
  );
}

function copy(snapshot: DatasetSnapshot, lookback: number, fill: 'none' | 'previous' | 'linear'): number[] {
  const window = windowFor(snapshot, lookback, fill, 'd');
  const target = new Float64Array(window.length);
  window.copyInto(target, 0);
  return Array.from(target);
}

function windowError(run: () => unknown): string {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(ForecastdError);
    expect((err as ForecastdError).code).toBe('ERR_WINDOW');
    return (err as Error).message;
  }
  throw new Error('expected a window error');
}

const N = Number.NaN;

describe('windowFor', () => {
  test('the latest L rows, oldest first, row-major [L, V] in column order', () => {
    const s = daily(['a', 'b'], [[1, 10], [2, 20], [3, 30], [4, 40]]);
    expect(copy(s, 3, 'none')).toEqual([2, 20, 3, 30, 4, 40]);
    expect(copy(s, 4, 'none')).toEqual([1, 10, 2, 20, 3, 30, 4, 40]);
  });

  test('copies into a float32 batch tensor at an offset, leaving the rest alone', () => {
    const s = daily(['v'], [[0.1], [0.2], [0.45]]);
    const window = windowFor(s, 2, 'none');
    expect(window.length).toBe(2);
    const batch = new Float32Array(6).fill(-1);
    window.copyInto(batch, 2);
    expect(Array.from(batch)).toEqual([-1, -1, Math.fround(0.2), Math.fround(0.45), -1, -1]);
  });

  test('too few rows gives both counts', async () => {
    const nile = buildSnapshot(await new FileSource({ path: NILE_CSV, format: 'csv' }).loadAll(never), 0);
    expect(windowError(() => windowFor(nile, 101, 'none', 'nile'))).toBe('dataset nile has 100 rows; the model needs a lookback of 101');
    expect(copy(nile, 100, 'none')).toHaveLength(100);
    const empty = daily(['v'], []);
    expect(windowError(() => windowFor(empty, 1, 'none', 'e'))).toBe('dataset e has 0 rows; the model needs a lookback of 1');
  });

  test('a bad lookback is an argument error', () => {
    expect(() => windowFor(daily(['v'], [[1]]), 0, 'none')).toThrow('lookback must be a positive integer, got 0');
  });

  test('fill_missing none: a gap in the window names its time and column; gaps before the window do not matter', () => {
    const s = daily(['a', 'b'], [[N, 1], [1, 2], [2, N], [3, 4]]);
    expect(copy(s, 1, 'none')).toEqual([3, 4]);
    expect(windowError(() => windowFor(s, 2, 'none', 'd'))).toBe(
      'gap in dataset d at 2020-01-03T00:00:00.000Z: column "b" has no value (fill_missing is none; set it to previous or linear to fill gaps)',
    );
  });

  test('fill_missing previous carries values forward, from before the window if needed', () => {
    const s = daily(['a', 'b'], [[1, 10], [N, 20], [N, N], [4, N], [5, 50]]);
    expect(copy(s, 4, 'previous')).toEqual([1, 20, 1, 20, 4, 20, 5, 50]);
    const none = daily(['a'], [[N], [N], [3]]);
    expect(windowError(() => windowFor(none, 3, 'previous', 'd'))).toBe(
      'gap in dataset d at 2020-01-01T00:00:00.000Z: column "a" has no earlier value to carry forward (fill_missing: previous)',
    );
  });

  test('fill_missing linear interpolates in time, carries the last value at the newest end and the next at the oldest', () => {
    const s = daily(['a', 'b'], [[0, N], [N, 10], [N, N], [30, 30], [40, N]]);
    // a: rows 1-2 between 0 (day 0) and 30 (day 3); b: row 0 takes the next value, row 2 interpolates, row 4 carries 30.
    expect(copy(s, 5, 'linear')).toEqual([0, 10, 10, 10, 20, 20, 30, 30, 40, 30]);
    // Uneven spacing: interpolation follows the times, not the row count.
    const uneven = buildSnapshot({ columns: ['v'], times: Float64Array.from([0, 1000, 4000]), values: Float64Array.from([0, N, 40]), rows: 3 }, 0);
    expect(copy(uneven, 2, 'linear')).toEqual([10, 40]);
    const empty = daily(['a', 'b'], [[N, 1], [N, 2]]);
    expect(windowError(() => windowFor(empty, 2, 'linear', 'd'))).toBe(
      'gap in dataset d at 2020-01-01T00:00:00.000Z: column "a" has no value to interpolate from (fill_missing: linear)',
    );
  });

  test('filling never changes the snapshot, and a repeated window gives the same values', () => {
    const s = daily(['a'], [[1], [N], [3]]);
    expect(copy(s, 3, 'linear')).toEqual([1, 2, 3]);
    expect(copy(s, 3, 'linear')).toEqual([1, 2, 3]);
    expect(copy(s, 3, 'previous')).toEqual([1, 1, 3]);
    expect(s.values[1]).toBeNaN();
  });

  test('the real CO2 series: the latest year has no gaps; a long window across the 1984 gaps needs a fill', async () => {
    const co2 = buildSnapshot(await new FileSource({ path: CO2_CSV, format: 'csv' }).loadAll(never), 0);
    const latest = copy(co2, 52, 'none');
    expect(latest.at(-1)).toBe(371.5);
    expect(latest.every((v) => Number.isFinite(v))).toBe(true);
    // The newest gap is row 1427; a window reaching it must fill.
    const lookback = co2.rows - 1427;
    const gapTime = new Date(co2.times[1427] ?? 0).toISOString();
    expect(windowError(() => windowFor(co2, lookback, 'none', 'co2'))).toBe(
      `gap in dataset co2 at ${gapTime}: column "co2" has no value (fill_missing is none; set it to previous or linear to fill gaps)`,
    );
    const previous = copy(co2, lookback, 'previous');
    expect(previous[0]).toBe(co2.values[1426]);
    const linear = copy(co2, lookback, 'linear');
    const t0 = co2.times[1426] as number;
    const t1 = co2.times[1428] as number;
    const v0 = co2.values[1426] as number;
    const v1 = co2.values[1428] as number;
    expect(linear[0]).toBeCloseTo(v0 + ((v1 - v0) * ((co2.times[1427] as number) - t0)) / (t1 - t0), 12);
    expect(linear.slice(1)).toEqual(Array.from(co2.values.subarray(1428)));
    // Rows 1357-1360 are four consecutive gaps: linear fills them on a straight line.
    const run = copy(co2, co2.rows - 1356, 'linear').slice(0, 6);
    const a = co2.values[1356] as number;
    const b = co2.values[1361] as number;
    for (let k = 1; k <= 4; k++) expect(run[k]).toBeCloseTo(a + ((b - a) * k) / 5, 9);
  });
});

describe('windows of the latest L steps (with a frequency)', () => {
  /** Daily rows from 2020-01-01 at the given day offsets (others absent), two columns. */
  function sparse(days: number[], rows: number[][]): DatasetSnapshot {
    return buildSnapshot(
      {
        columns: ['a', 'b'],
        times: Float64Array.from(days.map((d) => Date.UTC(2020, 0, 1) + d * DAY)),
        values: Float64Array.from(rows.flat()),
        rows: rows.length,
      },
      0,
    );
  }
  const dailyStep = { kind: 'fixed', ms: DAY } as const;
  const stepCopy = (s: DatasetSnapshot, lookback: number, fill: 'none' | 'previous' | 'linear'): number[] => {
    const window = windowFor(s, lookback, fill, 'd', dailyStep);
    const target = new Float64Array(window.length);
    window.copyInto(target, 0);
    return Array.from(target);
  };

  test('rows on the grid are the window as they are (the same as the latest L rows)', () => {
    const s = sparse([0, 1, 2, 3], [[1, 10], [2, 20], [3, 30], [4, 40]]);
    expect(stepCopy(s, 3, 'none')).toEqual(copy(s, 3, 'none'));
  });

  test('a missing day is a gap: an error naming it, or filled from the rows around it', () => {
    // Days 0, 1, 2, 4, 5: day 3 (2020-01-04) has no row.
    const s = sparse([0, 1, 2, 4, 5], [[1, 10], [2, 20], [3, 30], [5, 50], [6, 60]]);
    expect(windowError(() => stepCopy(s, 4, 'none'))).toBe(
      'gap in dataset d at 2020-01-04T00:00:00.000Z: no row for this step of P1D (fill_missing is none; set it to previous or linear to fill gaps)',
    );
    expect(stepCopy(s, 4, 'previous')).toEqual([3, 30, 3, 30, 5, 50, 6, 60]);
    expect(stepCopy(s, 4, 'linear')).toEqual([3, 30, 4, 40, 5, 50, 6, 60]);
    // The window starts on the missing day: previous reads the row before the window.
    expect(stepCopy(s, 3, 'previous')).toEqual([3, 30, 5, 50, 6, 60]);
    // A window clear of the gap needs no filling.
    expect(stepCopy(s, 2, 'none')).toEqual([5, 50, 6, 60]);
  });

  test('rows off the grid are not part of the window; a window reaching before the first row is an error', () => {
    const offGrid = buildSnapshot(
      {
        columns: ['a'],
        times: Float64Array.from([0, DAY, DAY + 3_600_000, 2 * DAY]),
        values: Float64Array.from([1, 2, 99, 3]),
        rows: 4,
      },
      0,
    );
    const w = windowFor(offGrid, 3, 'none', 'd', dailyStep);
    const target = new Float64Array(3);
    w.copyInto(target, 0);
    expect(Array.from(target)).toEqual([1, 2, 3]);
    // Four rows, but only three of them on the daily grid.
    expect(windowError(() => windowFor(offGrid, 4, 'linear', 'd', dailyStep))).toBe(
      'dataset d has 4 rows from 1970-01-01T00:00:00.000Z; the model needs a lookback of 4 steps of P1D, back to 1969-12-31T00:00:00.000Z, before its first row',
    );
  });
});
