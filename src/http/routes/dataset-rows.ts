import type { DatasetRowsBody } from '../api-bodies.js';
import type { DatasetRows } from '../types.js';

/**
 * GET /v1/datasets/:name/rows?last=N: the query's one parameter and the body's shape. The newest N rows,
 * oldest first, each row its values in column order with a missing value as null.
 */

export const DEFAULT_LAST_ROWS = 500;
export const MAX_LAST_ROWS = 100_000;

export type LastRows = { readonly ok: true; readonly last: number } | { readonly ok: false; readonly message: string };

/** `last` as it came in the query (undefined or '' when absent). */
export function parseLastRows(raw: string | undefined): LastRows {
  if (raw === undefined || raw === '') return { ok: true, last: DEFAULT_LAST_ROWS };
  if (!/^\d{1,15}$/.test(raw)) {
    return { ok: false, message: `Query parameter last must be a whole number from 1 to ${MAX_LAST_ROWS}, not '${raw.slice(0, 40)}'` };
  }
  const last = Number(raw);
  if (last < 1 || last > MAX_LAST_ROWS) {
    return { ok: false, message: `Query parameter last is ${last}; it must be from 1 to ${MAX_LAST_ROWS}` };
  }
  return { ok: true, last };
}

/** `{"name","columns","timestamps","values"}`; timestamps print as /v1/datasets prints them (toISOString). */
export function datasetRowsBody(name: string, rows: DatasetRows): string {
  const width = rows.columns.length;
  const n = rows.times.length;
  const timestamps = new Array<string>(n);
  const values = new Array<(number | null)[]>(n);
  for (let i = 0; i < n; i++) {
    timestamps[i] = new Date(rows.times[i]!).toISOString();
    const row = new Array<number | null>(width);
    for (let c = 0; c < width; c++) {
      const v = rows.values[i * width + c]!;
      row[c] = Number.isFinite(v) ? v : null;
    }
    values[i] = row;
  }
  const body: DatasetRowsBody = { name, columns: rows.columns, timestamps, values };
  return JSON.stringify(body);
}
