/**
 * The fast path for large delimited files: DuckDB's CSV reader splits and converts the cells on its own
 * native thread, and the numbers are copied out of its result vectors into the typed arrays a snapshot holds,
 * instead of csv-parse building a JavaScript string for every cell (which made a 57 MB file take 15-20 s).
 *
 * It is taken only where its answer is provably the one the csv-parse reader (file-readers.ts) would give:
 * nothing is sniffed. Every column is read as text with the dialect given explicitly, and each cell used is
 * accepted only when DuckDB's number parsing and ours agree on it (see `valueCell` and `timeCell`); any
 * other cell, any row DuckDB rejects, and any file outside the cases below make it decline, and the caller
 * then reads the file with the csv-parse reader, so rows, missing values and error messages stay the same.
 *
 * Taken for: an uncompressed regular file read whole, with or without a header, "," ";" "|" or tab as the
 * delimiter, '"' or "'" as the quote and no escape character, and times that are numbers (unix_seconds,
 * unix_millis, or time_format unset with numeric times). ISO 8601 times go to the csv-parse reader.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { DuckDBConnection, DuckDBDataChunk, DuckDBInstance } from '@duckdb/node-api';
import { parse as parseCsv } from 'csv-parse';
import { ForecastdError } from '../errors.js';
import { csvParseOptions, type TextFile } from './file-readers.js';
import type { DelimitedTextOptions } from './file-format.js';
import { GrowableRows, rowLimit, tooManyCells } from './limits.js';
import { RowCollector, type RowSpec } from './row-collector.js';
import type { LoadedRows } from './types.js';

/**
 * DuckDB threads per read. One: on the shared 2-core machine the bench ran on, a second thread saved at most
 * 0.4 s of start→ready (none in the committed run) but pushed the predict route's p99 during a refresh to
 * 2.3-4.2× idle with stalls near 0.5 s, against 1.5-1.9× and under 0.1 s, and held more memory
 * (bench/results/dataset-refresh-2026-11-30-duckdb.md): a refresh must not starve serving. Rows keep their
 * file order with any count (preserve_insertion_order), which decides which of two equal timestamps wins.
 * FORECASTD_DUCKDB_THREADS sets another count (a whole number from 1) for hosts with cores to spare.
 */
const DUCKDB_READ_THREADS = readThreads(process.env['FORECASTD_DUCKDB_THREADS']);

function readThreads(text: string | undefined): number {
  const n = Number(text);
  return text !== undefined && Number.isInteger(n) && n >= 1 ? n : 1;
}

/**
 * DuckDB's own memory for one read: the result streams out chunk by chunk into the dataset's typed arrays, so
 * DuckDB holds only its CSV buffers and a few chunks; its limit follows max_cells (8 bytes a cell, as the
 * rows themselves take) with a floor for the buffers, and is a limit, not a reservation. Nothing spills to
 * disk (no temp_directory: DuckDB's default writes into the working directory): a read that needs more
 * declines. Streaming is about 15% slower than materializing the result, which held every cell twice.
 */
function duckDbMemoryLimit(maxCells: number): string {
  const mib = Math.ceil(Math.min(maxCells * 8, 1024 ** 3) / 1024 ** 2) + 256;
  return `${mib}MiB`;
}

/** Glob characters: DuckDB would read a path holding them as a pattern, not as the one file it names. */
const GLOB_CHARACTERS = /[*?[\]{}]/;

const FAST_DELIMITERS = new Set([',', ';', '|', '\t']);
const FAST_QUOTES = new Set(['"', "'"]);
/** Beyond what Date can represent; such a time is an error (parse-values.ts). */
const MAX_DATE_MS = 8.64e15;

/** Why the fast path was not taken, for the log; the rows then come from the csv-parse reader. */
export type FastReadOutcome = { readonly rows: LoadedRows } | { readonly declined: string };

