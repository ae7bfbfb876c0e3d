/**
 * How an ensemble combines its members' forecasts (SPEC "Ensembles and variants"): element by element over
 * arrays of one layout, so point forecasts and raw quantile outputs ([H, Q] or [H, V', Q], levels innermost)
 * combine the same way, and the median of a quantile output is taken level by level.
 */
import type { FloatArray } from '../runtime/types.js';

export type CombineMethod = 'mean' | 'median' | 'weighted';

/**
 * `parts` (one array per member, all of one length) combined: the weighted sum with `weights` (which sum to
 * 1; mean passes equal ones), or the median (the mean of the two middle values for an even count). The
 * result is float32 when `float32`, else float64.
 */
export function combineForecasts(parts: readonly FloatArray[], weights: readonly number[], method: CombineMethod, float32: boolean): FloatArray {
  const length = parts[0]?.length ?? 0;
  for (const part of parts) {
    if (part.length !== length) throw new RangeError(`members gave ${part.length} and ${length} values; an ensemble combines forecasts of one layout`);
  }
  const out = float32 ? new Float32Array(length) : new Float64Array(length);
  const n = parts.length;
  if (method === 'median') {
    const column = new Float64Array(n);
    const middle = n >> 1;
    for (let i = 0; i < length; i++) {
      for (let m = 0; m < n; m++) column[m] = (parts[m] as FloatArray)[i] as number;
      column.sort();
      out[i] = n % 2 === 1 ? (column[middle] as number) : ((column[middle - 1] as number) + (column[middle] as number)) / 2;
    }
    return out;
  }
  for (let i = 0; i < length; i++) {
    let sum = 0;
    for (let m = 0; m < n; m++) sum += (weights[m] as number) * ((parts[m] as FloatArray)[i] as number);
    out[i] = sum;
  }
  return out;
}
