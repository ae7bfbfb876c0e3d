import { readFile, truncate, writeFile, stat, copyFile } from 'node:fs/promises';
import * as path from 'node:path';
import { asyncBufferFromFile, parquetMetadataAsync } from 'hyparquet';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ForecastdError } from '../../src/errors.js';
import { FileSource, type FileSourceOptions } from '../../src/datasets/file-source.js';
import type { LoadedRows } from '../../src/datasets/types.js';
import { COMPRESSION_TOOLS, DuckDb, compressWith, sqlString } from './foreign-writers.js';
import { CO2_CSV, csvPairs, never, tempDir } from './helpers.js';

/**
 * Every file layout a Spice pod may point at, written by other tools (DuckDB, gzip, bzip2, xz, zstd) from
 * the real weekly CO2 series, read back through FileSource: each must give exactly the series the CSV
 * holds (times, values, gaps as NaN), and each misconfiguration an error that names the parameter to set.
 */

let dir: string;
let cleanup: () => Promise<void>;
let duck: DuckDb;
let pairs: [string, string][];

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir());
  pairs = await csvPairs(CO2_CSV);
  duck = await DuckDb.open();
  // A note column full of what delimited writers must quote: every delimiter, quotes and line breaks.
  await duck.run(`
    CREATE TABLE co2 AS
    SELECT ts, co2, round(co2) AS level, co2::FLOAT AS co2_f32,
           CASE WHEN row_number() OVER (ORDER BY ts) % 5 = 0
                THEN 'a;b|c,d' || chr(9) || 'tab "quoted" ' || chr(39) || 'single' || chr(39) || chr(10) || 'next line'
                ELSE 'week ' || row_number() OVER (ORDER BY ts) END AS note
    FROM read_csv(${sqlString(CO2_CSV)}, header = true, columns = {'ts': 'TIMESTAMP', 'co2': 'DOUBLE'})
    ORDER BY ts`);
}, 60_000);
afterAll(async () => {
  duck.close();
  await cleanup();
});

function file(name: string): string {
  return path.join(dir, name);
}

