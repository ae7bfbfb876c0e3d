import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, test, vi } from 'vitest';
import { ForecastdError } from '../../src/errors.js';
import { duckDbOptions, readBufferBytes, readDelimitedWithDuckDb } from '../../src/datasets/duckdb-csv-reader.js';
import { CSV_DEFAULTS, TSV_DEFAULTS, type DelimitedTextOptions, type FileFormat } from '../../src/datasets/file-format.js';
import { readDelimitedRows } from '../../src/datasets/file-readers.js';
import { FileSource, readFileRows } from '../../src/datasets/file-source.js';
import { DEFAULT_LIMITS } from '../../src/datasets/limits.js';
import { RowCollector, type RowSpec } from '../../src/datasets/row-collector.js';
import { orderRows } from '../../src/datasets/snapshot.js';
import type { LoadedRows, TimeFormat } from '../../src/datasets/types.js';
import { never, tempDir } from './helpers.js';

/**
 * Large delimited files are read by DuckDB when it gives exactly the rows the csv-parse reader gives: these
 * tests read the same files with both and compare every time and value (NaN for a missing one), the order
 * (which decides which of two equal timestamps wins), and that every file the csv-parse reader refuses is
 * declined by DuckDB, so the csv-parse reader's message is the one a user sees.
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

let dir: string;
let cleanup: () => Promise<void>;
beforeAll(async () => {
  ({ dir, cleanup } = await tempDir());
});
afterAll(() => cleanup());
afterEach(() => vi.restoreAllMocks());

interface Case {
  readonly name: string;
  readonly text: string;
  readonly format?: FileFormat;
  readonly dialect?: Partial<DelimitedTextOptions>;
  readonly timeColumn?: string;
  readonly timeFormat?: TimeFormat | null;
  readonly columns?: readonly string[] | null;
  /** Retention: rows older than this (epoch ms) are left out. */
  readonly notBeforeMs?: number;
}

let fileNumber = 0;
async function prepare(c: Case): Promise<{ file: { path: string; format: FileFormat; compression: 'UNCOMPRESSED' }; spec: RowSpec; dialect: DelimitedTextOptions }> {
  const format = c.format ?? 'csv';
  const file = path.join(dir, `case-${++fileNumber}.${format}`);
  await writeFile(file, c.text);
  return {
    file: { path: file, format, compression: 'UNCOMPRESSED' },
    spec: { origin: file, timeColumn: c.timeColumn ?? 'ts', timeFormat: c.timeFormat === undefined ? 'unix_seconds' : c.timeFormat, columns: c.columns ?? null, limits: DEFAULT_LIMITS, notBeforeMs: c.notBeforeMs ?? null },
    dialect: { ...(format === 'tsv' ? TSV_DEFAULTS : CSV_DEFAULTS), ...c.dialect },
  };
}

/** The rows as plain arrays, NaN kept apart from numbers (toEqual would also tell NaN from a number). */
function plain(rows: LoadedRows): { columns: readonly string[]; rows: number; times: number[]; values: (number | 'NaN')[] } {
  return {
    columns: rows.columns,
    rows: rows.rows,
    times: Array.from(rows.times),
    values: Array.from(rows.values, (v) => (Number.isNaN(v) ? 'NaN' : v)),
  };
}

/**
 * Both readers on one file: the csv-parse reader's rows or error, what the DuckDB path did, and which of
 * its reads gave the rows.
 */
async function bothReaders(c: Case): Promise<{ expected: LoadedRows | ForecastdError; fast: LoadedRows | string; read: 'typed' | 'text' | null }> {
  const { file, spec, dialect } = await prepare(c);
  const expected = await readDelimitedRows(file, spec, dialect, never).catch((e: unknown) => e as ForecastdError);
  const outcome = await readDelimitedWithDuckDb(file, spec, dialect, never);
  return 'rows' in outcome ? { expected, fast: outcome.rows, read: outcome.read } : { expected, fast: outcome.declined, read: null };
}

