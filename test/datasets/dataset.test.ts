import { copyFile, unlink, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { Dataset, describeDataset } from '../../src/datasets/dataset.js';
import { FileSource } from '../../src/datasets/file-source.js';
import type { DatasetSnapshot, DatasetSource, LoadedRows } from '../../src/datasets/types.js';
import type { AccelerationConfig } from '../../src/spicepod/types.js';
import { CO2_CSV, nextOutcome, nextSnapshot, replaceFile, tempDir } from './helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
const running: Dataset[] = [];
let counter = 0;

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir());
});
afterEach(async () => {
  await Promise.all(running.splice(0).map((d) => d.stop()));
});
afterAll(() => cleanup());

function csv(rows: [string, number | ''][]): string {
  return `ts,v\n${rows.map(([ts, v]) => `${ts},${v}`).join('\n')}\n`;
}

async function fileDataset(content: string, acceleration: Partial<AccelerationConfig> = {}, now?: () => number): Promise<{ dataset: Dataset; file: string }> {
  const file = path.join(dir, `d${++counter}.csv`);
  await writeFile(file, content);
  const dataset = new Dataset({
    name: `d${counter}`,
    from: `file:d${counter}.csv`,
    source: new FileSource({ path: file, format: 'csv' }),
    acceleration: { refreshCheckIntervalMs: null, refreshMode: 'full', retentionPeriodMs: null, ...acceleration },
    ...(now === undefined ? {} : { now }),
  });
  running.push(dataset);
  return { dataset, file };
}

function values(s: DatasetSnapshot | undefined): number[] {
  return Array.from(s?.values ?? []);
}

