/**
 * Direct multi-horizon linear autoregression, fitted by ridge least squares in float64.
 *
 * Step h (0-based: h + 1 intervals after the window's last row) has its own least-squares fit of
 *   y[t+h+1] - y[t] = b_h + sum_{i < L-1} w_{i,h} * (y[t-L+1+i] - y[t])
 * i.e. a change from the last value explained by the window's shape. Written back in levels this is a plain
 * linear model y[t+h+1] = b_h + sum_i W[i,h] * y[t-L+1+i] with W[L-1,h] = 1 - sum_{i<L-1} w_{i,h}, which is what
 * the ONNX model computes. Fitting changes instead of levels keeps the normal equations well conditioned,
 * makes the ridge term shrink towards the naive (last value) forecast, and extrapolates to levels above any
 * seen in training, as a trending series needs.
 */

export interface LinearForecaster {
  readonly lookback: number;
  readonly horizon: number;
  /** Row-major [L, H], levels in, levels out (the layout `linearModel` takes). */
  readonly weights: Float64Array;
  /** [H]. */
  readonly bias: Float64Array;
}

export interface FitOptions {
  readonly lookback: number;
  readonly horizon: number;
  /** Ridge penalty as a fraction of the mean diagonal of the centred normal matrix. */
  readonly ridge: number;
  /**
   * Forecast origins t (index of the window's last row) that may be used; a sample also needs its target,
   * t + h + 1, below `targetEnd` and observed.
   */
  readonly originStart?: number;
  readonly targetEnd?: number;
}

/**
 * Fills gaps (NaN) by linear interpolation between the nearest observed neighbours; gaps at either end take
 * the nearest observed value. Throws when nothing is observed.
 */
export function interpolateGaps(values: ArrayLike<number>): Float64Array {
  const out = Float64Array.from(values);
  const observed: number[] = [];
  for (let i = 0; i < out.length; i++) if (!Number.isNaN(out[i])) observed.push(i);
  const first = observed[0];
  const last = observed[observed.length - 1];
  if (first === undefined || last === undefined) throw new Error('the series has no observed value');
  for (let i = 0; i < first; i++) out[i] = out[first] as number;
  for (let i = last + 1; i < out.length; i++) out[i] = out[last] as number;
  for (let k = 0; k + 1 < observed.length; k++) {
    const a = observed[k] as number;
    const b = observed[k + 1] as number;
    const va = out[a] as number;
    const vb = out[b] as number;
    for (let i = a + 1; i < b; i++) out[i] = va + ((vb - va) * (i - a)) / (b - a);
  }
  return out;
}

/** Solves A x = y for a symmetric positive definite A (n x n, row-major) by Cholesky factorization. */
export function choleskySolve(a: Float64Array, y: Float64Array, n: number): Float64Array {
  const l = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let sum = a[i * n + j] as number;
      for (let k = 0; k < j; k++) sum -= (l[i * n + k] as number) * (l[j * n + k] as number);
      if (i === j) {
        if (!(sum > 0)) throw new Error(`normal matrix is not positive definite at pivot ${i}; increase the ridge`);
        l[i * n + i] = Math.sqrt(sum);
      } else {
        l[i * n + j] = sum / (l[j * n + j] as number);
      }
    }
  }
  const z = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let sum = y[i] as number;
    for (let k = 0; k < i; k++) sum -= (l[i * n + k] as number) * (z[k] as number);
    z[i] = sum / (l[i * n + i] as number);
  }
  const x = new Float64Array(n);
  for (let i = n - 1; i >= 0; i--) {
    let sum = z[i] as number;
    for (let k = i + 1; k < n; k++) sum -= (l[k * n + i] as number) * (x[k] as number);
    x[i] = sum / (l[i * n + i] as number);
  }
  return x;
}

/**
 * Fits one ridge regression per horizon step. `filled` is the gap-free series used for windows; `observed`
 * marks which values were real, so no sample is fitted to an interpolated target.
 */
