import { stat } from 'node:fs/promises';
import { ForecastdError } from '../errors.js';
import { CSV_DEFAULTS, JSON_DEFAULTS, TSV_DEFAULTS, type DelimitedTextOptions, type FileCompression, type FileFormat, type JsonOptions } from './file-format.js';
import { readDelimitedRows, readJsonRows, readParquetRows } from './file-readers.js';
import { readOffThread } from './off-thread-reader.js';
import type { RowSpec } from './row-collector.js';
import type { DatasetSource, LoadedRows, TimeFormat } from './types.js';

export type { FileFormat } from './file-format.js';

export interface FileSourceOptions {
  /** Absolute path of the file. */
  readonly path: string;
  readonly format: FileFormat;
  /** As written in the pod, for display; defaults to file:PATH. */
  readonly from?: string;
  /** Default "ts". */
  readonly timeColumn?: string;
  readonly timeFormat?: TimeFormat | null;
  readonly columns?: readonly string[] | null;
  /** CSV, TSV and JSON: whole-file compression (file_compression_type). Default UNCOMPRESSED. */
  readonly compression?: FileCompression;
  /** CSV and TSV: header, delimiter, quote, escape; unset fields take the format's defaults (TSV: tab). */
  readonly delimited?: Partial<DelimitedTextOptions>;
  /** format json: json_format and flatten_json. */
  readonly json?: Partial<JsonOptions>;
}

/** A CSV, TSV, Parquet or JSON file. Its change token is inode, size and modification time. */
export class FileSource implements DatasetSource {
  readonly from: string;
  readonly path: string;
  readonly format: FileFormat;
  readonly compression: FileCompression;
  private readonly spec: RowSpec;
  private readonly delimited: DelimitedTextOptions;
  private readonly json: JsonOptions;

  constructor(options: FileSourceOptions) {
    this.path = options.path;
    this.format = options.format;
    this.from = options.from ?? `file:${options.path}`;
    this.compression = options.compression ?? 'UNCOMPRESSED';
    const delimited = { ...(options.format === 'tsv' ? TSV_DEFAULTS : CSV_DEFAULTS), ...options.delimited };
    // TSV is tab-separated whatever is asked, as in Spice.
    this.delimited = options.format === 'tsv' ? { ...delimited, delimiter: '\t' } : delimited;
    this.json = { ...JSON_DEFAULTS, ...options.json };
    this.spec = {
      origin: options.path,
      timeColumn: options.timeColumn ?? 'ts',
      timeFormat: options.timeFormat ?? null,
      columns: options.columns ?? null,
    };
  }

  /** Parses on the file reader thread: a large file never holds the thread serving requests. */
  loadAll(signal: AbortSignal): Promise<LoadedRows> {
    return readOffThread(
      { path: this.path, format: this.format, compression: this.compression, spec: this.spec, delimited: this.delimited, json: this.json },
      signal,
    );
  }

  async changeToken(): Promise<string> {
    try {
      const s = await stat(this.path, { bigint: true });
      return `${s.ino}:${s.size}:${s.mtimeNs}`;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' ? 'file not found' : (err as Error).message;
      throw new ForecastdError('ERR_DATASET', `${this.path}: ${why}`, { cause: err });
    }
  }
}

/** What one whole-file read needs: plain data, so that it can be sent to the file reader thread. */
export interface FileReadJob {
  readonly path: string;
  readonly format: FileFormat;
  readonly compression: FileCompression;
  readonly spec: RowSpec;
  readonly delimited: DelimitedTextOptions;
  readonly json: JsonOptions;
}

/** Reads a whole file on the calling thread (the file reader thread runs this). */
export function readFileRows(job: FileReadJob, signal: AbortSignal): Promise<LoadedRows> {
  const file = { path: job.path, format: job.format, compression: job.compression };
  switch (job.format) {
    case 'csv':
    case 'tsv':
      return readDelimitedRows(file, job.spec, job.delimited, signal);
    case 'parquet':
      return readParquetRows(job.path, job.spec, signal);
    case 'json':
      return readJsonRows(file, job.spec, job.json, signal);
    case 'jsonl':
      return readJsonRows(file, job.spec, null, signal);
  }
  return Promise.reject(new ForecastdError('ERR_DATASET', `${job.spec.origin}: unknown file format "${String(job.format)}"`));
}
