import { writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readDelimitedWithDuckDb } from '../../src/datasets/duckdb-csv-reader.js';
import { CSV_DEFAULTS } from '../../src/datasets/file-format.js';
import { readDelimitedRows } from '../../src/datasets/file-readers.js';
import { DEFAULT_LIMITS } from '../../src/datasets/limits.js';
import type { RowSpec } from '../../src/datasets/row-collector.js';
import type { LoadedRows, TimeFormat } from '../../src/datasets/types.js';
import { never, tempDir } from './helpers.js';

/**
 * Property tests of the DuckDB path against the csv-parse reader: generated CSV files are written to disk and
 * read by both real readers. Files of numbers and empty cells must be read by DuckDB's typed read (its CSV
 * reader converting the cells to DOUBLE), to exactly the csv-parse reader's rows: every time and value the
 * same double (-0 kept apart from 0, NaN for a missing value), in the same order. Files with anything else
 * in them (the spellings of a missing value, "inf", "+-1", "1_000", ISO times, text) may be read by either of
 * DuckDB's reads or declined, but never to other rows than csv-parse gives, and a file csv-parse refuses is
 * always declined. fast-check prints the seed and the shrunk file of a failure.
 */

let dir: string;
let cleanup: () => Promise<void>;
beforeAll(async () => {
  ({ dir, cleanup } = await tempDir());
});
afterAll(() => cleanup());

const digits = (min: number, max: number): fc.Arbitrary<string> =>
  fc.array(fc.constantFrom(...'0123456789'), { minLength: min, maxLength: max }).map((d) => d.join(''));

/**
 * Decimal numbers as people and programs write them: signs, many digits, a point anywhere, exponents (up to
 * two digits, so that the number stays finite: csv-parse reads 1e400 as Infinity, which no read of DuckDB's
 * gives, so such a file is declined).
 */
const decimal: fc.Arbitrary<string> = fc
  .tuple(
    fc.constantFrom('', '', '-', '+'),
    digits(0, 25),
    fc.constantFrom('', '.'),
    digits(0, 25),
    fc.option(fc.tuple(fc.constantFrom('e', 'E'), fc.constantFrom('', '+', '-'), digits(1, 2)), { nil: undefined }),
  )
  .filter(([, whole, point, fraction]) => whole.length + fraction.length > 0 && (point === '.' || fraction.length === 0))
  .map(([sign, whole, point, fraction, exponent]) => `${sign}${whole}${point}${fraction}${exponent === undefined ? '' : exponent.join('')}`);

/** Every finite double, written the ways JavaScript writes one (shortest, exponent, 17 digits). */
const fromDouble: fc.Arbitrary<string> = fc
  .tuple(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.constantFrom('string', 'exponential', 'precision'))
  .map(([x, how]) => (how === 'string' ? String(x) : how === 'exponential' ? x.toExponential() : x.toPrecision(17)));

/** Integers past 2^53 (rounded to a double by both), and zeros with a sign. */
const bigInteger: fc.Arbitrary<string> = fc.bigInt({ min: -(2n ** 90n), max: 2n ** 90n }).map(String);
const zero: fc.Arbitrary<string> = fc.constantFrom('0', '-0', '+0', '-0.0', '-0e7', '.0', '-.0e-3', '0.000');

/** A cell the typed read takes: a finite number, or empty. */
const numberCell: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: decimal },
  { weight: 3, arbitrary: fromDouble },
  { weight: 1, arbitrary: bigInteger },
  { weight: 1, arbitrary: zero },
  { weight: 1, arbitrary: fc.constant('') },
);

/** Anything else a cell may hold: missing-value spellings, what only DuckDB reads as a number, text. */
const otherCell: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('NA', 'nan', 'NaN', '-nan', 'NULL', 'null', 'None', 'n/a', 'N/A', 'inf', '-Infinity', '1e400', '1e-400'),
  fc.constantFrom('+-1', '-+1', '1_000', '1.0_1', '1e1_0', '0x10', ' 1 ', '\t2', '1d', 'abc', '1.2.3'),
  fc.array(fc.constantFrom(...'01.eE+-_ xinfaN'), { minLength: 1, maxLength: 6 }).map((c) => c.join('')),
);

const SECOND = 1000;
const MAX_SECONDS = 8.64e12;

