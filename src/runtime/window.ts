import type { FloatArray } from './types.js';

/**
 * One model input window of `length` = lookback * variables values, row-major [L, V], oldest row first.
 * The forecaster calls `copyInto` exactly once, straight into the batch tensor, so a request copies its
 * window at most once. A plain Float32Array/Float64Array of the right length is also accepted.
 */
export interface WindowSource {
  readonly length: number;
  copyInto(target: FloatArray, offset: number): void;
}

export type WindowInput = WindowSource | FloatArray;
