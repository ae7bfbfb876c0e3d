/**
 * Writes the benchmark's models into a folder and prints what it wrote as JSON:
 * - heavy: MLP, lookback 64, three hidden layers of 512, horizon 12 (the heavy model);
 * - medium: MLP, lookback 64, two hidden layers of 128, horizon 12 (the fourth model of the POST workload);
 * - small: linear autoregression, lookback 64, horizon 12, seasonal-naive weights (period 52 weeks);
 * - gru: GRU over the 64-step window, hidden size 128, the last state through a Gemm to horizon 12;
 * - conv: two 1-D convolutions (64 channels, kernel 5, same padding, Relu) over the window, then a Gemm to 12.
 * heavy, gru and conv are the heavy models (about 0.1–0.2 ms per batch-1 run on one core), of three shapes.
 * All take one variable (the co2 column) and have a symbolic batch dimension.
 *
 * Usage (after compiling with tsc, as bench/http/run.mjs does): node models.js OUT_DIR
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { HEAVY_WORKLOADS } from './results.js';
import { convModel, gruModel, linearModel, mlpModel, seasonalNaiveWeights } from '../../tools/onnx-builder.js';

export interface BenchModel {
  readonly name: string;
  readonly path: string;
  readonly lookback: number;
  readonly horizon: number;
  readonly description: string;
}

const LOOKBACK = 64;
const HORIZON = 12;

/** The heavy models: the ones the bench's goals are about. */
export const HEAVY_MODELS: readonly string[] = HEAVY_WORKLOADS;

export function writeBenchModels(outDir: string): BenchModel[] {
  mkdirSync(outDir, { recursive: true });
  const models: { name: string; description: string; bytes: Uint8Array }[] = [
    {
      name: 'heavy',
      description: 'MLP 64→512→512→512→12',
      bytes: mlpModel({ lookback: LOOKBACK, hidden: [512, 512, 512], horizon: HORIZON, seed: 1, modelVersion: 1 }),
    },
    {
      name: 'medium',
      description: 'MLP 64→128→128→12',
      bytes: mlpModel({ lookback: LOOKBACK, hidden: [128, 128], horizon: HORIZON, seed: 2, modelVersion: 1 }),
    },
    {
      name: 'small',
      description: 'linear AR 64→12 (seasonal naive, period 52)',
      bytes: linearModel({
        lookback: LOOKBACK,
        horizon: HORIZON,
        weights: seasonalNaiveWeights(LOOKBACK, HORIZON, 52),
        modelVersion: 1,
      }),
    },
    {
      name: 'gru',
      description: 'GRU over 64 steps, hidden 128, last state → 12',
      bytes: gruModel({ lookback: LOOKBACK, hidden: 128, horizon: HORIZON, seed: 3, modelVersion: 1 }),
    },
    {
      name: 'conv',
      description: '1-D convolutions 1→64→64 channels (kernel 5, Relu) over 64 steps → 12',
      bytes: convModel({ lookback: LOOKBACK, channels: [64, 64], kernel: 5, horizon: HORIZON, seed: 4, modelVersion: 1 }),
    },
  ];
  return models.map(({ name, description, bytes }) => {
    const path = join(outDir, `${name}.onnx`);
    writeFileSync(path, bytes);
    return { name, path, lookback: LOOKBACK, horizon: HORIZON, description };
  });
}

const outDir = process.argv[2];
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  if (!outDir) throw new Error('usage: node models.js OUT_DIR');
  process.stdout.write(`${JSON.stringify(writeBenchModels(outDir))}\n`);
}
