import { spawnSync } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { createGzip } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Dataset } from '../../src/datasets/dataset.js';
import { FileSource, type FileSourceOptions } from '../../src/datasets/file-source.js';
import type { DatasetSource, LoadedRows } from '../../src/datasets/types.js';
import { never, tempDir } from './helpers.js';

/**
 * SPEC "Bounded and quiet": a dataset past params.max_cells (rows × value columns, counted after retention)
 * or holding a record longer than params.max_record_bytes fails with a message naming the limit and the
 * setting, every reader stops there, rows come back ordered from the reader thread, and a file name is the
 * one file it names, whatever characters it holds.
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

let dir: string;
let cleanup: () => Promise<void>;
beforeAll(async () => {
  ({ dir, cleanup } = await tempDir());
});
afterAll(() => cleanup());

const T0 = 1_700_000_000;

/** CSV lines: ts (unix seconds, one a minute) and `width` value columns; `extra(row)` appends cells. */
function* csvLines(rows: number, width: number, extra?: (row: number) => string): Generator<string> {
  const names = Array.from({ length: width }, (_, j) => `v${j + 1}`);
  yield `ts,${names.join(',')}${extra === undefined ? '' : ',note'}\n`;
  for (let r = 0; r < rows; r++) {
    const cells = names.map((_, j) => String((r % 97) + j / 4));
    yield `${T0 + 60 * r},${cells.join(',')}${extra === undefined ? '' : `,${extra(r)}`}\n`;
  }
}

async function writeLines(file: string, lines: Iterable<string>, gzip: boolean): Promise<string> {
  const source = Readable.from(lines);
  if (gzip) await pipeline(source, createGzip(), createWriteStream(file));
  else await pipeline(source, createWriteStream(file));
  return file;
}

async function failure(options: FileSourceOptions): Promise<string> {
  const result = await new FileSource(options).loadAll(never).then(
    (rows) => rows,
    (err: unknown) => err,
  );
  if (!(result instanceof Error)) throw new Error(`expected the load to fail, got ${(result as LoadedRows).rows} rows`);
  return result.message;
}

describe('params.max_cells: rows × value columns', () => {
  test('a gzip CSV past the limit fails naming the limit and the setting (csv-parse reader)', async () => {
    const file = await writeLines(path.join(dir, 'wide.csv.gz'), csvLines(50_000, 15), true);
    const message = await failure({ path: file, format: 'csv', compression: 'GZIP', maxCells: 300_000 });
    expect(message).toContain(file);
    expect(message).toMatch(/more than 300,000 cells \(rows × value columns\)/);
    expect(message).toContain('params.max_cells');
  });

  test('an uncompressed CSV past the limit fails the same way (DuckDB reader)', async () => {
    const file = await writeLines(path.join(dir, 'wide.csv'), csvLines(50_000, 15), false);
    const message = await failure({ path: file, format: 'csv', maxCells: 300_000 });
    expect(message).toMatch(/more than 300,000 cells \(rows × value columns\)/);
    expect(message).toContain('params.max_cells');
    // At the limit exactly, the file loads.
    const rows = await new FileSource({ path: file, format: 'csv', maxCells: 750_000 }).loadAll(never);
    expect(rows.rows).toBe(50_000);
    expect(rows.values.length).toBe(750_000);
    expect(rows.values[749_999]).toBe(((49_999 % 97) + 14 / 4));
  });

  test('JSON lines past the limit fail the same way', async () => {
    const lines = function* (): Generator<string> {
      for (let r = 0; r < 20_000; r++) yield `{"ts": ${T0 + r}, "a": ${r}, "b": ${r / 2}}\n`;
    };
    const file = await writeLines(path.join(dir, 'many.jsonl'), lines(), false);
    const message = await failure({ path: file, format: 'jsonl', maxCells: 10_000 });
    expect(message).toMatch(/more than 10,000 cells \(rows × value columns\)/);
    expect(message).toContain('params.max_cells');
  });

  test('cells are counted after retention: rows older than it do not count', async () => {
    const now = Date.now();
    const lines = ['ts,v\n'];
    // 1,000 rows a day old, then 10 within the last minute.
    for (let r = 0; r < 1_000; r++) lines.push(`${(now - 86_400_000 + r) / 1000},${r}\n`);
    for (let r = 0; r < 10; r++) lines.push(`${(now - 50_000 + r * 1000) / 1000},${r}\n`);
    const file = path.join(dir, 'retained.csv.gz');
    await writeLines(file, lines, true);
    const source = new FileSource({ path: file, format: 'csv', compression: 'GZIP', maxCells: 100 });
    const dataset = new Dataset({
      name: 'recent',
      from: 'file:retained.csv.gz',
      source,
      acceleration: { refreshCheckIntervalMs: null, refreshMode: 'full', retentionPeriodMs: 3_600_000 },
      maxCells: 100,
      retry: null,
    });
    const outcome = await dataset.start();
    await dataset.stop();
    expect(outcome.error).toBeNull();
    expect(dataset.snapshot?.rows).toBe(10);
  });

  test('a refresh past the limit keeps the last good data and sets error', async () => {
    let rows = 4;
    const source: DatasetSource = {
      from: 'memory',
      loadAll: () =>
        Promise.resolve({
          columns: ['a', 'b'],
          times: Float64Array.from({ length: rows }, (_, i) => 1_000 * (i + 1)),
          values: Float64Array.from({ length: rows * 2 }, (_, i) => i),
          rows,
        }),
    };
    const dataset = new Dataset({ name: 'capped', from: 'memory', source, maxCells: 10, retry: null });
    expect((await dataset.start()).error).toBeNull();
    expect(dataset.snapshot?.rows).toBe(4);
    rows = 6;
    const outcome = await dataset.refresh();
    await dataset.stop();
    expect(outcome.error).toMatch(/^dataset capped: more than 10 cells \(rows × value columns\): 6 rows × 2 columns/);
    expect(outcome.error).toContain('params.max_cells');
    expect(dataset.status).toBe('Ready');
    expect(dataset.error).toBe(outcome.error);
    expect(dataset.snapshot?.rows).toBe(4);
  });
});

