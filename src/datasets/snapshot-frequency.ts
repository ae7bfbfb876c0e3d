import { inferFrequency } from '../forecast/frequency.js';
import type { Frequency } from '../forecast/frequency.js';
import type { DatasetSnapshot } from './types.js';

// Snapshots are immutable: a snapshot's frequency is inferred once, on first use.
const inferred = new WeakMap<DatasetSnapshot, Frequency | null>();

/** The step of a snapshot's time axis (SPEC "Frequency of a dataset"), or null when no step covers most rows. */
export function snapshotFrequency(snapshot: DatasetSnapshot): Frequency | null {
  let f = inferred.get(snapshot);
  if (f === undefined) {
    f = inferFrequency(snapshot.times, snapshot.rows);
    inferred.set(snapshot, f);
  }
  return f;
}
