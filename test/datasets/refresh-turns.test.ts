import { describe, expect, test } from 'vitest';
import { Dataset, describeDataset } from '../../src/datasets/dataset.js';
import type { DatasetSource, LoadedRows } from '../../src/datasets/types.js';
import type { AccelerationConfig } from '../../src/datasets/types.js';

/**
 * SPEC "Bounded and quiet": no step of serving, a refresh included, holds the JavaScript thread for long. The
 * work a refresh does over every row (checking the order, comparing with the served snapshot, merging,
 * copying, counting off-grid rows) must let the event loop turn while it runs. The sources here hand over
 * rows that are already built, so the refresh itself is the only work: a refresh done in one go lets the event
 * loop turn 0 times, whatever the machine. Each dataset is large enough (millions of rows) that this work
 * takes well over the few milliseconds between turns on any machine.
 */

const ROWS = 3_000_000;
const WIDTH = 10;
const MINUTE = 60_000;
const START = Date.UTC(2020, 0, 1);

function block(rows: number, first: number, value: (row: number, column: number) => number): LoadedRows {
  const times = new Float64Array(rows);
  const values = new Float64Array(rows * WIDTH);
  for (let r = 0; r < rows; r++) {
    times[r] = START + (first + r) * MINUTE;
    for (let c = 0; c < WIDTH; c++) values[r * WIDTH + c] = value(first + r, c);
  }
  return { columns: Array.from({ length: WIDTH }, (_, c) => `v${c}`), times, values, rows };
}

/** Hands out the prepared loads in turn (rows already built: the load itself costs nothing). */
function preparedSource(loads: LoadedRows[]): DatasetSource {
  let next = 0;
  return {
    from: 'memory',
    loadAll: () => Promise.resolve(loads[Math.min(next++, loads.length - 1)] as LoadedRows),
    loadNewerThan: () => Promise.resolve(loads[Math.min(next++, loads.length - 1)] as LoadedRows),
  };
}

/** The turns the event loop makes while `run` is pending. */
async function turnsDuring(run: () => Promise<unknown>): Promise<number> {
  let turns = 0;
  let done = false;
  const spin = (): void => {
    if (done) return;
    turns += 1;
    setImmediate(spin);
  };
  const pending = run();
  setImmediate(spin);
  await pending;
  done = true;
  return turns;
}

function dataset(loads: LoadedRows[], acceleration: Partial<AccelerationConfig> = {}): Dataset {
  return new Dataset({
    name: 'big',
    from: 'memory',
    source: preparedSource(loads),
    acceleration: { refreshCheckIntervalMs: null, refreshMode: 'full', retentionPeriodMs: null, ...acceleration },
    retry: null,
  });
}

describe('a refresh of a large dataset lets the event loop turn', () => {
  test('full refresh: the comparison with the served rows and the off-grid count run between turns', async () => {
    const value = (r: number, c: number): number => (r * 7 + c) % 1000;
    const first = block(ROWS, 0, value);
    // The same rows, but for the very last value: the comparison has to read everything to see the change.
    const second = block(ROWS, 0, value);
    second.values[ROWS * WIDTH - 1] = -1;
    const d = dataset([first, second]);
    try {
      expect((await d.start()).changed).toBe(true);
      const served = d.snapshot;
      const turns = await turnsDuring(() => d.refresh());
      expect(turns).toBeGreaterThan(1);
      expect(d.snapshot).not.toBe(served);
      expect(d.snapshot?.values[ROWS * WIDTH - 1]).toBe(-1);
      expect(d.snapshot?.values[ROWS * WIDTH - 2]).toBe(value(ROWS - 1, WIDTH - 2));
      expect(describeDataset(d)).toMatchObject({ rows: ROWS, frequency: 'PT1M', off_grid_rows: 0 });
    } finally {
      await d.stop();
    }
  });

  test('append refresh: merging new rows into the held ones runs between turns', async () => {
    const value = (r: number, c: number): number => r + c / 100;
    const held = block(ROWS, 0, value);
    // The overlap re-reads the newest held row with a new value, and one row is new.
    const reread = block(2, ROWS - 1, (r, c) => -value(r, c));
    const d = dataset([held, reread], { refreshMode: 'append', refreshAppendOverlapMs: MINUTE });
    try {
      await d.start();
      const turns = await turnsDuring(() => d.refresh());
      expect(turns).toBeGreaterThan(1);
      const s = d.snapshot!;
      expect(s.rows).toBe(ROWS + 1);
      expect(s.times[ROWS]).toBe(START + ROWS * MINUTE);
      expect(s.values[(ROWS - 2) * WIDTH]).toBe(value(ROWS - 2, 0));
      expect(s.values[(ROWS - 1) * WIDTH + 3]).toBe(-value(ROWS - 1, 3));
      expect(s.values[ROWS * WIDTH + 9]).toBe(-value(ROWS, 9));
    } finally {
      await d.stop();
    }
  });

  test('rows out of order from a source are checked between turns and sorted off the serving thread', async () => {
    const value = (r: number, c: number): number => r * 10 + c;
    const ordered = block(ROWS, 0, value);
    // The last two rows swapped: the check reads every row before it finds them, then the reader thread sorts.
    const swapped = block(ROWS, 0, value);
    swapped.times[ROWS - 2] = START + (ROWS - 1) * MINUTE;
    swapped.times[ROWS - 1] = START + (ROWS - 2) * MINUTE;
    for (let c = 0; c < WIDTH; c++) {
      swapped.values[(ROWS - 2) * WIDTH + c] = value(ROWS - 1, c);
      swapped.values[(ROWS - 1) * WIDTH + c] = value(ROWS - 2, c);
    }
    const d = dataset([ordered, swapped]);
    try {
      await d.start();
      const served = d.snapshot;
      const turns = await turnsDuring(() => d.refresh());
      expect(turns).toBeGreaterThan(1);
      // Sorted, it is the same data: the served snapshot stays.
      expect(d.snapshot).toBe(served);
    } finally {
      await d.stop();
    }
  });
});