describe('params.max_record_bytes', () => {
  const long = 'x'.repeat(2 * 1024 * 1024);

  test('a CSV record longer than the limit fails naming the line, the limit and the setting', async () => {
    const file = await writeLines(path.join(dir, 'long.csv.gz'), csvLines(100, 1, (r) => (r === 41 ? long : 'ok')), true);
    const message = await failure({ path: file, format: 'csv', compression: 'GZIP', columns: ['v1'] });
    expect(message).toContain(file);
    expect(message).toMatch(/line 43: a record longer than 1,048,576 bytes/);
    expect(message).toContain('params.max_record_bytes');
    // Raised, the same file loads.
    const rows = await new FileSource({ path: file, format: 'csv', compression: 'GZIP', columns: ['v1'], maxRecordBytes: 4 * 1024 * 1024 }).loadAll(never);
    expect(rows.rows).toBe(100);
  });

  test('an uncompressed CSV is held to it too', async () => {
    const file = await writeLines(path.join(dir, 'long.csv'), csvLines(100, 1, (r) => (r === 41 ? long : 'ok')), false);
    const message = await failure({ path: file, format: 'csv', columns: ['v1'] });
    expect(message).toMatch(/line 43: a record longer than 1,048,576 bytes/);
    expect(message).toContain('params.max_record_bytes');
  });

  test('a header line longer than the limit fails before it is held whole (plain and gzip)', async () => {
    const header = `ts,v,${'w'.repeat(2 * 1024 * 1024)}\n1700000000,1,2\n`;
    for (const [name, compression] of [['long-header.csv', 'UNCOMPRESSED'], ['long-header.csv.gz', 'GZIP']] as const) {
      const file = await writeLines(path.join(dir, name), [header], compression === 'GZIP');
      const message = await failure({ path: file, format: 'csv', compression, columns: ['v'] });
      expect(message).toMatch(/line 1: a record longer than 1,048,576 bytes/);
    }
  });

  test('a JSON line longer than the limit fails naming the line', async () => {
    const lines = ['{"ts": 1700000000, "v": 1}\n', `{"ts": 1700000060, "v": 2, "note": "${long}"}\n`];
    const file = await writeLines(path.join(dir, 'long.jsonl'), lines, false);
    const message = await failure({ path: file, format: 'jsonl', columns: ['v'] });
    expect(message).toMatch(/line 2: a record longer than 1,048,576 bytes/);
    expect(message).toContain('params.max_record_bytes');
  });

  test('a JSON array element longer than the limit fails naming the element (a long string, key, nested value or non-object)', async () => {
    const wide = `[${Array.from({ length: 300_000 }, (_, i) => i % 10).join(',')}]`;
    const oversized = [
      ['long-string', `{"ts": 1700000060, "v": 2, "note": "${long}"}`],
      ['long-key', `{"ts": 1700000060, "v": 2, "${long}": 1}`],
      ['long-nested', `{"ts": 1700000060, "v": 2, "deep": {"a": ${wide}, "b": ${wide}}}`],
      ['long-scalar', `"${long}"`],
    ] as const;
    for (const [name, element] of oversized) {
      const text = `[{"ts": 1700000000, "v": 1},\n ${element},\n {"ts": 1700000120, "v": 3}]\n`;
      const file = await writeLines(path.join(dir, `${name}.json.gz`), [text], true);
      const message = await failure({ path: file, format: 'json', compression: 'GZIP', json: { layout: 'array' }, columns: ['v'] });
      expect(message).toBe(
        `${file}: element 2: a record longer than 1,048,576 bytes; the limit is params.max_record_bytes: raise it if the file really holds such records`,
      );
    }
    // Raised, the same files load (a string element is then the reader's usual complaint).
    const raised = { format: 'json', compression: 'GZIP', json: { layout: 'array' }, columns: ['v'], maxRecordBytes: 4 * 1024 * 1024 } as const;
    for (const name of ['long-string', 'long-key', 'long-nested']) {
      const rows = await new FileSource({ path: path.join(dir, `${name}.json.gz`), ...raised }).loadAll(never);
      expect(Array.from(rows.times)).toEqual([1_700_000_000_000, 1_700_000_060_000, 1_700_000_120_000]);
      expect(Array.from(rows.values)).toEqual([1, 2, 3]);
    }
    const scalar = path.join(dir, 'long-scalar.json.gz');
    expect(await failure({ path: scalar, ...raised })).toBe(`${scalar}: element 2 of the array: expected a JSON object`);
  });

  test('a JSON array element is measured without whitespace: one at the limit loads, one byte more fails', async () => {
    const limit = 100;
    // Element 2 written compactly is exactly `limit` bytes (the note pads it); the file spaces it out over many
    // more bytes, and puts more than `limit` bytes of whitespace between the elements.
    const base = { ts: T0 + 60, v: 2.5, note: '' };
    const pad = limit - Buffer.byteLength(JSON.stringify(base));
    const element = (extra: number): string => JSON.stringify({ ...base, note: 'é'.repeat(pad / 2) + 'x'.repeat((pad % 2) + extra) }, null, 4);
    const text = (extra: number): string =>
      `[\n${JSON.stringify({ ts: T0, v: 1 })} ,${' '.repeat(3 * limit)}\n${element(extra)}\r\n,\t${JSON.stringify({ ts: T0 + 120, v: -3e2 })}${'\n'.repeat(2 * limit)}]`;
    expect(Buffer.byteLength(JSON.stringify(JSON.parse(element(0))))).toBe(limit);
    expect(Buffer.byteLength(element(0))).toBeGreaterThan(limit);
    for (const [name, compression] of [['at-limit.json', 'UNCOMPRESSED'], ['at-limit.json.gz', 'GZIP']] as const) {
      const file = await writeLines(path.join(dir, name), [text(0)], compression === 'GZIP');
      const rows = await new FileSource({ path: file, format: 'json', compression, columns: ['v'], maxRecordBytes: limit }).loadAll(never);
      expect(Array.from(rows.times)).toEqual([T0 * 1000, (T0 + 60) * 1000, (T0 + 120) * 1000]);
      expect(Array.from(rows.values)).toEqual([1, 2.5, -300]);
    }
    const file = await writeLines(path.join(dir, 'over-limit.json'), [text(1)], false);
    const message = await failure({ path: file, format: 'json', columns: ['v'], maxRecordBytes: limit });
    expect(message).toBe(
      `${file}: element 2: a record longer than 100 bytes; the limit is params.max_record_bytes: raise it if the file really holds such records`,
    );
  });

  test('a JSON array holding one 256 MiB element in a small gzip file is refused, not held, in a 64 MiB heap', async () => {
    // The element is generated through gzip (about 256 KiB on disk); holding it would take far more than the
    // child's heap, so only a reader that stops at max_record_bytes while the element streams in can answer.
    const block = 'x'.repeat(1024 * 1024);
    const parts = function* (): Generator<string> {
      yield '[{"ts": 1700000000, "v": 1, "note": "';
      for (let i = 0; i < 256; i++) yield block;
      yield '"}]\n';
    };
    const file = await writeLines(path.join(dir, 'huge-element.json.gz'), parts(), true);
    const script = [
      `const { FileSource } = await import(${JSON.stringify(path.join(ROOT, 'src/datasets/file-source.ts'))});`,
      `const source = new FileSource({ path: ${JSON.stringify(file)}, format: 'json', compression: 'GZIP', columns: ['v'] });`,
      'const outcome = await source.loadAll(new AbortController().signal).then((rows) => `${rows.rows} rows`, (err) => err.message);',
      'console.log(outcome);',
    ].join('\n');
    const child = spawnSync(process.execPath, ['--max-old-space-size=64', '--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    expect(child.stdout).toBe(
      `${file}: element 1: a record longer than 1,048,576 bytes; the limit is params.max_record_bytes: raise it if the file really holds such records\n`,
    );
    expect(child.status).toBe(0);
  });
});

describe('rows come back ordered from the reader thread', () => {
  test('a file written newest first is sorted before it reaches the calling thread', async () => {
    const lines = ['ts,v\n'];
    for (let r = 9; r >= 0; r--) lines.push(`${T0 + 60 * r},${r}\n`);
    // A repeated time: the later line wins.
    lines.push(`${T0 + 60 * 3},33\n`);
    for (const [name, compression] of [['desc.csv', 'UNCOMPRESSED'], ['desc.csv.gz', 'GZIP']] as const) {
      const file = await writeLines(path.join(dir, name), lines, compression === 'GZIP');
      const rows = await new FileSource({ path: file, format: 'csv', compression }).loadAll(never);
      expect(Array.from(rows.times)).toEqual(Array.from({ length: 10 }, (_, r) => (T0 + 60 * r) * 1000));
      expect(Array.from(rows.values)).toEqual([0, 1, 2, 33, 4, 5, 6, 7, 8, 9]);
    }
  });
});

describe('file names are literal', () => {
  test('a name holding glob characters reads that one file', async () => {
    await writeFile(path.join(dir, 'a.csv'), 'ts,v\n1700000000,1\n1700000060,2\n');
    await writeFile(path.join(dir, 'b.csv'), 'ts,v\n1700000000,3\n1700000060,4\n');
    const named = path.join(dir, '[ab].csv');
    await writeFile(named, 'ts,v\n1700000000,7\n1700000060,8\n1700000120,9\n');
    const rows = await new FileSource({ path: named, format: 'csv' }).loadAll(never);
    expect(Array.from(rows.values)).toEqual([7, 8, 9]);
    for (const name of ['*.csv', 'a?.csv', '{a,b}.csv']) {
      const file = path.join(dir, name);
      await writeFile(file, 'ts,v\n1700000000,5\n');
      const one = await new FileSource({ path: file, format: 'csv' }).loadAll(never);
      expect(Array.from(one.values)).toEqual([5]);
    }
  });
});

describe('a source past its limit is not read again until it changes', () => {
  test('retries and refreshes skip the read while the change token is the same', async () => {
    let token = 'v1';
    let reads = 0;
    let rows = 6;
    const source: DatasetSource = {
      from: 'memory',
      changeToken: () => Promise.resolve(token),
      loadAll: () => {
        reads += 1;
        return Promise.resolve({
          columns: ['a', 'b'],
          times: Float64Array.from({ length: rows }, (_, i) => 1_000 * (i + 1)),
          values: Float64Array.from({ length: rows * 2 }, (_, i) => i),
          rows,
        });
      },
    };
    const dataset = new Dataset({ name: 'oversized', from: 'memory', source, maxCells: 10, retry: null });
    const first = await dataset.start();
    expect(first.error).toMatch(/^dataset oversized: more than 10 cells/);
    expect(dataset.status).toBe('Error');
    expect(reads).toBe(1);
    // Unchanged: the same error, without reading the source again.
    const again = await dataset.refresh();
    expect(again.error).toBe(first.error);
    expect(again.skipped).toBe(true);
    expect(dataset.status).toBe('Error');
    expect(reads).toBe(1);
    // Changed (and now within the limit): read and served.
    token = 'v2';
    rows = 5;
    const fixed = await dataset.refresh();
    await dataset.stop();
    expect(fixed.error).toBeNull();
    expect(reads).toBe(2);
    expect(dataset.snapshot?.rows).toBe(5);
  });
});