/** Writes the co2 table (or `select`) with DuckDB's COPY ... TO and the given options; returns the path. */
async function copyTo(name: string, options: string, select = 'SELECT ts, co2, note FROM co2'): Promise<string> {
  const target = file(name);
  await duck.run(`COPY (${select}) TO ${sqlString(target)} (${options})`);
  return target;
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

/** The rows are the CO2 series of test/data: every time, every value, the 59 gaps as NaN. */
function expectCo2(rows: LoadedRows, round: (v: number) => number = (v) => v, stride = 1, offset = 0): void {
  expect(rows.rows).toBe(pairs.length);
  expect(Array.from(rows.times)).toEqual(pairs.map(([ts]) => Date.parse(ts)));
  const values = Array.from({ length: rows.rows }, (_, i) => rows.values[i * stride + offset] ?? -1);
  expect(values).toEqual(pairs.map(([, v]) => (v === '' ? Number.NaN : round(Number(v)))));
}

describe('Parquet written by DuckDB: every codec, dictionary and plain encodings, every time type', () => {
  const CODECS = ['uncompressed', 'snappy', 'gzip', 'zstd', 'brotli', 'lz4', 'lz4_raw'] as const;
  // V1 pages use PLAIN and dictionary encodings; V2 adds DELTA_BINARY_PACKED and BYTE_STREAM_SPLIT.
  const VERSIONS = ['V1', 'V2'] as const;
  // Every Parquet time type DuckDB writes, and ISO 8601 text (a string column: delta-length encoded in V2).
  const TIME_COLUMNS = ['ts', 'ts_tz', 'ts_ms', 'ts_ns', 'ts_s', 'day', 'ts_text'] as const;
  const SELECT = `SELECT ts, ts::TIMESTAMPTZ AS ts_tz, ts::TIMESTAMP_MS AS ts_ms, ts::TIMESTAMP_NS AS ts_ns,
    ts::TIMESTAMP_S AS ts_s, ts::DATE AS day, strftime(ts, '%Y-%m-%dT%H:%M:%SZ') AS ts_text, co2, level, co2_f32, note FROM co2`;
  const codecsSeen = new Set<string>();
  const encodingsSeen = new Set<string>();
  const timeTypesSeen = new Set<string>();

  for (const codec of CODECS) {
    for (const version of VERSIONS) {
      test(`${codec}, ${version} pages`, async () => {
        const target = await copyTo(`co2-${codec}-${version}.parquet`, `FORMAT parquet, COMPRESSION ${codec}, PARQUET_VERSION ${version}`, SELECT);
        // What the file really holds, read from its own metadata: the test covers what it claims to.
        const metadata = await parquetMetadataAsync(await asyncBufferFromFile(target));
        for (const column of metadata.row_groups.flatMap((g) => g.columns)) {
          if (column.meta_data === undefined) continue;
          codecsSeen.add(column.meta_data.codec);
          for (const encoding of column.meta_data.encodings) encodingsSeen.add(encoding);
        }
        for (const element of metadata.schema) {
          const logical = element.logical_type;
          if (logical?.type === 'TIMESTAMP') timeTypesSeen.add(`TIMESTAMP(${logical.unit}, utc=${logical.isAdjustedToUTC})`);
          if (logical?.type === 'DATE' || element.converted_type === 'DATE') timeTypesSeen.add('DATE');
        }
        for (const timeColumn of TIME_COLUMNS) {
          const rows = await load({ path: target, format: 'parquet', timeColumn, columns: ['co2', 'level', 'co2_f32'] });
          expect(rows.columns).toEqual(['co2', 'level', 'co2_f32']);
          expectCo2(rows, (v) => v, 3, 0);
          expectCo2(rows, (v) => Math.round(v), 3, 1);
          expectCo2(rows, Math.fround, 3, 2);
        }
      });
    }
  }

  test('the files covered every codec DuckDB writes, the dictionary, plain, delta and split encodings, each time type', () => {
    expect([...codecsSeen].sort()).toEqual(['BROTLI', 'GZIP', 'LZ4_RAW', 'SNAPPY', 'UNCOMPRESSED', 'ZSTD']);
    for (const encoding of ['PLAIN', 'PLAIN_DICTIONARY', 'RLE_DICTIONARY', 'DELTA_BINARY_PACKED', 'DELTA_LENGTH_BYTE_ARRAY', 'BYTE_STREAM_SPLIT']) {
      expect(encodingsSeen).toContain(encoding);
    }
    expect([...timeTypesSeen].sort()).toEqual([
      'DATE',
      'TIMESTAMP(MICROS, utc=false)',
      'TIMESTAMP(MICROS, utc=true)',
      'TIMESTAMP(MILLIS, utc=false)',
      'TIMESTAMP(NANOS, utc=false)',
    ]);
  });

  test('a compressed file declared Parquet says what it is', async () => {
    const csv = await copyTo('as-parquet.csv', 'FORMAT csv');
    const gz = compressWith('gzip', csv);
    expect(await loadError({ path: gz, format: 'parquet' })).toBe(
      `${gz}: the file is GZIP-compressed, not a Parquet file: Parquet compresses inside the file (every codec is read); decompress it, or if it holds CSV, TSV or JSON set file_format and file_compression_type: GZIP`,
    );
  });
});

describe('CSV and TSV dialects written by DuckDB', () => {
  test.each([
    [';', 'semicolon'],
    ['|', 'pipe'],
    [',', 'comma'],
  ])('delimiter %s: quoted cells holding delimiters, quotes and line breaks', async (delimiter, name) => {
    const target = await copyTo(`${name}.csv`, `FORMAT csv, HEADER true, DELIMITER ${sqlString(delimiter)}`);
    const text = await readFile(target, 'utf8');
    expect(text).toContain('"a;b|c,d\ttab ""quoted"" \'single\'\nnext line"');
    const rows = await load({ path: target, format: 'csv', delimited: { delimiter }, columns: ['co2'] });
    expectCo2(rows);
  });

  test('TSV (file_format tsv: always tab-separated)', async () => {
    const target = await copyTo('co2.tsv', `FORMAT csv, HEADER true, DELIMITER '\t'`);
    expectCo2(await load({ path: target, format: 'tsv', columns: ['co2'] }));
    // The delimiter of a TSV cannot be changed, as in Spice.
    expectCo2(await load({ path: target, format: 'tsv', delimited: { delimiter: ',' }, columns: ['co2'] }));
  });

  test("csv_quote and csv_escape: single quotes, backslash escapes", async () => {
    const single = await copyTo('single.csv', `FORMAT csv, HEADER true, QUOTE '''', ESCAPE ''''`);
    expect(await readFile(single, 'utf8')).toContain(`'a;b|c,d\ttab "quoted" ''single''\nnext line'`);
    expectCo2(await load({ path: single, format: 'csv', delimited: { quote: "'" }, columns: ['co2'] }));
    const backslash = await copyTo('backslash.csv', `FORMAT csv, HEADER true, ESCAPE '\\'`);
    expect(await readFile(backslash, 'utf8')).toContain('"a;b|c,d\ttab \\"quoted\\" \'single\'\nnext line"');
    expectCo2(await load({ path: backslash, format: 'csv', delimited: { escape: '\\' }, columns: ['co2'] }));
    const tsvSingle = await copyTo('single.tsv', `FORMAT csv, HEADER true, DELIMITER '\t', QUOTE '''', ESCAPE ''''`);
    expectCo2(await load({ path: tsvSingle, format: 'tsv', delimited: { quote: "'" }, columns: ['co2'] }));
  });

  test('a header-less file names its columns column_1, column_2, ... (csv_has_header: false)', async () => {
    const target = await copyTo('headerless.csv', 'FORMAT csv, HEADER false');
    const rows = await load({ path: target, format: 'csv', delimited: { hasHeader: false }, timeColumn: 'column_1', columns: ['column_2'] });
    expect(rows.columns).toEqual(['column_2']);
    expectCo2(rows);
    const tsv = await copyTo('headerless.tsv', `FORMAT csv, HEADER false, DELIMITER '\t'`, 'SELECT ts, co2, level FROM co2');
    const all = await load({ path: tsv, format: 'tsv', delimited: { hasHeader: false }, timeColumn: 'column_1' });
    expect(all.columns).toEqual(['column_2', 'column_3']);
    expect(await loadError({ path: tsv, format: 'tsv', delimited: { hasHeader: false } })).toBe(
      `${tsv}: time column "ts" not found (columns found: column_1, column_2, column_3); set time_column`,
    );
  });

  test('CRLF line ends and a byte order mark, with ; and tab delimiters', async () => {
    const lines = pairs.map(([ts, v]) => `${ts};${v}`);
    const semi = file('crlf-bom.csv');
    await writeFile(semi, `\uFEFFts;co2\r\n${lines.join('\r\n')}\r\n`);
    expectCo2(await load({ path: semi, format: 'csv', delimited: { delimiter: ';' } }));
    const tab = file('crlf-bom.tsv');
    await writeFile(tab, `\uFEFFts\tco2\r\n${lines.map((l) => l.replace(';', '\t')).join('\r\n')}\r\n`);
    expectCo2(await load({ path: tab, format: 'tsv' }));
  });
});

describe('JSON arrays and JSON lines written by DuckDB', () => {
  test('json_format array, jsonl, and told apart when unset', async () => {
    const array = await copyTo('co2-array.json', 'FORMAT json, ARRAY true');
    expect((await readFile(array, 'utf8')).trimStart().startsWith('[')).toBe(true);
    expectCo2(await load({ path: array, format: 'json', json: { layout: 'array' }, columns: ['co2'] }));
    expectCo2(await load({ path: array, format: 'json', columns: ['co2'] }));
    const lines = await copyTo('co2-lines.json', 'FORMAT json');
    expectCo2(await load({ path: lines, format: 'json', json: { layout: 'lines' }, columns: ['co2'] }));
    expectCo2(await load({ path: lines, format: 'json', columns: ['co2'] }));
    expectCo2(await load({ path: lines, format: 'jsonl', columns: ['co2'] }));
  });

  test('flatten_json names nested fields with "."', async () => {
    const nested = await copyTo('nested.json', 'FORMAT json, ARRAY true', `SELECT ts, {'co2': co2, 'site': {'level': level}} AS reading FROM co2`);
    const rows = await load({ path: nested, format: 'json', json: { flatten: true } });
    expect(rows.columns).toEqual(['reading.co2', 'reading.site.level']);
    expectCo2(rows, (v) => v, 2, 0);
    expectCo2(rows, Math.round, 2, 1);
    const co2 = await load({ path: nested, format: 'json', json: { flatten: true }, columns: ['reading.co2'] });
    expectCo2(co2);
    expect(await loadError({ path: nested, format: 'json', columns: ['reading.co2'] })).toBe(
      `${nested}: column "reading.co2" not found (columns found: ts, reading)`,
    );
  });

  test('the wrong layout names json_format', async () => {
    const array = await copyTo('wrong-array.json', 'FORMAT json, ARRAY true');
    expect(await loadError({ path: array, format: 'json', json: { layout: 'lines' } })).toBe(
      `${array}: line 1: the file holds a JSON array, not one object per line: set json_format: array`,
    );
    expect(await loadError({ path: array, format: 'jsonl' })).toBe(
      `${array}: line 1: the file holds a JSON array, not one object per line: use file_format: json with json_format: array`,
    );
    const lines = await copyTo('wrong-lines.json', 'FORMAT json');
    expect(await loadError({ path: lines, format: 'json', json: { layout: 'array' } })).toBe(
      `${lines}: expected a top-level JSON array (json_format: array); for one object per line set json_format: jsonl`,
    );
    const scalars = file('scalars.json');
    await writeFile(scalars, '[{"ts": "2020-01-01", "v": 1}, 2]');
    expect(await loadError({ path: scalars, format: 'json' })).toBe(`${scalars}: element 2 of the array: expected a JSON object`);
    const broken = file('broken.json');
    await writeFile(broken, '[{"ts": "2020-01-01", "v": 1}, {"ts": ');
    expect(await loadError({ path: broken, format: 'json' })).toMatch(new RegExp(`^${broken}: invalid JSON after element 1: `));
    const empty = file('empty.json');
    await writeFile(empty, ' \n');
    expect(await loadError({ path: empty, format: 'json' })).toBe(`${empty}: the file holds no rows`);
    const emptyArray = file('empty-array.json');
    await writeFile(emptyArray, '[]');
    expect(await loadError({ path: emptyArray, format: 'json' })).toBe(`${emptyArray}: the file holds no rows`);
  });
});

describe('file_compression_type: GZIP, BZIP2, XZ, ZSTD by the command-line tools', () => {
  for (const { tool, suffix, type } of COMPRESSION_TOOLS) {
    test(`${tool}: CSV, TSV, JSON array and JSON lines`, async () => {
      const csv = compressWith(tool, await copyTo(`z-${tool}.csv`, 'FORMAT csv, HEADER true'));
      expect(csv.endsWith(`.${suffix}`)).toBe(true);
      expectCo2(await load({ path: csv, format: 'csv', compression: type, columns: ['co2'] }));
      const tsv = compressWith(tool, await copyTo(`z-${tool}.tsv`, `FORMAT csv, HEADER true, DELIMITER '\t'`));
      expectCo2(await load({ path: tsv, format: 'tsv', compression: type, columns: ['co2'] }));
      const array = compressWith(tool, await copyTo(`z-${tool}-array.json`, 'FORMAT json, ARRAY true'));
      expectCo2(await load({ path: array, format: 'json', compression: type, columns: ['co2'] }));
      const lines = compressWith(tool, await copyTo(`z-${tool}.jsonl`, 'FORMAT json'));
      expectCo2(await load({ path: lines, format: 'jsonl', compression: type, columns: ['co2'] }));
    });

    test(`${tool}: read as text, or truncated, the error names file_compression_type`, async () => {
      const csv = compressWith(tool, await copyTo(`e-${tool}.csv`, 'FORMAT csv, HEADER true'));
      expect(await loadError({ path: csv, format: 'csv' })).toBe(`${csv}: the file is ${type}-compressed: set file_compression_type: ${type}`);
      const other = type === 'GZIP' ? 'ZSTD' : 'GZIP';
      expect(await loadError({ path: csv, format: 'csv', compression: other })).toBe(
        `${csv}: the file is not ${other}-compressed (file_compression_type: ${other}); it is ${type}-compressed: set file_compression_type: ${type}`,
      );
      const cut = file(`cut-${tool}.csv.${suffix}`);
      await copyFile(csv, cut);
      await truncate(cut, Math.floor((await stat(cut)).size / 2));
      expect(await loadError({ path: cut, format: 'csv', compression: type, columns: ['co2'] })).toMatch(
        new RegExp(`^${cut}: the ${type} data is corrupt or truncated \\(file_compression_type: ${type}\\): `),
      );
    });
  }

  test('DuckDB-written gzip and zstd CSV and JSON', async () => {
    expectCo2(await load({ path: await copyTo('duck.csv.gz', 'FORMAT csv, COMPRESSION gzip'), format: 'csv', compression: 'GZIP', columns: ['co2'] }));
    expectCo2(await load({ path: await copyTo('duck.csv.zst', 'FORMAT csv, COMPRESSION zstd'), format: 'csv', compression: 'ZSTD', columns: ['co2'] }));
    const json = await copyTo('duck.json.zst', 'FORMAT json, ARRAY true, COMPRESSION zstd');
    expectCo2(await load({ path: json, format: 'json', compression: 'ZSTD', columns: ['co2'] }));
  });

  test('a cancelled load of a compressed file stops with a clear error', async () => {
    const csv = compressWith('xz', await copyTo('cancel.csv', 'FORMAT csv'));
    const controller = new AbortController();
    controller.abort();
    await expect(new FileSource({ path: csv, format: 'csv', compression: 'XZ' }).loadAll(controller.signal)).rejects.toThrow(`${csv}: loading was cancelled`);
    const json = compressWith('gzip', await copyTo('cancel.json', 'FORMAT json, ARRAY true'));
    await expect(new FileSource({ path: json, format: 'json', compression: 'GZIP' }).loadAll(controller.signal)).rejects.toThrow(`${json}: loading was cancelled`);
  });

  test('plain text declared compressed, and a Parquet file read as CSV', async () => {
    const plain = await copyTo('plain.csv', 'FORMAT csv');
    expect(await loadError({ path: plain, format: 'csv', compression: 'XZ' })).toBe(
      `${plain}: the file is not XZ-compressed (file_compression_type: XZ); if it is plain CSV, leave out file_compression_type (or set it to UNCOMPRESSED)`,
    );
    const parquet = await copyTo('really.parquet', 'FORMAT parquet');
    expect(await loadError({ path: parquet, format: 'csv' })).toBe(`${parquet}: this is a Parquet file, not CSV: set file_format: parquet`);
  });
});

describe('misconfigured delimited files: the message names the parameter to set', () => {
  test('a ;-separated file read with the default delimiter names csv_delimiter', async () => {
    const target = await copyTo('semi-default.csv', `FORMAT csv, HEADER true, DELIMITER ';'`, 'SELECT ts, co2 FROM co2');
    expect(await loadError({ path: target, format: 'csv' })).toBe(
      `${target}: time column "ts" not found (columns found: ts;co2): the header looks ";"-separated: set csv_delimiter: ";"`,
    );
    const piped = await copyTo('pipe-default.csv', `FORMAT csv, HEADER true, DELIMITER '|'`, 'SELECT ts, co2 FROM co2');
    expect(await loadError({ path: piped, format: 'csv' })).toBe(
      `${piped}: time column "ts" not found (columns found: ts|co2): the header looks "|"-separated: set csv_delimiter: "|"`,
    );
  });

  test('a tab-separated file read as CSV, and a CSV read as TSV', async () => {
    const tsv = await copyTo('tabs.csv', `FORMAT csv, HEADER true, DELIMITER '\t'`, 'SELECT ts, co2 FROM co2');
    expect(await loadError({ path: tsv, format: 'csv' })).toBe(
      `${tsv}: time column "ts" not found (columns found: ts\tco2): the header looks tab-separated: set csv_delimiter: "\\t" (or file_format: tsv)`,
    );
    const csv = await copyTo('commas.tsv', 'FORMAT csv, HEADER true', 'SELECT ts, co2 FROM co2');
    expect(await loadError({ path: csv, format: 'tsv' })).toBe(
      `${csv}: time column "ts" not found (columns found: ts,co2): the header looks ","-separated, not tab-separated: use file_format: csv with csv_delimiter: ","`,
    );
  });

  test('a header-less file read with a header names csv_has_header (tsv_has_header for TSV)', async () => {
    const csv = await copyTo('no-header.csv', 'FORMAT csv, HEADER false', 'SELECT ts, co2 FROM co2');
    expect(await loadError({ path: csv, format: 'csv' })).toBe(
      `${csv}: time column "ts" not found (columns found: 1958-03-29 00:00:00, 316.1): the first line looks like data, not a header: set csv_has_header: false (the columns are then named column_1, column_2, ...)`,
    );
    const tsv = await copyTo('no-header.tsv', `FORMAT csv, HEADER false, DELIMITER '\t'`, 'SELECT ts, co2 FROM co2');
    expect(await loadError({ path: tsv, format: 'tsv', columns: ['co2'] })).toBe(
      `${tsv}: time column "ts" not found (columns found: 1958-03-29 00:00:00, 316.1): the first line looks like data, not a header: set tsv_has_header: false (the columns are then named column_1, column_2, ...)`,
    );
  });

  test('a header that fits is not second-guessed: the usual message stays', async () => {
    const csv = await copyTo('fits.csv', 'FORMAT csv, HEADER true', 'SELECT ts, co2 FROM co2');
    expect(await loadError({ path: csv, format: 'csv', timeColumn: 'time' })).toBe(
      `${csv}: time column "time" not found (columns found: ts, co2); set time_column`,
    );
  });
});