/** Files the fast path must take, with the rows the csv-parse reader gives. */
const TAKEN: readonly Case[] = [
  { name: 'unix seconds with a header', text: 'ts,load,temp\n1700000000,1.5,20\n1700000060,2.25,-3.5e-1\n1700000120,1e3,.5\n' },
  { name: 'empty cells and the spellings of a missing value', text: 'ts,a,b\n1700000000,,1\n1700000060,NaN,null\n1700000120,NA,n/a\n1700000180,None,""\n1700000240,nan,NULL\n' },
  { name: 'duplicate timestamps and rows out of order', text: 'ts,v\n1700000120,3\n1700000000,1\n1700000060,2\n1700000060,2.5\n1700000000,1.5\n' },
  { name: 'unix_millis', text: 'ts,v\n1700000000123,1\n1700000060456,2\n', timeFormat: 'unix_millis' },
  { name: 'numeric times with time_format unset', text: 'ts,v\n1700000000,1\n1700000000.5,2\n-86400,3\n', timeFormat: null },
  { name: 'fractional and signed numbers', text: 'ts,v\n1700000000.25,+1\n1700000001,1.\n1700000002,-0\n1700000003,00012\n1700000004,1.e5\n1700000005,1E-05\n' },
  { name: 'numbers past double precision round alike', text: 'ts,v\n1700000000,0.1000000000000000055511151231257827\n1700000001,9007199254740993\n1700000002,1.7976931348623157e308\n1700000003,2.2250738585072011e-308\n' },
  { name: 'no header: columns named column_N', text: '1700000000,1,2\n1700000060,3,4\n', dialect: { hasHeader: false }, timeColumn: 'column_1' },
  { name: 'no header, time in the last column', text: '1,1700000000\n2,1700000060\n', dialect: { hasHeader: false }, timeColumn: 'column_2' },
  { name: 'TSV', text: 'ts\tv\tw\n1700000000\t1\t\n1700000060\t\t2\n', format: 'tsv' },
  { name: 'semicolon delimiter', text: 'ts;v\n1700000000;1.5\n1700000060;2.5\n', dialect: { delimiter: ';' } },
  { name: 'pipe delimiter and single quotes', text: "ts|v\n'1700000000'|'1.5'\n1700000060|2.5\n", dialect: { delimiter: '|', quote: "'" } },
  { name: 'quoted cells and a quoted header', text: '"ts","v"\n"1700000000","1.5"\n"1700000060",""\n' },
  { name: 'CRLF line ends', text: 'ts,v\r\n1700000000,1\r\n1700000060,2\r\n' },
  { name: 'no newline at the end', text: 'ts,v\n1700000000,1\n1700000060,2' },
  { name: 'columns picked and reordered', text: 'ts,a,b,c\n1700000000,1,2,3\n1700000060,4,5,6\n', columns: ['c', 'a'] },
  { name: 'text columns that are not read', text: 'site,ts,v,note\n"north, upper",1700000000,1,fine\nsouth,1700000060,2,\n', columns: ['v'] },
  { name: 'a header only', text: 'ts,v\n' },
  { name: 'times at the edge of what a Date holds', text: 'ts,v\n8640000000000,1\n-8640000000000,2\n' },
  { name: 'underscores in the header and in a column not read', text: 'ts,load_kw,site_name\n1700000000,1.5,north_1\n1700000060,-0,south\n', columns: ['load_kw'] },
  { name: 'retention leaves out older rows', text: 'ts,v\n1000,1\n1700000000,2\n1000,\n1700000060,\n', notBeforeMs: 1_700_000_000_000 },
  { name: 'retention leaves out the last records', text: 'ts,v\n1700000000,2\n1700000060,3\n1000,4\n1000,\n', notBeforeMs: 1_700_000_000_000 },
  { name: 'retention leaves out every row', text: 'ts,v\n1000,4\n1000,\n', notBeforeMs: 1_700_000_000_000 },
  { name: 'blank lines after the last record', text: 'ts,v\n1700000000,1\n1700000060,2\n\n\n' },
  { name: 'retention with missing-value spellings', text: 'ts,v\n1000,NA\n1700000000,2\n1700000060,null\n', notBeforeMs: 1_700_000_000_000 },
  {
    // A cutoff that a bare SQL literal (a DECIMAL) rounds past the row exactly at it (found by the property suite).
    name: 'retention keeps the row exactly at a fractional cutoff',
    text: 'ts,v\n-3628310211,1\n-0.00001613750871324328,2\n1700000000.000,3\n',
    notBeforeMs: -0.00001613750871324328 * 1000,
  },
];

