/**
 * What the addon reports about models and failures: model_version read exactly as an int64, ONNX Runtime's
 * own error code on every error it caused (`ortCode`), and ONNX Runtime's warnings delivered to the embedder's
 * log handler instead of being swallowed.
 */
import { afterEach, describe, expect, it } from 'vitest';

import { ForecastdError } from '../../src/errors.js';
import { setRuntimeLogHandler } from '../../src/runtime/runtime.js';
import { allocateTensorData, InferenceSession } from '../../src/runtime/session.js';
import type { RuntimeLogEntry } from '../../src/runtime/types.js';
import { buildModel, initializer, linearModel, node, valueInfo } from '../../tools/onnx-builder.js';

const SUM = { lookback: 4, horizon: 1, weights: [1, 1, 1, 1], rank: 2 as const };

async function rejection(promise: Promise<unknown>): Promise<ForecastdError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(ForecastdError);
    return error as ForecastdError;
  }
  throw new Error('expected a rejection');
}

afterEach(() => setRuntimeLogHandler(undefined));

describe('model_version', () => {
  it.each([
    ['absent (as in PyTorch exports)', undefined, undefined],
    ['0', 0, '0'],
    ['7', 7, '7'],
    ['2^53 + 1', 2n ** 53n + 1n, '9007199254740993'],
    ['2^62 + 1', 2n ** 62n + 1n, '4611686018427387905'],
    ['INT64_MAX - 1', 2n ** 63n - 2n, '9223372036854775806'],
    ['negative', -5, '-5'],
  ])('%s', async (_label, modelVersion, expected) => {
    const session = await InferenceSession.load(linearModel({ ...SUM, ...(modelVersion !== undefined ? { modelVersion } : {}) }));
    try {
      expect(session.metadata.version).toBe(expected);
      expect('version' in session.metadata).toBe(expected !== undefined);
    } finally {
      session.dispose();
    }
  });
});

describe('ortCode', () => {
  it('bytes that are not a model: ERR_MODEL_LOAD with ORT_INVALID_PROTOBUF', async () => {
    const error = await rejection(InferenceSession.load(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8])));
    expect(error.code).toBe('ERR_MODEL_LOAD');
    expect(error.ortCode).toBe('ORT_INVALID_PROTOBUF');
  });

  it('a missing model file: ERR_MODEL_LOAD with ORT_NO_SUCHFILE', async () => {
    const error = await rejection(InferenceSession.load('/nonexistent/forecastd/model.onnx'));
    expect(error.code).toBe('ERR_MODEL_LOAD');
    expect(error.ortCode).toBe('ORT_NO_SUCHFILE');
  });

  it('a run that fails inside ONNX Runtime: ERR_INFERENCE with its code', async () => {
    // Reshape to [2, 3] fails at run time for any input that does not hold 6 values.
    const session = await InferenceSession.load(
      buildModel({
        nodes: [node('Reshape', ['x', 'shape'], ['y'])],
        initializers: [initializer('shape', 'int64', [2], [2, 3])],
        inputs: [valueInfo('x', 'float32', ['n'])],
        outputs: [valueInfo('y', 'float32', [2, 3])],
      }),
    );
    try {
      const error = await rejection(session.run({ x: { data: new Float32Array(5), shape: [5] } }));
      expect(error.code).toBe('ERR_INFERENCE');
      expect(error.ortCode).toMatch(/^ORT_(RUNTIME_EXCEPTION|INVALID_ARGUMENT|FAIL)$/);
      const ok = await session.run({ x: { data: new Float32Array([1, 2, 3, 4, 5, 6]), shape: [6] } });
      expect(Array.from(ok[0]?.data as Float32Array)).toEqual([1, 2, 3, 4, 5, 6]);
    } finally {
      session.dispose();
    }
  });

  it('errors forecastd raises itself carry no ortCode', async () => {
    const session = await InferenceSession.load(linearModel(SUM));
    session.dispose();
    const error = await rejection(session.run({ window: { data: new Float32Array(4), shape: [1, 4] } }));
    expect(error.code).toBe('ERR_DISPOSED');
    expect(error.ortCode).toBeUndefined();
  });
});

describe("ONNX Runtime's warnings", () => {
  it('reach the log handler: an initializer no node uses is reported when the model loads', async () => {
    const entries: RuntimeLogEntry[] = [];
    setRuntimeLogHandler((entry) => entries.push(entry));
    const session = await InferenceSession.load(
      buildModel({
        nodes: [node('Add', ['x', 'one'], ['y'])],
        initializers: [
          initializer('one', 'float32', [1], [1]),
          initializer('forgotten_weights', 'float32', [3], [1, 2, 3]),
        ],
        inputs: [valueInfo('x', 'float32', [1])],
        outputs: [valueInfo('y', 'float32', [1])],
      }),
    );
    session.dispose();
    const warning = entries.find((e) => e.message.includes('forgotten_weights'));
    expect(warning, JSON.stringify(entries)).toBeDefined();
    expect(warning?.level).toBe('warning');
  });
});

describe('allocateTensorData', () => {
  it('gives zeroed addon-owned arrays that run() reads, also through a subarray', async () => {
    const session = await InferenceSession.load(linearModel(SUM));
    try {
      const data = allocateTensorData('float32', 12);
      expect(data).toBeInstanceOf(Float32Array);
      expect(Array.from(data)).toEqual(Array(12).fill(0));
      data.set([1, 2, 3, 4, 10, 20, 30, 40]);
      const out = await session.run({ window: { data: data.subarray(0, 8), shape: [2, 4] } });
      expect(Array.from(out[0]?.data as Float32Array)).toEqual([10, 100]);
      expect(allocateTensorData('float64', 3)).toBeInstanceOf(Float64Array);
      expect(() => allocateTensorData('float32', -1)).toThrow(RangeError);
      expect(() => allocateTensorData('int8' as 'float32', 1)).toThrow(/float32 and float64/);
    } finally {
      session.dispose();
    }
  });
});
