/**
 * An independent backtest for daily series, written from SPEC "Evaluation" with plain loops: windows built by
 * hand from a map of days (fill_missing none or previous), forecasts from onnxruntime-node (not the addon),
 * metrics summed one value at a time. The server's results are compared with this.
 */
import * as ort from 'onnxruntime-node';
import { expect } from 'vitest';

export const DAY = 86_400_000;

export interface Series {
  /** Epoch ms of each row, ascending. */
  readonly times: readonly number[];
  /** Per row, its values (NaN: empty cell). */
  readonly rows: readonly (readonly number[])[];
}

export interface OracleOptions {
  readonly lookback: number;
  readonly horizon: number;
  /** Values per step in the model output: V (every column) or 1 (the first column). */
  readonly outputVariables: number;
  readonly fill: 'none' | 'previous';
  readonly origins: number;
  readonly since: number | null;
  readonly seasonLength: number;
  /** Quantile levels and the name of their output, for quantile models. */
  readonly levels?: readonly number[];
  readonly quantileOutput?: string;
}

export interface OracleResult {
  origins: number;
  skipped: number;
  first_origin: string;
  last_origin: string;
  skipped_pairs: number;
  mae: number;
  rmse: number;
  bias: number;
  mase: number | null;
  skill: number | null;
  by_step: { mae: number[]; rmse: number[]; bias: number[] };
  naive: { mae: number; rmse: number; by_step: number[] };
  seasonal: { mae: number; rmse: number; by_step: number[] };
  by_variable: { mae: number; mase: number | null; skill: number | null }[];
  quantiles: Record<string, { calibration: number; pinball: number }>;
  intervals: { lower: number; upper: number; coverage: number }[];
  /**
   * The forecasts of up to 5 recent origins, each at least `horizon` days older than the next kept one,
   * oldest first, one entry per scored variable (column index c).
   */
  past: { origin: string; c: number; timestamps: string[]; forecast: number[]; actual: (number | null)[] }[];
}

/** The value of column c at day `t`, as stored (undefined: no row that day). */
function stored(series: Series, byTime: Map<number, number>, t: number, c: number): number | undefined {
  const r = byTime.get(t);
  if (r === undefined) return undefined;
  return series.rows[r]![c]!;
}

