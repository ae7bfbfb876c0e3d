import { writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ForecastdError } from '../../src/errors.js';
import { FileSource, type FileSourceOptions } from '../../src/datasets/file-source.js';
import { buildSnapshot } from '../../src/datasets/snapshot.js';
import type { LoadedRows } from '../../src/datasets/types.js';
import { CO2_CSV, csvPairs, NILE_CSV, never, tempDir } from './helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
let nile: [string, string][];
beforeAll(async () => {
  ({ dir, cleanup } = await tempDir());
  nile = await csvPairs(NILE_CSV);
});
afterAll(() => cleanup());

async function write(name: string, content: string | Uint8Array): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, content);
  return file;
}

function load(options: FileSourceOptions): Promise<LoadedRows> {
  return new FileSource(options).loadAll(never);
}

async function loadError(options: FileSourceOptions): Promise<string> {
  try {
    await load(options);
  } catch (err) {
    expect(err).toBeInstanceOf(ForecastdError);
    expect((err as ForecastdError).code).toBe('ERR_DATASET');
    return (err as Error).message;
  }
  throw new Error('expected the load to fail');
}

describe('CSV', () => {
  test('the real weekly CO2 series: every row, in order, with its 59 gaps as NaN', async () => {
    const pairs = await csvPairs(CO2_CSV);
    const rows = await load({ path: CO2_CSV, format: 'csv' });
    expect(rows.columns).toEqual(['co2']);
    expect(rows.rows).toBe(2284);
    expect(pairs.length).toBe(2284);
    pairs.forEach(([ts, value], i) => {
      expect(rows.times[i]).toBe(Date.parse(ts));
      if (value === '') expect(rows.values[i]).toBeNaN();
      else expect(rows.values[i]).toBe(Number(value));
    });
    expect(rows.values.filter((v) => Number.isNaN(v)).length).toBe(59);
    expect(new Date(rows.times[0] ?? 0).toISOString()).toBe('1958-03-29T00:00:00.000Z');
    expect(new Date(rows.times[2283] ?? 0).toISOString()).toBe('2001-12-29T00:00:00.000Z');
  });

  test('the Nile series', async () => {
    const rows = await load({ path: NILE_CSV, format: 'csv', from: 'file:nile.csv' });
    expect(rows.columns).toEqual(['volume']);
    expect(rows.rows).toBe(100);
    expect(Array.from(rows.values.subarray(0, 4))).toEqual([1120, 1160, 963, 1210]);
    expect(new Date(rows.times[99] ?? 0).toISOString()).toBe('1970-01-01T00:00:00.000Z');
  });

  test('unsorted input with duplicate times is sorted, the last duplicate winning', async () => {
    const file = await write('unsorted.csv', 'ts,v\n2020-01-03,3\n2020-01-01,1\n2020-01-02,2\n2020-01-01,10\n');
    const snapshot = buildSnapshot(await load({ path: file, format: 'csv' }), 0);
    expect(snapshot.rows).toBe(3);
    expect(Array.from(snapshot.times)).toEqual([Date.UTC(2020, 0, 1), Date.UTC(2020, 0, 2), Date.UTC(2020, 0, 3)]);
    expect(Array.from(snapshot.values)).toEqual([10, 2, 3]);
  });

  test('ISO times without a zone are UTC; offsets are honoured', async () => {
    const file = await write('zones.csv', 'ts,v\n2020-06-01T12:00:00,1\n2020-06-01 13:30,2\n2020-06-01T12:00:00+02:00,3\n2020-06-01T00:00:00.250Z,4\n');
    const rows = await load({ path: file, format: 'csv', timeFormat: 'iso8601' });
    // In time order: rows come back sorted from the reader thread.
    expect(Array.from(rows.times)).toEqual([
      Date.UTC(2020, 5, 1, 0, 0, 0, 250),
      Date.UTC(2020, 5, 1, 10),
      Date.UTC(2020, 5, 1, 12),
      Date.UTC(2020, 5, 1, 13, 30),
    ]);
    expect(Array.from(rows.values)).toEqual([4, 3, 1, 2]);
  });

  test('unix seconds and millis, given or inferred', async () => {
    const seconds = await write('secs.csv', 'time,a\n1700000000,1\n1700000060.5,2\n');
    expect(Array.from((await load({ path: seconds, format: 'csv', timeColumn: 'time' })).times)).toEqual([1_700_000_000_000, 1_700_000_060_500]);
    expect(Array.from((await load({ path: seconds, format: 'csv', timeColumn: 'time', timeFormat: 'unix_seconds' })).times)).toEqual([
      1_700_000_000_000, 1_700_000_060_500,
    ]);
    const millis = await write('millis.csv', 'time,a\n1700000000000,1\n');
    expect(Array.from((await load({ path: millis, format: 'csv', timeColumn: 'time', timeFormat: 'unix_millis' })).times)).toEqual([1_700_000_000_000]);
  });

  test('value columns: params.columns order, or every other column in source order', async () => {
    const file = await write('multi.csv', 'a,ts,b,c\n1,2020-01-01,2,3\n4,2020-01-02,5,6\n');
    const all = await load({ path: file, format: 'csv' });
    expect(all.columns).toEqual(['a', 'b', 'c']);
    expect(Array.from(all.values)).toEqual([1, 2, 3, 4, 5, 6]);
    const picked = await load({ path: file, format: 'csv', columns: ['c', 'a'] });
    expect(picked.columns).toEqual(['c', 'a']);
    expect(Array.from(picked.values)).toEqual([3, 1, 6, 4]);
  });

  test('missing-value spellings are gaps; quoted cells, CRLF and a BOM are read', async () => {
    const file = await write('gaps.csv', '\uFEFFts,v\r\n2020-01-01,"1.5"\r\n2020-01-02,\r\n2020-01-03,NaN\r\n2020-01-04,NA\r\n2020-01-05,null\r\n2020-01-06,-2e3\r\n');
    const rows = await load({ path: file, format: 'csv' });
    expect(Array.from(rows.values)).toEqual([1.5, Number.NaN, Number.NaN, Number.NaN, Number.NaN, -2000]);
  });

  test('a non-numeric value names the file, the line and the column', async () => {
    const file = await write('bad-value.csv', 'ts,a,b\n2020-01-01,1,2\n2020-01-02,3,abc\n');
    expect(await loadError({ path: file, format: 'csv' })).toBe(`${file}: line 3: column "b": "abc" is not a number`);
  });

  test('an unreadable time names the row and what was expected', async () => {
    const file = await write('bad-time.csv', 'ts,a\n2020-01-01,1\n\n2020-02-30,2\n');
    expect(await loadError({ path: file, format: 'csv' })).toBe(
      `${file}: line 4: time column "ts": cannot read "2020-02-30"; expected an ISO 8601 time or a number of seconds since 1970`,
    );
    const empty = await write('empty-time.csv', 'ts,a\n,1\n');
    expect(await loadError({ path: empty, format: 'csv', timeFormat: 'iso8601' })).toBe(
      `${empty}: line 2: time column "ts": cannot read an empty time; expected an ISO 8601 time such as 2001-12-29T00:00:00Z (time_format: iso8601)`,
    );
    const iso = await write('iso-as-secs.csv', 'ts,a\n2020-01-01,1\n');
    expect(await loadError({ path: iso, format: 'csv', timeFormat: 'unix_seconds' })).toContain('line 2: time column "ts": cannot read "2020-01-01"');
  });

  test('missing columns are named with the columns found', async () => {
    expect(await loadError({ path: NILE_CSV, format: 'csv', columns: ['volume', 'flow'] })).toBe(
      `${NILE_CSV}: column "flow" not found (columns found: ts, volume)`,
    );
    expect(await loadError({ path: NILE_CSV, format: 'csv', timeColumn: 'year' })).toBe(
      `${NILE_CSV}: time column "year" not found (columns found: ts, volume); set time_column`,
    );
  });

  test('broken files: missing, empty, ragged rows, repeated header names', async () => {
    const missing = path.join(dir, 'none.csv');
    expect(await loadError({ path: missing, format: 'csv' })).toBe(`${missing}: file not found`);
    const empty = await write('empty.csv', '');
    expect(await loadError({ path: empty, format: 'csv' })).toBe(`${empty}: the file is empty (expected a header line)`);
    const ragged = await write('ragged.csv', 'ts,a\n2020-01-01,1,9\n');
    expect(await loadError({ path: ragged, format: 'csv' })).toMatch(new RegExp(`^${ragged}: cannot read the file: .*line 2`));
    const dup = await write('dup.csv', 'ts,a,a\n2020-01-01,1,2\n');
    expect(await loadError({ path: dup, format: 'csv' })).toBe(`${dup}: line 1: the header names column "a" twice`);
    const missingJsonl = path.join(dir, 'none.jsonl');
    expect(await loadError({ path: missingJsonl, format: 'jsonl' })).toBe(`${missingJsonl}: file not found`);
  });

  test('an aborted load stops with a clear error', async () => {
    const controller = new AbortController();
    controller.abort();
    await expect(new FileSource({ path: CO2_CSV, format: 'csv' }).loadAll(controller.signal)).rejects.toThrow(`${CO2_CSV}: loading was cancelled`);
  });

  test('a header with only a time column has no value columns', async () => {
    const file = await write('only-ts.csv', 'ts\n2020-01-01\n');
    expect(await loadError({ path: file, format: 'csv' })).toBe(`${file}: no value columns besides the time column "ts" (columns found: ts)`);
  });
});

