import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { parse as parseCsv, type Options as CsvParseOptions } from 'csv-parse';
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, parquetSchema } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import type { Token, TokenConsumer } from 'stream-json/parser.js';
import streamArray from 'stream-json/streamers/stream-array.js';
import withParser from 'stream-json/utils/with-parser.js';
import { ForecastdError } from '../errors.js';
import { openDecompressed, peek, readHead } from './decompress.js';
import { recordTooLong, rowLimit, tooManyCells } from './limits.js';
import { paramPrefix, signature, type DelimitedTextOptions, type FileCompression, type FileFormat, type JsonOptions } from './file-format.js';
import { parseNumericValue, parseTimeValue, timeFormatHint } from './parse-values.js';
import { RowCollector, showCell, type RowSpec } from './row-collector.js';
import type { LoadedRows } from './types.js';

/**
 * Readers for the file formats a `file:` dataset may use. Each streams or reads the file asynchronously
 * (never a synchronous read on the serving thread) and hands cells to a RowCollector. CSV, TSV and JSON go
 * through openDecompressed (file_compression_type); Parquet pages of every codec are decompressed by
 * hyparquet-compressors.
 */

/** Where the bytes come from: the file, how to name it in messages, and its whole-file compression. */
export interface TextFile {
  readonly path: string;
  readonly format: FileFormat;
  readonly compression: FileCompression;
  /** The last byte offset read (inclusive): the complete lines of a file still being written. Default: all. */
  readonly end?: number;
}

interface CsvRecord {
  readonly record: string[];
  readonly info: { readonly lines: number };
}

/** CSV and TSV (csv_has_header, csv_delimiter, csv_quote, csv_escape and the tsv_* ones). */
export async function readDelimitedRows(
  file: TextFile,
  spec: RowSpec,
  dialect: DelimitedTextOptions,
  signal: AbortSignal,
): Promise<LoadedRows> {
  let input: Readable | null = null;
  let collector: RowCollector | null = null;
  try {
    input = await openDecompressed(file.path, spec.origin, file.format, file.compression, signal, file.end);
    const parser = parseCsv({ ...csvParseOptions(dialect), info: true, max_record_size: spec.limits.maxRecordBytes });
    const source = input;
    source.on('error', (err) => parser.destroy(err));
    source.pipe(parser);
    for await (const item of parser as AsyncIterable<CsvRecord>) {
      const { record, info } = item;
      if (collector === null) {
        if (dialect.hasHeader) {
          const duplicate = record.find((name, i) => record.indexOf(name) !== i);
          if (duplicate !== undefined) {
            throw new ForecastdError('ERR_DATASET', `${spec.origin}: line ${info.lines}: the header names column "${duplicate}" twice`);
          }
          collector = collectorFor(spec, record, () => headerAdvice(record, file.format, dialect));
          continue;
        }
        // Named as DataFusion names them, so time_column and params.columns can refer to them.
        collector = collectorFor(spec, record.map((_, i) => `column_${i + 1}`), () => null);
      }
      collector.add((i) => record[i], `line ${info.lines}`);
    }
  } catch (err) {
    input?.destroy();
    const csvError = err as { code?: unknown; lines?: unknown };
    if (csvError.code === 'CSV_MAX_RECORD_SIZE') {
      throw recordTooLong(spec.origin, `line ${typeof csvError.lines === 'number' ? csvError.lines : '?'}`, spec.limits.maxRecordBytes);
    }
    throw asDatasetError(err, spec.origin);
  }
  if (collector === null) {
    throw new ForecastdError('ERR_DATASET', `${spec.origin}: the file is empty (expected ${dialect.hasHeader ? 'a header line' : 'rows'})`);
  }
  return collector.finish();
}

