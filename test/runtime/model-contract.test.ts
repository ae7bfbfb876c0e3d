import { afterAll, describe, expect, it } from 'vitest';
import { ForecastdError } from '../../src/errors.js';
import { checkForecastModel } from '../../src/runtime/model-contract.js';
import { InferenceSession } from '../../src/runtime/session.js';
import type { Dim, TensorElementType, TensorInfo } from '../../src/runtime/types.js';
import {
  contractViolationModel,
  linearModel,
  meanWeights,
  multiOutputModel,
  type ContractViolation,
} from '../../tools/onnx-builder.js';

function info(name: string, type: TensorElementType, shape: Dim[]): TensorInfo {
  return { name, type, shape };
}

function model(inputs: TensorInfo[], outputs: TensorInfo[] = [info('y', 'float32', ['batch', 12])]) {
  return { inputs, outputs };
}

/** The error checkForecastModel throws, asserting it is a contract error. */
function contractError(fn: () => unknown): ForecastdError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ForecastdError);
    expect((err as ForecastdError).code).toBe('ERR_MODEL_CONTRACT');
    return err as ForecastdError;
  }
  throw new Error('expected a model contract error');
}

const defaults = { lookback: null, variables: 1 };

describe('checkForecastModel accepts', () => {
  it('[batch, L, V] float32 with a symbolic batch', () => {
    const shape = checkForecastModel(model([info('x', 'float32', ['batch', 52, 2])]), { lookback: null, variables: 2 });
    expect(shape).toEqual({
      inputName: 'x',
      inputType: 'float32',
      rank: 3,
      lookback: 52,
      variables: 2,
      batch: 'dynamic',
      outputName: 'y',
      outputType: 'float32',
      outputItemShape: [12],
    });
  });

  it('[batch, L] float64 as one variable', () => {
    const shape = checkForecastModel(
      model([info('w', 'float64', ['N', 8])], [info('f', 'float64', ['N', 3, 2])]),
      defaults,
    );
    expect(shape).toMatchObject({ inputType: 'float64', rank: 2, lookback: 8, variables: 1, batch: 'dynamic' });
    expect(shape).toMatchObject({ outputName: 'f', outputType: 'float64', outputItemShape: [3, 2] });
  });

  it('an unnamed symbolic batch dimension', () => {
    expect(checkForecastModel(model([info('x', 'float32', ['?', 4, 1])], [info('y', 'float32', ['?', 1])]), defaults))
      .toMatchObject({ batch: 'dynamic', lookback: 4 });
  });

  it('a batch fixed at 1', () => {
    const shape = checkForecastModel(model([info('x', 'float32', [1, 4, 1])], [info('y', 'float32', [1, 2])]), defaults);
    expect(shape.batch).toBe(1);
  });

  it('a symbolic lookback with params.lookback', () => {
    const shape = checkForecastModel(model([info('x', 'float32', ['batch', 'time', 1])]), { lookback: 24, variables: 1 });
    expect(shape.lookback).toBe(24);
  });

  it('params.lookback equal to a concrete lookback', () => {
    expect(checkForecastModel(model([info('x', 'float32', ['batch', 52, 1])]), { lookback: 52, variables: 1 }).lookback).toBe(52);
  });

  it('a symbolic variables dimension, taking the dataset count', () => {
    const shape = checkForecastModel(model([info('x', 'float32', ['batch', 10, 'vars'])]), { lookback: null, variables: 3 });
    expect(shape.variables).toBe(3);
  });

  it('ignores outputs after the first, whatever their type', () => {
    const shape = checkForecastModel(
      model([info('x', 'float32', ['batch', 4, 1])], [info('y', 'float32', ['batch', 2]), info('idx', 'int64', ['batch'])]),
      defaults,
    );
    expect(shape.outputName).toBe('y');
  });

  it('a float64 output from a float32 input', () => {
    const shape = checkForecastModel(
      model([info('x', 'float32', ['batch', 4, 1])], [info('y', 'float64', ['batch', 2])]),
      defaults,
    );
    expect(shape).toMatchObject({ inputType: 'float32', outputType: 'float64' });
  });

  it('treats a symbolic-batch model whose output batch is fixed at 1 as fixed-batch', () => {
    const shape = checkForecastModel(model([info('x', 'float32', ['batch', 4, 1])], [info('y', 'float32', [1, 2])]), defaults);
    expect(shape.batch).toBe(1);
  });
});