/** Files the csv-parse reader refuses: the fast path must decline them (its message is then the one shown). */
const REFUSED: readonly Case[] = [
  { name: 'a value that is not a number', text: 'ts,v\n1700000000,1\n1700000060,abc\n' },
  { name: 'inf', text: 'ts,v\n1700000000,inf\n' },
  { name: 'Infinity', text: 'ts,v\n1700000000,Infinity\n' },
  { name: '-nan', text: 'ts,v\n1700000000,-nan\n' },
  { name: 'digits with underscores', text: 'ts,v\n1700000000,1_000\n' },
  { name: 'a hexadecimal value', text: 'ts,v\n1700000000,0x10\n' },
  { name: 'an empty time', text: 'ts,v\n1700000000,1\n,2\n' },
  { name: 'a time that is not a number', text: 'ts,v\n1700000000,1\nyesterday,2\n' },
  { name: 'a time with underscores', text: 'ts,v\n1_700_000_000,1\n' },
  { name: 'a time past what a Date holds', text: 'ts,v\n8640000000001,1\n' },
  { name: 'an ISO time read as unix seconds', text: 'ts,v\n2024-01-01T00:00:00Z,1\n' },
  { name: 'a row with a cell too many', text: 'ts,v\n1700000000,1\n1700000060,2,3\n' },
  { name: 'a row with a cell too few', text: 'ts,v,w\n1700000000,1,2\n1700000060,2\n' },
  { name: 'an unclosed quote', text: 'ts,v\n1700000000,"1\n1700000060,2\n' },
  { name: 'a quote inside an unquoted cell of a column not read', text: 'ts,v,note\n1700000000,1,ab"c\n', columns: ['v'] },
  { name: 'text after a closing quote in a column not read', text: 'ts,v,note\n1700000000,1,"ab"c\n', columns: ['v'] },
  { name: 'a header naming a column twice', text: 'ts,v,v\n1700000000,1,2\n' },
  { name: 'no time column', text: 'time,v\n1700000000,1\n' },
  { name: 'a missing value column', text: 'ts,v\n1700000000,1\n', columns: ['w'] },
  { name: 'only the time column', text: 'ts\n1700000000\n' },
  { name: 'an empty file', text: '' },
  { name: 'the wrong delimiter', text: 'ts;v\n1700000000;1\n' },
  // DuckDB's number parser skips a "+" and then reads a signed number.
  { name: 'a value with two signs', text: 'ts,v\n1700000000,1\n1700000060,+-1\n' },
  { name: 'a time with two signs', text: 'ts,v\n+-1700000000,1\n' },
  { name: 'a time with two signs, time_format unset', text: 'ts,v\n+-1700000000,1\n', timeFormat: null },
  // csv-parse reads every row, also those retention leaves out.
  { name: 'a value that is not a number in a row retention leaves out', text: 'ts,v\n1000,abc\n1700000000,1\n', notBeforeMs: 1_700_000_000_000 },
  { name: 'inf in a row retention leaves out', text: 'ts,v\n1000,inf\n1700000000,1\n', notBeforeMs: 1_700_000_000_000 },
  { name: 'digits with underscores in a row retention leaves out', text: 'ts,v\n1000,1_0\n1700000000,1\n', notBeforeMs: 1_700_000_000_000 },
  { name: 'a time past what a Date holds in a row retention leaves out', text: 'ts,v\n-8640000000001,1\n1700000000,1\n', notBeforeMs: 1_700_000_000_000 },
  {
    name: 'a quote inside an unquoted cell of a column not read, in a row retention leaves out',
    text: 'ts,v,note\n1000,1,ab"c\n1700000000,1,fine\n',
    columns: ['v'],
    notBeforeMs: 1_700_000_000_000,
  },
];