/** How csv-parse reads a dialect: the one definition of the cells a delimited file holds. */
export function csvParseOptions(dialect: DelimitedTextOptions): CsvParseOptions {
  return {
    bom: true,
    trim: true,
    skip_empty_lines: true,
    delimiter: dialect.delimiter,
    quote: dialect.quote,
    // No escape character: a quote inside a quoted field is written twice, as RFC 4180 and Spice read it.
    escape: dialect.escape ?? dialect.quote,
  };
}

/** A RowCollector; when the header does not fit the dataset, the message says what to set if we can tell. */
function collectorFor(spec: RowSpec, names: readonly string[], advice: () => string | null): RowCollector {
  try {
    return new RowCollector(spec, names);
  } catch (err) {
    const hint = err instanceof ForecastdError ? advice() : null;
    if (hint === null) throw err;
    throw new ForecastdError('ERR_DATASET', `${(err as Error).message.replace(/; set time_column$/, '')}: ${hint}`);
  }
}

const LIKELY_DELIMITERS = [';', '\t', '|', ','];
const LOOKS_LIKE_DATA = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$|^\d{4}-\d{2}-\d{2}/;

/** Why a header may not be one: the wrong delimiter, or a first line of data. Null when nothing stands out. */
function headerAdvice(header: readonly string[], format: FileFormat, dialect: DelimitedTextOptions): string | null {
  const prefix = paramPrefix(format);
  if (header.length === 1) {
    const cell = header[0] ?? '';
    const found = LIKELY_DELIMITERS.find((d) => d !== dialect.delimiter && cell.includes(d));
    if (found !== undefined) {
      const shown = found === '\t' ? '"\\t"' : JSON.stringify(found);
      const looks = found === '\t' ? 'tab' : `${JSON.stringify(found)}`;
      if (format === 'tsv') return `the header looks ${looks}-separated, not tab-separated: use file_format: csv with csv_delimiter: ${shown}`;
      const tsv = found === '\t' ? ' (or file_format: tsv)' : '';
      return `the header looks ${looks}-separated: set csv_delimiter: ${shown}${tsv}`;
    }
  }
  if (header.some((cell) => LOOKS_LIKE_DATA.test(cell.trim()))) {
    return `the first line looks like data, not a header: set ${prefix}_has_header: false (the columns are then named column_1, column_2, ...)`;
  }
  return null;
}

/**
 * JSON: line-delimited objects (jsonl, or json with json_format jsonl/ndjson/ldjson) or a top-level array of
 * objects (json_format: array). `json` null is file_format jsonl: lines only, no flattening (as in Spice).
 */
export async function readJsonRows(file: TextFile, spec: RowSpec, json: JsonOptions | null, signal: AbortSignal): Promise<LoadedRows> {
  let input: Readable | null = null;
  try {
    const opened = await peek(await openDecompressed(file.path, spec.origin, file.format, file.compression, signal, file.end), (head) => significantByte(head) !== null);
    input = opened.stream;
    const first = significantByte(opened.bytes);
    if (first === null) throw new ForecastdError('ERR_DATASET', `${spec.origin}: the file holds no rows`);
    const startsArray = first === 0x5b; // "["
    const layout = json?.layout ?? (json === null ? 'lines' : startsArray ? 'array' : 'lines');
    if (layout === 'lines' && startsArray) {
      const fix = json === null ? 'use file_format: json with json_format: array' : 'set json_format: array';
      throw new ForecastdError('ERR_DATASET', `${spec.origin}: line 1: the file holds a JSON array, not one object per line: ${fix}`);
    }
    if (layout === 'array' && !startsArray) {
      throw new ForecastdError('ERR_DATASET', `${spec.origin}: expected a top-level JSON array (json_format: array); for one object per line set json_format: jsonl`);
    }
    const objects = new ObjectRows(spec, json?.flatten ?? false);
    if (layout === 'array') await arrayObjects(input, spec, objects);
    else await lineObjects(input, spec, objects);
    return objects.finish();
  } catch (err) {
    input?.destroy();
    throw asDatasetError(err, spec.origin);
  }
}