/** Times as a dataset writes them: whole or fractional unix seconds, unix millis, and past Date's range. */
function timeCell(format: TimeFormat | null): fc.Arbitrary<string> {
  const scale = format === 'unix_millis' ? SECOND : 1;
  return fc.oneof(
    { weight: 6, arbitrary: fc.integer({ min: -4_000_000_000, max: 4_000_000_000 }).map((s) => String(s * scale)) },
    { weight: 2, arbitrary: fc.double({ min: -MAX_SECONDS * scale, max: MAX_SECONDS * scale, noNaN: true }).map(String) },
    { weight: 1, arbitrary: fc.constantFrom(String(MAX_SECONDS * scale), String(-MAX_SECONDS * scale), '1700000000.000', '+1700000000', '-0') },
  );
}

/** Times neither of the typed reads takes: ISO 8601 with and without a zone, past Date's range, empty, text. */
const otherTime: fc.Arbitrary<string> = fc.oneof(
  fc
    .tuple(fc.integer({ min: 1970, max: 2100 }), fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 28 }), fc.integer({ min: 0, max: 23 }))
    .chain(([y, m, d, h]) => {
      const date = `${y}-${String(m).padStart(2, '0')}-${String(d).padStart(2, '0')}`;
      return fc.constantFrom(date, `${date}T${String(h).padStart(2, '0')}:30:00`, `${date}T${String(h).padStart(2, '0')}:30:00Z`, `${date} ${String(h).padStart(2, '0')}:30:00+02:00`);
    }),
  fc.constantFrom('', '8640000000001', '-1e400', '1_700_000_000', '+-1700000000', 'yesterday', 'nan'),
);

/** Quoted now and then, as spreadsheets write cells. */
function quoted(cell: fc.Arbitrary<string>): fc.Arbitrary<string> {
  return fc.tuple(cell, fc.integer({ min: 0, max: 5 })).map(([c, q]) => (q === 0 ? `"${c}"` : c));
}

interface GeneratedFile {
  readonly timeFormat: TimeFormat | null;
  readonly rows: readonly (readonly [string, string, string])[];
  /** Retention: the index of the row whose time is the cut-off, or null for none. */
  readonly cutAt: number | null;
}

function csvFile(cell: fc.Arbitrary<string>, time: (format: TimeFormat | null) => fc.Arbitrary<string>): fc.Arbitrary<GeneratedFile> {
  return fc.constantFrom<TimeFormat | null>('unix_seconds', 'unix_millis', null).chain((timeFormat) =>
    fc.record({
      timeFormat: fc.constant(timeFormat),
      rows: fc.array(fc.tuple(quoted(time(timeFormat)), quoted(cell), quoted(cell)), { minLength: 1, maxLength: 40 }),
      cutAt: fc.option(fc.nat({ max: 39 }), { nil: null, freq: 4 }),
    }),
  );
}

let fileNumber = 0;

/** Writes the file (`body` rows first, when given) and reads it with both readers. */
async function bothReaders(generated: GeneratedFile, body = ''): Promise<{ expected: LoadedRows | Error; fast: { rows: LoadedRows; read: 'typed' | 'text' } | string }> {
  const file = path.join(dir, `generated-${++fileNumber}.csv`);
  await writeFile(file, `ts,a,b\n${body}${generated.rows.map((r) => r.join(',')).join('\n')}\n`);
  const cutRow = generated.cutAt === null ? undefined : generated.rows[generated.cutAt % generated.rows.length];
  const cutSeconds = cutRow === undefined ? Number.NaN : Number(cutRow[0].replaceAll('"', ''));
  const scale = generated.timeFormat === 'unix_millis' ? 1 : SECOND;
  const spec: RowSpec = {
    origin: file,
    timeColumn: 'ts',
    timeFormat: generated.timeFormat,
    columns: null,
    limits: DEFAULT_LIMITS,
    notBeforeMs: Number.isFinite(cutSeconds * scale) ? cutSeconds * scale : null,
  };
  const source = { path: file, format: 'csv' as const, compression: 'UNCOMPRESSED' as const };
  const expected = await readDelimitedRows(source, spec, CSV_DEFAULTS, never).catch((e: unknown) => e as Error);
  const outcome = await readDelimitedWithDuckDb(source, spec, CSV_DEFAULTS, never);
  return { expected, fast: 'rows' in outcome ? { rows: outcome.rows, read: outcome.read } : outcome.declined };
}

/** A double written so that equal means the same bits (but for NaN's payload): -0 and NaN spelled out. */
function exact(x: number): string {
  return Object.is(x, -0) ? '-0' : Number.isNaN(x) ? 'NaN' : String(x);
}

function exactRows(rows: LoadedRows): { columns: readonly string[]; times: string[]; values: string[] } {
  return { columns: rows.columns, times: Array.from(rows.times, exact), values: Array.from(rows.values, exact) };
}

