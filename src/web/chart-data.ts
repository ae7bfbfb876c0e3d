import type { DatasetRowsBody, PredictionBody } from '../http/api-bodies.js';

/**
 * What a dataset's chart shows, as plain arrays (no DOM, no uPlot): its rows, and every model reading it
 * drawn on from the last row at the forecast's own timestamps, with a band from the lowest to the highest
 * quantile level when the model has quantiles. A model whose forecast cannot be placed says why.
 */

export interface ChartSeries {
  readonly label: string;
  readonly kind: 'history' | 'forecast' | 'bound';
  readonly values: (number | null)[];
  readonly color: string;
}

export interface ChartData {
  /** Unix seconds, ascending: every history row and every forecast step. */
  readonly x: number[];
  readonly series: ChartSeries[];
  /** Pairs of indices into `series` (upper, lower) to fill between. */
  readonly bands: [number, number][];
  /** Why a model's forecast is not drawn, by model. */
  readonly notDrawn: Map<string, string>;
}

const HISTORY_COLORS = ['#1f2937', '#6b7280', '#374151', '#9ca3af'];
const FORECAST_COLORS = ['#2563eb', '#d97706', '#059669', '#db2777', '#7c3aed', '#0891b2'];

function seconds(iso: string): number {
  return Date.parse(iso) / 1000;
}

/** The lowest and highest quantile levels of a prediction, as their keys. */
function outerLevels(quantiles: Readonly<Record<string, readonly number[]>>): [string, string] | null {
  const levels = Object.keys(quantiles).sort((a, b) => Number(a) - Number(b));
  if (levels.length < 2) return null;
  return [levels[0]!, levels.at(-1)!];
}

export function chartData(rows: DatasetRowsBody, predictions: readonly PredictionBody[]): ChartData {
  const columns = rows.columns;
  const historyX = rows.timestamps.map(seconds);
  const notDrawn = new Map<string, string>();

  interface Line {
    label: string;
    color: string;
    column: number;
    times: number[];
    values: number[];
    bounds: { lower: readonly number[]; upper: readonly number[]; label: string } | null;
  }
  const lines: Line[] = [];
  predictions.forEach((p, m) => {
    const color = FORECAST_COLORS[m % FORECAST_COLORS.length]!;
    if (p.status !== 'Success' || p.prediction === undefined) {
      notDrawn.set(p.model_name, p.error_message ?? p.status);
      return;
    }
    if (p.timestamps === undefined || p.timestamps.length === 0) {
      notDrawn.set(p.model_name, 'the server gives no forecast timestamps for this model, so its forecast is not placed on the time axis');
      return;
    }
    const horizon = p.timestamps.length;
    const width = p.prediction.length / horizon;
    if (!Number.isInteger(width) || width < 1) {
      notDrawn.set(p.model_name, `${p.prediction.length} values do not divide into ${horizon} steps`);
      return;
    }
    const times = p.timestamps.map(seconds);
    const levels = p.quantiles === undefined ? null : outerLevels(p.quantiles);
    for (let v = 0; v < width; v++) {
      const pick = (flat: readonly number[]): number[] => Array.from({ length: horizon }, (_, h) => flat[h * width + v]!);
      const variable = width === 1 ? '' : ` · ${width === columns.length ? columns[v] : `output ${v}`}`;
      const bounds =
        levels === null || p.quantiles === undefined
          ? null
          : { lower: pick(p.quantiles[levels[0]]!), upper: pick(p.quantiles[levels[1]]!), label: `${levels[0]}–${levels[1]}` };
      lines.push({
        label: p.model_name + variable,
        color,
        column: width === columns.length ? v : -1,
        times,
        values: pick(p.prediction),
        bounds,
      });
    }
  });

  const x = [...new Set([...historyX, ...lines.flatMap((l) => l.times)])].sort((a, b) => a - b);
  const at = new Map(x.map((t, i) => [t, i]));
  const empty = (): (number | null)[] => new Array<number | null>(x.length).fill(null);
  const series: ChartSeries[] = [];
  const lastHistory: (number | null)[] = columns.map(() => null);
  columns.forEach((column, c) => {
    const values = empty();
    rows.values.forEach((row, i) => {
      values[at.get(historyX[i]!)!] = row[c] ?? null;
    });
    const lastRow = rows.values.at(-1);
    lastHistory[c] = lastRow?.[c] ?? null;
    series.push({ label: column, kind: 'history', values, color: HISTORY_COLORS[c % HISTORY_COLORS.length]! });
  });

  // A forecast starts from the last row it continues, so the eye follows one line from history into it.
  const lastX = historyX.at(-1);
  const bands: [number, number][] = [];
  for (const line of lines) {
    const start = line.column >= 0 && lastX !== undefined ? lastHistory[line.column] ?? null : null;
    const place = (values: readonly number[]): (number | null)[] => {
      const out = empty();
      if (start !== null && lastX !== undefined && line.times[0]! > lastX) out[at.get(lastX)!] = start;
      values.forEach((v, h) => {
        out[at.get(line.times[h]!)!] = v;
      });
      return out;
    };
    series.push({ label: line.label, kind: 'forecast', values: place(line.values), color: line.color });
    if (line.bounds !== null) {
      const upper = series.push({ label: `${line.label} ${line.bounds.label} high`, kind: 'bound', values: place(line.bounds.upper), color: line.color }) - 1;
      const lower = series.push({ label: `${line.label} ${line.bounds.label} low`, kind: 'bound', values: place(line.bounds.lower), color: line.color }) - 1;
      bands.push([upper, lower]);
    }
  }
  return { x, series, bands, notDrawn };
}

