/**
 * The bounds every dataset load is held to (SPEC "Bounded and quiet"), and the storage that holds rows while
 * a reader collects them. Values live in typed arrays on resizable buffers, never one JavaScript value per
 * cell: the buffer reserves address space for the limit up front and grows in place, so collecting rows never
 * copies them and a load's peak is the rows themselves plus the reader's own buffers. Passing the limit is a
 * dataset error that names the limit and the setting that raises it.
 */
import { ForecastdError } from '../errors.js';
import type { LoadedRows } from './types.js';

/** params.max_cells: rows × value columns a dataset may hold, counted after retention. */
export const DEFAULT_MAX_CELLS = 200_000_000;
/** params.max_record_bytes: the longest record (a line, a JSON object) a file may hold. */
export const DEFAULT_MAX_RECORD_BYTES = 1024 * 1024;
/**
 * The largest max_cells accepted: 4 GiB of values, within what V8 reserves for one resizable buffer (its
 * limit lies between 4 and 8 GiB on 64-bit hosts).
 */
export const MAX_CELLS_LIMIT = 2 ** 29;
/** The largest max_record_bytes accepted (V8's longest string is about 512 MiB). */
export const MAX_RECORD_BYTES_LIMIT = 256 * 1024 * 1024;

export interface DatasetLimits {
  readonly maxCells: number;
  readonly maxRecordBytes: number;
}

export const DEFAULT_LIMITS: DatasetLimits = { maxCells: DEFAULT_MAX_CELLS, maxRecordBytes: DEFAULT_MAX_RECORD_BYTES };

/** Checks limits given by a library user (the spicepod checks its own with file and line). */
export function resolveLimits(given: Partial<DatasetLimits> | undefined, what: string): DatasetLimits {
  const maxCells = given?.maxCells ?? DEFAULT_MAX_CELLS;
  const maxRecordBytes = given?.maxRecordBytes ?? DEFAULT_MAX_RECORD_BYTES;
  if (!Number.isSafeInteger(maxCells) || maxCells < 1 || maxCells > MAX_CELLS_LIMIT) {
    throw new ForecastdError('ERR_INVALID_ARGUMENT', `${what}: maxCells must be a whole number from 1 to ${MAX_CELLS_LIMIT}, got ${maxCells}`);
  }
  if (!Number.isSafeInteger(maxRecordBytes) || maxRecordBytes < 1 || maxRecordBytes > MAX_RECORD_BYTES_LIMIT) {
    throw new ForecastdError(
      'ERR_INVALID_ARGUMENT',
      `${what}: maxRecordBytes must be a whole number from 1 to ${MAX_RECORD_BYTES_LIMIT}, got ${maxRecordBytes}`,
    );
  }
  return { maxCells, maxRecordBytes };
}

function count(n: number): string {
  return n.toLocaleString('en-US');
}

/**
 * `origin: more than N cells (...)`: the error at params.max_cells (no prefix for an empty origin). `detail`
 * says what was found, if known.
 */
export function tooManyCells(origin: string, maxCells: number, detail = ''): ForecastdError {
  return new ForecastdError(
    'ERR_DATASET',
    `${origin === '' ? '' : `${origin}: `}more than ${count(maxCells)} cells (rows × value columns)${detail === '' ? '' : `: ${detail}`}; ` +
      `the limit is params.max_cells: raise it, or keep fewer rows (acceleration.retention_period) or columns (params.columns)`,
  );
}

/** `origin: where: a record longer than N bytes`: the error at params.max_record_bytes. */
export function recordTooLong(origin: string, where: string, maxRecordBytes: number): ForecastdError {
  return new ForecastdError(
    'ERR_DATASET',
    `${origin}: ${where}: a record longer than ${count(maxRecordBytes)} bytes; the limit is params.max_record_bytes: raise it if the file really holds such records`,
  );
}

/** True for the message of a load stopped by max_cells or max_record_bytes (it may have crossed threads). */
export function isLimitMessage(message: string): boolean {
  return /; the limit is params\.(?:max_cells|max_record_bytes)\b/.test(message);
}

/** The most rows of `width` value columns that fit `maxCells`. */
export function rowLimit(maxCells: number, width: number): number {
  return Math.floor(maxCells / Math.max(1, width));
}

/**
 * The buffers grow by about this many bytes of values at a time. Growing in place costs no copy, so small
 * steps are cheap, and growth commits (zeroes) what it adds: doubling would hold up to twice the rows.
 */
