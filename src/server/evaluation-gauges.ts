/** The numbers /metrics shows of a model's latest evaluation, read from its backtest result. */
import type { BacktestResult } from '../evaluation/backtest.js';
import type { EvaluationGauges } from '../metrics.js';

export function evaluationGauges(result: BacktestResult | null): EvaluationGauges | null {
  if (result === null) return null;
  return {
    mae: result.mae,
    skill: result.skill,
    calibration: Object.entries(result.quantiles ?? {}).map(([level, q]) => [Number(level), q.calibration] as const),
    coverage: (result.intervals ?? []).map((i) => [i.nominal, i.coverage] as const),
  };
}
