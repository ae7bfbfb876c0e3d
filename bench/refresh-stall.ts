/**
 * The longest the serving thread goes without a turn of its event loop while a large dataset refreshes
 * (SPEC "Bounded and quiet": nothing holds it more than ~20 ms). A Dataset whose source hands over rows that
 * are already built (10,000,000 rows × 15 value columns by default), so that only the refresh's own work on
 * the serving thread counts: an unchanged full reload, a full reload whose last value changed, and an append
 * of one row. A setImmediate loop records the longest gap between two turns.
 *
 * Usage: npx tsx bench/refresh-stall.ts [--rows N] [--columns N] [--src DIR]
 * --src: the src/ folder to measure (default this checkout's), e.g. that of another commit's worktree.
 */
import path from 'node:path';
import { pathToFileURL, fileURLToPath } from 'node:url';

import { hardwareSummary } from '../src/bench/measure.js';

function option(name: string, fallback: string): string {
  const at = process.argv.indexOf(name);
  return at >= 0 && process.argv[at + 1] !== undefined ? (process.argv[at + 1] as string) : fallback;
}

const ROWS = Number(option('--rows', '10000000'));
const WIDTH = Number(option('--columns', '15'));
const SRC = path.resolve(option('--src', path.join(path.dirname(fileURLToPath(import.meta.url)), '../src')));

interface Rows {
  readonly columns: readonly string[];
  readonly times: Float64Array;
  readonly values: Float64Array;
  readonly rows: number;
}
interface DatasetLike {
  start(): Promise<unknown>;
  refresh(): Promise<unknown>;
  stop(): Promise<void>;
}
type DatasetModule = {
  Dataset: new (options: object) => DatasetLike;
  describeDataset: (d: DatasetLike) => unknown;
};

const { Dataset, describeDataset } = (await import(pathToFileURL(path.join(SRC, 'datasets/dataset.ts')).href)) as DatasetModule;

function block(last: number): Rows {
  const times = new Float64Array(ROWS);
  for (let i = 0; i < ROWS; i++) times[i] = 1.5e12 + 60_000 * i;
  const values = new Float64Array(ROWS * WIDTH);
  for (let i = 0; i < values.length; i++) values[i] = (i % 1000) / 8;
  values[values.length - 1] = last;
  return { columns: Array.from({ length: WIDTH }, (_, j) => `v${j}`), times, values, rows: ROWS };
}

async function measure(label: string, loads: Rows[], mode: 'full' | 'append'): Promise<void> {
  let next = 0;
  const load = async (): Promise<Rows> => loads[Math.min(next++, loads.length - 1)] as Rows;
  const dataset = new Dataset({
    name: 'big',
    from: 'memory',
    retry: null,
    source: { from: 'memory', loadAll: load, loadNewerThan: load },
    acceleration: { refreshCheckIntervalMs: null, refreshMode: mode, retentionPeriodMs: null, refreshAppendOverlapMs: 60_000 },
  });
  await dataset.start();
  describeDataset(dataset);
  let last = performance.now();
  let longest = 0;
  let on = true;
  const turn = (): void => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
    if (on) setImmediate(turn);
  };
  setImmediate(turn);
  const started = performance.now();
  await dataset.refresh();
  describeDataset(dataset);
  const took = performance.now() - started;
  await new Promise((resolve) => setImmediate(resolve));
  on = false;
  console.log(`| ${label} | ${took.toFixed(0)} | ${longest.toFixed(1)} |`);
  await dataset.stop();
}

console.log(`${hardwareSummary()}; ${ROWS.toLocaleString('en-US')} rows × ${WIDTH} columns; src ${SRC}\n`);
console.log('| refresh | took (ms) | longest without a turn (ms) |');
console.log('| --- | ---: | ---: |');
const held = block(1);
await measure('full, unchanged', [held, block(1)], 'full');
await measure('full, last value changed', [held, block(2)], 'full');
const newRow: Rows = { columns: held.columns, times: Float64Array.of((held.times[ROWS - 1] as number) + 60_000), values: new Float64Array(WIDTH), rows: 1 };
await measure('append, one new row', [held, newRow], 'append');