const GROWTH_BYTES = 16 * 1024 * 1024;

/**
 * Row times and row-major values collected one row at a time, up to `maxRows` rows (rowLimit). Both arrays
 * sit on resizable buffers whose reservation is the limit: growing commits memory in place (no copy), a
 * step of about 16 MiB at a time, and `finish` hands out fixed-length views of exactly the rows held.
 */
export class GrowableRows {
  private readonly timeBuffer: ArrayBuffer;
  private readonly valueBuffer: ArrayBuffer;
  private times: Float64Array;
  private values: Float64Array;
  private count = 0;

  constructor(
    readonly width: number,
    readonly maxRows: number,
  ) {
    this.timeBuffer = new ArrayBuffer(0, { maxByteLength: maxRows * Float64Array.BYTES_PER_ELEMENT });
    this.valueBuffer = new ArrayBuffer(0, { maxByteLength: maxRows * width * Float64Array.BYTES_PER_ELEMENT });
    this.times = new Float64Array(this.timeBuffer);
    this.values = new Float64Array(this.valueBuffer);
  }

  get rows(): number {
    return this.count;
  }

  get full(): boolean {
    return this.count >= this.maxRows;
  }

  /** Starts a row at `time` and returns the index of its first value; the caller writes `width` values there. */
  startRow(time: number): number {
    if (this.count === this.times.length) this.grow();
    this.times[this.count] = time;
    const at = this.count * this.width;
    this.count += 1;
    return at;
  }

  set(index: number, value: number): void {
    this.values[index] = value;
  }

  /**
   * Adds `count` rows given column by column: `times`, and one array per value column, whose value is
   * taken as missing (NaN) where `present` (a validity bitmap, bit i of byte i >> 3 set when row i has a
   * value; null when every row has one) says so. The caller checks the room first (`maxRows - rows`).
   */
  appendColumns(times: Float64Array, columns: readonly Float64Array[], present: readonly (Uint8Array | null)[], count: number): void {
    if (this.count + count > this.maxRows) throw new RangeError(`${this.count + count} rows, more than the ${this.maxRows} allowed`);
    while (this.count + count > this.times.length) this.grow();
    const first = this.count;
    this.times.set(times.subarray(0, count), first);
    const width = this.width;
    const values = this.values;
    for (let c = 0; c < width; c++) {
      const column = columns[c] as Float64Array;
      const mask = present[c] ?? null;
      let at = first * width + c;
      if (mask === null) {
        for (let i = 0; i < count; i++, at += width) values[at] = column[i] as number;
      } else {
        for (let i = 0; i < count; i++, at += width) values[at] = (((mask[i >>> 3] as number) >>> (i & 7)) & 1) === 1 ? (column[i] as number) : Number.NaN;
      }
    }
    this.count += count;
  }

  /** The time of row `row` (from 0, in the order the rows came). */
  timeAt(row: number): number {
    return this.times[row] as number;
  }

  /** Value `column` of row `row`. */
  valueAt(row: number, column: number): number {
    return this.values[row * this.width + column] as number;
  }

  /** Forgets every row held, keeping the memory committed so far (a reader that starts over). */
  clear(): void {
    this.count = 0;
  }

  /** Takes back the row just started (a row a reader refuses half-way). */
  dropLastRow(): void {
    if (this.count > 0) this.count -= 1;
  }

  finish(columns: readonly string[]): LoadedRows {
    const rows = this.count;
    this.timeBuffer.resize(rows * Float64Array.BYTES_PER_ELEMENT);
    this.valueBuffer.resize(rows * this.width * Float64Array.BYTES_PER_ELEMENT);
    return {
      columns,
      times: new Float64Array(this.timeBuffer, 0, rows),
      values: new Float64Array(this.valueBuffer, 0, rows * this.width),
      rows,
    };
  }

  private grow(): void {
    const step = Math.max(1024, Math.floor(GROWTH_BYTES / (this.width * Float64Array.BYTES_PER_ELEMENT)));
    const rows = Math.min(this.maxRows, this.count + step);
    this.timeBuffer.resize(rows * Float64Array.BYTES_PER_ELEMENT);
    this.valueBuffer.resize(rows * this.width * Float64Array.BYTES_PER_ELEMENT);
    // Length-tracking views follow the buffers; re-taken so the engine sees the new length at once.
    this.times = new Float64Array(this.timeBuffer);
    this.values = new Float64Array(this.valueBuffer);
  }
}
