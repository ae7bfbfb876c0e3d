import { stat } from 'node:fs/promises';
import { ForecastdError } from '../errors.js';
import { CSV_DEFAULTS, JSON_DEFAULTS, TSV_DEFAULTS, type DelimitedTextOptions, type FileCompression, type FileFormat, type JsonOptions } from './file-format.js';
import { readDelimitedRows, readJsonRows, readParquetRows } from './file-readers.js';
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

  loadAll(signal: AbortSignal): Promise<LoadedRows> {
    const file = { path: this.path, format: this.format, compression: this.compression };
    switch (this.format) {
      case 'csv':
      case 'tsv':
        return readDelimitedRows(file, this.spec, this.delimited, signal);
      case 'parquet':
        return readParquetRows(this.path, this.spec, signal);
      case 'json':
        return readJsonRows(file, this.spec, this.json, signal);
      case 'jsonl':
        return readJsonRows(file, this.spec, null, signal);
    }
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
