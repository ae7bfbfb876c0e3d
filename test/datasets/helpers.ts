import { mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Dataset, RefreshOutcome } from '../../src/datasets/dataset.js';
import type { DatasetSnapshot } from '../../src/datasets/types.js';

export const DATA_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'data');
export const CO2_CSV = path.join(DATA_DIR, 'co2_weekly.csv');
export const NILE_CSV = path.join(DATA_DIR, 'nile_annual.csv');

export const never: AbortSignal = new AbortController().signal;

export async function tempDir(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'forecastd-data-'));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** The rows of a CSV file of the repo's test data, as [iso, value] pairs. */
export async function csvPairs(file: string): Promise<[string, string][]> {
  const lines = (await readFile(file, 'utf8')).trim().split('\n').slice(1);
  return lines.map((line) => line.split(',') as [string, string]);
}

/** Replaces a file atomically (write + rename), as a well-behaved producer does. */
export async function replaceFile(file: string, content: string | Uint8Array): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, content);
  await rename(tmp, file);
}

export function nextSnapshot(dataset: Dataset): Promise<DatasetSnapshot> {
  return new Promise((resolve) => {
    const off = dataset.onChange((snapshot) => {
      off();
      resolve(snapshot);
    });
  });
}

/** The next refresh outcome that satisfies `accept`. */
export function nextOutcome(dataset: Dataset, accept: (o: RefreshOutcome) => boolean): Promise<RefreshOutcome> {
  return new Promise((resolve) => {
    const off = dataset.onRefresh((outcome) => {
      if (!accept(outcome)) return;
      off();
      resolve(outcome);
    });
  });
}
