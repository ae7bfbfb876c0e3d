/**
 * The fast path for large delimited files: DuckDB's CSV reader splits and converts the cells on its own
 * native thread, and the numbers are copied out of its result vectors into the typed arrays a snapshot holds,
 * instead of csv-parse building a JavaScript string for every cell (which made a 57 MB file take 15-20 s).
 *
 * It is taken only where its answer is provably the one the csv-parse reader (file-readers.ts) would give:
 * nothing is sniffed, the dialect and every column's type are given explicitly. The columns read are first
 * read as DOUBLE by DuckDB's CSV reader itself (no text kept per cell), which is exact where every cell is a
 * finite number or empty, and the file's rows hold no "_" and no "+-" (the two spellings DuckDB's number
 * parser takes and ours refuses; see `typedQuery`). A file where that does not hold is read again with the
 * columns as text and each cell accepted only when DuckDB's number parsing and ours agree on it (see
 * `valueCell` and `timeCell`), which also reads the spellings of a missing value. Any other cell, any row
 * DuckDB rejects, and any file outside the cases below make it decline, and the caller then reads the file
 * with the csv-parse reader, so rows, missing values and error messages stay the same. DuckDB's rows must
 * also end with the file's last records as csv-parse reads them (tailRecords): DuckDB can lose an error in
 * the last lines of a file and end its read early without one.
 *
 * Taken for: an uncompressed regular file read whole, with or without a header, "," ";" "|" or tab as the
 * delimiter, '"' or "'" as the quote and no escape character, and times that are numbers (unix_seconds,
 * unix_millis, or time_format unset with numeric times). ISO 8601 times go to the csv-parse reader.
 */
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import type { DuckDBConnection, DuckDBDataChunk, DuckDBInstance, DuckDBResult } from '@duckdb/node-api';
import { parse as parseCsv } from 'csv-parse';
import { parse as parseCsvSync } from 'csv-parse/sync';
import { ForecastdError } from '../errors.js';
import { csvParseOptions, type TextFile } from './file-readers.js';
import type { DelimitedTextOptions } from './file-format.js';
import { GrowableRows, rowLimit, tooManyCells } from './limits.js';
import { parseNumericValue, parseTimeValue } from './parse-values.js';
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

/**
 * The options of the DuckDB instance each read starts. Besides the thread count and the memory limit:
 * `allocator_bulk_deallocation_flush_threshold` at 0 makes DuckDB hand the memory its allocator holds freed
 * back to the system each time its buffer pool gives out memory, which in a read is once per CSV buffer
 * (READ_BUFFER_BYTES of the file). Without it, the chunks a read has finished with (about 380 KiB each, freed
 * only when V8 collects their JavaScript wrappers) stay resident in DuckDB's allocator, and a 10,000,000 ×
 * 15 file peaked 180-196 MiB above its rows and the process, against about 70 with it; memory_limit does
 * not reach that memory, which is outside the buffer pool (docs/performance.md, "A dataset past its limits").
 */
export function duckDbOptions(maxCells: number): Record<string, string> {
  return {
    threads: String(DUCKDB_READ_THREADS),
    memory_limit: duckDbMemoryLimit(maxCells),
    allocator_bulk_deallocation_flush_threshold: '0 bytes',
    preserve_insertion_order: 'true',
    temp_directory: '',
    autoinstall_known_extensions: 'false',
    autoload_known_extensions: 'false',
  };
}

/** Glob characters: DuckDB would read a path holding them as a pattern, not as the one file it names. */
const GLOB_CHARACTERS = /[*?[\]{}]/;

const FAST_DELIMITERS = new Set([',', ';', '|', '\t']);
const FAST_QUOTES = new Set(['"', "'"]);
/** Beyond what Date can represent; such a time is an error (parse-values.ts). */
const MAX_DATE_MS = 8.64e15;