describe('checkForecastModel rejects, saying what is wrong', () => {
  it('two inputs', () => {
    const err = contractError(() =>
      checkForecastModel(model([info('a', 'float32', ['batch', 4]), info('b', 'float32', ['batch', 1])]), defaults),
    );
    expect(err.message).toBe(
      "the model has 2 inputs ('a', 'b'); a forecasting model takes exactly one input, the lookback window",
    );
  });

  it('no input', () => {
    expect(contractError(() => checkForecastModel(model([]), defaults)).message).toBe(
      'the model has 0 inputs; a forecasting model takes exactly one input, the lookback window',
    );
  });

  it.each(['int64', 'int32', 'float16', 'string'] as const)('a %s input', (type) => {
    expect(contractError(() => checkForecastModel(model([info('x', type, ['batch', 4, 1])]), defaults)).message).toBe(
      `input 'x' is ${type}; a forecasting model's input must be float32 or float64`,
    );
  });

  it('rank 1 and rank 4 inputs', () => {
    expect(contractError(() => checkForecastModel(model([info('x', 'float32', [4])]), defaults)).message).toBe(
      "input 'x' has shape [4] (rank 1); expected [batch, lookback, variables] or [batch, lookback]",
    );
    expect(
      contractError(() => checkForecastModel(model([info('x', 'float32', ['batch', 4, 1, 1])]), defaults)).message,
    ).toBe("input 'x' has shape [batch, 4, 1, 1] (rank 4); expected [batch, lookback, variables] or [batch, lookback]");
  });

  it('a fixed batch above 1', () => {
    expect(contractError(() => checkForecastModel(model([info('x', 'float32', [4, 8])]), defaults)).message).toBe(
      "input 'x' has shape [4, 8]: a fixed batch dimension of 4 is not supported; the batch dimension must be symbolic or 1",
    );
  });

  it('a symbolic lookback without params.lookback', () => {
    expect(
      contractError(() => checkForecastModel(model([info('x', 'float32', ['batch', 'time', 1])]), defaults)).message,
    ).toBe("input 'x' has shape [batch, time, 1] with a symbolic lookback dimension 'time'; set params.lookback for this model");
  });

  it('params.lookback disagreeing with a concrete lookback', () => {
    expect(
      contractError(() =>
        checkForecastModel(model([info('x', 'float32', ['batch', 52, 1])]), { lookback: 26, variables: 1 }),
      ).message,
    ).toBe("input 'x' has shape [batch, 52, 1] (lookback 52) but params.lookback is 26; remove params.lookback or set it to 52");
  });

  it('variables differing from the dataset columns', () => {
    expect(
      contractError(() => checkForecastModel(model([info('x', 'float32', ['batch', 52, 2])]), defaults)).message,
    ).toBe("input 'x' has shape [batch, 52, 2] but the dataset gives 1 value column");
    expect(
      contractError(() =>
        checkForecastModel(model([info('x', 'float32', ['batch', 52, 1])]), { lookback: null, variables: 3 }),
      ).message,
    ).toBe("input 'x' has shape [batch, 52, 1] but the dataset gives 3 value columns");
  });

  it('a rank-2 input with several dataset columns', () => {
    expect(
      contractError(() => checkForecastModel(model([info('x', 'float32', ['batch', 52])]), { lookback: null, variables: 2 }))
        .message,
    ).toBe("input 'x' has shape [batch, 52] (one value per time step) but the dataset gives 2 value columns");
  });

  it('no outputs', () => {
    expect(contractError(() => checkForecastModel(model([info('x', 'float32', ['batch', 4])], []), defaults)).message).toBe(
      'the model has no outputs; output 0 must hold the forecast',
    );
  });

  it('a non-float output 0', () => {
    expect(
      contractError(() =>
        checkForecastModel(model([info('x', 'float32', ['batch', 4])], [info('y', 'int64', ['batch', 2])]), defaults),
      ).message,
    ).toBe("output 'y' is int64; a forecast must be float32 or float64");
  });

  it('a scalar output 0', () => {
    expect(
      contractError(() => checkForecastModel(model([info('x', 'float32', ['batch', 4])], [info('y', 'float32', [])]), defaults))
        .message,
    ).toBe("output 'y' is a scalar; expected shape [batch, ...] with one forecast per window");
  });

  it('an output 0 whose first dimension is not a batch', () => {
    expect(
      contractError(() =>
        checkForecastModel(model([info('x', 'float32', ['batch', 4])], [info('y', 'float32', [12, 'batch'])]), defaults),
      ).message,
    ).toBe("output 'y' has shape [12, batch]: its first dimension must be the batch dimension (symbolic or 1), not 12");
  });
});