describe('DuckDB\'s typed read agrees exactly with the csv-parse reader', () => {
  test('files of numbers and empty cells: read typed, to the same times and values', async () => {
    await fc.assert(
      fc.asyncProperty(csvFile(numberCell, timeCell), async (generated) => {
        const { expected, fast } = await bothReaders(generated);
        expect(expected).not.toBeInstanceOf(Error);
        expect(typeof fast).not.toBe('string');
        const { rows, read } = fast as { rows: LoadedRows; read: 'typed' | 'text' };
        expect(read).toBe('typed');
        expect(exactRows(rows)).toEqual(exactRows(expected as LoadedRows));
      }),
      { numRuns: 100 },
    );
  });

  test('files with other cells too: the same rows from either read, or declined; declined wherever csv-parse refuses', async () => {
    const mixedCell = fc.oneof({ weight: 5, arbitrary: numberCell }, { weight: 1, arbitrary: otherCell });
    const mixedTime = (format: TimeFormat | null): fc.Arbitrary<string> => fc.oneof({ weight: 8, arbitrary: timeCell(format) }, { weight: 1, arbitrary: otherTime });
    let taken = 0;
    let refused = 0;
    await fc.assert(
      fc.asyncProperty(csvFile(mixedCell, mixedTime), async (generated) => {
        const { expected, fast } = await bothReaders(generated);
        if (expected instanceof Error) {
          refused += 1;
          expect(typeof fast).toBe('string');
          return;
        }
        if (typeof fast === 'string') return;
        taken += 1;
        expect(exactRows(fast.rows)).toEqual(exactRows(expected));
      }),
      { numRuns: 150 },
    );
    // Both sides of the property were exercised.
    expect(taken).toBeGreaterThan(0);
    expect(refused).toBeGreaterThan(0);
  });

  /**
   * Generated rows after a body of clean rows longer than DuckDB's read buffer (8 MiB): DuckDB loses the error
   * of a bad cell in the last lines of such a file (its read ends early, with no error), which the DuckDB path
   * must notice. Few runs: each reads about 12 MiB twice.
   */
  describe('at the end of a file larger than the read buffer', () => {
    let body = '';
    beforeAll(() => {
      const lines: string[] = [];
      for (let i = 0, size = 0; size < 1.5 * 8 * 1024 * 1024; i++) {
        lines.push(`${1_600_000_000 + i},${(i * 0.123456789).toFixed(9)},${i % 9 === 0 ? '' : -i / 7}`);
        size += (lines[lines.length - 1] as string).length + 1;
      }
      body = `${lines.join('\n')}\n`;
    });
    const tailFile = (cell: fc.Arbitrary<string>, time: (format: TimeFormat | null) => fc.Arbitrary<string>): fc.Arbitrary<GeneratedFile> =>
      fc.constantFrom<TimeFormat | null>('unix_seconds', 'unix_millis', null).chain((timeFormat) =>
        fc.record({
          timeFormat: fc.constant(timeFormat),
          rows: fc.array(fc.tuple(quoted(time(timeFormat)), quoted(cell), quoted(cell)), { minLength: 1, maxLength: 60 }),
          cutAt: fc.constant(null),
        }),
      );

    test('numbers and empty cells: read typed, to the same rows', async () => {
      await fc.assert(
        fc.asyncProperty(tailFile(numberCell, timeCell), async (generated) => {
          const { expected, fast } = await bothReaders(generated, body);
          expect(expected).not.toBeInstanceOf(Error);
          const { rows, read } = fast as { rows: LoadedRows; read: 'typed' | 'text' };
          expect(read).toBe('typed');
          expect(exactRows(rows)).toEqual(exactRows(expected as LoadedRows));
        }),
        { numRuns: 4 },
      );
    }, 120_000);

    test('other cells in the last lines: every row from either read, or declined; declined wherever csv-parse refuses', async () => {
      // Mostly numbers, with another cell or time now and then: near the end, where DuckDB loses errors.
      const mixedCell = fc.oneof({ weight: 12, arbitrary: numberCell }, { weight: 1, arbitrary: otherCell });
      const mixedTime = (format: TimeFormat | null): fc.Arbitrary<string> => fc.oneof({ weight: 20, arbitrary: timeCell(format) }, { weight: 1, arbitrary: otherTime });
      await fc.assert(
        fc.asyncProperty(tailFile(mixedCell, mixedTime), async (generated) => {
          const { expected, fast } = await bothReaders(generated, body);
          if (expected instanceof Error) {
            expect(typeof fast).toBe('string');
            return;
          }
          if (typeof fast === 'string') return;
          expect(exactRows(fast.rows)).toEqual(exactRows(expected));
        }),
        { numRuns: 8 },
      );
    }, 300_000);
  });
});
