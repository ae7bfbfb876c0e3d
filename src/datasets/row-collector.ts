import { ForecastdError } from '../errors.js';
import { GrowableRows, rowLimit, tooManyCells, type DatasetLimits } from './limits.js';
import { parseNumericValue, parseTimeValue, timeFormatHint } from './parse-values.js';
import type { LoadedRows, TimeFormat } from './types.js';

/** Which columns to read and how: the part of a dataset's config every source needs. */
export interface RowSpec {
  /** Where rows come from, as messages name it (a file path, a table). */
  readonly origin: string;
  readonly timeColumn: string;
  /** null = infer: strings are ISO 8601, numbers unix seconds. */
  readonly timeFormat: TimeFormat | null;
  /** Value columns in tensor order; null = every column but the time column, in source order. */
  readonly columns: readonly string[] | null;
  /** max_cells and max_record_bytes. */
  readonly limits: DatasetLimits;
  /** Rows older than this (epoch ms, retention) are skipped and not counted; null keeps every row. */
  readonly notBeforeMs: number | null;
}

/**
 * Turns source rows into LoadedRows: picks the time and value columns once from the source's column names,
 * then parses each row, failing with the origin, the row and the column when a cell cannot be read.
 * Sources differ only in how they produce rows; the rules for reading cells live here. Rows older than the
 * retention cut-off are skipped; the rest are held in typed arrays (GrowableRows) up to max_cells, where the
 * load fails.
 */
export class RowCollector {
  readonly columns: readonly string[];
  /** Index of the time column in the source's columns. */
  readonly timeIndex: number;
  /** Index in the source's columns of each value column, in tensor order. */
  readonly valueIndices: readonly number[];
  private readonly held: GrowableRows;

  constructor(
    private readonly spec: RowSpec,
    sourceColumns: readonly string[],
  ) {
    const found = (): string => (sourceColumns.length === 0 ? 'no columns' : `columns found: ${sourceColumns.join(', ')}`);
    this.timeIndex = sourceColumns.indexOf(spec.timeColumn);
    if (this.timeIndex < 0) {
      throw new ForecastdError('ERR_DATASET', `${spec.origin}: time column "${spec.timeColumn}" not found (${found()}); set time_column`);
    }
    if (spec.columns === null) {
      this.columns = sourceColumns.filter((_, i) => i !== this.timeIndex);
      if (this.columns.length === 0) {
        throw new ForecastdError('ERR_DATASET', `${spec.origin}: no value columns besides the time column "${spec.timeColumn}" (${found()})`);
      }
    } else {
      const missing = spec.columns.filter((c) => !sourceColumns.includes(c));
      if (missing.length > 0) {
        const list = missing.map((c) => `"${c}"`).join(', ');
        throw new ForecastdError('ERR_DATASET', `${spec.origin}: column${missing.length > 1 ? 's' : ''} ${list} not found (${found()})`);
      }
      this.columns = spec.columns;
    }
    this.valueIndices = this.columns.map((c) => sourceColumns.indexOf(c));
    this.held = new GrowableRows(this.columns.length, rowLimit(spec.limits.maxCells, this.columns.length));
  }

  get rows(): number {
    return this.held.rows;
  }

  /** Adds one row; `cell(i)` gives the cell of source column i; `where` names the row for messages ("line 12"). */
  add(cell: (sourceIndex: number) => unknown, where: string): void {
    const rawTime = cell(this.timeIndex);
    const time = parseTimeValue(rawTime, this.spec.timeFormat);
    if (Number.isNaN(time)) {
      const shown = rawTime === null || rawTime === undefined || rawTime === '' ? 'an empty time' : JSON.stringify(String(rawTime));
      throw new ForecastdError(
        'ERR_DATASET',
        `${this.spec.origin}: ${where}: time column "${this.spec.timeColumn}": cannot read ${shown}; expected ${timeFormatHint(this.spec.timeFormat)}`,
      );
    }
    const notBefore = this.spec.notBeforeMs;
    // Skipped rows are still read, so a bad cell anywhere fails the file as before.
    const skip = notBefore !== null && time < notBefore;
    if (!skip && this.held.full) throw tooManyCells(this.spec.origin, this.spec.limits.maxCells);
    const at = skip ? -1 : this.held.startRow(time);
    for (let j = 0; j < this.valueIndices.length; j++) {
      const raw = cell(this.valueIndices[j] ?? -1);
      const value = parseNumericValue(raw);
      if (value === null) {
        if (!skip) this.held.dropLastRow();
        throw new ForecastdError(
          'ERR_DATASET',
          `${this.spec.origin}: ${where}: column "${this.columns[j]}": ${showCell(raw)} is not a number`,
        );
      }
      if (!skip) this.held.set(at + j, value);
    }
  }

  finish(): LoadedRows {
    return this.held.finish(this.columns);
  }
}

/** A cell as messages show it. */
export function showCell(raw: unknown): string {
  try {
    return JSON.stringify(raw) ?? String(raw);
  } catch {
    return String(raw);
  }
}