describe('checkForecastModel options', () => {
  it('rejects a non-positive variables or lookback as a bad argument', () => {
    const m = model([info('x', 'float32', ['batch', 4])]);
    expect(() => checkForecastModel(m, { lookback: null, variables: 0 })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: 'variables must be a positive integer, got 0' }),
    );
    expect(() => checkForecastModel(m, { lookback: 2.5, variables: 1 })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: 'lookback must be a positive integer, got 2.5' }),
    );
  });
});

describe('checkForecastModel on models loaded by the addon', () => {
  const sessions: InferenceSession[] = [];
  async function load(bytes: Uint8Array): Promise<InferenceSession> {
    const session = await InferenceSession.load(bytes);
    sessions.push(session);
    return session;
  }
  afterAll(() => {
    for (const s of sessions) s.dispose();
  });

  const violations: [ContractViolation, string][] = [
    ['two-inputs', "the model has 2 inputs ('window', 'offset'); a forecasting model takes exactly one input, the lookback window"],
    ['no-inputs', 'the model has 0 inputs; a forecasting model takes exactly one input, the lookback window'],
    ['int64-input', "input 'window' is int64; a forecasting model's input must be float32 or float64"],
    ['int32-input', "input 'window' is int32; a forecasting model's input must be float32 or float64"],
    ['rank-1-input', "input 'window' has shape [4] (rank 1); expected [batch, lookback, variables] or [batch, lookback]"],
    ['rank-4-input', "input 'window' has shape [batch, 4, 1, 1] (rank 4); expected [batch, lookback, variables] or [batch, lookback]"],
    ['int64-output', "output 'forecast' is int64; a forecast must be float32 or float64"],
    ['scalar-output', "output 'forecast' is a scalar; expected shape [batch, ...] with one forecast per window"],
    ['fixed-batch', "input 'window' has shape [4, 4]: a fixed batch dimension of 4 is not supported; the batch dimension must be symbolic or 1"],
  ];
  it.each(violations)('rejects the %s model', async (kind, message) => {
    const session = await load(contractViolationModel(kind));
    expect(contractError(() => checkForecastModel(session, defaults)).message).toBe(message);
  });

  it('accepts a [batch, L, V] float64 model with a float32 output and extra outputs', async () => {
    const session = await load(
      multiOutputModel({ lookback: 5, variables: 2, horizon: 4, dtype: 'float64', weights: meanWeights(10, 4), outputShape: [2, 2] }),
    );
    expect(checkForecastModel(session, { lookback: null, variables: 2 })).toEqual({
      inputName: 'window',
      inputType: 'float64',
      rank: 3,
      lookback: 5,
      variables: 2,
      batch: 'dynamic',
      outputName: 'forecast',
      outputType: 'float64',
      outputItemShape: [2, 2],
    });
  });

  it('takes a symbolic lookback from params.lookback and refuses it without', async () => {
    const session = await load(
      linearModel({ lookback: 6, lookbackDim: 'time', rank: 2, batch: null, horizon: 2, weights: meanWeights(6, 2) }),
    );
    expect(checkForecastModel(session, { lookback: 6, variables: 1 })).toMatchObject({ lookback: 6, rank: 2, batch: 'dynamic' });
    expect(contractError(() => checkForecastModel(session, defaults)).message).toMatch(
      /^input 'window' has shape \[.+, time\] with a symbolic lookback dimension 'time'; set params.lookback for this model$/,
    );
  });

  it('refuses a params.lookback that disagrees with the model and a wrong column count', async () => {
    const session = await load(linearModel({ lookback: 52, horizon: 1, weights: meanWeights(52, 1), inputName: 'x' }));
    expect(contractError(() => checkForecastModel(session, { lookback: 26, variables: 1 })).message).toBe(
      "input 'x' has shape [batch, 52, 1] (lookback 52) but params.lookback is 26; remove params.lookback or set it to 52",
    );
    expect(contractError(() => checkForecastModel(session, { lookback: null, variables: 2 })).message).toBe(
      "input 'x' has shape [batch, 52, 1] but the dataset gives 2 value columns",
    );
  });

  it('accepts a model whose batch is fixed at 1', async () => {
    const session = await load(linearModel({ lookback: 3, batch: 1, horizon: 1, weights: meanWeights(3, 1) }));
    expect(checkForecastModel(session, defaults).batch).toBe(1);
  });
});