/**
 * JSON objects to rows, no object kept. With params.columns the columns are known up front and each object
 * goes straight into a RowCollector. Without, objects may differ in their keys: every key but the time column
 * is a value column, in order of first appearance, a column missing from an object is a gap, and each cell is
 * parsed as it comes into a typed column of its own; the columns are interleaved into rows at the end. Either
 * way cells count against max_cells as they come. As when the columns were read first, a time column or
 * listed column that no object holds is the error reported, before any bad cell.
 */
class ObjectRows {
  private readonly direct: RowCollector | null;
  /** Every key seen, in order of first appearance. */
  private readonly keys = new Set<string>();
  private readonly times = new NumberColumn();
  private readonly columns = new Map<string, NumberColumn>();
  private count = 0;
  /** The first row that failed; the keys of the rest are still read (see finish). */
  private rowError: unknown = null;

  constructor(
    private readonly spec: RowSpec,
    private readonly flatten: boolean,
  ) {
    this.direct = spec.columns === null ? null : new RowCollector(spec, [spec.timeColumn, ...spec.columns]);
  }

  add(value: Record<string, unknown>, where: string): void {
    const object = this.flatten ? flattenObject(value) : value;
    this.count += 1;
    for (const key of Object.keys(object)) this.keys.add(key);
    if (this.rowError !== null) return;
    try {
      if (this.direct !== null) {
        const names = [this.spec.timeColumn, ...(this.spec.columns ?? [])];
        this.direct.add((i) => object[names[i] ?? ''], where);
      } else {
        this.addByKeys(object, where);
      }
    } catch (err) {
      if (!(err instanceof ForecastdError) || /params\.max_cells/.test(err.message)) throw err;
      this.rowError = err;
    }
  }

  private addByKeys(object: Record<string, unknown>, where: string): void {
    const { spec } = this;
    const rawTime = object[spec.timeColumn];
    const time = parseTimeValue(rawTime, spec.timeFormat);
    if (Number.isNaN(time)) {
      const shown = rawTime === null || rawTime === undefined || rawTime === '' ? 'an empty time' : JSON.stringify(String(rawTime));
      throw new ForecastdError(
        'ERR_DATASET',
        `${spec.origin}: ${where}: time column "${spec.timeColumn}": cannot read ${shown}; expected ${timeFormatHint(spec.timeFormat)}`,
      );
    }
    const keep = spec.notBeforeMs === null || time >= spec.notBeforeMs;
    const row = this.times.length;
    for (const [key, raw] of Object.entries(object)) {
      if (key === spec.timeColumn) continue;
      const parsed = parseNumericValue(raw);
      if (parsed === null) throw new ForecastdError('ERR_DATASET', `${spec.origin}: ${where}: column "${key}": ${showCell(raw)} is not a number`);
      if (!keep) continue;
      let column = this.columns.get(key);
      if (column === undefined) {
        column = new NumberColumn();
        this.columns.set(key, column);
      }
      column.setAt(row, parsed);
    }
    if (!keep) return;
    this.times.setAt(row, time);
    if ((row + 1) * Math.max(1, this.columns.size) > spec.limits.maxCells) throw tooManyCells(spec.origin, spec.limits.maxCells);
  }

  finish(): LoadedRows {
    if (this.count === 0) throw new ForecastdError('ERR_DATASET', `${this.spec.origin}: the file holds no rows`);
    // Throws when the time column or a listed column is in no object.
    const check = new RowCollector({ ...this.spec, limits: { ...this.spec.limits, maxCells: 1 } }, [...this.keys]);
    if (this.rowError !== null) throw this.rowError;
    if (this.direct !== null) return this.direct.finish();
    const names = check.columns;
    const rows = this.times.length;
    const width = names.length;
    const values = new Float64Array(rows * width);
    names.forEach((name, j) => {
      const column = this.columns.get(name);
      for (let r = 0; r < rows; r++) values[r * width + j] = column === undefined ? Number.NaN : column.at(r);
    });
    return { columns: names, times: this.times.finish(), values, rows };
  }
}