/** Files either reader may take (DuckDB may decline them): when both give rows, they are the same rows. */
const EITHER: readonly Case[] = [
  { name: 'a doubled quote in a column not read', text: 'ts,v,note\n1700000000,1,"said ""hi"""\n', columns: ['v'] },
  { name: 'a byte order mark', text: '\uFEFFts,v\n1700000000,1\n' },
  { name: 'blank lines', text: 'ts,v\n\n1700000000,1\n\n\n1700000060,2\n\n' },
  { name: 'spaces around cells', text: 'ts , v\n 1700000000 , 1.5 \n1700000060,  NA\n' },
  { name: 'a line of spaces', text: 'ts,v\n1700000000,1\n   \n1700000060,2\n' },
  { name: 'a comment-like line', text: 'ts,v\n# note\n1700000000,1\n' },
  { name: 'a quoted newline in a column not read', text: 'ts,v,note\n1700000000,1,"two\nlines"\n1700000060,2,x\n', columns: ['v'] },
  { name: 'a tab inside a cell', text: 'ts,v\n1700000000,\t1\n' },
  { name: 'a no-break space', text: 'ts,v\n1700000000,\u00a01\n' },
  { name: 'ISO times with time_format unset', text: 'ts,v\n2024-01-01T00:00:00Z,1\n', timeFormat: null },
  { name: 'ISO 8601 times', text: 'ts,v\n2024-01-01T00:00:00Z,1\n', timeFormat: 'iso8601' },
  { name: 'lone carriage returns', text: 'ts,v\r1700000000,1\r1700000060,2\r' },
  { name: 'a quoted header spanning two lines', text: '"t\ns",v\n1700000000,1\n', timeColumn: 't\ns' },
  { name: 'an overflowing number', text: 'ts,v\n1700000000,1e400\n' },
  { name: 'an underflowing number', text: 'ts,v\n1700000000,1e-400\n' },
  { name: 'a backslash escape', text: 'ts,v,note\n1700000000,1,"a\\"b"\n', dialect: { escape: '\\' }, columns: ['v'] },
];

