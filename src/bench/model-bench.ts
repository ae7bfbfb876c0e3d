/**
 * `forecastd bench MODEL.onnx`: one model run through forecastd's addon and through onnxruntime-node side by
 * side, with the same windows and the same thread settings, at each batch size and number of callers.
 */
import { readFile } from 'node:fs/promises';
import os from 'node:os';

import { ForecastdError } from '../errors.js';
import { checkForecastModel, formatShape, type ForecastModelShape } from '../runtime/model-contract.js';
import { runtimeInfo } from '../runtime/runtime.js';
import { InferenceSession } from '../runtime/session.js';
import { hardwareSummary, measureLoop, type LoopMeasurement } from './measure.js';

export const RUNTIMES = ['forecastd', 'onnxruntime-node'] as const;
export type RuntimeName = (typeof RUNTIMES)[number];

export interface ModelBenchOptions {
  readonly modelPath: string;
  readonly batches: readonly number[];
  readonly callers: readonly number[];
  /** Measured time per point, after a warm-up of a quarter of it (at most 500 ms). */
  readonly durationMs: number;
  /** Intra-op threads of each run, on both sides (forecastd serves with 1). */
  readonly intraOpThreads: number;
  /** Needed only when the model's lookback dimension is symbolic. */
  readonly lookback: number | null;
  readonly onProgress?: (progress: BenchProgress) => void;
}

export interface BenchProgress {
  /** 0-based index of the point running. */
  readonly point: number;
  readonly points: number;
  readonly label: string;
  /** Fraction of this point's measurement done (0..1). */
  readonly fraction: number;
}

export interface ModelBenchPoint extends LoopMeasurement {
  readonly batch: number;
  readonly callers: number;
  readonly runtime: RuntimeName;
  readonly predictionsPerSecond: number;
  /** Whole-process CPU per prediction, µs: every thread, run threads included. */
  readonly processCpuUsPerPrediction: number;
}

export interface ModelBenchResult {
  readonly kind: 'model';
  readonly date: string;
  readonly hardware: string;
  readonly loadAverage: number;
  readonly onnxRuntimeVersion: string;
  readonly forecastdRunThreads: number;
  readonly model: {
    readonly path: string;
    readonly input: string;
    readonly output: string;
    readonly lookback: number;
    readonly variables: number;
  };
  readonly durationMs: number;
  readonly intraOpThreads: number;
  /** Largest difference between the two runtimes' forecasts of the same window before measuring. */
  readonly maxAbsDifference: number;
  readonly points: readonly ModelBenchPoint[];
}

type Window = Float32Array | Float64Array;
type Runner = (data: Window, batch: number) => Promise<ArrayLike<number>>;