/** A growing column of numbers; rows never written read as NaN (a gap). */
class NumberColumn {
  private data = new Float64Array(1024).fill(Number.NaN);
  private size = 0;

  get length(): number {
    return this.size;
  }

  setAt(row: number, value: number): void {
    if (row >= this.data.length) {
      const grown = new Float64Array(Math.max(row + 1, this.data.length * 2)).fill(Number.NaN);
      grown.set(this.data);
      this.data = grown;
    }
    this.data[row] = value;
    this.size = Math.max(this.size, row + 1);
  }

  at(row: number): number {
    return row < this.size ? (this.data[row] as number) : Number.NaN;
  }

  finish(): Float64Array {
    return this.data.slice(0, this.size);
  }
}

/**
 * Splits text into lines of at most `maxBytes` bytes (a longer one is an error naming its line number, before
 * it is held whole); a final line without a newline counts. Lines are emitted as strings, without the line
 * break (\n or \r\n).
 */
class BoundedLines extends Transform {
  private parts: Buffer[] = [];
  private partBytes = 0;
  private line = 0;

  constructor(
    private readonly maxBytes: number,
    private readonly tooLong: (line: number) => Error,
  ) {
    super({ readableObjectMode: true });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    let start = 0;
    for (;;) {
      const at = chunk.indexOf(0x0a, start);
      const end = at === -1 ? chunk.length : at;
      if (this.partBytes + (end - start) > this.maxBytes + 1) {
        callback(this.tooLong(this.line + 1));
        return;
      }
      if (at === -1) {
        if (end > start) {
          this.parts.push(chunk.subarray(start, end));
          this.partBytes += end - start;
        }
        callback();
        return;
      }
      this.parts.push(chunk.subarray(start, end));
      this.emitLine();
      start = at + 1;
    }
  }

  override _flush(callback: TransformCallback): void {
    if (this.partBytes > 0) this.emitLine();
    callback();
  }

  private emitLine(): void {
    this.line += 1;
    let text = Buffer.concat(this.parts).toString('utf8');
    if (text.endsWith('\r')) text = text.slice(0, -1);
    this.parts = [];
    this.partBytes = 0;
    this.push({ line: this.line, text });
  }
}

async function lineObjects(input: Readable, spec: RowSpec, rows: ObjectRows): Promise<void> {
  const lines = new BoundedLines(spec.limits.maxRecordBytes, (line) => recordTooLong(spec.origin, `line ${line}`, spec.limits.maxRecordBytes));
  input.on('error', (err) => lines.destroy(err));
  input.pipe(lines);
  for await (const { line: lineNumber, text: raw } of lines as AsyncIterable<{ line: number; text: string }>) {
    const text = lineNumber === 1 ? raw.replace(/^\uFEFF/, '') : raw;
    if (text.trim() === '') continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new ForecastdError('ERR_DATASET', `${spec.origin}: line ${lineNumber}: invalid JSON: ${(err as Error).message}`);
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw new ForecastdError('ERR_DATASET', `${spec.origin}: line ${lineNumber}: expected a JSON object per line`);
    }
    rows.add(parsed as Record<string, unknown>, `line ${lineNumber}`);
  }
}

interface ArrayItem {
  readonly key: number;
  readonly value: unknown;
}

/**
 * Elements of a top-level array, parsed as they stream in (a large file never sits in one string), each held
 * to max_record_bytes before it is assembled (see boundedElements). The parser both streams keys, strings and
 * numbers in pieces, which are what is measured, and packs them whole, which is what the assembler reads.
 */
