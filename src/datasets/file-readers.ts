import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { parse as parseCsv } from 'csv-parse';
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, parquetSchema } from 'hyparquet';
import { ForecastdError } from '../errors.js';
import { RowCollector, type RowSpec } from './row-collector.js';
import type { LoadedRows } from './types.js';

/**
 * Readers for the file formats a `file:` dataset may use. Each streams or reads the file asynchronously
 * (never a synchronous read on the serving thread) and hands cells to a RowCollector.
 */

interface CsvRecord {
  readonly record: string[];
  readonly info: { readonly lines: number };
}

export async function readCsvRows(file: string, spec: RowSpec, signal: AbortSignal): Promise<LoadedRows> {
  const input = createReadStream(file, { signal });
  const parser = parseCsv({ bom: true, trim: true, skip_empty_lines: true, info: true });
  input.on('error', (err) => parser.destroy(err));
  input.pipe(parser);
  let collector: RowCollector | null = null;
  try {
    for await (const item of parser as AsyncIterable<CsvRecord>) {
      const { record, info } = item;
      if (collector === null) {
        const duplicate = record.find((name, i) => record.indexOf(name) !== i);
        if (duplicate !== undefined) {
          throw new ForecastdError('ERR_DATASET', `${spec.origin}: line ${info.lines}: the header names column "${duplicate}" twice`);
        }
        collector = new RowCollector(spec, record);
        continue;
      }
      collector.add((i) => record[i], `line ${info.lines}`);
    }
  } catch (err) {
    input.destroy();
    throw asDatasetError(err, spec.origin);
  }
  if (collector === null) throw new ForecastdError('ERR_DATASET', `${spec.origin}: the file is empty (expected a header line)`);
  return collector.finish();
}

export async function readJsonLinesRows(file: string, spec: RowSpec, signal: AbortSignal): Promise<LoadedRows> {
  const input = createReadStream(file, { signal, encoding: 'utf8' });
  const lines = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  // Objects may differ in their keys, so the columns are known only once every line is read.
  const objects: Record<string, unknown>[] = [];
  const lineNumbers: number[] = [];
  const keys = new Set<string>();
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
      const object = parsed as Record<string, unknown>;
      for (const key of Object.keys(object)) keys.add(key);
      objects.push(object);
      lineNumbers.push(lineNumber);
    }
  } catch (err) {
    input.destroy();
    throw asDatasetError(err, spec.origin);
  } finally {
    lines.close();
  }
  if (objects.length === 0) throw new ForecastdError('ERR_DATASET', `${spec.origin}: the file holds no rows`);
  const names = [...keys];
  const collector = new RowCollector(spec, names);
  objects.forEach((object, row) => collector.add((i) => object[names[i] ?? ''], `line ${lineNumbers[row]}`));
  return collector.finish();
}

export async function readParquetRows(file: string, spec: RowSpec, signal: AbortSignal): Promise<LoadedRows> {
  try {
    const buffer = await asyncBufferFromFile(file);
    signal.throwIfAborted();
    const metadata = await parquetMetadataAsync(buffer);
    const names = parquetSchema(metadata).children.map((child) => child.element.name);
    const collector = new RowCollector(spec, names);
    const wanted = [collector.timeIndex, ...collector.valueIndices].map((i) => names[i] ?? '');
    const rows = await parquetReadObjects({ file: buffer, metadata, columns: wanted });
    signal.throwIfAborted();
    rows.forEach((row, i) => collector.add((c) => row[names[c] ?? ''], `row ${i + 1}`));
    return collector.finish();
  } catch (err) {
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
