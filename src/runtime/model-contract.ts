import { ForecastdError } from '../errors.js';
import type { Dim, TensorInfo } from './types.js';

/** What the forecaster needs to know about a model that passed the contract (SPEC "The model contract"). */
export interface ForecastModelShape {
  readonly inputName: string;
  readonly inputType: 'float32' | 'float64';
  /** 3: input is [B, L, V]; 2: input is [B, L] (one variable). */
  readonly rank: 2 | 3;
  readonly lookback: number;
  readonly variables: number;
  /** 'dynamic': the batch dimension is symbolic and batches of any size run; 1: one window per run. */
  readonly batch: 'dynamic' | 1;
  readonly outputName: string;
  readonly outputType: 'float32' | 'float64';
  /** Output 0's dims after the batch dim, as the model declares them (symbolic dims stay names). */
  readonly outputItemShape: readonly Dim[];
}

export interface ForecastContractOptions {
  /** params.lookback; required only when the model's lookback dimension is symbolic. */
  readonly lookback: number | null;
  /** Number of value columns the dataset gives. */
  readonly variables: number;
}

/** "[batch, 52, 2]": shapes in messages look like the model's own declaration. */
export function formatShape(shape: readonly Dim[]): string {
  return `[${shape.join(', ')}]`;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function contractError(message: string): ForecastdError {
  return new ForecastdError('ERR_MODEL_CONTRACT', message);
}

function isFloat(type: string): type is 'float32' | 'float64' {
  return type === 'float32' || type === 'float64';
}

/**
 * Checks a loaded model against the forecasting model contract and returns the shape facts the forecaster
 * needs. Throws ForecastdError('ERR_MODEL_CONTRACT') naming exactly what is wrong.
 */
export function checkForecastModel(
  session: { readonly inputs: readonly TensorInfo[]; readonly outputs: readonly TensorInfo[] },
  opts: ForecastContractOptions,
): ForecastModelShape {
  const { variables } = opts;
  if (!Number.isInteger(variables) || variables < 1) {
    throw new ForecastdError('ERR_INVALID_ARGUMENT', `variables must be a positive integer, got ${variables}`);
  }
  if (opts.lookback !== null && (!Number.isInteger(opts.lookback) || opts.lookback < 1)) {
    throw new ForecastdError('ERR_INVALID_ARGUMENT', `lookback must be a positive integer, got ${opts.lookback}`);
  }

  const { inputs, outputs } = session;
  const input = inputs[0];
  if (input === undefined || inputs.length !== 1) {
    const names = inputs.map((i) => `'${i.name}'`).join(', ');
    throw contractError(
      `the model has ${plural(inputs.length, 'input')}${names ? ` (${names})` : ''}; a forecasting model takes exactly one input, the lookback window`,
    );
  }
  const inputDesc = `input '${input.name}'`;
  if (!isFloat(input.type)) {
    throw contractError(`${inputDesc} is ${input.type}; a forecasting model's input must be float32 or float64`);
  }
  const shape = input.shape;
  const shown = formatShape(shape);
  if (shape.length !== 2 && shape.length !== 3) {
    throw contractError(
      `${inputDesc} has shape ${shown} (rank ${shape.length}); expected [batch, lookback, variables] or [batch, lookback]`,
    );
  }
  const rank = shape.length;
  const [bDim, lDim, vDim] = shape as readonly [Dim, Dim, Dim | undefined];

  let batch: 'dynamic' | 1;
  if (typeof bDim === 'string') batch = 'dynamic';
  else if (bDim === 1) batch = 1;
  else if (bDim > 1) {
    throw contractError(
      `${inputDesc} has shape ${shown}: a fixed batch dimension of ${bDim} is not supported; the batch dimension must be symbolic or 1`,
    );
  } else {
    throw contractError(`${inputDesc} has shape ${shown}: batch dimension ${bDim} is not valid`);
  }

  let lookback: number;
  if (typeof lDim === 'string') {
    if (opts.lookback === null) {
      throw contractError(
        `${inputDesc} has shape ${shown} with a symbolic lookback dimension '${lDim}'; set params.lookback for this model`,
      );
    }
    lookback = opts.lookback;
  } else {
    if (lDim < 1) throw contractError(`${inputDesc} has shape ${shown}: lookback dimension ${lDim} is not valid`);
    if (opts.lookback !== null && opts.lookback !== lDim) {
      throw contractError(
        `${inputDesc} has shape ${shown} (lookback ${lDim}) but params.lookback is ${opts.lookback}; remove params.lookback or set it to ${lDim}`,
      );
    }
    lookback = lDim;
  }

  const columns = plural(variables, 'value column');
  if (rank === 2) {
    if (variables !== 1) {
      throw contractError(
        `${inputDesc} has shape ${shown} (one value per time step) but the dataset gives ${columns}`,
      );
    }
  } else if (typeof vDim === 'number' && vDim !== variables) {
    throw contractError(`${inputDesc} has shape ${shown} but the dataset gives ${columns}`);
  }
  // A symbolic variables dimension accepts whatever the dataset gives.

  const output = outputs[0];
  if (output === undefined) {
    throw contractError('the model has no outputs; output 0 must hold the forecast');
  }
  const outputDesc = `output '${output.name}'`;
  if (!isFloat(output.type)) {
    throw contractError(`${outputDesc} is ${output.type}; a forecast must be float32 or float64`);
  }
  const oShape = output.shape;
  const oBatch = oShape[0];
  if (oBatch === undefined) {
    throw contractError(`${outputDesc} is a scalar; expected shape [batch, ...] with one forecast per window`);
  }
  if (typeof oBatch === 'number' && oBatch !== 1) {
    throw contractError(
      `${outputDesc} has shape ${formatShape(oShape)}: its first dimension must be the batch dimension (symbolic or 1), not ${oBatch}`,
    );
  }
  for (const d of oShape) {
    if (typeof d === 'number' && d < 0) {
      throw contractError(`${outputDesc} has shape ${formatShape(oShape)}: dimension ${d} is not valid`);
    }
  }
  // An output whose batch dim is fixed at 1 can only answer one window per run, whatever the input says.
  if (typeof oBatch === 'number') batch = 1;

  return {
    inputName: input.name,
    inputType: input.type,
    rank,
    lookback,
    variables,
    batch,
    outputName: output.name,
    outputType: output.type,
    outputItemShape: oShape.slice(1),
  };
}
