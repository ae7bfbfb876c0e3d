import { copyFile, unlink, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { Dataset, describeDataset, type DatasetOptions, type RefreshOutcome } from '../../src/datasets/dataset.js';
import { keepNewest, mergeByTime } from '../../src/datasets/snapshot.js';
import { ForecastdError } from '../../src/errors.js';
import { FileSource } from '../../src/datasets/file-source.js';
import type { DatasetSnapshot, DatasetSource, LoadedRows } from '../../src/datasets/types.js';
import type { AccelerationConfig } from '../../src/datasets/types.js';
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

function rows(pairs: readonly (readonly [number, number])[]): LoadedRows {
  return {
    columns: ['v'],
    times: Float64Array.from(pairs.map(([t]) => t)),
    values: Float64Array.from(pairs.map(([, v]) => v)),
    rows: pairs.length,
  };
}

/** A source that fails its first `failures` loads (as a database down at start does), then serves `data`. */
function flakySource(failures: number, data: LoadedRows): DatasetSource & { loads: number } {
  const source = {
    from: 'memory',
    loads: 0,
    loadAll: async (): Promise<LoadedRows> => {
      source.loads += 1;
      if (source.loads <= failures) throw new ForecastdError('ERR_DATASET', `connect ECONNREFUSED (attempt ${source.loads})`);
      return data;
    },
  };
  return source;
}

function memoryDataset(source: DatasetSource, options: Partial<DatasetOptions> = {}): Dataset {
  const dataset = new Dataset({ name: 'm', from: 'memory', source, ...options });
  running.push(dataset);
  return dataset;
}

const FAST_RETRY = { initialMs: 20, maxMs: 40 } as const;

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
      refreshed_at: null,
      frequency: null,
      off_grid_rows: 0,
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
      refreshed_at: new Date(dataset.lastRefreshAt ?? Number.NaN).toISOString(),
      frequency: 'P7D',
      off_grid_rows: 0,
    });
    // The SPEC's /v1/datasets fields, in its order.
    expect(Object.keys(describeDataset(dataset))).toEqual(['name', 'from', 'rows', 'first_ts', 'last_ts', 'status', 'error', 'refreshed_at', 'frequency', 'off_grid_rows']);
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

  test('append mode without overlap adds only rows newer than the newest seen', async () => {
    const { dataset, file } = await fileDataset(csv([['2020-01-01', 1], ['2020-01-02', 2]]), {
      refreshCheckIntervalMs: 50,
      refreshMode: 'append',
      refreshAppendOverlapMs: 0,
    });
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

  test('append mode re-reads the overlap and merges by timestamp; in a file the last row of a time wins', async () => {
    const day = 86_400_000;
    // The newest row was read while its writer had written only part of the value ("2" of "25").
    const { dataset, file } = await fileDataset(csv([['2020-01-01', 1], ['2020-01-02', 2]]), {
      refreshMode: 'append',
      refreshAppendOverlapMs: day,
    });
    await dataset.start();
    await replaceFile(
      file,
      csv([['2020-01-01', 100], ['2020-01-02', 25], ['2020-01-03', 3], ['2020-01-01T12:00:00Z', 15], ['2020-01-03', 33]]),
    );
    expect((await dataset.refresh()).changed).toBe(true);
    // 2020-01-01 lies before the overlap (newest 01-02 minus a day) and stays; the rest is merged by time.
    expect(Array.from(dataset.snapshot?.times ?? [])).toEqual([Date.UTC(2020, 0, 1), Date.UTC(2020, 0, 1, 12), Date.UTC(2020, 0, 2), Date.UTC(2020, 0, 3)]);
    expect(values(dataset.snapshot)).toEqual([1, 15, 25, 33]);
  });

  test('append overlap defaults to refresh_check_interval', async () => {
    let batch: [number, number][] = [[1000, 1], [2000, 2]];
    const calls: number[] = [];
    const source: DatasetSource = {
      from: 'memory',
      loadAll: async () => rows(batch),
      loadNewerThan: async (after) => {
        calls.push(after);
        return rows(batch.filter(([t]) => t > after));
      },
    };
    const dataset = memoryDataset(source, { acceleration: { refreshCheckIntervalMs: 600_000, refreshMode: 'append', retentionPeriodMs: null } });
    await dataset.start();
    batch = [[1500, 15], [3000, 3]];
    await dataset.refresh();
    expect(calls).toEqual([2000 - 600_000]);
    expect(values(dataset.snapshot)).toEqual([1, 15, 2, 3]);
  });

  test('a CSV whose columns come back reordered keeps the last good data and sets error', async () => {
    const { dataset, file } = await fileDataset('ts,a,b\n2020-01-01,1,10\n2020-01-02,2,20\n');
    await dataset.start();
    const good = dataset.snapshot;
    expect(good?.columns).toEqual(['a', 'b']);
    expect(dataset.columns).toEqual(['a', 'b']);
    await replaceFile(file, 'ts,b,a\n2020-01-01,10,1\n2020-01-02,20,2\n2020-01-03,30,3\n');
    const outcome = await dataset.refresh();
    expect(outcome).toMatchObject({ changed: false, rows: 2 });
    expect(outcome.error).toBe(
      `dataset ${dataset.name}: the value columns are now [b, a], not [a, b] as its models were checked against; ` +
        'still serving the last good data (2 rows). List the value columns in params.columns, or restart to take the new ones',
    );
    expect(dataset.snapshot).toBe(good);
    expect(values(dataset.snapshot)).toEqual([1, 10, 2, 20]);
    expect(describeDataset(dataset)).toMatchObject({ status: 'Ready', rows: 2, error: outcome.error });
    // The same columns again: the refresh goes through and the error clears.
    await replaceFile(file, 'ts,a,b\n2020-01-01,1,10\n2020-01-02,2,20\n2020-01-03,3,30\n');
    expect(await dataset.refresh()).toMatchObject({ changed: true, error: null });
    expect(values(dataset.snapshot)).toEqual([1, 10, 2, 20, 3, 30]);
  });

  test('a CSV with reordered columns is read by name when params.columns lists them', async () => {
    const file = path.join(dir, `named${++counter}.csv`);
    await writeFile(file, 'ts,a,b\n2020-01-01,1,10\n');
    const dataset = new Dataset({ name: 'named', from: 'file:named.csv', source: new FileSource({ path: file, format: 'csv', columns: ['a', 'b'] }) });
    running.push(dataset);
    await dataset.start();
    await replaceFile(file, 'ts,b,a\n2020-01-01,10,1\n2020-01-02,20,2\n');
    expect(await dataset.refresh()).toMatchObject({ changed: true, error: null });
    expect(values(dataset.snapshot)).toEqual([1, 10, 2, 20]);
  });

  test('retention_period drops rows as they expire, without waiting for a refresh', async () => {
    // Real time: the first row expires about 300 ms from now, the second in an hour. No refresh interval.
    const now = Date.now();
    const { dataset } = await fileDataset(
      csv([[new Date(now - 60_000 + 300).toISOString(), 1], [new Date(now + 3_600_000).toISOString(), 2]]),
      { retentionPeriodMs: 60_000 },
    );
    await dataset.start();
    expect(values(dataset.snapshot)).toEqual([1, 2]);
    const dropped = await nextSnapshot(dataset);
    expect(values(dropped)).toEqual([2]);
    expect(dataset.snapshot).toBe(dropped);
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

  describe('retry with backoff while there is no data', () => {
    test('a source that fails at start becomes Ready by itself; meanwhile it is Error with the reason', async () => {
      const source = flakySource(3, rows([[1000, 1], [2000, 2]]));
      const dataset = memoryDataset(source, { retry: FAST_RETRY });
      const seen: { error: string | null; status: string; retrying: boolean }[] = [];
      dataset.onRefresh((o) => seen.push({ error: o.error, status: dataset.status, retrying: dataset.nextRetryAt !== null }));
      const ready = nextOutcome(dataset, (o) => o.error === null);
      const first = await dataset.start();
      expect(first.error).toBe('connect ECONNREFUSED (attempt 1)');
      expect(dataset.status).toBe('Error');
      expect(dataset.error).toBe('connect ECONNREFUSED (attempt 1)');
      expect(dataset.nextRetryAt).not.toBe(null);
      expect(describeDataset(dataset)).toMatchObject({ status: 'Error', error: 'connect ECONNREFUSED (attempt 1)', refreshed_at: null });

      expect((await ready).changed).toBe(true);
      expect(source.loads).toBe(4);
      expect(seen).toEqual([
        { error: 'connect ECONNREFUSED (attempt 1)', status: 'Error', retrying: true },
        { error: 'connect ECONNREFUSED (attempt 2)', status: 'Error', retrying: true },
        { error: 'connect ECONNREFUSED (attempt 3)', status: 'Error', retrying: true },
        { error: null, status: 'Ready', retrying: false },
      ]);
      expect(dataset.status).toBe('Ready');
      expect(dataset.error).toBe(null);
      expect(dataset.nextRetryAt).toBe(null);
      expect(values(dataset.snapshot)).toEqual([1, 2]);
    });

    test('delays start at initialMs and double up to maxMs, each within ±20%', async () => {
      const clock = Date.UTC(2024, 0, 1);
      const source = flakySource(5, rows([[1000, 1]]));
      const dataset = memoryDataset(source, { retry: { initialMs: 10, maxMs: 40 }, now: () => clock });
      const delays: number[] = [];
      dataset.onRefresh((o) => {
        if (o.error !== null) delays.push((dataset.nextRetryAt ?? Number.NaN) - clock);
      });
      const ready = nextOutcome(dataset, (o) => o.error === null);
      await dataset.start();
      await ready;
      const bases = [10, 20, 40, 40, 40];
      expect(delays).toHaveLength(bases.length);
      delays.forEach((delay, i) => {
        const base = bases[i] as number;
        expect(delay).toBeGreaterThanOrEqual(Math.floor(base * 0.8));
        expect(delay).toBeLessThanOrEqual(Math.ceil(base * 1.2));
      });
    });

    test('a file that is not there yet is loaded once it appears, without a refresh_check_interval', async () => {
      const file = path.join(dir, `late${++counter}.csv`);
      const dataset = new Dataset({ name: 'late', from: 'file:late.csv', source: new FileSource({ path: file, format: 'csv' }), retry: FAST_RETRY });
      running.push(dataset);
      const failed: RefreshOutcome[] = [];
      dataset.onRefresh((o) => {
        if (o.error !== null) failed.push(o);
      });
      await dataset.start();
      expect(dataset.status).toBe('Error');
      expect(dataset.error).toBe(`${file}: file not found`);
      // Wait for a retry to have failed too, so the file really arrives while the dataset is retrying.
      await nextOutcome(dataset, (o) => o.error !== null);
      const loaded = nextSnapshot(dataset);
      await replaceFile(file, csv([['2020-01-01', 3], ['2020-01-02', 4]]));
      expect(values(await loaded)).toEqual([3, 4]);
      expect(dataset.status).toBe('Ready');
      expect(dataset.error).toBe(null);
      expect(failed.length).toBeGreaterThanOrEqual(2);
      expect(failed.every((o) => o.error === `${file}: file not found`)).toBe(true);
    });

    test('a manual refresh that succeeds cancels the pending retry; stop() cancels retries', async () => {
      const source = flakySource(1, rows([[1000, 1]]));
      const dataset = memoryDataset(source, { retry: { initialMs: 60_000, maxMs: 60_000 } });
      await dataset.start();
      expect(dataset.nextRetryAt).not.toBe(null);
      expect((await dataset.refresh()).error).toBe(null);
      expect(dataset.nextRetryAt).toBe(null);
      expect(dataset.status).toBe('Ready');

      const failing = flakySource(Number.POSITIVE_INFINITY, rows([]));
      const stopped = memoryDataset(failing, { retry: FAST_RETRY });
      await stopped.start();
      await nextOutcome(stopped, (o) => o.error !== null);
      await stopped.stop();
      expect(stopped.nextRetryAt).toBe(null);
      const loads = failing.loads;
      // Several retry periods pass with no further load.
      await sleep(5 * FAST_RETRY.maxMs);
      expect(failing.loads).toBe(loads);
      expect(stopped.status).toBe('Error');
    });

    test('a failed refresh with data already loaded is not retried by backoff; retry: null turns retries off', async () => {
      let fail = false;
      const source: DatasetSource = {
        from: 'memory',
        loadAll: async () => {
          if (fail) throw new ForecastdError('ERR_DATASET', 'gone');
          return rows([[1000, 1]]);
        },
      };
      const dataset = memoryDataset(source, { retry: FAST_RETRY });
      await dataset.start();
      fail = true;
      expect((await dataset.refresh()).error).toBe('gone');
      expect(dataset.status).toBe('Ready');
      expect(dataset.nextRetryAt).toBe(null);

      const off = flakySource(1, rows([[1000, 1]]));
      const noRetry = memoryDataset(off, { retry: null });
      await noRetry.start();
      expect(noRetry.status).toBe('Error');
      expect(noRetry.nextRetryAt).toBe(null);
    });

    test('bad retry and maxRows options are refused', () => {
      const source = flakySource(0, rows([]));
      const make = (options: Partial<DatasetOptions>) => () => new Dataset({ name: 'x', from: 'memory', source, ...options });
      expect(make({ retry: { initialMs: 0 } })).toThrow('dataset x: retry.initialMs must be a positive number of ms');
      expect(make({ retry: { initialMs: 100, maxMs: 50 } })).toThrow('dataset x: retry.maxMs must be at least retry.initialMs (100)');
      expect(make({ maxRows: 0 })).toThrow('dataset x: maxRows must be a positive integer or null, got 0');
      expect(make({ maxRows: 2.5 })).toThrow('dataset x: maxRows must be a positive integer or null, got 2.5');
      expect(make({ retry: { initialMs: 5_000 } })().nextRetryAt).toBe(null);
    });
  });

  describe('maxRows', () => {
    test('a full load keeps only the newest maxRows rows (after sorting)', async () => {
      const file = path.join(dir, `cap${++counter}.csv`);
      await writeFile(file, csv([['2020-01-03', 3], ['2020-01-01', 1], ['2020-01-05', 5], ['2020-01-02', 2], ['2020-01-04', 4]]));
      const dataset = new Dataset({ name: 'cap', from: 'file:cap.csv', source: new FileSource({ path: file, format: 'csv' }), maxRows: 3 });
      running.push(dataset);
      await dataset.start();
      expect(dataset.maxRows).toBe(3);
      expect(values(dataset.snapshot)).toEqual([3, 4, 5]);
      expect(Array.from(dataset.snapshot?.times ?? [])).toEqual([3, 4, 5].map((d) => Date.UTC(2020, 0, d)));
      expect(describeDataset(dataset)).toMatchObject({ rows: 3, first_ts: '2020-01-03T00:00:00.000Z', last_ts: '2020-01-05T00:00:00.000Z' });
    });

    test('append mode stays bounded: every append keeps only the newest maxRows rows', async () => {
      let batch: [number, number][] = [[1000, 1], [2000, 2]];
      const source: DatasetSource = {
        from: 'memory',
        loadAll: async () => rows(batch),
        loadNewerThan: async (after) => rows(batch.filter(([t]) => t > after)),
      };
      const dataset = memoryDataset(source, {
        maxRows: 3,
        acceleration: { refreshCheckIntervalMs: null, refreshMode: 'append', retentionPeriodMs: null },
      });
      await dataset.start();
      expect(values(dataset.snapshot)).toEqual([1, 2]);
      batch = [[3000, 3], [4000, 4]];
      expect((await dataset.refresh()).rows).toBe(3);
      expect(Array.from(dataset.snapshot?.times ?? [])).toEqual([2000, 3000, 4000]);
      expect(values(dataset.snapshot)).toEqual([2, 3, 4]);
      // A burst larger than the cap keeps only its own newest rows.
      batch = [[5000, 5], [6000, 6], [7000, 7], [8000, 8]];
      await dataset.refresh();
      expect(values(dataset.snapshot)).toEqual([6, 7, 8]);
      const before = dataset.snapshot;
      batch = [];
      expect((await dataset.refresh()).changed).toBe(false);
      expect(dataset.snapshot).toBe(before);
    });

    test('mergeByTime replaces held rows with re-read ones of the same time and copies only the rows kept', () => {
      const previous = rows([[1, 10], [2, 20], [3, 30], [4, 40]]);
      const reread = rows([[2, 99], [5, 50], [6, 60]]);
      expect(Array.from(mergeByTime(previous, reread).times)).toEqual([1, 2, 3, 4, 5, 6]);
      expect(Array.from(mergeByTime(previous, reread).values)).toEqual([10, 99, 30, 40, 50, 60]);
      const capped = mergeByTime(previous, reread, 3);
      expect(Array.from(capped.times)).toEqual([4, 5, 6]);
      expect(Array.from(capped.values)).toEqual([40, 50, 60]);
      expect(Array.from(mergeByTime(previous, reread, 5).values)).toEqual([99, 30, 40, 50, 60]);
      expect(Array.from(mergeByTime(previous, reread, 2).values)).toEqual([50, 60]);
      // Re-read rows older than every held one, and between them.
      expect(Array.from(mergeByTime(previous, rows([[0, 0], [2.5, 25], [4, 44]])).values)).toEqual([0, 10, 20, 25, 30, 44]);
      expect(Array.from(mergeByTime(previous, rows([]), 2).values)).toEqual([30, 40]);
      expect(mergeByTime(previous, rows([]), 4)).toBe(previous);
      // Re-read rows it holds already, unchanged (NaN equal to NaN): the held rows themselves.
      expect(mergeByTime(previous, rows([[3, 30], [4, 40]]))).toBe(previous);
      const gap = rows([[1, 10], [2, Number.NaN]]);
      expect(mergeByTime(gap, rows([[2, Number.NaN]]))).toBe(gap);
      expect(Array.from(mergeByTime(gap, rows([[2, 7]])).values)).toEqual([10, 7]);
      expect(Array.from(mergeByTime(rows([]), reread).values)).toEqual([99, 50, 60]);
      expect(keepNewest(previous, null)).toBe(previous);
      expect(keepNewest(previous, 4)).toBe(previous);
      const wide: LoadedRows = { columns: ['a', 'b'], times: Float64Array.from([1, 2, 3]), values: Float64Array.from([1, 2, 3, 4, 5, 6]), rows: 3 };
      expect(Array.from(keepNewest(wide, 2).values)).toEqual([3, 4, 5, 6]);
      const more = { ...wide, times: Float64Array.from([3, 4]), values: Float64Array.from([7, 8, 9, 10]), rows: 2 };
      expect(Array.from(mergeByTime(wide, more, 3).values)).toEqual([3, 4, 7, 8, 9, 10]);
    });
  });

  test('refreshed_at is the last successful check, even one that found nothing new; a failure leaves it', async () => {
    let now = Date.UTC(2024, 4, 1, 12);
    const { dataset, file } = await fileDataset(csv([['2020-01-01', 1]]), {}, () => now);
    await dataset.start();
    expect(dataset.lastRefreshAt).toBe(now);
    expect(describeDataset(dataset).refreshed_at).toBe('2024-05-01T12:00:00.000Z');
    const loadedAt = dataset.snapshot?.loadedAt;

    now += 90_000;
    expect((await dataset.refresh()).skipped).toBe(true);
    expect(describeDataset(dataset).refreshed_at).toBe('2024-05-01T12:01:30.000Z');
    expect(dataset.snapshot?.loadedAt).toBe(loadedAt);

    now += 60_000;
    await replaceFile(file, 'ts,v\n2020-01-01,broken\n');
    expect((await dataset.refresh()).error).not.toBe(null);
    expect(describeDataset(dataset)).toMatchObject({ status: 'Ready', rows: 1, refreshed_at: '2024-05-01T12:01:30.000Z' });
    expect(dataset.lastErrorAt).toBe(now);
  });
});