export function fitLinearAutoregression(
  filled: Float64Array,
  observed: ArrayLike<boolean>,
  options: FitOptions,
): LinearForecaster {
  const { lookback: L, horizon: H } = options;
  const p = L - 1;
  const originStart = Math.max(options.originStart ?? L - 1, L - 1);
  const targetEnd = Math.min(options.targetEnd ?? filled.length, filled.length);
  const weights = new Float64Array(L * H);
  const bias = new Float64Array(H);
  const x = new Float64Array(p);
  for (let h = 0; h < H; h++) {
    // Accumulate sums for centring, then the centred normal equations, in one pass.
    const xtx = new Float64Array(p * p);
    const xty = new Float64Array(p);
    const sumX = new Float64Array(p);
    let sumY = 0;
    let count = 0;
    for (let t = originStart; t + h + 1 < targetEnd; t++) {
      if (!observed[t + h + 1]) continue;
      const last = filled[t] as number;
      for (let i = 0; i < p; i++) x[i] = (filled[t - L + 1 + i] as number) - last;
      const y = (filled[t + h + 1] as number) - last;
      for (let i = 0; i < p; i++) {
        const xi = x[i] as number;
        sumX[i] = (sumX[i] as number) + xi;
        xty[i] = (xty[i] as number) + xi * y;
        for (let j = 0; j <= i; j++) xtx[i * p + j] = (xtx[i * p + j] as number) + xi * (x[j] as number);
      }
      sumY += y;
      count++;
    }
    if (count <= p) throw new Error(`step ${h + 1}: ${count} training samples for ${p} weights; need more data`);
    let trace = 0;
    for (let i = 0; i < p; i++) {
      const mi = (sumX[i] as number) / count;
      xty[i] = (xty[i] as number) - mi * sumY;
      for (let j = 0; j <= i; j++) {
        const c = (xtx[i * p + j] as number) - mi * (sumX[j] as number);
        xtx[i * p + j] = c;
        xtx[j * p + i] = c;
      }
      trace += xtx[i * p + i] as number;
    }
    const lambda = (options.ridge * trace) / p;
    for (let i = 0; i < p; i++) xtx[i * p + i] = (xtx[i * p + i] as number) + lambda;
    const w = choleskySolve(xtx, xty, p);
    let b = sumY / count;
    let sumW = 0;
    for (let i = 0; i < p; i++) {
      const wi = w[i] as number;
      b -= wi * ((sumX[i] as number) / count);
      sumW += wi;
      weights[i * H + h] = wi;
    }
    weights[(L - 1) * H + h] = 1 - sumW;
    bias[h] = b;
  }
  return { lookback: L, horizon: H, weights, bias };
}

/** The forecast for the window whose last row is index `origin` of `series`, in float64. */
export function forecastAt(model: LinearForecaster, series: ArrayLike<number>, origin: number): Float64Array {
  const { lookback: L, horizon: H } = model;
  const out = Float64Array.from(model.bias);
  for (let i = 0; i < L; i++) {
    const v = series[origin - L + 1 + i] as number;
    for (let h = 0; h < H; h++) out[h] = (out[h] as number) + v * (model.weights[i * H + h] as number);
  }
  return out;
}

export interface ErrorMetrics {
  readonly mae: number;
  readonly rmse: number;
  readonly count: number;
}

export interface MethodMetrics {
  /** Index h: the step h + 1 intervals ahead. */
  readonly byStep: readonly ErrorMetrics[];
  readonly overall: ErrorMetrics;
}

export interface Backtest {
  /** First forecast origin (index of a window's last row) of the test period, and how many were scored. */
  readonly firstOrigin: number;
  readonly origins: number;
  readonly linear: MethodMetrics;
  readonly naive: MethodMetrics;
  readonly seasonalNaive: MethodMetrics;
}

class ErrorAccumulator {
  private abs = 0;
  private sq = 0;
  private n = 0;
  add(error: number): void {
    this.abs += Math.abs(error);
    this.sq += error * error;
    this.n++;
  }
  result(): ErrorMetrics {
    return { mae: this.abs / this.n, rmse: Math.sqrt(this.sq / this.n), count: this.n };
  }
}

/**
 * Scores forecasts from every origin t >= firstOrigin that has all H targets inside the series, against the
 * observed targets only: the linear model, the naive forecast (the window's last value for every step) and
 * the seasonal-naive forecast (the value `period` intervals before each target).
 */