describe('Parquet', () => {
  test('native timestamps and doubles (the Nile series)', async () => {
    const buffer = parquetWriteBuffer({
      columnData: [
        { name: 'ts', data: nile.map(([ts]) => new Date(ts)), type: 'TIMESTAMP' },
        { name: 'volume', data: Float64Array.from(nile.map(([, v]) => Number(v))), type: 'DOUBLE' },
      ],
    });
    const file = await write('nile.parquet', new Uint8Array(buffer));
    const rows = await load({ path: file, format: 'parquet' });
    expect(rows.columns).toEqual(['volume']);
    expect(rows.rows).toBe(100);
    expect(Array.from(rows.times)).toEqual(nile.map(([ts]) => Date.parse(ts)));
    expect(Array.from(rows.values)).toEqual(nile.map(([, v]) => Number(v)));
  });

  test('INT64 unix seconds, nullable values as gaps, string ISO times, column order', async () => {
    const buffer = parquetWriteBuffer({
      columnData: [
        { name: 'b', data: [1.5, null, 3.5], type: 'DOUBLE', nullable: true },
        { name: 'epoch', data: [1_700_000_120n, 1_700_000_000n, 1_700_000_060n], type: 'INT64' },
        { name: 'iso', data: ['2023-11-14T22:15:20', '2023-11-14T22:13:20', '2023-11-14T22:14:20'], type: 'STRING' },
        { name: 'a', data: Int32Array.from([10, 20, 30]), type: 'INT32' },
      ],
    });
    const file = await write('mixed.parquet', new Uint8Array(buffer));
    const bySeconds = buildSnapshot(await load({ path: file, format: 'parquet', timeColumn: 'epoch', columns: ['a', 'b'] }), 0);
    expect(bySeconds.columns).toEqual(['a', 'b']);
    expect(Array.from(bySeconds.times)).toEqual([1_700_000_000_000, 1_700_000_060_000, 1_700_000_120_000]);
    expect(Array.from(bySeconds.values)).toEqual([20, Number.NaN, 30, 3.5, 10, 1.5]);
    const byIso = await load({ path: file, format: 'parquet', timeColumn: 'iso' });
    expect(byIso.columns).toEqual(['b', 'epoch', 'a']);
    // In time order: rows come back sorted from the reader thread.
    expect(Array.from(byIso.times)).toEqual([1_700_000_000_000, 1_700_000_060_000, 1_700_000_120_000]);
    expect(Array.from(byIso.values)).toEqual([Number.NaN, 1_700_000_000, 20, 3.5, 1_700_000_060, 30, 1.5, 1_700_000_120, 10]);
  });

  test('a corrupt or non-Parquet file is a dataset error naming the file', async () => {
    const file = await write('corrupt.parquet', 'ts,v\n2020-01-01,1\n');
    const message = await loadError({ path: file, format: 'parquet' });
    expect(message.startsWith(`${file}: cannot read the file: `)).toBe(true);
    expect(await loadError({ path: path.join(dir, 'gone.parquet'), format: 'parquet' })).toBe(`${path.join(dir, 'gone.parquet')}: file not found`);
  });
});

