import { inferFrequency } from '../forecast/frequency.js';
import type { Frequency } from '../forecast/frequency.js';
import { anchoredGrid } from '../forecast/grid.js';
import type { AnchoredGrid } from '../forecast/grid.js';
import type { DatasetSnapshot } from './types.js';
import type { Work } from '../work.js';

// Snapshots are immutable: a snapshot's frequency, grid and off-grid count are computed once, on first use.
const inferred = new WeakMap<DatasetSnapshot, Frequency | null>();
const grids = new WeakMap<DatasetSnapshot, AnchoredGrid | null>();
const offGrid = new WeakMap<DatasetSnapshot, number>();

/** The step of a snapshot's time axis (SPEC "Frequency of a dataset"), or null when no step covers most rows. */
export function snapshotFrequency(snapshot: DatasetSnapshot): Frequency | null {
  let f = inferred.get(snapshot);
  if (f === undefined) {
    f = inferFrequency(snapshot.times, snapshot.rows);
    inferred.set(snapshot, f);
  }
  return f;
}

/** The step grid of a snapshot, anchored at its newest row that continues it; null without a frequency. */
export function snapshotGrid(snapshot: DatasetSnapshot): AnchoredGrid | null {
  let grid = grids.get(snapshot);
  if (grid === undefined) {
    const f = snapshotFrequency(snapshot);
    grid = f === null ? null : anchoredGrid(snapshot.times, snapshot.rows, f);
    grids.set(snapshot, grid);
  }
  return grid;
}

/** Rows of a snapshot that fill no step of its grid (`off_grid_rows` in /v1/datasets); 0 without a grid. */
export function snapshotOffGridRows(snapshot: DatasetSnapshot): number {
  let count = offGrid.get(snapshot);
  if (count === undefined) {
    const grid = snapshotGrid(snapshot);
    count = grid === null ? 0 : grid.offGridRows();
    offGrid.set(snapshot, count);
  }
  return count;
}

/**
 * Computes and keeps what the functions above give for `snapshot` (frequency, grid, off-grid count), the
 * off-grid count a slice of rows at a time. A dataset runs this before it serves a new snapshot, so that no
 * request or listing does that pass over every row on the serving thread.
 */
export function* snapshotFactsWork(snapshot: DatasetSnapshot): Work<void> {
  if (offGrid.has(snapshot)) return;
  const grid = snapshotGrid(snapshot);
  yield;
  offGrid.set(snapshot, grid === null ? 0 : yield* grid.offGridRowsWork());
}