export function backtest(
  model: LinearForecaster,
  filled: Float64Array,
  observed: ArrayLike<boolean>,
  firstOrigin: number,
  period: number,
): Backtest {
  const H = model.horizon;
  const methods = ['linear', 'naive', 'seasonalNaive'] as const;
  const acc = Object.fromEntries(
    methods.map((m) => [m, { byStep: Array.from({ length: H }, () => new ErrorAccumulator()), overall: new ErrorAccumulator() }]),
  ) as Record<(typeof methods)[number], { byStep: ErrorAccumulator[]; overall: ErrorAccumulator }>;
  let origins = 0;
  for (let t = firstOrigin; t + H < filled.length; t++) {
    origins++;
    const linear = forecastAt(model, filled, t);
    for (let h = 0; h < H; h++) {
      const target = t + h + 1;
      if (!observed[target]) continue;
      const actual = filled[target] as number;
      const predictions = {
        linear: linear[h] as number,
        naive: filled[t] as number,
        seasonalNaive: filled[target - period] as number,
      };
      for (const m of methods) {
        const e = predictions[m] - actual;
        acc[m].byStep[h]?.add(e);
        acc[m].overall.add(e);
      }
    }
  }
  const result = (m: (typeof methods)[number]): MethodMetrics => ({
    byStep: acc[m].byStep.map((a) => a.result()),
    overall: acc[m].overall.result(),
  });
  return { firstOrigin, origins, linear: result('linear'), naive: result('naive'), seasonalNaive: result('seasonalNaive') };
}

/** The empirical quantile of sorted values at `level` (linear between order statistics). */
export function empiricalQuantile(sorted: ArrayLike<number>, level: number): number {
  const n = sorted.length;
  if (n === 0) throw new Error('no values to take a quantile of');
  const pos = level * (n - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, n - 1);
  const a = sorted[lo] as number;
  return a + ((sorted[hi] as number) - a) * (pos - lo);
}

/**
 * Per step h, the residuals (actual - forecast) of `model` over the origins firstOrigin..lastOrigin whose
 * target is observed and below `targetEnd`, sorted ascending.
 */
export function residualsByStep(
  model: LinearForecaster,
  filled: Float64Array,
  observed: ArrayLike<boolean>,
  firstOrigin: number,
  targetEnd: number,
): Float64Array[] {
  const H = model.horizon;
  const byStep: number[][] = Array.from({ length: H }, () => []);
  for (let t = firstOrigin; t + 1 < targetEnd; t++) {
    const forecast = forecastAt(model, filled, t);
    for (let h = 0; h < H; h++) {
      const target = t + h + 1;
      if (target >= targetEnd || !observed[target]) continue;
      byStep[h]?.push((filled[target] as number) - (forecast[h] as number));
    }
  }
  return byStep.map((r) => Float64Array.from(r).sort());
}

/** Row-major [H, Q] offsets from the point forecast: the residual quantiles of each step at each level. */
export function residualOffsets(residuals: readonly Float64Array[], levels: readonly number[]): Float64Array {
  const out = new Float64Array(residuals.length * levels.length);
  residuals.forEach((sorted, h) => levels.forEach((level, q) => (out[h * levels.length + q] = empiricalQuantile(sorted, level))));
  return out;
}

export interface IntervalCoverage {
  /** Index h: share of observed targets h + 1 steps ahead inside [lower, upper]. */
  readonly byStep: readonly number[];
  readonly overall: number;
  readonly count: number;
}

/**
 * How often the interval [point + offsets[lower], point + offsets[upper]] held the measured value, over
 * the origins from firstOrigin on (the backtest's).
 */
export function intervalCoverage(
  model: LinearForecaster,
  offsets: Float64Array,
  levels: number,
  lower: number,
  upper: number,
  filled: Float64Array,
  observed: ArrayLike<boolean>,
  firstOrigin: number,
): IntervalCoverage {
  const H = model.horizon;
  const inside = new Float64Array(H);
  const counts = new Float64Array(H);
  for (let t = firstOrigin; t + H < filled.length; t++) {
    const forecast = forecastAt(model, filled, t);
    for (let h = 0; h < H; h++) {
      const target = t + h + 1;
      if (!observed[target]) continue;
      const actual = filled[target] as number;
      const f = forecast[h] as number;
      counts[h] = (counts[h] as number) + 1;
      if (actual >= f + (offsets[h * levels + lower] as number) && actual <= f + (offsets[h * levels + upper] as number)) {
        inside[h] = (inside[h] as number) + 1;
      }
    }
  }
  let allInside = 0;
  let all = 0;
  for (let h = 0; h < H; h++) {
    allInside += inside[h] as number;
    all += counts[h] as number;
  }
  return { byStep: Array.from(inside, (v, h) => v / (counts[h] as number)), overall: allInside / all, count: all };
}
