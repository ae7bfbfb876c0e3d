/** Models the embedding cases load, written as files into a case's scratch folder. */
import { writeFileSync } from 'node:fs';
import path from 'node:path';

import { linearModel, slowModel } from '../../tools/onnx-builder.js';

/** Sums its four inputs: [B, 4] -> [B, 1]. */
export const SUM_LOOKBACK = 4;
/** The slow model's window size; a [64, SLOW_SIZE] batch keeps one run thread busy for a while. */
export const SLOW_SIZE = 128;
export const SLOW_BATCH = 64;

export interface ModelFiles {
  readonly sum: string;
  readonly slow: string;
}

export function writeModels(dir: string): ModelFiles {
  const sum = path.join(dir, 'sum.onnx');
  const slow = path.join(dir, 'slow.onnx');
  writeFileSync(sum, linearModel({ lookback: SUM_LOOKBACK, horizon: 1, weights: [1, 1, 1, 1], rank: 2 }));
  writeFileSync(slow, slowModel({ size: SLOW_SIZE, depth: 400 }));
  return { sum, slow };
}

/**
 * Script lines that configure one run thread, load both models as `sum` and `slow`, and define `busy()`: a
 * slow run that occupies the run thread, so work queued after it waits (and its inputs wait with it).
 */
export function preamble(models: ModelFiles, runThreads = 1): string {
  return `
    const { InferenceSession, configureRuntime } = forecastd;
    configureRuntime({ runThreads: ${runThreads} });
    const sum = await InferenceSession.load(${JSON.stringify(models.sum)});
    const slow = await InferenceSession.load(${JSON.stringify(models.slow)});
    const busy = () => slow.run({ window: { data: new Float32Array(${SLOW_BATCH * SLOW_SIZE}).fill(0.5), shape: [${SLOW_BATCH}, ${SLOW_SIZE}] } });
  `;
}