describe('JSON lines', () => {
  test('unix millis, keys in first-seen order, absent keys and nulls as gaps', async () => {
    const file = await write(
      'rows.jsonl',
      [
        '{"t": 1700000120000, "x": 3, "y": 30}',
        '',
        '{"t": 1700000000000, "x": 1, "y": null}',
        '{"t": 1700000060000, "y": 20, "z": "7"}',
      ].join('\n'),
    );
    const snapshot = buildSnapshot(await load({ path: file, format: 'jsonl', timeColumn: 't', timeFormat: 'unix_millis' }), 0);
    expect(snapshot.columns).toEqual(['x', 'y', 'z']);
    expect(Array.from(snapshot.times)).toEqual([1_700_000_000_000, 1_700_000_060_000, 1_700_000_120_000]);
    expect(Array.from(snapshot.values)).toEqual([1, Number.NaN, Number.NaN, Number.NaN, 20, 7, 3, 30, Number.NaN]);
  });

  test('the CO2 series as JSON lines with ISO times', async () => {
    const pairs = await csvPairs(CO2_CSV);
    const text = pairs.map(([ts, v]) => JSON.stringify({ ts, co2: v === '' ? null : Number(v) })).join('\n');
    const rows = await load({ path: await write('co2.ndjson', `${text}\n`), format: 'jsonl' });
    expect(rows.rows).toBe(2284);
    expect(rows.times[100]).toBe(Date.parse(pairs[100]?.[0] ?? ''));
    expect(rows.values.filter((v) => Number.isNaN(v)).length).toBe(59);
  });

  test('errors name the line', async () => {
    const bad = await write('bad.jsonl', '{"ts": "2020-01-01", "v": 1}\n{"ts": "2020-01-02", "v": 1\n');
    expect(await loadError({ path: bad, format: 'jsonl' })).toMatch(new RegExp(`^${bad}: line 2: invalid JSON: `));
    const notObject = await write('array.jsonl', '[1, 2]\n');
    expect(await loadError({ path: notObject, format: 'jsonl' })).toBe(
      `${notObject}: line 1: the file holds a JSON array, not one object per line: use file_format: json with json_format: array`,
    );
    const scalar = await write('scalar.jsonl', '{"ts": "2020-01-01", "v": 1}\n7\n');
    expect(await loadError({ path: scalar, format: 'jsonl' })).toBe(`${scalar}: line 2: expected a JSON object per line`);
    const text = await write('text.jsonl', '{"ts": "2020-01-01", "v": true}\n');
    expect(await loadError({ path: text, format: 'jsonl' })).toBe(`${text}: line 1: column "v": true is not a number`);
    const empty = await write('empty.jsonl', '\n\n');
    expect(await loadError({ path: empty, format: 'jsonl' })).toBe(`${empty}: the file holds no rows`);
  });
});

describe('change token', () => {
  test('changes when the file is replaced, fails clearly when it is gone', async () => {
    const file = await write('token.csv', 'ts,v\n2020-01-01,1\n');
    const source = new FileSource({ path: file, format: 'csv' });
    const first = await source.changeToken();
    expect(await source.changeToken()).toBe(first);
    await writeFile(file, 'ts,v\n2020-01-01,1\n2020-01-02,2\n');
    expect(await source.changeToken()).not.toBe(first);
    const gone = new FileSource({ path: path.join(dir, 'gone.csv'), format: 'csv' });
    await expect(gone.changeToken()).rejects.toThrow(`${path.join(dir, 'gone.csv')}: file not found`);
  });

  test('keeps the from it is given for display', () => {
    const source = new FileSource({ path: NILE_CSV, format: 'csv', from: 'file:data/nile.csv' });
    expect(source.from).toBe('file:data/nile.csv');
    expect(source.path).toBe(NILE_CSV);
  });
});