/** Reads `file` with DuckDB when it can give exactly the csv-parse reader's rows; else says why not. */
export async function readDelimitedWithDuckDb(
  file: TextFile,
  spec: RowSpec,
  dialect: DelimitedTextOptions,
  signal: AbortSignal,
): Promise<FastReadOutcome> {
  const unsupported = unsupportedCase(file, spec, dialect);
  if (unsupported !== null) return { declined: unsupported };
  // A pipe or a device would block DuckDB's reader where a cancellation cannot reach it.
  const loading = loadDuckDb(); // loads while the first record is read
  const info = await stat(file.path).catch(() => null);
  if (info === null || !info.isFile()) return { declined: 'not a regular file' };
  const first = await firstRecord(file.path, dialect, spec.limits.maxRecordBytes);
  if (first === null) return { declined: 'no first record' };
  const names = dialect.hasHeader ? first : first.map((_, i) => `column_${i + 1}`);
  if (dialect.hasHeader && new Set(names).size !== names.length) return { declined: 'duplicate header names' };
  let collector: RowCollector;
  try {
    collector = new RowCollector(spec, names);
  } catch {
    return { declined: 'the header does not fit the dataset' };
  }
  const engine = await loading;
  if (engine === null) return { declined: 'DuckDB could not be loaded' };
  if (signal.aborted) throw cancelled(spec);
  let instance: DuckDBInstance;
  try {
    instance = await engine.api.DuckDBInstance.create(':memory:', {
      threads: String(DUCKDB_READ_THREADS),
      memory_limit: duckDbMemoryLimit(spec.limits.maxCells),
      preserve_insertion_order: 'true',
      temp_directory: '',
      autoinstall_known_extensions: 'false',
      autoload_known_extensions: 'false',
    });
  } catch (err) {
    return { declined: `DuckDB could not start: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}` };
  }
  try {
    const connection = await instance.connect();
    const interrupt = (): void => connection.interrupt();
    signal.addEventListener('abort', interrupt, { once: true });
    try {
      const csv = (header: boolean): string => readCsvCall(file.path, dialect, header, first.length, spec.limits.maxRecordBytes);
      // The same first record as csv-parse found, so both split the file alike from the start.
      const head = await connection.runAndReadAll(`SELECT * FROM ${csv(false)} LIMIT 1`);
      const headCells = (head.getRows()[0] ?? []).map((cell) => (typeof cell === 'string' ? cell.trim() : null));
      if (headCells.length !== first.length || headCells.some((cell, i) => cell !== first[i])) {
        return { declined: 'DuckDB reads the first record differently' };
      }
      const timeSql = timeCell(collector.timeIndex, spec);
      const valueSql = collector.valueIndices.map((i) => valueCell(i));
      const read = new Set([collector.timeIndex, ...collector.valueIndices]);
      const unread = first.map((_, i) => i).filter((i) => !read.has(i));
      const checks = unread.length === 0 ? [] : [unquotedText(unread.map(columnName), dialect.quote)];
      // Each cell is cast once, in the inner query; the outer one decides what the cast is worth.
      const cells = first.map((_, i) => (read.has(i) ? `${columnName(i)}, TRY_CAST(${columnName(i)} AS DOUBLE) AS ${castName(i)}` : columnName(i))).join(', ');
      const outputs = [`${timeSql} AS t`, ...valueSql.map((v, j) => `${v} AS v${j}`), ...checks.map((c, k) => `${c} AS k${k}`)];
      // Rows older than retention are left out, but not one with a NULL cell: csv-parse reads every row, and
      // declining is the only way to give its error. One row past max_cells is enough to know the limit is
      // passed.
      const kept = [`t >= ${spec.notBeforeMs}`, 't IS NULL', ...valueSql.map((_, j) => `v${j} IS NULL`), ...checks.map((_, k) => `k${k} IS NULL`)];
      const cutoff = spec.notBeforeMs === null ? '' : ` WHERE ${kept.join(' OR ')}`;
      const allowed = rowLimit(spec.limits.maxCells, collector.columns.length);
      const query =
        `SELECT * FROM (SELECT ${outputs.join(', ')} FROM (SELECT ${cells} FROM ${csv(dialect.hasHeader)}))${cutoff} LIMIT ${allowed + 1}`;
      const rows = await copyResult(engine.bindings, connection, query, collector.columns, checks.length, allowed, signal);
      if (rows === 'over the limit') throw tooManyCells(spec.origin, spec.limits.maxCells);
      return rows === null ? { declined: 'a cell is not read the same way' } : { rows };
    } catch (err) {
      if (signal.aborted) throw cancelled(spec);
      if (err instanceof ForecastdError) throw err;
      return { declined: `DuckDB rejected the file: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}` };
    } finally {
      signal.removeEventListener('abort', interrupt);
      connection.closeSync();
    }
  } finally {
    instance.closeSync();
  }
}

type DuckDbApi = typeof import('@duckdb/node-api');
type DuckDbBindings = typeof import('@duckdb/node-bindings');
interface DuckDbEngine {
  readonly api: DuckDbApi;
  readonly bindings: DuckDbBindings;
}

