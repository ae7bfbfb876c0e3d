import { stat } from 'node:fs/promises';
import { ForecastdError } from '../errors.js';
import { readCsvRows, readJsonLinesRows, readParquetRows } from './file-readers.js';
import type { RowSpec } from './row-collector.js';
import type { DatasetSource, LoadedRows, TimeFormat } from './types.js';

export type FileFormat = 'csv' | 'parquet' | 'jsonl';

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
}

/** A CSV, Parquet or JSON-lines file. Its change token is inode, size and modification time. */
export class FileSource implements DatasetSource {
  readonly from: string;
  readonly path: string;
  readonly format: FileFormat;
  private readonly spec: RowSpec;

  constructor(options: FileSourceOptions) {
    this.path = options.path;
    this.format = options.format;
    this.from = options.from ?? `file:${options.path}`;
    this.spec = {
      origin: options.path,
      timeColumn: options.timeColumn ?? 'ts',
      timeFormat: options.timeFormat ?? null,
      columns: options.columns ?? null,
    };
  }

  loadAll(signal: AbortSignal): Promise<LoadedRows> {
    switch (this.format) {
      case 'csv':
        return readCsvRows(this.path, this.spec, signal);
      case 'parquet':
        return readParquetRows(this.path, this.spec, signal);
      case 'jsonl':
        return readJsonLinesRows(this.path, this.spec, signal);
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