/**
 * The rows and which read gave them (`typed`: the read columns converted by DuckDB's CSV reader; `text`:
 * read as text and cast), or why the fast path was not taken, for the log; the rows then come from the
 * csv-parse reader.
 */
export type FastReadOutcome = { readonly rows: LoadedRows; readonly read: 'typed' | 'text' } | { readonly declined: string };

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
    instance = await engine.api.DuckDBInstance.create(':memory:', duckDbOptions(spec.limits.maxCells));
  } catch (err) {
    return { declined: `DuckDB could not start: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}` };
  }
  try {
    const connection = await instance.connect();
    const interrupt = (): void => connection.interrupt();
    signal.addEventListener('abort', interrupt, { once: true });
    try {
      const read = new Set([collector.timeIndex, ...collector.valueIndices]);
      const unread = first.map((_, i) => i).filter((i) => !read.has(i));
      const checks = unread.length === 0 ? [] : [unquotedText(unread.map(columnName), dialect.quote)];
      const allowed = rowLimit(spec.limits.maxCells, collector.columns.length);
      const query: ReadQuery = { path: file.path, dialect, first, spec, timeIndex: collector.timeIndex, valueIndices: collector.valueIndices, checks, allowed };
      // The same first record as csv-parse found, so both split the file alike from the start.
      const head = await connection.runAndReadAll(`SELECT * FROM ${readCsvCall(query, false, () => 'VARCHAR', headBufferBytes(spec))} LIMIT 1`);
      const headCells = (head.getRows()[0] ?? []).map((cell) => (typeof cell === 'string' ? cell.trim() : null));
      if (headCells.length !== first.length || headCells.some((cell, i) => cell !== first[i])) {
        return { declined: 'DuckDB reads the first record differently' };
      }
      const rows = new GrowableRows(collector.columns.length, allowed);
      // Searched beside DuckDB's read: whether the typed read can be exact for this file.
      const scan = { unsafe: null as boolean | null };
      const scanned = holdsUnsafeNumberText(file.path, dialect, signal).then((unsafe) => {
        scan.unsafe = unsafe;
      });
      scanned.catch(() => undefined); // awaited below, where a failure declines
      // The file's last records, as csv-parse reads them: what DuckDB's rows must end with (see tailRecords).
      const tail = tailRecords(file.path, query);
      tail.catch(() => undefined); // awaited below, where a failure declines
      let outcome = await copyTyped(engine.bindings, connection, query, rows, () => scan.unsafe === true, signal);
      await scanned;
      const last = await tail.catch(() => null);
      if (last === null) return { declined: 'the last records could not be read' };
      // A typed read whose rows stop short of the file's end met a cell it could not convert (an error DuckDB
      // lost: see endsWith); the text read takes such cells.
      if (outcome === 'done' && !endsWith(rows, last)) outcome = 'retry as text';
      let how: 'typed' | 'text' = 'typed';
      if (outcome === 'retry as text' || (scan.unsafe === true && outcome !== 'declined')) {
        rows.clear();
        how = 'text';
        outcome = await copyText(engine.bindings, connection, query, rows, signal);
        if (outcome === 'done' && !endsWith(rows, last)) return { declined: 'DuckDB\'s rows do not end with the file\'s last records' };
      }
      if (outcome === 'over the limit') throw tooManyCells(spec.origin, spec.limits.maxCells);
      return outcome === 'declined' ? { declined: 'a cell is not read the same way' } : { rows: rows.finish(collector.columns), read: how };
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

/** What both reads of a file need. */
interface ReadQuery {
  readonly path: string;
  readonly dialect: DelimitedTextOptions;
  /** The first record (its length is the file's width). */
  readonly first: readonly string[];
  readonly spec: RowSpec;
  readonly timeIndex: number;
  readonly valueIndices: readonly number[];
  /** SQL flagging (as NULL) a row whose columns not read hold what csv-parse refuses. */
  readonly checks: readonly string[];
  /** Rows allowed by max_cells. */
  readonly allowed: number;
}

/**
 * read_csv with nothing left to detection: each column's type given (`typeOf`), rows of another width an
 * error, a line longer than max_record_bytes an error (the csv-parse reader then names it).
 */
function readCsvCall(q: ReadQuery, header: boolean, typeOf: (sourceIndex: number) => 'VARCHAR' | 'DOUBLE', bufferBytes: number | null = null): string {
  const columns = q.first.map((_, i) => `${sqlString(columnName(i))}: '${typeOf(i)}'`).join(', ');
  const quote = sqlString(q.dialect.quote);
  return (
    `read_csv(${sqlString(q.path)}, auto_detect = false, header = ${header}, delim = ${sqlString(q.dialect.delimiter)}, ` +
    `quote = ${quote}, escape = ${quote}, strict_mode = true, null_padding = false, ignore_errors = false, ` +
    `max_line_size = ${q.spec.limits.maxRecordBytes}, ${bufferBytes === null ? '' : `buffer_size = ${bufferBytes}, `}` +
    `columns = {${columns}})`
  );
}

/**
 * The buffer for reading only the first record: DuckDB reads a whole buffer before the first row (32 MB by
 * default, 20-35 ms of the bench file); two records' worth is enough. Null (the default) where that would
 * not be smaller.
 */
function headBufferBytes(spec: RowSpec): number | null {
  const bytes = Math.max(2 * 1024 * 1024, 2 * spec.limits.maxRecordBytes);
  return bytes < 32 * 1024 * 1024 ? bytes : null;
}

/** The CSV buffer of a whole read, where max_record_bytes allows (see readBufferBytes). */
const READ_BUFFER_BYTES = 8 * 1024 * 1024;

/**
 * The CSV buffer for reading the whole file: 8 MiB instead of DuckDB's 32 MB, which one reader thread does
 * not need and which lowered the peak by 10-30 MiB; at least two records' worth, as for the first record.
 * 2 MiB gave no lower peak, and each buffer also returns DuckDB's freed memory to the system
 * (duckDbOptions), which costs more the more buffers a file takes. Null (the default) where that would not
 * be smaller.
 */
export function readBufferBytes(spec: RowSpec): number | null {
  const bytes = Math.max(READ_BUFFER_BYTES, 2 * spec.limits.maxRecordBytes);
  return bytes < 32 * 1024 * 1024 ? bytes : null;
}

/** Epoch ms of a numeric time column `number` (DOUBLE): the same multiplication as parseTimeValue. */
function timeMs(number: string, spec: RowSpec): string {
  return spec.timeFormat === 'unix_millis' ? number : `(${number} * 1000)`;
}

/**
 * The query over `source` (read_csv, or a query over it, giving columns c1..cN) that leaves out rows older
 * than retention, keeping every row that `suspect` (SQL over the outputs) flags, so that a cell csv-parse
 * would refuse is seen even in a row retention drops; and one row past max_cells, which is enough to know
 * the limit is passed.
 */
function rowsQuery(q: ReadQuery, source: string, outputs: readonly string[], suspect: readonly string[]): string {
  // The cutoff as a string cast to DOUBLE: DuckDB reads a bare literal such as -0.016137508713243282 as a DECIMAL
  // and compares in that type, which can round a row's time across it; JavaScript's shortest decimal read back
  // by DuckDB's (correctly rounded) parser is the very double csv-parse's reader compares with.
  const cutoff = q.spec.notBeforeMs === null ? '' : ` WHERE ${[`t >= ${sqlString(String(q.spec.notBeforeMs))}::DOUBLE`, ...suspect].join(' OR ')}`;
  return `SELECT * FROM (SELECT ${outputs.join(', ')} FROM ${source})${cutoff} LIMIT ${q.allowed + 1}`;
}

/**
 * The typed read: the time and value columns as DOUBLE, converted by DuckDB's CSV reader. Its number parser
 * (TryDoubleCast: ASCII whitespace, an optional "+", then fast_float) reads every cell csv-parse's DECIMAL
 * pattern + Number() reads, to the same double (both round correctly; -0 stays -0), and takes only these
 * besides: "inf"/"infinity"/"nan" in any case and sign (seen here as non-finite values, which send the file
 * to the text read), digits with "_" between them ("1_000") and a second sign after "+" ("+-1"). The last two
 * cannot be told from the values, so the file's rows are searched for "_" and "+-" (holdsUnsafeNumberText)
 * while DuckDB reads, and a file holding either is read as text. Checked cell by cell against the csv-parse
 * reader (test/datasets/duckdb-csv-reader.property.test.ts). An empty cell is NULL: a missing value (NaN),
 * as csv-parse reads it; any other cell DuckDB cannot convert is a conversion error, and the file is read
 * as text, which knows the spellings of a missing value.
 */
function typedQuery(q: ReadQuery): string {
  const read = new Set([q.timeIndex, ...q.valueIndices]);
  const csv = readCsvCall(q, q.dialect.hasHeader, (i) => (read.has(i) ? 'DOUBLE' : 'VARCHAR'), readBufferBytes(q.spec));
  const t = timeMs(columnName(q.timeIndex), q.spec);
  const outputs = [`${t} AS t`, ...q.valueIndices.map((i, j) => `${columnName(i)} AS v${j}`), ...q.checks.map((c, k) => `${c} AS k${k}`)];
  const suspect = [
    `NOT (abs(t) <= ${MAX_DATE_MS})`,
    't IS NULL',
    ...q.valueIndices.map((_, j) => `NOT isfinite(v${j})`),
    ...q.checks.map((_, k) => `k${k} IS NULL`),
  ];
  return rowsQuery(q, csv, outputs, suspect);
}

/** The text read: every column VARCHAR, each cell cast once, the cast judged by valueCell and timeCell. */
function textQuery(q: ReadQuery): string {
  const read = new Set([q.timeIndex, ...q.valueIndices]);
  const csv = readCsvCall(q, q.dialect.hasHeader, () => 'VARCHAR', readBufferBytes(q.spec));
  // Each cell is cast once, in the inner query; the outer one decides what the cast is worth.
  const cells = q.first.map((_, i) => (read.has(i) ? `${columnName(i)}, TRY_CAST(${columnName(i)} AS DOUBLE) AS ${castName(i)}` : columnName(i))).join(', ');
  const outputs = [
    `${timeCell(q.timeIndex, q.spec)} AS t`,
    ...q.valueIndices.map((i, j) => `${valueCell(i)} AS v${j}`),
    ...q.checks.map((c, k) => `${c} AS k${k}`),
  ];
  const suspect = ['t IS NULL', ...q.valueIndices.map((_, j) => `v${j} IS NULL`), ...q.checks.map((_, k) => `k${k} IS NULL`)];
  return rowsQuery(q, `(SELECT ${cells} FROM ${csv})`, outputs, suspect);
}

/*
 * DuckDB's VARCHAR→DOUBLE cast and the reader's DECIMAL pattern + Number() (parse-values.ts) were compared
 * cell by cell (test/datasets/duckdb-csv-reader.test.ts): both round correctly and skip ASCII whitespace
 * around the number; the cast alone also takes "1_000", "+-1", "inf", "infinity" and "nan" in any case and
 * sign. So a cell counts only when it has no "_" and no "+-" and casts to a finite number; the reader's
 * spellings of a missing value become NaN; anything else is NULL, which makes the whole read decline.
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
  const ms = timeMs(number, spec);
  return `CASE WHEN abs(${ms}) <= ${MAX_DATE_MS} AND NOT contains(${text}, '_') AND NOT contains(${text}, '+-') THEN ${ms} END`;
}

/** The bytes of the file's end read first to find its last records (csv-parse takes a few ms for 16 KiB, beside DuckDB's read); more when they hold no whole record. */
const TAIL_BYTES = 16 * 1024;

/**
 * The file's last records as the csv-parse reader reads them, converted by the same parsers: the times and
 * values of those retention keeps (in file order), `whole` when they are every record of the file. Null when
 * that cannot be told: a record csv-parse or the parsers refuse (DuckDB lost its error: the file is csv-parse's
 * to read and report), a record of another width, or no record found within two of the longest records allowed.
 *
 * Why: DuckDB (1.5) drops the error of a bad last line, and @duckdb/node-api does not check a streamed result's
 * error when a fetch returns no chunk, so a read that failed in a later buffer ends as if the file ended there,
 * with fewer rows and no error. DuckDB's rows must end with these records, or its read is not trusted
 * (endsWith). The tail is taken from just after a line break; a quoted field spanning lines across that point
 * can be misread, which can only make the records differ, and the read then goes to csv-parse.
 */
async function tailRecords(path: string, q: ReadQuery): Promise<{ times: number[]; values: number[][]; whole: boolean } | null> {
  const handle = await open(path, 'r');
  try {
    const size = (await handle.stat()).size;
    const most = 2 * q.spec.limits.maxRecordBytes + TAIL_BYTES;
    for (let want = TAIL_BYTES; ; want *= 2) {
      const length = Math.min(size, want, most);
      const start = size - length;
      const bytes = Buffer.alloc(length);
      const { bytesRead } = await handle.read(bytes, 0, length, start);
      if (bytesRead !== length) return null; // the file shrank while read
      let from = 0;
      if (start > 0) {
        // From just after the first line break: the rest are whole lines (a CR alone where no LF is found).
        const lf = bytes.indexOf(LF);
        const cr = lf === -1 ? bytes.indexOf(CR) : -1;
        from = lf !== -1 ? lf + 1 : cr !== -1 ? cr + 1 : length;
      }
      let records: string[][];
      try {
        records = parseCsvSync(bytes.subarray(from), { ...csvParseOptions(q.dialect), bom: start === 0 }) as string[][];
      } catch {
        return null;
      }
      if (start === 0 && q.dialect.hasHeader) records = records.slice(1);
      const grow = records.length === 0 && start > 0 && length < most;
      if (grow) continue;
      if (records.length === 0 && start > 0) return null;
      const times: number[] = [];
      const values: number[][] = [];
      for (const record of records) {
        if (record.length !== q.first.length) return null;
        const time = parseTimeValue(record[q.timeIndex], q.spec.timeFormat);
        if (Number.isNaN(time)) return null;
        const row = q.valueIndices.map((i) => parseNumericValue(record[i]));
        if (row.some((v) => v === null)) return null;
        if (q.spec.notBeforeMs !== null && time < q.spec.notBeforeMs) continue;
        times.push(time);
        values.push(row as number[]);
      }
      // Records that retention all leaves out prove nothing about where DuckDB's read ended.
      if (times.length === 0 && start > 0) return null;
      return { times, values, whole: start === 0 };
    }
  } finally {
    await handle.close();
  }
}

/**
 * Whether DuckDB's rows end with the file's last records, the same times and values (NaN equal to NaN), and,
 * where those are every record, are no more than them: a read that stopped early, or lost its last line, ends
 * with other rows (its last row is far from the file's last record).
 */
function endsWith(rows: GrowableRows, last: { times: readonly number[]; values: readonly (readonly number[])[]; whole: boolean }): boolean {
  const k = last.times.length;
  if (rows.rows < k || (last.whole && rows.rows !== k)) return false;
  const from = rows.rows - k;
  for (let j = 0; j < k; j++) {
    if (rows.timeAt(from + j) !== last.times[j]) return false;
    const row = last.values[j] as readonly number[];
    for (let c = 0; c < row.length; c++) {
      const [a, b] = [rows.valueAt(from + j, c), row[c] as number];
      if (a !== b && !(Number.isNaN(a) && Number.isNaN(b))) return false;
    }
  }
  return true;
}

/** How a read ended, the rows being in the GrowableRows it was given. */
type ReadEnd = 'done' | 'over the limit' | 'declined';

/**
 * The typed read into `rows`: 'retry as text' when a cell is not a finite number or empty (or DuckDB cannot
 * convert one), or once `unsafe()` says the file holds text the typed read could take wrongly.
 */
async function copyTyped(
  duckdb: DuckDbBindings,
  connection: DuckDBConnection,
  q: ReadQuery,
  rows: GrowableRows,
  unsafe: () => boolean,
  signal: AbortSignal,
): Promise<ReadEnd | 'retry as text'> {
  let result: DuckDBResult;
  try {
    result = await connection.stream(typedQuery(q));
  } catch (err) {
    if (isConversionError(err)) return 'retry as text';
    throw err;
  }
  const width = q.valueIndices.length;
  // The next chunk is fetched (DuckDB converts it on its own thread) while this one is checked and copied.
  let next = fetchTyped(result);
  try {
    for (;;) {
      const chunk = await next;
      if (chunk === 'conversion error') return 'retry as text';
      if (chunk === null || chunk.rowCount === 0) return 'done';
      next = fetchTyped(result);
      if (signal.aborted) throw new Error('cancelled');
      if (unsafe()) return 'retry as text';
      const n = chunk.rowCount;
      for (let k = 0; k < q.checks.length; k++) if (column(duckdb, chunk, 1 + width + k, n).valid !== null) return 'declined';
      const time = column(duckdb, chunk, 0, n);
      if (time.valid !== null) return 'retry as text';
      for (let i = 0; i < n; i++) if (!(Math.abs(time.data[i] as number) <= MAX_DATE_MS)) return 'retry as text';
      const values: Float64Array[] = [];
      const present: (Uint8Array | null)[] = [];
      for (let c = 0; c < width; c++) {
        const v = column(duckdb, chunk, c + 1, n);
        // A NULL (an empty cell) is a missing value; any other value must be finite.
        for (let i = 0; i < n; i++) if (!Number.isFinite(v.data[i] as number) && (v.valid === null || isValid(v.valid, i))) return 'retry as text';
        values.push(v.data);
        present.push(v.valid);
      }
      // The chunk is all checked, so a row past the limit here is one csv-parse would stop at too.
      if (rows.rows + n > rows.maxRows) return 'over the limit';
      rows.appendColumns(time.data, values, present, n);
    }
  } finally {
    // A read left early leaves a fetch in flight: it ends before the connection runs anything else, and how
    // it ends is of no interest then.
    await next.catch(() => undefined);
  }
}

/** The next chunk of the typed read; a conversion error (a cell DuckDB cannot read as a number) as such. */
function fetchTyped(result: DuckDBResult): Promise<DuckDBDataChunk | null | 'conversion error'> {
  return result.fetchChunk().catch((err: unknown) => {
    if (isConversionError(err)) return 'conversion error' as const;
    throw err;
  });
}

/**
 * The text read into `rows` (time, each value column, then `checks` columns that only flag NULLs): each
 * chunk's doubles straight from DuckDB's vectors into the growing typed arrays, the values interleaved
 * row-major. 'declined' when any cell is NULL (not read the same way).
 */
async function copyText(
  duckdb: DuckDbBindings,
  connection: DuckDBConnection,
  q: ReadQuery,
  rows: GrowableRows,
  signal: AbortSignal,
): Promise<ReadEnd> {
  const result = await connection.stream(textQuery(q));
  const width = q.valueIndices.length;
  for (;;) {
    const chunk = await result.fetchChunk();
    if (chunk === null || chunk.rowCount === 0) return 'done';
    if (signal.aborted) throw new Error('cancelled');
    const n = chunk.rowCount;
    for (let k = 0; k < q.checks.length; k++) if (column(duckdb, chunk, 1 + width + k, n).valid !== null) return 'declined';
    const time = column(duckdb, chunk, 0, n);
    if (time.valid !== null) return 'declined';
    const values: Float64Array[] = [];
    for (let c = 0; c < width; c++) {
      const v = column(duckdb, chunk, c + 1, n);
      if (v.valid !== null) return 'declined';
      values.push(v.data);
    }
    for (let i = 0; i < n; i++) {
      if (rows.full) return 'over the limit';
      const at = rows.startRow(time.data[i] as number);
      for (let c = 0; c < width; c++) rows.set(at + c, (values[c] as Float64Array)[i] as number);
    }
  }
}

/** DuckDB's error for a cell its CSV reader cannot convert to the column's type. */
function isConversionError(err: unknown): boolean {
  return err instanceof Error && err.message.startsWith('Conversion Error');
}

/**
 * A DOUBLE column of a chunk as a view on DuckDB's memory (valid until the next fetch), and its validity
 * mask, null when no row is NULL.
 */
function column(duckdb: DuckDbBindings, chunk: DuckDBDataChunk, index: number, rows: number): { data: Float64Array; valid: Uint8Array | null } {
  const vector = duckdb.data_chunk_get_vector(chunk.chunk, index);
  const mask = duckdb.vector_get_validity(vector, Math.ceil(rows / 64) * 8);
  const data = duckdb.vector_get_data(vector, rows * Float64Array.BYTES_PER_ELEMENT);
  return { data: new Float64Array(data.buffer, data.byteOffset, rows), valid: mask !== null && !allValid(mask, rows) ? mask : null };
}

/** DuckDB's validity mask: bit i (little-endian 64-bit words) set when row i is not NULL. */
function isValid(mask: Uint8Array, row: number): boolean {
  return (((mask[row >>> 3] as number) >>> (row & 7)) & 1) === 1;
}

function allValid(mask: Uint8Array, rows: number): boolean {
  const full = rows >>> 3;
  for (let i = 0; i < full; i++) if (mask[i] !== 0xff) return false;
  const rest = rows & 7;
  return rest === 0 || ((mask[full] as number) & ((1 << rest) - 1)) === (1 << rest) - 1;
}

const UNDERSCORE = 0x5f;
const PLUS = 0x2b;
const MINUS = 0x2d;
const LF = 0x0a;
const CR = 0x0d;

/**
 * Whether the file's rows (after the header line, when there is one) hold "_" or "+-" anywhere: text that
 * DuckDB's typed read would take as a number where csv-parse refuses it (see typedQuery). Read in 1 MiB
 * blocks beside DuckDB's read; the page cache serves both. The header ends at its first line break outside
 * quotes (a quote doubled inside quotes is read twice, so it leaves the state as it was); searching from
 * there on searches at least the rows DuckDB reads.
 */
async function holdsUnsafeNumberText(path: string, dialect: DelimitedTextOptions, signal: AbortSignal): Promise<boolean> {
  const handle = await open(path, 'r');
  try {
    const block = Buffer.allocUnsafe(1024 * 1024);
    const quote = dialect.quote.charCodeAt(0);
    let inHeader = dialect.hasHeader;
    let quoted = false;
    let previous = -1;
    for (;;) {
      if (signal.aborted) return true;
      const { bytesRead } = await handle.read(block, 0, block.length, null);
      if (bytesRead === 0) return false;
      let from = 0;
      if (inHeader) {
        for (; from < bytesRead && inHeader; from++) {
          const byte = block[from] as number;
          if (byte === quote) quoted = !quoted;
          else if (!quoted && (byte === LF || byte === CR)) inHeader = false;
        }
        if (inHeader) continue;
      }
      const rest = block.subarray(from, bytesRead);
      if (rest.indexOf(UNDERSCORE) !== -1) return true;
      if (previous === PLUS && rest[0] === MINUS) return true;
      if (rest.indexOf('+-') !== -1) return true;
      previous = rest.length > 0 ? (rest[rest.length - 1] as number) : previous;
    }
  } finally {
    await handle.close();
  }
}