let engine: Promise<DuckDbEngine | null> | null = null;

/**
 * DuckDB, loaded on first use: its prebuilt binary is an optional dependency of its npm package, so a
 * platform without one still reads every file, with csv-parse.
 */
function loadDuckDb(): Promise<DuckDbEngine | null> {
  engine ??= Promise.all([import('@duckdb/node-api'), import('@duckdb/node-bindings')]).then(
    // The bindings are CommonJS around a .node file: Node gives them as the default export only.
    ([api, bindings]) => ({ api, bindings: (bindings as { default?: DuckDbBindings }).default ?? bindings }),
    () => null,
  );
  return engine;
}

/** Loads DuckDB now rather than on the first read; never fails (a read then uses csv-parse). */
export async function preloadDuckDb(): Promise<void> {
  await loadDuckDb();
}

function cancelled(spec: RowSpec): ForecastdError {
  return new ForecastdError('ERR_DATASET', `${spec.origin}: loading was cancelled`);
}

function unsupportedCase(file: TextFile, spec: RowSpec, dialect: DelimitedTextOptions): string | null {
  if (file.format !== 'csv' && file.format !== 'tsv') return `format ${file.format}`;
  if (file.compression !== 'UNCOMPRESSED') return `compression ${file.compression}`;
  if (file.end !== undefined) return 'a partial read';
  if (spec.timeFormat === 'iso8601') return 'ISO 8601 times';
  if (GLOB_CHARACTERS.test(file.path)) return 'a file name with glob characters';
  if (!FAST_DELIMITERS.has(dialect.delimiter)) return `delimiter ${JSON.stringify(dialect.delimiter)}`;
  if (!FAST_QUOTES.has(dialect.quote) || dialect.quote === dialect.delimiter) return `quote ${JSON.stringify(dialect.quote)}`;
  if (dialect.escape !== null && dialect.escape !== dialect.quote) return `escape ${JSON.stringify(dialect.escape)}`;
  return null;
}

/**
 * The first record as the csv-parse reader sees it (header names, or the first row's cells); null when there
 * is none or it is longer than max_record_bytes (the csv-parse reader then says so).
 */
async function firstRecord(path: string, dialect: DelimitedTextOptions, maxRecordBytes: number): Promise<string[] | null> {
  const input = createReadStream(path, { highWaterMark: 64 * 1024 });
  const parser = parseCsv({ ...csvParseOptions(dialect), to: 1, max_record_size: maxRecordBytes });
  input.on('error', (err) => parser.destroy(err));
  input.pipe(parser);
  try {
    for await (const record of parser as AsyncIterable<string[]>) return record;
    return null;
  } catch {
    return null;
  } finally {
    input.destroy();
  }
}

