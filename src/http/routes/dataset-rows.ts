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

/**
 * `{"name","columns","timestamps","values"}` in pieces of about `pieceChars` characters (ASCII: as many bytes),
 * so a large answer is produced as the client drains it and never held whole; the pieces joined are the text
 * JSON.stringify gives. Timestamps print as /v1/datasets prints them (toISOString).
 */
export function* datasetRowsPieces(name: string, rows: DatasetRows, pieceChars: number): Generator<string, void, undefined> {
  const width = rows.columns.length;
  const n = rows.times.length;
  let piece = `{"name":${JSON.stringify(name)},"columns":${JSON.stringify(rows.columns)},"timestamps":[`;
  for (let i = 0; i < n; i++) {
    piece += (i === 0 ? '"' : ',"') + new Date(rows.times[i]!).toISOString() + '"';
    if (piece.length >= pieceChars) {
      yield piece;
      piece = '';
    }
  }
  piece += '],"values":[';
  for (let i = 0; i < n; i++) {
    piece += i === 0 ? '[' : ',[';
    const base = i * width;
    for (let c = 0; c < width; c++) {
      const v = rows.values[base + c]!;
      if (c > 0) piece += ',';
      // String() of a finite number is JSON's own spelling of it (JSON.stringify(-0) is "0", as String(-0)).
      piece += Number.isFinite(v) ? String(v) : 'null';
    }
    piece += ']';
    if (piece.length >= pieceChars) {
      yield piece;
      piece = '';
    }
  }
  yield piece + ']}';
}

/** The whole answer as one string (small answers, and tests comparing the pieces with JSON.stringify). */
export function datasetRowsBody(name: string, rows: DatasetRows): string {
  let body = '';
  for (const piece of datasetRowsPieces(name, rows, Number.POSITIVE_INFINITY)) body += piece;
  return body;
}