export async function oracleBacktest(modelBytes: Uint8Array, series: Series, o: OracleOptions): Promise<OracleResult> {
  const V = series.rows[0]!.length;
  const S = o.outputVariables;
  const { lookback: L, horizon: H, seasonLength: m } = o;
  const byTime = new Map<number, number>();
  series.times.forEach((t, i) => byTime.set(t, i));
  const first = series.times[0]!;
  const anchor = series.times[series.times.length - 1]!;

  // The value at day t as a window would hold it: stored, else (previous) the last stored value before it.
  const filled = (t: number, c: number): number | undefined => {
    const v = stored(series, byTime, t, c);
    if (v !== undefined && !Number.isNaN(v)) return v;
    if (o.fill === 'none') return undefined;
    for (let u = t - DAY; u >= first; u -= DAY) {
      const w = stored(series, byTime, u, c);
      if (w !== undefined && !Number.isNaN(w)) return w;
    }
    return undefined;
  };

  const origins: number[] = [];
  const windows: number[] = [];
  const histories: number[][] = [];
  let skipped = 0;
  for (let j = H; origins.length < o.origins; j++) {
    const t = anchor - j * DAY;
    if (t < first) break;
    if (o.since !== null && t < o.since) break;
    if (!byTime.has(t)) continue;
    const span = Math.max(L, m);
    const w: number[] = [];
    let ok = true;
    for (let i = 0; i < span && ok; i++) {
      const day = t - (span - 1 - i) * DAY;
      if (day < first) ok = false;
      for (let c = 0; c < V && ok; c++) {
        const v = filled(day, c);
        if (v === undefined) ok = false;
        else w.push(v);
      }
    }
    if (!ok) {
      skipped++;
      continue;
    }
    origins.push(t);
    windows.push(...w.slice((span - L) * V));
    // history[back][c], rounded to float32 as the model's input holds it.
    const history: number[] = [];
    for (let back = 0; back < m; back++) for (let c = 0; c < S; c++) history.push(Math.fround(w[(span - 1 - back) * V + c]!));
    histories.push(history);
  }

  const session = await ort.InferenceSession.create(modelBytes);
  const input = new ort.Tensor('float32', Float32Array.from(windows), [origins.length, L, V]);
  const out = await session.run({ [session.inputNames[0]!]: input });
  const point = out[session.outputNames[0]!]!.data as Float32Array;
  const q = o.quantileOutput === undefined ? null : (out[o.quantileOutput]!.data as Float32Array);
  const levels = o.levels ?? [];
  const Q = levels.length;

  const errs: { s: number; c: number; e: number; naive: number; seasonal: number }[] = [];
  const qStats = levels.map(() => ({ below: 0, pinball: 0 }));
  const pairs: [number, number][] = [];
  levels.forEach((lo, a) => {
    levels.forEach((hi, b) => {
      if (lo < 0.5 && b > a && Math.abs(lo + hi - 1) < 1e-9) pairs.push([a, b]);
    });
  });
  const inside = pairs.map(() => 0);
  let skippedPairs = 0;
  origins.forEach((t, k) => {
    for (let s = 0; s < H; s++) {
      const target = t + (s + 1) * DAY;
      const actuals: number[] = [];
      for (let c = 0; c < S; c++) {
        const v = stored(series, byTime, target, c);
        if (v === undefined || Number.isNaN(v)) break;
        actuals.push(v);
      }
      if (actuals.length < S) {
        skippedPairs++;
        continue;
      }
      const back = m * Math.ceil((s + 1) / m) - (s + 1);
      for (let c = 0; c < S; c++) {
        const f = point[k * H * S + s * S + c]!;
        const actual = actuals[c]!;
        const naive = histories[k]![c]!;
        const seasonal = histories[k]![back * S + c]!;
        errs.push({ s, c, e: f - actual, naive: naive - actual, seasonal: seasonal - actual });
        if (q !== null) {
          for (let l = 0; l < Q; l++) {
            const fq = q[((k * H + s) * S + c) * Q + l]!;
            const d = actual - fq;
            if (actual <= fq) qStats[l]!.below++;
            qStats[l]!.pinball += Math.max(levels[l]! * d, (levels[l]! - 1) * d);
          }
          pairs.forEach(([a, b], p) => {
            const lo = q[((k * H + s) * S + c) * Q + a]!;
            const hi = q[((k * H + s) * S + c) * Q + b]!;
            if (lo <= actual && actual <= hi) inside[p]!++;
          });
        }
      }
    }
  });

  const keptOrigins: number[] = [];
  origins.forEach((t, k) => {
    const newer = keptOrigins[keptOrigins.length - 1];
    if (keptOrigins.length < 5 && (newer === undefined || origins[newer]! - t >= H * DAY)) keptOrigins.push(k);
  });
  const past = keptOrigins.reverse().flatMap((k) =>
    Array.from({ length: S }, (_, c) => {
      const t = origins[k]!;
      const targets = Array.from({ length: H }, (_, s) => t + (s + 1) * DAY);
      return {
        origin: new Date(t).toISOString(),
        c,
        timestamps: targets.map((u) => new Date(u).toISOString()),
        forecast: Array.from({ length: H }, (_, s) => point[k * H * S + s * S + c]!),
        actual: targets.map((u) => {
          const v = stored(series, byTime, u, c);
          return v === undefined || Number.isNaN(v) ? null : v;
        }),
      };
    }),
  );

  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
  const maeOf = (pick: (x: (typeof errs)[number]) => number, keep: (x: (typeof errs)[number]) => boolean = () => true): number =>
    mean(errs.filter(keep).map((x) => Math.abs(pick(x))));
  const rmseOf = (pick: (x: (typeof errs)[number]) => number, keep: (x: (typeof errs)[number]) => boolean = () => true): number =>
    Math.sqrt(mean(errs.filter(keep).map((x) => pick(x) ** 2)));
  const steps = Array.from({ length: H }, (_, s) => s);

  // MASE scale per variable: |y_i - y_{i-m}| over stored values up to the first origin.
  const firstOrigin = origins[origins.length - 1]!;
  const scales: (number | null)[] = [];
  for (let c = 0; c < S; c++) {
    const diffs: number[] = [];
    for (let i = 0; i < series.times.length; i++) {
      const t = series.times[i]!;
      if (t > firstOrigin) break;
      const now = series.rows[i]![c]!;
      const before = stored(series, byTime, t - m * DAY, c);
      if (Number.isNaN(now) || before === undefined || Number.isNaN(before)) continue;
      diffs.push(Math.abs(now - before));
    }
    const scale = diffs.length < m ? null : mean(diffs);
    scales.push(scale === 0 ? null : scale);
  }
  const byVariable = Array.from({ length: S }, (_, c) => {
    const mae = maeOf((x) => x.e, (x) => x.c === c);
    const ref = m === 1 ? maeOf((x) => x.naive, (x) => x.c === c) : maeOf((x) => x.seasonal, (x) => x.c === c);
    const scale = scales[c]!;
    return { mae, mase: scale === null ? null : mae / scale, skill: ref === 0 ? null : 1 - mae / ref };
  });
  const avg = (xs: (number | null)[]): number | null => (xs.some((x) => x === null) ? null : mean(xs as number[]));
  const n = errs.length;
  const quantiles: Record<string, { calibration: number; pinball: number }> = {};
  levels.forEach((level, l) => {
    quantiles[String(level)] = { calibration: qStats[l]!.below / n, pinball: qStats[l]!.pinball / n };
  });
  return {
    origins: origins.length,
    skipped,
    first_origin: new Date(firstOrigin).toISOString(),
    last_origin: new Date(origins[0]!).toISOString(),
    skipped_pairs: skippedPairs,
    mae: maeOf((x) => x.e),
    rmse: rmseOf((x) => x.e),
    bias: mean(errs.map((x) => x.e)),
    mase: avg(byVariable.map((x) => x.mase)),
    skill: avg(byVariable.map((x) => x.skill)),
    by_step: {
      mae: steps.map((s) => maeOf((x) => x.e, (x) => x.s === s)),
      rmse: steps.map((s) => rmseOf((x) => x.e, (x) => x.s === s)),
      bias: steps.map((s) => mean(errs.filter((x) => x.s === s).map((x) => x.e))),
    },
    naive: { mae: maeOf((x) => x.naive), rmse: rmseOf((x) => x.naive), by_step: steps.map((s) => maeOf((x) => x.naive, (x) => x.s === s)) },
    seasonal: {
      mae: maeOf((x) => x.seasonal),
      rmse: rmseOf((x) => x.seasonal),
      by_step: steps.map((s) => maeOf((x) => x.seasonal, (x) => x.s === s)),
    },
    by_variable: byVariable,
    quantiles,
    intervals: pairs.map(([a, b], p) => ({ lower: levels[a]!, upper: levels[b]!, coverage: inside[p]! / n })),
    past,
  };
}

/** `actual` equals `expected` to 1e-6 relative (null: must be null). */
export function close(actual: unknown, expected: number | null, what: string): void {
  if (expected === null) {
    expect(actual, what).toBeNull();
    return;
  }
  expect(typeof actual, what).toBe('number');
  const a = actual as number;
  const tolerance = 1e-6 * Math.max(Math.abs(a), Math.abs(expected)) + 1e-12;
  expect(Math.abs(a - expected), `${what}: ${a} against ${expected}`).toBeLessThanOrEqual(tolerance);
}