function sqlString(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

function columnName(sourceIndex: number): string {
  return `c${sourceIndex + 1}`;
}

/** The column's cells cast to DOUBLE (NULL where the cast fails). */
function castName(sourceIndex: number): string {
  return `x${sourceIndex + 1}`;
}

/**
 * read_csv with nothing left to detection: every column text, rows of another width an error, a line longer
 * than max_record_bytes an error (the csv-parse reader then names it).
 */
function readCsvCall(path: string, dialect: DelimitedTextOptions, header: boolean, width: number, maxLineBytes: number): string {
  const columns = Array.from({ length: width }, (_, i) => `${sqlString(columnName(i))}: 'VARCHAR'`).join(', ');
  const quote = sqlString(dialect.quote);
  return (
    `read_csv(${sqlString(path)}, auto_detect = false, header = ${header}, delim = ${sqlString(dialect.delimiter)}, ` +
    `quote = ${quote}, escape = ${quote}, strict_mode = true, null_padding = false, ignore_errors = false, ` +
    `max_line_size = ${maxLineBytes}, ` +
    `columns = {${columns}})`
  );
}

/*
 * DuckDB's VARCHAR→DOUBLE cast and the reader's DECIMAL pattern + Number() (parse-values.ts) were compared
 * cell by cell (test/datasets/duckdb-csv-reader.test.ts): both round correctly and skip ASCII whitespace
 * around the number; the cast alone also takes "1_000", "+-1" (it skips a "+", then reads a signed number),
 * "inf", "infinity" and "nan" in any case and sign. So a cell counts only when it has no "_" and no "+-" and
 * casts to a finite number; the reader's spellings of a missing value become NaN; anything else is NULL, which
 * makes the whole read decline.
 */
function valueCell(sourceIndex: number): string {
  const [text, number] = [columnName(sourceIndex), castName(sourceIndex)];
  // The usual cell, a number, is tested first: the other branch runs only for the rows left.
  return (
    `CASE WHEN isfinite(${number}) AND NOT contains(${text}, '_') AND NOT contains(${text}, '+-') THEN ${number} ` +
    `WHEN ${text} IS NULL OR lower(${text}) IN ('', 'nan', 'null', 'na', 'n/a', 'none') THEN 'NaN'::DOUBLE END`
  );
}

/**
 * Columns that are not read must still hold what csv-parse accepts: DuckDB takes a quote inside an unquoted
 * cell (ab"c) as text where csv-parse refuses the file. A quote in such a cell makes the read decline (a
 * properly doubled one too: csv-parse then reads the file). NULL when one is found, else 0.
 */
function unquotedText(columns: readonly string[], quote: string): string {
  const found = columns.map((c) => `contains(${c}, ${sqlString(quote)})`).join(' OR ');
  return `CASE WHEN ${found} THEN NULL ELSE 0::DOUBLE END`;
}

/** Epoch ms from a numeric time, with the same multiplication and range as parseTimeValue; else NULL. */
function timeCell(sourceIndex: number, spec: RowSpec): string {
  const [text, number] = [columnName(sourceIndex), castName(sourceIndex)];
  const ms = spec.timeFormat === 'unix_millis' ? number : `(${number} * 1000)`;
  return `CASE WHEN abs(${ms}) <= ${MAX_DATE_MS} AND NOT contains(${text}, '_') AND NOT contains(${text}, '+-') THEN ${ms} END`;
}

/**
 * Streams the result (time, each value column, then `checks` columns that only flag NULLs) into LoadedRows:
 * each chunk's doubles straight from DuckDB's vectors into the growing typed arrays, the values interleaved
 * row-major. Null when any cell is NULL (not read the same way); 'over the limit' past `allowed` rows.
 */
async function copyResult(
  duckdb: DuckDbBindings,
  connection: DuckDBConnection,
  query: string,
  columns: readonly string[],
  checks: number,
  allowed: number,
  signal: AbortSignal,
): Promise<LoadedRows | null | 'over the limit'> {
  const result = await connection.stream(query);
  const width = columns.length;
  const rows = new GrowableRows(width, allowed);
  for (;;) {
    const chunk = await result.fetchChunk();
    if (chunk === null || chunk.rowCount === 0) break;
    if (signal.aborted) throw new Error('cancelled');
    const n = chunk.rowCount;
    for (let k = 0; k < checks; k++) if (doubles(duckdb, chunk, 1 + width + k, n) === null) return null;
    const time = doubles(duckdb, chunk, 0, n);
    if (time === null) return null;
    const values: Float64Array[] = [];
    for (let c = 0; c < width; c++) {
      const column = doubles(duckdb, chunk, c + 1, n);
      if (column === null) return null;
      values.push(column);
    }
    for (let i = 0; i < n; i++) {
      if (rows.full) return 'over the limit';
      const at = rows.startRow(time[i] as number);
      for (let c = 0; c < width; c++) rows.set(at + c, (values[c] as Float64Array)[i] as number);
    }
  }
  return rows.finish(columns);
}

/** A DOUBLE column of a chunk as a view on DuckDB's memory (valid until the next fetch); null if any NULL. */
function doubles(duckdb: DuckDbBindings, chunk: DuckDBDataChunk, column: number, rows: number): Float64Array | null {
  const vector = duckdb.data_chunk_get_vector(chunk.chunk, column);
  const validity = duckdb.vector_get_validity(vector, Math.ceil(rows / 64) * 8);
  if (validity !== null && !allValid(validity, rows)) return null;
  const data = duckdb.vector_get_data(vector, rows * Float64Array.BYTES_PER_ELEMENT);
  return new Float64Array(data.buffer, data.byteOffset, rows);
}

/** DuckDB's validity mask: bit i (little-endian 64-bit words) set when row i is not NULL. */
function allValid(mask: Uint8Array, rows: number): boolean {
  const full = rows >>> 3;
  for (let i = 0; i < full; i++) if (mask[i] !== 0xff) return false;
  const rest = rows & 7;
  return rest === 0 || ((mask[full] as number) & ((1 << rest) - 1)) === (1 << rest) - 1;
}
