import type { Readable } from 'node:stream';
import { createInterface } from 'node:readline';
import { parse as parseCsv, type Options as CsvParseOptions } from 'csv-parse';
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, parquetSchema } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import streamArray from 'stream-json/streamers/stream-array.js';
import { ForecastdError } from '../errors.js';
import { openDecompressed, peek, readHead } from './decompress.js';
import { paramPrefix, signature, type DelimitedTextOptions, type FileCompression, type FileFormat, type JsonOptions } from './file-format.js';
import { RowCollector, type RowSpec } from './row-collector.js';
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
    const parser = parseCsv({ ...csvParseOptions(dialect), info: true });
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
    const rows = layout === 'array' ? await arrayObjects(input, spec) : await lineObjects(input, spec);
    return collectObjects(rows, spec, json?.flatten ?? false);
  } catch (err) {
    input?.destroy();
    throw asDatasetError(err, spec.origin);
  }
}

interface SourceObject {
  readonly object: Record<string, unknown>;
  /** "line 3", "element 3": names the row in messages. */
  readonly where: string;
}

async function lineObjects(input: Readable, spec: RowSpec): Promise<SourceObject[]> {
  input.setEncoding('utf8');
  const lines = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  const objects: SourceObject[] = [];
  let lineNumber = 0;
  try {
    for await (const line of lines) {
      lineNumber++;
      const text = lineNumber === 1 ? line.replace(/^\uFEFF/, '') : line;
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
      objects.push({ object: parsed as Record<string, unknown>, where: `line ${lineNumber}` });
    }
  } finally {
    lines.close();
  }
  return objects;
}

interface ArrayItem {
  readonly key: number;
  readonly value: unknown;
}

/** Elements of a top-level array, parsed as they stream in (a large file never sits in one string). */
async function arrayObjects(input: Readable, spec: RowSpec): Promise<SourceObject[]> {
  const elements = streamArray.withParserAsStream();
  input.on('error', (err) => elements.destroy(err));
  input.pipe(elements);
  const objects: SourceObject[] = [];
  try {
    for await (const item of elements as AsyncIterable<ArrayItem>) {
      const where = `element ${item.key + 1}`;
      if (item.value === null || typeof item.value !== 'object' || Array.isArray(item.value)) {
        throw new ForecastdError('ERR_DATASET', `${spec.origin}: ${where} of the array: expected a JSON object`);
      }
      objects.push({ object: item.value as Record<string, unknown>, where });
    }
  } catch (err) {
    if (err instanceof ForecastdError || !(err instanceof Error) || (err as NodeJS.ErrnoException).code !== undefined) throw err;
    throw new ForecastdError('ERR_DATASET', `${spec.origin}: invalid JSON after element ${objects.length}: ${err.message}`, { cause: err });
  }
  return objects;
}

/** Objects may differ in their keys, so the columns are known only once every row is read. */
function collectObjects(rows: readonly SourceObject[], spec: RowSpec, flatten: boolean): LoadedRows {
  if (rows.length === 0) throw new ForecastdError('ERR_DATASET', `${spec.origin}: the file holds no rows`);
  const objects = flatten ? rows.map((row) => flattenObject(row.object)) : rows.map((row) => row.object);
  const keys = new Set<string>();
  for (const object of objects) for (const key of Object.keys(object)) keys.add(key);
  const names = [...keys];
  const collector = new RowCollector(spec, names);
  objects.forEach((object, row) => collector.add((i) => object[names[i] ?? ''], rows[row]?.where ?? ''));
  return collector.finish();
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
    const rows = await parquetReadObjects({ file: buffer, metadata, columns: wanted, compressors });
    signal.throwIfAborted();
    rows.forEach((row, i) => collector.add((c) => row[names[c] ?? ''], `row ${i + 1}`));
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