async function arrayObjects(input: Readable, spec: RowSpec, rows: ObjectRows): Promise<void> {
  const { maxRecordBytes } = spec.limits;
  const tooLong = (element: number): Error => recordTooLong(spec.origin, `element ${element}`, maxRecordBytes);
  const elements = withParser.asStream(() => boundedElements(maxRecordBytes, tooLong), { packValues: true, streamValues: true });
  input.on('error', (err) => elements.destroy(err));
  input.pipe(elements);
  let seen = 0;
  try {
    for await (const item of elements as AsyncIterable<ArrayItem>) {
      const where = `element ${item.key + 1}`;
      if (item.value === null || typeof item.value !== 'object' || Array.isArray(item.value)) {
        throw new ForecastdError('ERR_DATASET', `${spec.origin}: ${where} of the array: expected a JSON object`);
      }
      rows.add(item.value as Record<string, unknown>, where);
      seen += 1;
    }
  } catch (err) {
    if (err instanceof ForecastdError || !(err instanceof Error) || (err as NodeJS.ErrnoException).code !== undefined) throw err;
    throw new ForecastdError('ERR_DATASET', `${spec.origin}: invalid JSON after element ${seen}: ${err.message}`, { cause: err });
  }
}

/**
 * stream-json's array streamer behind a check of max_record_bytes. The streamer assembles each element whole
 * before handing it on, so the check runs on the tokens on their way in: the parser hands over a long key,
 * string or number in pieces as the bytes arrive (never more than one chunk of input at a time), and the
 * element is refused with `tooLong(element number)` as soon as it passes the limit, so no more of it is built
 * than the limit allows.
 * An element is measured as its JSON text without whitespace: brackets, quotes, colons and commas, and the
 * UTF-8 bytes of its keys, strings and numbers (an escape counts as the character it stands for). Whitespace,
 * commas between elements and the array's own brackets belong to no element.
 */
function boundedElements(maxBytes: number, tooLong: (element: number) => Error): TokenConsumer<ArrayItem> {
  const elements = streamArray();
  /** 0 outside the top-level array, 1 between its elements, more inside one. */
  let depth = 0;
  let element = 0;
  let bytes = 0;
  /** The last token ended a value: the next value or key in the same container comes after a comma. */
  let afterValue = false;
  const check = (): void => {
    if (bytes > maxBytes) throw tooLong(element);
  };
  const startValue = (): void => {
    if (depth === 1) {
      element += 1;
      bytes = 0;
    } else if (afterValue) {
      bytes += 1;
    }
    afterValue = false;
  };
  const measure = (token: Token): void => {
    switch (token.name) {
      case 'startObject':
      case 'startArray':
        if (depth > 0) {
          startValue();
          bytes += 1;
        }
        depth += 1;
        return check();
      case 'endObject':
      case 'endArray':
        depth -= 1;
        if (depth === 0) return;
        bytes += 1;
        afterValue = true;
        return check();
      case 'startKey':
        startValue();
        bytes += 1;
        return check();
      case 'endKey':
        bytes += 2; // the closing quote and the colon
        return check();
      case 'startString':
        startValue();
        bytes += 1;
        return check();
      case 'endString':
        bytes += 1;
        afterValue = true;
        return check();
      case 'startNumber':
        startValue();
        return;
      case 'endNumber':
        afterValue = true;
        return;
      case 'stringChunk':
        bytes += Buffer.byteLength(token.value, 'utf8');
        return check();
      case 'numberChunk':
        bytes += token.value.length;
        return check();
      case 'nullValue':
      case 'trueValue':
      case 'falseValue':
        startValue();
        bytes += token.name === 'falseValue' ? 5 : 4;
        afterValue = true;
        return check();
      default:
        // keyValue, stringValue and numberValue repeat, packed, what the pieces already counted.
        return;
    }
  };
  // A plain token function, as stream-json's own streamers are; the pipeline calls it for each token.
  return ((token: Token) => {
    measure(token);
    return elements(token);
  }) as TokenConsumer<ArrayItem>;
}

