/**
 * Backtest metrics as sums over typed arrays (SPEC "Evaluation"): each scored (origin, step, variable) value
 * adds into per-step, per-variable sums, so memory depends on horizon, variables and levels, never on the
 * number of origins. `finish` turns the sums into the published metrics.
 */

/** Mean absolute error, root mean squared error and mean error over the values summed. */
export interface ErrorSummary {
  readonly mae: number | null;
  readonly rmse: number | null;
  readonly bias: number | null;
}

export interface VariableMetrics {
  readonly variable: string;
  readonly mae: number | null;
  readonly rmse: number | null;
  readonly bias: number | null;
  readonly mase: number | null;
  readonly skill: number | null;
}

export interface BaselineMetrics {
  readonly mae: number | null;
  readonly rmse: number | null;
  readonly by_step: { readonly mae: (number | null)[] };
}

export interface QuantileMetrics {
  /** Share of scored values at or below this level's forecast. */
  readonly calibration: number | null;
  /** Mean pinball loss max(q·d, (q−1)·d), d = actual − forecast. */
  readonly pinball: number | null;
}

export interface IntervalMetrics {
  readonly lower: number;
  readonly upper: number;
  /** upper − lower: the share of actuals the interval should hold. */
  readonly nominal: number;
  /** Share of actuals inside [lower forecast, upper forecast]. */
  readonly coverage: number | null;
}

export interface MetricSummary {
  readonly mae: number | null;
  readonly rmse: number | null;
  readonly bias: number | null;
  readonly mase: number | null;
  readonly skill: number | null;
  readonly by_step: { readonly mae: (number | null)[]; readonly rmse: (number | null)[]; readonly bias: (number | null)[] };
  /** Only with more than one scored variable. */
  readonly by_variable?: VariableMetrics[];
  readonly baselines: { readonly naive: BaselineMetrics; readonly seasonal_naive: BaselineMetrics };
  readonly quantiles?: Record<string, QuantileMetrics>;
  readonly intervals?: IntervalMetrics[];
}

/** Sums of one forecast method (model or baseline), by step and variable. */
class ErrorSums {
  readonly abs: Float64Array;
  readonly sq: Float64Array;
  readonly sum: Float64Array;

  constructor(cells: number) {
    this.abs = new Float64Array(cells);
    this.sq = new Float64Array(cells);
    this.sum = new Float64Array(cells);
  }

  add(cell: number, e: number): void {
    this.abs[cell] = (this.abs[cell] as number) + Math.abs(e);
    this.sq[cell] = (this.sq[cell] as number) + e * e;
    this.sum[cell] = (this.sum[cell] as number) + e;
  }
}

/** Two levels whose sum is 1 (0.1 and 0.9) make an interval. */
function symmetricPairs(levels: readonly number[]): [number, number][] {
  const pairs: [number, number][] = [];
  for (let a = 0; a < levels.length; a++) {
    const lower = levels[a] as number;
    if (lower >= 0.5) continue;
    for (let b = levels.length - 1; b > a; b--) {
      if (Math.abs(lower + (levels[b] as number) - 1) < 1e-9) {
        pairs.push([a, b]);
        break;
      }
    }
  }
  return pairs;
}

export class MetricAccumulator {
  readonly #horizon: number;
  readonly #variables: number;
  readonly #levels: readonly number[];
  readonly #count: Float64Array;
  readonly #model: ErrorSums;
  readonly #naive: ErrorSums;
  readonly #seasonal: ErrorSums;
  /** Per level and variable: values at or below the forecast, and pinball sums. */
  readonly #below: Float64Array;
  readonly #pinball: Float64Array;
  readonly #pairs: [number, number][];
  /** Per interval and variable: actuals inside. */
  readonly #inside: Float64Array;

  constructor(horizon: number, variables: number, levels: readonly number[]) {
    this.#horizon = horizon;
    this.#variables = variables;
    this.#levels = levels;
    const cells = horizon * variables;
    this.#count = new Float64Array(cells);
    this.#model = new ErrorSums(cells);
    this.#naive = new ErrorSums(cells);
    this.#seasonal = new ErrorSums(cells);
    this.#below = new Float64Array(levels.length * variables);
    this.#pinball = new Float64Array(levels.length * variables);
    this.#pairs = symmetricPairs(levels);
    this.#inside = new Float64Array(this.#pairs.length * variables);
  }

