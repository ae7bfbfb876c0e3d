import { open } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { ForecastdError } from '../errors.js';
import { FileSettle, fileFingerprint, isUnreadable } from '../file-fingerprint.js';
import { CSV_DEFAULTS, JSON_DEFAULTS, TSV_DEFAULTS, type DelimitedTextOptions, type FileCompression, type FileFormat, type JsonOptions } from './file-format.js';
import { readDelimitedWithDuckDb } from './duckdb-csv-reader.js';
import { readDelimitedRows, readJsonRows, readParquetRows, type TextFile } from './file-readers.js';
import { resolveLimits } from './limits.js';
import { readOffThread, warmFileReader } from './off-thread-reader.js';
import type { FileReadJob } from './reader-jobs.js';
import type { RowSpec } from './row-collector.js';
import { orderRows } from './snapshot.js';
import type { DatasetSource, LoadOptions, LoadedRows, TimeFormat } from './types.js';

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
  /**
   * Settle time (ms): after the first load, a changed file is read only once its fingerprint stayed the same
   * this long and is unchanged by the end of the read (SPEC "Files that change are read only once they
   * settle"). Default 0: read at once.
   */
  readonly settleMs?: number;
  /**
   * A file that has not settled this long after its change was first seen is read anyway, up to its last
   * complete line (uncompressed CSV, TSV, JSON). Default: never (wait for it to settle). Three refresh
   * intervals in a pod.
   */
  readonly readUnsettledAfterMs?: number | null;
  /** params.max_cells: rows × value columns held, counted after retention. Default 200,000,000. */
  readonly maxCells?: number;
  /** params.max_record_bytes: the longest line (CSV, TSV, JSON lines) or JSON object. Default 1 MiB. */
  readonly maxRecordBytes?: number;
}

/**
 * A CSV, TSV, Parquet or JSON file. Its change token is its fingerprint (device, inode, size, modification
 * time). With a settle time, a load after the first waits for a changed file to settle (see FileSettle), so
 * a writer that rewrites it in place is never read half-way.
 */