/** flatten_json: {"a": {"b": 1}} becomes {"a.b": 1}; arrays stay values. */
function flattenObject(object: Record<string, unknown>, prefix = '', out: Record<string, unknown> = {}): Record<string, unknown> {
  for (const [key, value] of Object.entries(object)) {
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) flattenObject(value as Record<string, unknown>, `${prefix}${key}.`, out);
    else out[`${prefix}${key}`] = value;
  }
  return out;
}

/** The first byte that is not whitespace or a byte order mark; null when there is none yet. */
function significantByte(head: Buffer): number | null {
  for (let i = 0; i < head.length; i++) {
    const b = head[i]!;
    if (b === 0xef && head[i + 1] === 0xbb && head[i + 2] === 0xbf) {
      i += 2;
      continue;
    }
    if (b !== 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d) return b;
  }
  return null;
}

/** Rows of a Parquet file turned into objects at a time. */
const PARQUET_SLICE_ROWS = 65_536;

export async function readParquetRows(file: string, spec: RowSpec, signal: AbortSignal): Promise<LoadedRows> {
  try {
    const found = signature(await readHead(file));
    if (found !== null && found !== 'PARQUET') {
      throw new ForecastdError(
        'ERR_DATASET',
        `${spec.origin}: the file is ${found}-compressed, not a Parquet file: Parquet compresses inside the file (every codec is read); decompress it, or if it holds CSV, TSV or JSON set file_format and file_compression_type: ${found}`,
      );
    }
    const buffer = await asyncBufferFromFile(file);
    signal.throwIfAborted();
    const metadata = await parquetMetadataAsync(buffer);
    const names = parquetSchema(metadata).children.map((child) => child.element.name);
    const collector = new RowCollector(spec, names);
    const wanted = [collector.timeIndex, ...collector.valueIndices].map((i) => names[i] ?? '');
    const total = Number(metadata.num_rows);
    // Retention can only be applied row by row, so the count is a bound only without it.
    if (spec.notBeforeMs === null && total > rowLimit(spec.limits.maxCells, collector.columns.length)) {
      throw tooManyCells(spec.origin, spec.limits.maxCells, `the file holds ${total.toLocaleString('en-US')} rows × ${collector.columns.length} columns`);
    }
    // A slice of rows at a time: never one object per row of the whole file.
    for (let start = 0; start < total; start += PARQUET_SLICE_ROWS) {
      const end = Math.min(total, start + PARQUET_SLICE_ROWS);
      const rows = await parquetReadObjects({ file: buffer, metadata, columns: wanted, compressors, rowStart: start, rowEnd: end });
      signal.throwIfAborted();
      rows.forEach((row, i) => collector.add((c) => row[names[c] ?? ''], `row ${start + i + 1}`));
    }
    return collector.finish();
  } catch (err) {
    if (err instanceof Error && /unsupported compression codec: LZO/i.test(err.message)) {
      throw new ForecastdError('ERR_DATASET', `${spec.origin}: the file's pages are LZO-compressed, which forecastd does not read: rewrite it with ZSTD, SNAPPY or GZIP`, { cause: err });
    }
    throw asDatasetError(err, spec.origin);
  }
}

/** Every failure leaves a reader as ERR_DATASET naming the file (csv-parse and hyparquet errors included). */
function asDatasetError(err: unknown, origin: string): ForecastdError {
  if (err instanceof ForecastdError) return err;
  const e = err as NodeJS.ErrnoException;
  if (e?.name === 'AbortError') return new ForecastdError('ERR_DATASET', `${origin}: loading was cancelled`, { cause: err });
  if (e?.code === 'ENOENT') return new ForecastdError('ERR_DATASET', `${origin}: file not found`, { cause: err });
  if (e?.code === 'EACCES') return new ForecastdError('ERR_DATASET', `${origin}: permission denied`, { cause: err });
  const message = err instanceof Error ? err.message : String(err);
  return new ForecastdError('ERR_DATASET', `${origin}: cannot read the file: ${message}`, { cause: err });
}