  /**
   * One scored value: step `step` (0-based), variable `variable`, the stored actual, the model's forecast,
   * the two baselines' forecasts, and (quantile models) the forecast of each level, read by `quantileAt(k)`.
   */
  add(step: number, variable: number, actual: number, forecast: number, naive: number, seasonal: number, quantileAt: ((k: number) => number) | null): void {
    const cell = step * this.#variables + variable;
    this.#count[cell] = (this.#count[cell] as number) + 1;
    this.#model.add(cell, forecast - actual);
    this.#naive.add(cell, naive - actual);
    this.#seasonal.add(cell, seasonal - actual);
    if (quantileAt === null) return;
    const v = this.#variables;
    for (let k = 0; k < this.#levels.length; k++) {
      const q = this.#levels[k] as number;
      const f = quantileAt(k);
      const d = actual - f;
      const at = k * v + variable;
      if (actual <= f) this.#below[at] = (this.#below[at] as number) + 1;
      this.#pinball[at] = (this.#pinball[at] as number) + Math.max(q * d, (q - 1) * d);
    }
    for (let p = 0; p < this.#pairs.length; p++) {
      const [a, b] = this.#pairs[p] as [number, number];
      if (quantileAt(a) <= actual && actual <= quantileAt(b)) {
        const at = p * v + variable;
        this.#inside[at] = (this.#inside[at] as number) + 1;
      }
    }
  }

  /** Scored values so far. */
  get scored(): number {
    let n = 0;
    for (const c of this.#count) n += c;
    return n;
  }

  /**
   * The published metrics. `scales[c]` is variable c's MASE scale (null when it has none); `seasonLength`
   * picks the skill reference (the seasonal-naive baseline, or naive when it is 1); `names` the variables.
   */
  finish(scales: readonly (number | null)[], seasonLength: number, names: readonly string[]): MetricSummary {
    const H = this.#horizon;
    const V = this.#variables;
    // Sums over a set of cells: every cell, one step's, or one variable's.
    const total = (a: Float64Array, pick: (s: number, c: number) => boolean): number => {
      let x = 0;
      for (let s = 0; s < H; s++) for (let c = 0; c < V; c++) if (pick(s, c)) x += a[s * V + c] as number;
      return x;
    };
    const summary = (sums: ErrorSums, pick: (s: number, c: number) => boolean): ErrorSummary => {
      const n = total(this.#count, pick);
      if (n === 0) return { mae: null, rmse: null, bias: null };
      return { mae: total(sums.abs, pick) / n, rmse: Math.sqrt(total(sums.sq, pick) / n), bias: total(sums.sum, pick) / n };
    };
    const all = (): boolean => true;
    const byStep = (sums: ErrorSums): ErrorSummary[] => Array.from({ length: H }, (_, s) => summary(sums, (t) => t === s));
    const model = summary(this.#model, all);
    const modelSteps = byStep(this.#model);
    const baseline = (sums: ErrorSums): BaselineMetrics => {
      const overall = summary(sums, all);
      return { mae: overall.mae, rmse: overall.rmse, by_step: { mae: byStep(sums).map((x) => x.mae) } };
    };
    const reference = seasonLength === 1 ? this.#naive : this.#seasonal;
    const perVariable: VariableMetrics[] = [];
    for (let c = 0; c < V; c++) {
      const mine = summary(this.#model, (_, v) => v === c);
      const ref = summary(reference, (_, v) => v === c).mae;
      const scale = scales[c] ?? null;
      perVariable.push({
        variable: names[c] ?? String(c),
        mae: mine.mae,
        rmse: mine.rmse,
        bias: mine.bias,
        mase: mine.mae === null || scale === null ? null : mine.mae / scale,
        skill: mine.mae === null || ref === null || ref === 0 ? null : 1 - mine.mae / ref,
      });
    }
    const mean = (xs: (number | null)[]): number | null => {
      if (xs.length === 0 || xs.some((x) => x === null)) return null;
      return (xs as number[]).reduce((a, b) => a + b, 0) / xs.length;
    };
    const result: MetricSummary = {
      mae: model.mae,
      rmse: model.rmse,
      bias: model.bias,
      mase: mean(perVariable.map((x) => x.mase)),
      skill: mean(perVariable.map((x) => x.skill)),
      by_step: { mae: modelSteps.map((x) => x.mae), rmse: modelSteps.map((x) => x.rmse), bias: modelSteps.map((x) => x.bias) },
      ...(V > 1 ? { by_variable: perVariable } : {}),
      baselines: { naive: baseline(this.#naive), seasonal_naive: baseline(this.#seasonal) },
    };
    if (this.#levels.length === 0) return result;
    const n = total(this.#count, all);
    const share = (a: Float64Array, index: number): number | null => {
      if (n === 0) return null;
      let x = 0;
      for (let c = 0; c < V; c++) x += a[index * V + c] as number;
      return x / n;
    };
    const quantiles: Record<string, QuantileMetrics> = {};
    this.#levels.forEach((q, k) => {
      quantiles[String(q)] = { calibration: share(this.#below, k), pinball: share(this.#pinball, k) };
    });
    const intervals = this.#pairs.map(([a, b], p): IntervalMetrics => {
      const lower = this.#levels[a] as number;
      const upper = this.#levels[b] as number;
      return { lower, upper, nominal: roundLevel(upper - lower), coverage: share(this.#inside, p) };
    });
    return { ...result, quantiles, intervals };
  }
}

/** 0.9 − 0.1 is 0.8, not 0.8000000000000002: levels are written with few digits. */
function roundLevel(x: number): number {
  return Number(x.toPrecision(12));
}