describe('Dataset', () => {
  test('start loads the real CO2 file and reports Ready; describeDataset shapes /v1/datasets', async () => {
    const file = path.join(dir, 'co2.csv');
    await copyFile(CO2_CSV, file);
    const dataset = new Dataset({ name: 'co2_weekly', from: 'file:co2.csv', source: new FileSource({ path: file, format: 'csv' }) });
    running.push(dataset);
    expect(dataset.status).toBe('Initializing');
    expect(describeDataset(dataset)).toEqual({
      name: 'co2_weekly',
      from: 'file:co2.csv',
      rows: 0,
      first_ts: null,
      last_ts: null,
      status: 'Initializing',
      error: null,
    });
    const changes: DatasetSnapshot[] = [];
    dataset.onChange((s) => changes.push(s));
    const outcome = await dataset.start();
    expect(outcome).toMatchObject({ changed: true, skipped: false, error: null, rows: 2284 });
    expect(dataset.status).toBe('Ready');
    expect(changes).toEqual([dataset.snapshot]);
    expect(dataset.lastRefreshAt).not.toBe(null);
    expect(describeDataset(dataset)).toEqual({
      name: 'co2_weekly',
      from: 'file:co2.csv',
      rows: 2284,
      first_ts: '1958-03-29T00:00:00.000Z',
      last_ts: '2001-12-29T00:00:00.000Z',
      status: 'Ready',
      error: null,
    });
  });

  test('a failed first load is status Error with the reason', async () => {
    const { dataset } = await fileDataset('ts,v\n2020-01-01,oops\n');
    const outcome = await dataset.start();
    expect(dataset.status).toBe('Error');
    expect(dataset.snapshot).toBe(undefined);
    expect(dataset.error).toMatch(/line 2: column "v": "oops" is not a number$/);
    expect(outcome.error).toBe(dataset.error);
    expect(describeDataset(dataset)).toMatchObject({ status: 'Error', rows: 0, error: dataset.error });
  });

  test('full refresh: a rewritten file becomes a new snapshot with a higher version', async () => {
    const { dataset, file } = await fileDataset(csv([['2020-01-01', 1], ['2020-01-02', 2]]), { refreshCheckIntervalMs: 50 });
    await dataset.start();
    const first = dataset.snapshot;
    expect(values(first)).toEqual([1, 2]);
    const changed = nextSnapshot(dataset);
    await replaceFile(file, csv([['2020-01-01', 1], ['2020-01-02', 5], ['2020-01-03', 6]]));
    const second = await changed;
    expect(values(second)).toEqual([1, 5, 6]);
    expect(dataset.snapshot).toBe(second);
    expect(second.version).toBeGreaterThan(first?.version ?? Infinity);
    expect(dataset.status).toBe('Ready');
    expect(values(first)).toEqual([1, 2]); // the old snapshot is untouched for requests still reading it
  });

  test('a refresh that finds the same content keeps the snapshot (and its version)', async () => {
    const content = csv([['2020-01-01', 1]]);
    const { dataset, file } = await fileDataset(content);
    await dataset.start();
    const first = dataset.snapshot;
    expect((await dataset.refresh()).skipped).toBe(true);
    await replaceFile(file, content);
    const outcome = await dataset.refresh();
    expect(outcome).toMatchObject({ changed: false, skipped: false, error: null });
    expect(dataset.snapshot).toBe(first);
  });

  test('append mode adds only rows newer than the newest seen', async () => {
    const { dataset, file } = await fileDataset(csv([['2020-01-01', 1], ['2020-01-02', 2]]), { refreshCheckIntervalMs: 50, refreshMode: 'append' });
    await dataset.start();
    const changed = nextSnapshot(dataset);
    // An edited old row and a new row older than the newest are ignored; the two newer rows (unsorted) are added.
    await replaceFile(file, csv([['2020-01-04', 4], ['2020-01-01', 100], ['2020-01-03', 3], ['2020-01-02', 200]]));
    const appended = await changed;
    expect(Array.from(appended.times)).toEqual([1, 2, 3, 4].map((d) => Date.UTC(2020, 0, d)));
    expect(values(appended)).toEqual([1, 2, 3, 4]);
  });

  test('append mode uses loadNewerThan when the source has it', async () => {
    const calls: string[] = [];
    let batch: [number, number][] = [[1000, 1], [2000, 2]];
    const rows = (pairs: [number, number][]): LoadedRows => ({
      columns: ['v'],
      times: Float64Array.from(pairs.map(([t]) => t)),
      values: Float64Array.from(pairs.map(([, v]) => v)),
      rows: pairs.length,
    });
    const source: DatasetSource = {
      from: 'memory',
      loadAll: async () => {
        calls.push('all');
        return rows(batch);
      },
      loadNewerThan: async (after) => {
        calls.push(`newer:${after}`);
        return rows(batch.filter(([t]) => t > after));
      },
    };
    const dataset = new Dataset({ name: 'm', from: 'memory', source, acceleration: { refreshCheckIntervalMs: null, refreshMode: 'append', retentionPeriodMs: null } });
    running.push(dataset);
    await dataset.start();
    batch = [[3000, 3]];
    await dataset.refresh();
    expect(calls).toEqual(['all', 'newer:2000']);
    expect(values(dataset.snapshot)).toEqual([1, 2, 3]);
  });

  test('a corrupt file on refresh keeps the last good snapshot serving and sets error', async () => {
    const { dataset, file } = await fileDataset(csv([['2020-01-01', 1], ['2020-01-02', 2]]), { refreshCheckIntervalMs: 50 });
    await dataset.start();
    const good = dataset.snapshot;
    const failed = nextOutcome(dataset, (o) => o.error !== null);
    await replaceFile(file, 'ts,v\n2020-01-01,1\n2020-01-02,two\n');
    const outcome = await failed;
    expect(outcome.error).toBe(`${file}: line 3: column "v": "two" is not a number`);
    expect(dataset.snapshot).toBe(good);
    expect(dataset.status).toBe('Ready');
    expect(dataset.error).toBe(outcome.error);
    expect(dataset.lastErrorAt).not.toBe(null);
    expect(describeDataset(dataset)).toMatchObject({ status: 'Ready', rows: 2, error: outcome.error });
    // Fixing the file clears the error.
    const fixed = nextSnapshot(dataset);
    await replaceFile(file, csv([['2020-01-01', 1], ['2020-01-02', 2], ['2020-01-03', 3]]));
    expect(values(await fixed)).toEqual([1, 2, 3]);
    expect(dataset.error).toBe(null);
  });

  test('a file deleted on refresh keeps the last snapshot; it is read again once it returns', async () => {
    const { dataset, file } = await fileDataset(csv([['2020-01-01', 1]]), { refreshCheckIntervalMs: 50 });
    await dataset.start();
    const good = dataset.snapshot;
    const failed = nextOutcome(dataset, (o) => o.error !== null);
    await unlink(file);
    expect((await failed).error).toBe(`${file}: file not found`);
    expect(dataset.snapshot).toBe(good);
    expect(dataset.status).toBe('Ready');
    const back = nextSnapshot(dataset);
    await replaceFile(file, csv([['2020-01-01', 1], ['2020-01-02', 2]]));
    expect(values(await back)).toEqual([1, 2]);
    expect(dataset.error).toBe(null);
  });

  test('a first load that failed is retried on the refresh timer', async () => {
    const { dataset, file } = await fileDataset('not,a\n', { refreshCheckIntervalMs: 50 });
    await dataset.start();
    expect(dataset.status).toBe('Error');
    const loaded = nextSnapshot(dataset);
    await replaceFile(file, csv([['2020-01-01', 7]]));
    expect(values(await loaded)).toEqual([7]);
    expect(dataset.status).toBe('Ready');
    expect(dataset.error).toBe(null);
  });

  test('retention_period counts back from now and is applied on every refresh', async () => {
    let now = Date.UTC(2020, 0, 10);
    const { dataset } = await fileDataset(
      csv([['2020-01-01', 1], ['2020-01-05', 5], ['2020-01-08', 8], ['2020-01-09', 9]]),
      { retentionPeriodMs: 3 * 86_400_000 },
      () => now,
    );
    await dataset.start();
    expect(values(dataset.snapshot)).toEqual([8, 9]);
    now = Date.UTC(2020, 0, 11, 12);
    const before = dataset.snapshot;
    const outcome = await dataset.refresh();
    expect(outcome.skipped).toBe(true);
    expect(values(dataset.snapshot)).toEqual([9]);
    expect(dataset.snapshot?.version).toBeGreaterThan(before?.version ?? Infinity);
  });

  test('stop() ends refreshing; concurrent refresh() calls share one run', async () => {
    const { dataset, file } = await fileDataset(csv([['2020-01-01', 1]]), { refreshCheckIntervalMs: 20 });
    await dataset.start();
    const [a, b] = [dataset.refresh(), dataset.refresh()];
    expect(a).toBe(b);
    await a;
    await dataset.stop();
    await dataset.stop();
    const seen: DatasetSnapshot[] = [];
    dataset.onChange((s) => seen.push(s));
    await replaceFile(file, csv([['2020-01-01', 1], ['2020-01-02', 2]]));
    expect((await dataset.refresh()).changed).toBe(false);
    expect(seen).toEqual([]);
    expect(values(dataset.snapshot)).toEqual([1]);
  });
});