describe('the DuckDB path gives the csv-parse reader\'s rows', () => {
  test.each(TAKEN)('taken: $name', async (c) => {
    const { expected, fast } = await bothReaders(c);
    expect(expected).not.toBeInstanceOf(Error);
    expect(typeof fast).not.toBe('string');
    expect(plain(fast as LoadedRows)).toEqual(plain(expected as LoadedRows));
    // Equal timestamps keep their file order, so the same one wins once ordered.
    expect(plain(orderRows(fast as LoadedRows))).toEqual(plain(orderRows(expected as LoadedRows)));
  });

  test('the values and the order of duplicate timestamps, spelled out', async () => {
    const { fast } = await bothReaders(TAKEN[2] as Case);
    const rows = orderRows(fast as LoadedRows);
    expect(Array.from(rows.times)).toEqual([1700000000000, 1700000060000, 1700000120000]);
    expect(Array.from(rows.values)).toEqual([1.5, 2.5, 3]);
    const missing = await bothReaders(TAKEN[1] as Case);
    expect(plain(missing.fast as LoadedRows).values).toEqual([
      'NaN', 1, 'NaN', 'NaN', 'NaN', 'NaN', 'NaN', 'NaN', 'NaN', 'NaN',
    ]);
  });

  test('numbers and empty cells are read typed; other spellings of a missing value, and "_" in the rows, as text', async () => {
    const read = async (name: string): Promise<'typed' | 'text' | null> => (await bothReaders(TAKEN.find((c) => c.name === name) as Case)).read;
    expect(await read('unix seconds with a header')).toBe('typed');
    expect(await read('fractional and signed numbers')).toBe('typed');
    expect(await read('TSV')).toBe('typed');
    expect(await read('retention leaves out older rows')).toBe('typed');
    expect(await read('empty cells and the spellings of a missing value')).toBe('text');
    expect(await read('retention with missing-value spellings')).toBe('text');
    // A header is not searched for "_"; the rows are, columns not read included.
    expect(await read('underscores in the header and in a column not read')).toBe('text');
    expect((await bothReaders({ name: 'header only', text: 'ts,load_kw\n1700000000,1\n' })).read).toBe('typed');
    expect((await bothReaders({ name: 'quoted header', text: '"t,s","load_kw"\n1700000000,1\n', timeColumn: 't,s' })).read).toBe('typed');
  });

  test.each(REFUSED)('declined where the csv-parse reader refuses: $name', async (c) => {
    const { expected, fast } = await bothReaders(c);
    expect(expected).toBeInstanceOf(ForecastdError);
    expect(typeof fast).toBe('string');
  });

  test.each(EITHER)('the same rows or declined: $name', async (c) => {
    const { expected, fast } = await bothReaders(c);
    if (typeof fast === 'string') return;
    expect(expected).not.toBeInstanceOf(Error);
    expect(plain(fast)).toEqual(plain(expected as LoadedRows));
  });

  test('"+-" and "_" are found anywhere in the rows: across the blocks the file is searched in, and in the last row', async () => {
    const BLOCK = 1024 * 1024;
    /** Rows of ones, then `cell` placed so that its byte `at` is the first byte of the second block. */
    const straddling = (cell: string, at: number): string => {
      const head = 'ts,v\n';
      const row = '1700000000,1\n';
      let text = head + row.repeat(Math.floor((BLOCK - 200) / row.length));
      const prefix = '1700000001,';
      // Pads the last value before the cell with zeros after its point so that the cell lands where wanted.
      const pad = BLOCK - at - (text.length + '1700000000,1.'.length + 1 + prefix.length);
      text += `1700000000,1.${'0'.repeat(pad)}\n${prefix}${cell}\n1700000002,2\n`;
      expect(text.indexOf(cell) + at).toBe(BLOCK);
      return text;
    };
    for (const text of [straddling('+-1', 1), straddling('1_0', 1), straddling('1_0', 0), 'ts,v\n1700000000,1\n1700000060,+-2']) {
      const { expected, fast } = await bothReaders({ name: 'straddling', text });
      expect(expected).toBeInstanceOf(ForecastdError);
      expect(typeof fast).toBe('string');
    }
    const fine = await bothReaders({ name: 'straddling', text: straddling('-1', 0) });
    expect(fine.read).toBe('typed');
    expect(plain(fine.fast as LoadedRows)).toEqual(plain(fine.expected as LoadedRows));
  });

  test('a cancelled read is cancelled', async () => {
    const { file, spec, dialect } = await prepare(TAKEN[0] as Case);
    const controller = new AbortController();
    controller.abort();
    await expect(readDelimitedWithDuckDb(file, spec, dialect, controller.signal)).rejects.toThrow(`${file.path}: loading was cancelled`);
  });

  test('a file longer than several read buffers, records straddling them', async () => {
    const buffer = readBufferBytes({ limits: DEFAULT_LIMITS } as RowSpec) as number;
    expect(buffer).toBe(8 * 1024 * 1024);
    // Rows of uneven length with a long text column that is not read (now and then quoted, holding the
    // delimiter), so that rows fall across each buffer's end at different places.
    const lines = ['ts,v,note,w'];
    for (let i = 0, size = 0; size < 2.5 * buffer; i++) {
      const note = i % 7 === 0 ? `"a, b ${'x'.repeat(400 + (i % 13))}"` : 'y'.repeat(300 + (i % 211));
      lines.push(`${1_700_000_000 + i * 60},${(i % 1000) / 8},${note},${i % 5 === 0 ? '' : -i / 3}`);
      size += (lines[lines.length - 1] as string).length + 1;
    }
    const text = `${lines.join('\n')}\n`;
    const typed = await bothReaders({ name: 'long', text, columns: ['v', 'w'] });
    expect(typed.read).toBe('typed');
    expect(plain(typed.fast as LoadedRows)).toEqual(plain(typed.expected as LoadedRows));
    expect((typed.fast as LoadedRows).rows).toBe(lines.length - 1);
  });

  describe('a bad or unusual cell in the last lines of a file larger than the read buffer', () => {
    // DuckDB drops the error of a bad last line, and its streamed result ends without an error when a later
    // buffer fails: both read as fewer rows than the file holds, with no error (newest rows silently lost).
    let body = '';
    let bodyRows = 0;
    beforeAll(() => {
      const buffer = readBufferBytes({ limits: DEFAULT_LIMITS } as RowSpec) as number;
      const lines = ['ts,v,note,w'];
      for (let i = 0, size = 0; size < 2.5 * buffer; i++) {
        const note = i % 7 === 0 ? `"a, b ${'x'.repeat(400 + (i % 13))}"` : 'y'.repeat(300 + (i % 211));
        lines.push(`${1_700_000_000 + i * 60},${(i % 1000) / 8},${note},${i % 5 === 0 ? '' : -i / 3}`);
        size += (lines[lines.length - 1] as string).length + 1;
      }
      body = `${lines.join('\n')}\n`;
      bodyRows = lines.length - 1;
    });
    /** `last` rows after the body, the `at`-th of them (from 0) holding `cell` as its value v. */
    const trailing = (cell: string, at: number, last: number): string => {
      let text = body;
      for (let i = 0; i < last; i++) text += `${1_800_000_000 + i * 60},${i === at ? cell : i / 4},z,${i}\n`;
      return text;
    };
    const BAD = [
      { name: 'a value that is not a number in the last line', cell: 'abc', at: 0, last: 1 },
      { name: 'a value that is not a number 45 lines from the end', cell: 'abc', at: 0, last: 46 },
      { name: 'a value with underscores in the last line', cell: '1_0', at: 0, last: 1 },
    ];
    test.each(BAD)('declined where the csv-parse reader refuses: $name', async ({ cell, at, last }) => {
      const { expected, fast } = await bothReaders({ name: 'bad near the end', text: trailing(cell, at, last), columns: ['v', 'w'] });
      expect(expected).toBeInstanceOf(ForecastdError);
      expect(fast).toBeTypeOf('string');
    });
    const MISSING = [
      { name: 'NA in the last line', cell: 'NA', at: 0, last: 1 },
      { name: 'NA 45 lines from the end', cell: 'NA', at: 0, last: 46 },
      { name: 'null in the second last line', cell: 'null', at: 0, last: 2 },
    ];
    test.each(MISSING)('every row, or declined: $name', async ({ cell, at, last }) => {
      const { expected, fast, read } = await bothReaders({ name: 'missing near the end', text: trailing(cell, at, last), columns: ['v', 'w'] });
      expect((expected as LoadedRows).rows).toBe(bodyRows + last);
      if (typeof fast === 'string') return;
      expect(fast.rows).toBe(bodyRows + last);
      expect(plain(fast)).toEqual(plain(expected as LoadedRows));
      // The typed read stops short of the end; the text read takes the spelling of a missing value.
      expect(read).toBe('text');
    });

    test('clean last lines are read typed: CRLF, no final newline, duplicate timestamps, blank lines after', async () => {
      const crlf = `${body.replaceAll('\n', '\r\n')}1800000000,1,z,2\r\n1800000000,3,z,\r\n1800000000,-0,z,4`;
      const blank = `${body}1800000000,1,z,2\n1800000000,3,z,\n\n\n`;
      for (const text of [crlf, blank]) {
        const { expected, fast, read } = await bothReaders({ name: 'clean end', text, columns: ['w', 'v'] });
        expect(read).toBe('typed');
        expect(plain(fast as LoadedRows)).toEqual(plain(expected as LoadedRows));
      }
    });

    test('retention leaving out the last records: the same rows, or declined', async () => {
      const text = `${body}1000,1,z,2\n1000,3,z,4\n`;
      const { expected, fast } = await bothReaders({ name: 'old end', text, columns: ['v', 'w'], notBeforeMs: 1_700_000_000_000 });
      expect((expected as LoadedRows).rows).toBe(bodyRows);
      if (typeof fast !== 'string') expect(plain(fast)).toEqual(plain(expected as LoadedRows));
    });
  });

  test('the read buffer holds two of the longest records allowed, and stays at DuckDB\'s default past it', () => {
    const withRecord = (maxRecordBytes: number): RowSpec => ({ limits: { ...DEFAULT_LIMITS, maxRecordBytes } }) as RowSpec;
    expect(readBufferBytes(withRecord(1024))).toBe(8 * 1024 * 1024);
    expect(readBufferBytes(withRecord(6 * 1024 * 1024))).toBe(12 * 1024 * 1024);
    expect(readBufferBytes(withRecord(16 * 1024 * 1024))).toBeNull();
  });

  test('each read\'s DuckDB returns the memory it frees to the system, and its memory limit follows max_cells', async () => {
    // Without the flush, the chunks a read is done with stay resident in DuckDB's allocator until the process
    // ends, above the load's memory bound (docs/performance.md, "A dataset past its limits").
    const { DuckDBInstance } = await import('@duckdb/node-api');
    const instance = await DuckDBInstance.create(':memory:', duckDbOptions(DEFAULT_LIMITS.maxCells));
    try {
      const connection = await instance.connect();
      const settings = await connection.runAndReadAll(
        `SELECT current_setting('allocator_bulk_deallocation_flush_threshold') AS flush, current_setting('memory_limit') AS memory, current_setting('threads') AS threads, current_setting('preserve_insertion_order') AS ordered`,
      );
      expect(settings.getRowObjects()).toEqual([{ flush: '0 bytes', memory: '1.2 GiB', threads: 1n, ordered: true }]);
      connection.closeSync();
    } finally {
      instance.closeSync();
    }
  });
});