/** A value a little off the grid so that no runtime can shortcut zeros or repeated values. */
function seededWindows(count: number, length: number, type: 'float32' | 'float64', seed: number): Window[] {
  let state = seed >>> 0;
  const next = (): number => {
    state = (Math.imul(state ^ (state >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    return state / 2 ** 32;
  };
  return Array.from({ length: count }, () => {
    const data = type === 'float32' ? new Float32Array(length) : new Float64Array(length);
    for (let i = 0; i < length; i++) data[i] = (next() - 0.5) * 6;
    return data;
  });
}

async function readModel(modelPath: string): Promise<Uint8Array> {
  try {
    return await readFile(modelPath);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason =
      code === 'ENOENT'
        ? 'no such file'
        : code === 'EISDIR'
          ? 'it is a folder, not an .onnx file'
          : code === 'EACCES'
            ? 'permission denied'
            : error instanceof Error
              ? error.message
              : String(error);
    throw new ForecastdError('ERR_MODEL_LOAD', `cannot read model '${modelPath}': ${reason}`);
  }
}

function inputShape(shape: ForecastModelShape, batch: number): number[] {
  return shape.rank === 3 ? [batch, shape.lookback, shape.variables] : [batch, shape.lookback];
}

/** Loads the model on both runtimes, checks it against the contract and that both agree, then measures. */
export async function benchModel(options: ModelBenchOptions): Promise<ModelBenchResult> {
  const bytes = await readModel(options.modelPath);
  const session = await InferenceSession.load(bytes, { intraOpThreads: options.intraOpThreads });
  try {
    const input = session.inputs[0];
    if (input !== undefined && typeof input.shape[1] === 'string' && options.lookback === null) {
      throw new ForecastdError(
        'ERR_MODEL_CONTRACT',
        `input '${input.name}' has shape ${formatShape(input.shape)} with a symbolic lookback dimension '${input.shape[1]}'; give the lookback with --lookback N`,
      );
    }
    const declaredVariables = input?.shape.length === 3 ? input.shape[2] : undefined;
    const shape = checkForecastModel(session, {
      lookback: options.lookback,
      variables: typeof declaredVariables === 'number' && declaredVariables > 0 ? declaredVariables : 1,
    });
    if (shape.batch === 1 && options.batches.some((b) => b !== 1)) {
      const declared = formatShape(session.inputs[0]?.shape ?? []);
      throw new ForecastdError(
        'ERR_MODEL_CONTRACT',
        `input '${shape.inputName}' has shape ${declared}: the model takes one window per run, so only --batch 1 can be measured`,
      );
    }
    // Imported here so that serving never loads onnxruntime-node's JavaScript binding.
    const ort = (await import('onnxruntime-node')).default;
    const peer = await ort.InferenceSession.create(bytes, {
      intraOpNumThreads: options.intraOpThreads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      executionProviders: ['cpu'],
    });
    try {
      const runners: Record<RuntimeName, Runner> = {
        forecastd: async (data, batch) => {
          const [out] = await session.run({ [shape.inputName]: { data, shape: inputShape(shape, batch) } });
          return out?.data as ArrayLike<number>;
        },
        'onnxruntime-node': async (data, batch) => {
          const out = await peer.run({ [shape.inputName]: new ort.Tensor(shape.inputType, data, inputShape(shape, batch)) });
          return out[shape.outputName]?.data as ArrayLike<number>;
        },
      };
      const itemLength = shape.lookback * shape.variables;
      // Both must compute the same forecast of the same window before their speeds mean anything.
      const [probe] = seededWindows(1, itemLength, shape.inputType, 7) as [Window];
      const [ours, theirs] = await Promise.all([runners.forecastd(probe, 1), runners['onnxruntime-node'](probe, 1)]);
      if (ours.length !== theirs.length) {
        throw new ForecastdError('ERR_INFERENCE', `forecastd and onnxruntime-node return outputs of different sizes (${ours.length} and ${theirs.length})`);
      }
      let maxAbsDifference = 0;
      for (let i = 0; i < ours.length; i++) {
        const a = ours[i] as number;
        const b = theirs[i] as number;
        const d = Math.abs(a - b);
        if (!(d <= 1e-4 * Math.max(1, Math.abs(b)))) {
          throw new ForecastdError(
            'ERR_INFERENCE',
            `forecastd and onnxruntime-node disagree on the model's output (item ${i}: ${a} against ${b}); the comparison would mean nothing`,
          );
        }
        maxAbsDifference = Math.max(maxAbsDifference, d);
      }

      const plan = options.batches.flatMap((batch) =>
        options.callers.flatMap((callers) => RUNTIMES.map((runtime) => ({ batch, callers, runtime }))),
      );
      const points: ModelBenchPoint[] = [];
      const warmUpMs = Math.min(500, options.durationMs / 4);
      for (const [index, step] of plan.entries()) {
        const windows = seededWindows(16, step.batch * itemLength, shape.inputType, 1000 + step.batch);
        const run = runners[step.runtime];
        const call = (i: number): Promise<unknown> => run(windows[i % windows.length] as Window, step.batch);
        const label = `batch ${step.batch}, ${step.callers} caller${step.callers === 1 ? '' : 's'}, ${step.runtime}`;
        const report = (fraction: number): void =>
          options.onProgress?.({ point: index, points: plan.length, label, fraction });
        report(0);
        await measureLoop(call, { callers: step.callers, durationMs: warmUpMs });
        const measured = await measureLoop(call, { callers: step.callers, durationMs: options.durationMs, onProgress: report });
        report(1);
        points.push({
          ...measured,
          ...step,
          predictionsPerSecond: measured.runsPerSecond * step.batch,
          processCpuUsPerPrediction: measured.processCpuUsPerRun / step.batch,
        });
      }
      const info = runtimeInfo();
      return {
        kind: 'model',
        date: new Date().toISOString(),
        hardware: hardwareSummary(),
        loadAverage: os.loadavg()[0] ?? NaN,
        onnxRuntimeVersion: info.version,
        forecastdRunThreads: info.runThreads,
        model: {
          path: options.modelPath,
          input: `${shape.inputName} ${shape.inputType} ${formatShape(session.inputs[0]?.shape ?? [])}`,
          output: `${shape.outputName} ${shape.outputType} ${formatShape(session.outputs[0]?.shape ?? [])}`,
          lookback: shape.lookback,
          variables: shape.variables,
        },
        durationMs: options.durationMs,
        intraOpThreads: options.intraOpThreads,
        maxAbsDifference,
        points,
      };
    } finally {
      await peer.release();
    }
  } finally {
    session.dispose();
  }
}
