/**
 * How a model's forecast is laid out (SPEC "The model contract"): the horizon H of output 0 ([B, H] or
 * [B, H, V']), and the quantile output ([B, H, Q] or [B, H, V', Q]) named by params.quantile_output: checked
 * against the declared shapes at load, read per level for responses, and checked for monotone levels.
 */
import { ForecastdError } from '../errors.js';

/** A declared dimension: a number when concrete, a name when symbolic. */
export type DeclaredDim = number | string;

/** What the layout checks need to know of a model output. */
export interface DeclaredOutput {
  readonly name: string;
  readonly type: string;
  readonly shape: readonly DeclaredDim[];
}

export interface QuantileLayout {
  /** Levels, strictly increasing in (0, 1). */
  readonly levels: readonly number[];
  readonly output: string;
  readonly type: 'float32' | 'float64';
}

export interface ForecastLayout {
  /** Steps forecast (dimension 1 of output 0). */
  readonly horizon: number;
  /** Values per step: 1 for [B, H], V' for [B, H, V']. */
  readonly outputVariables: number;
  /** Output 0 is [B, H, V'] (each step a row of values), not [B, H]. */
  readonly perStepRows: boolean;
  readonly quantiles: QuantileLayout | null;
}

function show(shape: readonly DeclaredDim[]): string {
  return `[${shape.join(', ')}]`;
}

/**
 * The horizon layout of output 0, or a message saying why it has none (timestamps, quantiles and client
 * series need one; the Spice routes serve the model anyway).
 */
export function horizonOf(output: DeclaredOutput): { horizon: number; outputVariables: number; perStepRows: boolean } | string {
  const shape = output.shape;
  const h = shape[1];
  const v = shape[2];
  if ((shape.length !== 2 && shape.length !== 3) || typeof h !== 'number' || (shape.length === 3 && typeof v !== 'number')) {
    return `output '${output.name}' has shape ${show(shape)}; forecast timestamps, quantiles and client series need [batch, horizon] or [batch, horizon, variables] with a fixed horizon`;
  }
  return { horizon: h, outputVariables: typeof v === 'number' ? v : 1, perStepRows: shape.length === 3 };
}

/**
 * The full layout of a model whose output 0 is `point`, with quantile levels from params.quantiles in the
 * output `quantileOutput`. Without quantiles, null when output 0 has no horizon. With quantiles, a shape that
 * disagrees is a load error (ERR_MODEL_CONTRACT) naming both shapes.
 */
export function forecastLayout(
  point: DeclaredOutput,
  outputs: readonly DeclaredOutput[],
  levels: readonly number[] | null,
  quantileOutput: string | null,
): ForecastLayout | null {
  const horizon = horizonOf(point);
  if (levels === null || quantileOutput === null) return typeof horizon === 'string' ? null : { ...horizon, quantiles: null };
  if (typeof horizon === 'string') {
    throw new ForecastdError('ERR_MODEL_CONTRACT', `params.quantiles needs a forecast with a horizon: ${horizon}`);
  }
  const q = outputs.find((o) => o.name === quantileOutput);
  if (q === undefined) {
    const names = outputs.map((o) => `'${o.name}'`).join(', ');
    throw new ForecastdError('ERR_MODEL_CONTRACT', `params.quantile_output names '${quantileOutput}', but the model's outputs are ${names}`);
  }
  if (q.name === point.name) {
    throw new ForecastdError('ERR_MODEL_CONTRACT', `params.quantile_output names '${q.name}', which is output 0 (the point forecast); name the quantile output`);
  }
  if (q.type !== 'float32' && q.type !== 'float64') {
    throw new ForecastdError('ERR_MODEL_CONTRACT', `quantile output '${q.name}' is ${q.type}; it must be float32 or float64`);
  }
  const expected: DeclaredDim[] = horizon.perStepRows
    ? ['batch', horizon.horizon, horizon.outputVariables, levels.length]
    : ['batch', horizon.horizon, levels.length];
  const fits =
    q.shape.length === expected.length &&
    q.shape.every((d, i) => i === 0 || typeof d === 'string' || d === expected[i]) &&
    (typeof q.shape[0] === 'string' || q.shape[0] === point.shape[0]);
  if (!fits) {
    throw new ForecastdError(
      'ERR_MODEL_CONTRACT',
      `quantile output '${q.name}' has shape ${show(q.shape)}, but output '${point.name}' ${show(point.shape)} with ${levels.length} quantile level${levels.length === 1 ? '' : 's'} needs ${show(expected)}`,
    );
  }
  return { ...horizon, quantiles: { levels: [...levels], output: q.name, type: q.type } };
}

/** Values of one item's quantile output: H * V' steps, each with one value per level. */
export function checkQuantileSize(layout: ForecastLayout, values: ArrayLike<number>): void {
  const q = layout.quantiles;
  if (q === null) return;
  const expected = layout.horizon * layout.outputVariables * q.levels.length;
  if (values.length !== expected) {
    throw new ForecastdError(
      'ERR_INFERENCE',
      `quantile output '${q.output}' came back with ${values.length} values per forecast; ${expected} were expected (horizon ${layout.horizon} x ${layout.outputVariables} x ${q.levels.length} levels)`,
    );
  }
}

/** Steps (of every variable) where a higher level has a lower value: a quantile output that crosses itself. */
export function quantileCrossings(values: ArrayLike<number>, levels: number): number {
  let crossings = 0;
  for (let base = 0; base + levels <= values.length; base += levels) {
    for (let k = 1; k < levels; k++) {
      if ((values[base + k] as number) < (values[base + k - 1] as number)) {
        crossings++;
        break;
      }
    }
  }
  return crossings;
}

/** The values of level `k` (index into the levels), in the order of output 0: step-major, then variable. */
export function quantileLevel<T extends Float32Array | Float64Array>(values: T, levels: number, k: number, steps: number): T {
  const out = new (values.constructor as { new (n: number): T })(steps);
  for (let i = 0; i < steps; i++) out[i] = values[i * levels + k] as number;
  return out;
}