/** A file shaped like the benchmark's (unix seconds, two value columns), smaller. */
async function benchShapedCsv(rows: number): Promise<string> {
  const file = path.join(dir, `bench-shaped-${rows}.csv`);
  const lines = ['ts,load,temp'];
  for (let i = 0; i < rows; i++) lines.push(`${1_577_836_800 + i * 60},${(500 + 100 * Math.sin(i / 1440)).toFixed(3)},${(15 + (i % 97) / 7).toFixed(3)}`);
  await writeFile(file, `${lines.join('\n')}\n`);
  return file;
}

/** The reader job of an uncompressed CSV file whose time column `ts` holds unix seconds. */
function unixSecondsCsvJob(file: string) {
  return {
    path: file,
    format: 'csv' as const,
    compression: 'UNCOMPRESSED' as const,
    spec: { origin: file, timeColumn: 'ts', timeFormat: 'unix_seconds' as const, columns: null, limits: DEFAULT_LIMITS, notBeforeMs: null },
    delimited: CSV_DEFAULTS,
    json: { layout: null, flatten: false },
  };
}

describe('file datasets take the DuckDB path', () => {
  test('a benchmark-shaped CSV is read without collecting a row in JavaScript, to the same rows', async () => {
    const file = await benchShapedCsv(50_000);
    const job = unixSecondsCsvJob(file);
    const add = vi.spyOn(RowCollector.prototype, 'add');
    const rows = await readFileRows(job, never);
    expect(add).not.toHaveBeenCalled();
    expect(rows.rows).toBe(50_000);
    const expected = await readDelimitedRows(job, job.spec, job.delimited, never);
    expect(add).toHaveBeenCalledTimes(50_000);
    expect(plain(rows)).toEqual(plain(expected));
  });

  test('a file DuckDB declines is read by csv-parse, with its message', async () => {
    const file = path.join(dir, 'bad-cell.csv');
    await writeFile(file, 'ts,v\n1700000000,1\n1700000060,1_000\n');
    const job = unixSecondsCsvJob(file);
    await expect(readFileRows(job, never)).rejects.toThrow(`${file}: line 3: column "v": "1_000" is not a number`);
  });

  test('on the file reader thread: the same rows, and the process exits on its own afterwards', async () => {
    const file = await benchShapedCsv(20_000);
    const rows = await new FileSource({ path: file, format: 'csv', timeFormat: 'unix_seconds' }).loadAll(never);
    const spec = { origin: file, timeColumn: 'ts', timeFormat: 'unix_seconds' as const, columns: null, limits: DEFAULT_LIMITS, notBeforeMs: null };
    const expected = await readDelimitedRows({ path: file, format: 'csv', compression: 'UNCOMPRESSED' }, spec, CSV_DEFAULTS, never);
    expect(plain(rows)).toEqual(plain(expected));
    // A process that loads through the reader thread (DuckDB inside it) and then has nothing left to do ends.
    const script = [
      `const { FileSource } = await import(${JSON.stringify(path.join(ROOT, 'src/datasets/file-source.ts'))});`,
      `const rows = await new FileSource({ path: ${JSON.stringify(file)}, format: 'csv' }).loadAll(new AbortController().signal);`,
      'console.log(rows.rows, rows.times[rows.rows - 1]);',
    ].join('\n');
    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8' });
    expect(child.stderr).toBe('');
    expect(child.stdout).toBe(`20000 ${(1_577_836_800 + 19_999 * 60) * 1000}\n`);
    expect(child.status).toBe(0);
  });
});