export class FileSource implements DatasetSource {
  readonly from: string;
  readonly path: string;
  readonly format: FileFormat;
  readonly compression: FileCompression;
  private readonly spec: RowSpec;
  private readonly delimited: DelimitedTextOptions;
  private readonly json: JsonOptions;
  private readonly settle: FileSettle | null;
  private readonly readUnsettledAfterMs: number | null;

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
      limits: resolveLimits(options, `file ${options.path}`),
      notBeforeMs: null,
    };
    const settleMs = options.settleMs ?? 0;
    if (!Number.isFinite(settleMs) || settleMs < 0) {
      throw new ForecastdError('ERR_INVALID_ARGUMENT', `settleMs must be a number of milliseconds >= 0, got ${settleMs}`);
    }
    this.settle = settleMs > 0 ? new FileSettle(settleMs, null) : null;
    this.readUnsettledAfterMs = options.readUnsettledAfterMs ?? null;
    warmFileReader();
  }

  async loadAll(signal: AbortSignal, options: LoadOptions = {}): Promise<LoadedRows> {
    const notBeforeMs = options.notBeforeMs ?? null;
    const settle = this.settle;
    if (settle === null) return this.read(signal, notBeforeMs);
    if (settle.applied === null) {
      // The first load reads at once; what it read counts as settled only if the file held still meanwhile.
      const before = await fileFingerprint(this.path);
      const rows = await this.read(signal, notBeforeMs);
      if ((await fileFingerprint(this.path)) === before && !isUnreadable(before)) settle.succeeded(before);
      return rows;
    }
    for (;;) {
      const fingerprint = await fileFingerprint(this.path);
      const now = Date.now();
      const verdict = settle.observe(fingerprint, now);
      if (verdict.kind === 'wait') {
        const since = settle.changedSince ?? now;
        if (this.readUnsettledAfterMs !== null && now - since >= this.readUnsettledAfterMs) {
          // It never holds still (a writer appending without pause): take what is complete now.
          const end = await this.completeLinesEnd();
          if (end === -1) throw new ForecastdError('ERR_DATASET', `${this.path}: the file keeps changing and holds no complete line yet`);
          const rows = await this.read(signal, notBeforeMs, end);
          settle.succeeded(fingerprint);
          return rows;
        }
        await delay(verdict.ms, undefined, { signal });
        continue;
      }
      // Unchanged files are read at once (a full refresh after the token changed and changed back).
      const rows = await this.read(signal, notBeforeMs);
      const after = await fileFingerprint(this.path);
      if (verdict.kind === 'unchanged' ? after === fingerprint : settle.afterRead(after, Date.now())) {
        settle.succeeded(after);
        return rows;
      }
      // Changed while being read: what was read may be half a write. Wait for it to settle again.
    }
  }

  /**
   * The offset of the file's last newline (its complete lines end there), found by reading back from the
   * end; undefined (the whole file) for Parquet and compressed files, which have no lines to cut at.
   */
  private async completeLinesEnd(): Promise<number | undefined> {
    if (this.format === 'parquet' || this.compression !== 'UNCOMPRESSED') return undefined;
    const handle = await open(this.path, 'r');
    try {
      const { size } = await handle.stat();
      const chunk = Buffer.alloc(64 * 1024);
      for (let end = size; end > 0; ) {
        const start = Math.max(0, end - chunk.length);
        const { bytesRead } = await handle.read(chunk, 0, end - start, start);
        const at = chunk.subarray(0, bytesRead).lastIndexOf(0x0a);
        if (at >= 0) return start + at;
        end = start;
      }
      // Not one complete line.
      return -1;
    } finally {
      await handle.close();
    }
  }

  /** Parses on the dataset reader thread: a large file never holds the thread serving requests. */
  private read(signal: AbortSignal, notBeforeMs: number | null, end?: number): Promise<LoadedRows> {
    return readOffThread(
      {
        path: this.path,
        format: this.format,
        compression: this.compression,
        spec: { ...this.spec, notBeforeMs },
        delimited: this.delimited,
        json: this.json,
        ...(end === undefined ? {} : { end }),
      },
      signal,
    );
  }

  async changeToken(): Promise<string> {
    const fingerprint = await fileFingerprint(this.path);
    if (isUnreadable(fingerprint)) {
      const code = fingerprint.slice('unreadable:'.length);
      const why = code === 'ENOENT' ? 'file not found' : `cannot read the file (${code})`;
      throw new ForecastdError('ERR_DATASET', `${this.path}: ${why}`);
    }
    return fingerprint;
  }
}

/** DuckDB where it reads the file exactly as csv-parse would (duckdb-csv-reader.ts), else csv-parse. */
async function readDelimited(file: TextFile, job: FileReadJob, signal: AbortSignal): Promise<LoadedRows> {
  const fast = await readDelimitedWithDuckDb(file, job.spec, job.delimited, signal);
  if ('rows' in fast) return fast.rows;
  return readDelimitedRows(file, job.spec, job.delimited, signal);
}

/**
 * Reads a whole file on the calling thread (the file reader thread runs this) and puts its rows in time
 * order there, so that sorting a file written newest first never holds the serving thread.
 */
export async function readFileRows(job: FileReadJob, signal: AbortSignal): Promise<LoadedRows> {
  return orderRows(await readFileRowsAsWritten(job, signal));
}

function readFileRowsAsWritten(job: FileReadJob, signal: AbortSignal): Promise<LoadedRows> {
  const file = { path: job.path, format: job.format, compression: job.compression, ...(job.end === undefined ? {} : { end: job.end }) };
  switch (job.format) {
    case 'csv':
    case 'tsv':
      return readDelimited(file, job, signal);
    case 'parquet':
      return readParquetRows(job.path, job.spec, signal);
    case 'json':
      return readJsonRows(file, job.spec, job.json, signal);
    case 'jsonl':
      return readJsonRows(file, job.spec, null, signal);
  }
  return Promise.reject(new ForecastdError('ERR_DATASET', `${job.spec.origin}: unknown file format "${String(job.format)}"`));
}
