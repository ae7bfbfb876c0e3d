/**
 * The jobs the dataset reader thread runs (dataset-worker.ts), as plain data that crosses threads: what one
 * file read needs and what one PostgreSQL load needs. Kept apart from the sources that send them and the
 * thread that runs them, so neither imports the other.
 */
import type { DelimitedTextOptions, FileCompression, FileFormat, JsonOptions } from './file-format.js';
import type { PostgresSourceConfig } from './postgres-config.js';
import type { RowSpec } from './row-collector.js';

/** What one whole-file read needs. */
export interface FileReadJob {
  readonly path: string;
  readonly format: FileFormat;
  readonly compression: FileCompression;
  readonly spec: RowSpec;
  readonly delimited: DelimitedTextOptions;
  readonly json: JsonOptions;
  /** Read only up to this byte offset (complete lines of a file still being written). */
  readonly end?: number;
}

/** A load of a PostgreSQL source: all rows (`afterMs` null) or those newer than `afterMs`. */
export interface PostgresLoadJob {
  readonly source: number;
  readonly config: PostgresSourceConfig;
  readonly afterMs: number | null;
  readonly notBeforeMs: number | null;
}
