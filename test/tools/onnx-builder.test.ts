import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import {
  CONTRACT_VIOLATIONS,
  contractViolationModel,
  decodeModel,
  lastValueWeights,
  linearModel,
  linearReference,
  meanWeights,
  mlpModel,
  mlpReference,
  mlpWeights,
  multiOutputModel,
  nonFiniteModel,
  nonFiniteReference,
  seasonalNaiveWeights,
  seededRandom,
  slowModel,
  slowReference,
} from '../../tools/onnx-builder.js';

// onnxruntime-node is the independent reader here: a model it loads and computes correctly is a valid model.
async function run(bytes: Uint8Array, feeds: Record<string, ort.Tensor>): Promise<ort.InferenceSession.OnnxValueMapType> {
  // Severity 3 (error) would print the expected failure of the symbolic-lookback case; 4 keeps output clean.
  const session = await ort.InferenceSession.create(bytes, { logSeverityLevel: 4 });
  try {
    return await session.run(feeds);
  } finally {
    await session.release();
  }
}

function rows(data: ArrayLike<number>, width: number, index: number): number[] {
  return Array.from(data).slice(index * width, (index + 1) * width);
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance: number): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    expect(Math.abs((actual[i] as number) - (expected[i] as number)), `index ${i}`).toBeLessThanOrEqual(tolerance);
  }
}

function randomWindow(seed: number, length: number): Float32Array {
  const random = seededRandom(seed);
  return Float32Array.from({ length }, () => random() * 10 - 5);
}

describe('seededRandom', () => {
  it('repeats for a seed and differs between seeds', () => {
    const a = seededRandom(42);
    const b = seededRandom(42);
    const c = seededRandom(43);
    const seqA = [a(), a(), a()];
    expect([b(), b(), b()]).toEqual(seqA);
    expect([c(), c(), c()]).not.toEqual(seqA);
    for (const v of seqA) expect(v >= 0 && v < 1).toBe(true);
  });
});

describe('linearModel', () => {
  const lookback = 5;
  const variables = 2;
  const horizon = 3;
  const random = seededRandom(1);
  const weights = Float64Array.from({ length: lookback * variables * horizon }, () => random() - 0.5);
  const bias = [0.5, -1, 2];

  it('declares a symbolic batch, a concrete [B, L, V] input and [B, H] output with the metadata given', async () => {
    const bytes = linearModel({
      lookback,
      variables,
      horizon,
      weights,
      bias,
      modelVersion: 7,
      producerName: 'forecastd-test',
      metadata: { trained_on: 'fixture' },
    });
    const session = await ort.InferenceSession.create(bytes);
    try {
      expect(session.inputNames).toEqual(['window']);
      expect(session.outputNames).toEqual(['forecast']);
      const input = session.inputMetadata[0];
      expect(input && input.isTensor ? input.shape : null).toEqual(['batch', lookback, variables]);
      const output = session.outputMetadata[0];
      expect(output && output.isTensor ? output.shape : null).toEqual(['batch', horizon]);
    } finally {
      await session.release();
    }
    const proto = decodeModel(bytes);
    expect(Number(proto.modelVersion)).toBe(7);
    expect(proto.producerName).toBe('forecastd-test');
    expect(Number(proto.irVersion)).toBe(8);
    expect(proto.metadataProps.map((p) => [p.key, p.value])).toEqual([['trained_on', 'fixture']]);
  });

  it('computes the reference forecast for every item of a batch, float32 and float64', async () => {
    const batch = 4;
    const windows = randomWindow(2, batch * lookback * variables);
    for (const dtype of ['float32', 'float64'] as const) {
      const bytes = linearModel({ lookback, variables, horizon, weights, bias, dtype });
      const data = dtype === 'float32' ? windows : Float64Array.from(windows);
      const out = await run(bytes, { window: new ort.Tensor(dtype, data, [batch, lookback, variables]) });
      const forecast = out['forecast'];
      expect(forecast?.type).toBe(dtype);
      expect(forecast?.dims).toEqual([batch, horizon]);
      for (let b = 0; b < batch; b++) {
        const expected = linearReference({ horizon, weights, bias }, rows(windows, lookback * variables, b));
        expectClose(rows(forecast?.data as Float32Array, horizon, b), expected, dtype === 'float32' ? 1e-5 : 1e-12);
      }
    }
  });

  it('accepts a rank-2 input, a fixed batch of 1 and a symbolic lookback', async () => {
    const w = meanWeights(lookback, 2);
    const bytes = linearModel({ lookback, horizon: 2, weights: w, rank: 2, batch: 1, lookbackDim: 'lookback' });
    const session = await ort.InferenceSession.create(bytes);
    const input = session.inputMetadata[0];
    expect(input && input.isTensor ? input.shape : null).toEqual([1, 'lookback']);
    await session.release();
    const out = await run(bytes, { window: new ort.Tensor('float32', Float32Array.of(1, 2, 3, 4, 5), [1, lookback]) });
    expect(Array.from(out['forecast']?.data as Float32Array)).toEqual([3, 3]);
    // The weights still expect `lookback` rows: another length fails inside the model.
    await expect(
      run(bytes, { window: new ort.Tensor('float32', Float32Array.of(1, 2, 3), [1, 3]) }),
    ).rejects.toThrow();
  });

  it('reshapes output 0 to [B, ...outputShape] and casts it to outputDtype', async () => {
    const w = Float64Array.from({ length: lookback * 6 }, (_, i) => (i % 7) / 10);
    const bytes = linearModel({ lookback, horizon: 6, weights: w, outputShape: [3, 2], outputDtype: 'float64' });
    const window = randomWindow(3, 2 * lookback);
    const out = await run(bytes, { window: new ort.Tensor('float32', window, [2, lookback, 1]) });
    const forecast = out['forecast'];
    expect(forecast?.dims).toEqual([2, 3, 2]);
    expect(forecast?.type).toBe('float64');
    for (let b = 0; b < 2; b++) {
      expectClose(rows(forecast?.data as Float64Array, 6, b), linearReference({ horizon: 6, weights: w }, rows(window, lookback, b)), 1e-5);
    }
  });

  it('rejects weights of the wrong size with both sizes in the message', () => {
    expect(() => linearModel({ lookback: 3, horizon: 2, weights: [1, 2, 3] })).toThrow(/\[3, 2\] \(6 values\), got 3/);
  });
});

describe('weight helpers', () => {
  it('last-value and seasonal-naive weights pick the documented rows', () => {
    const window = [10, 11, 12, 13, 14, 15];
    expect(Array.from(linearReference({ horizon: 2, weights: lastValueWeights(6, 2) }, window))).toEqual([15, 15]);
    // Period 4: the step after 15 is one period after 12, the next one period after 13.
    expect(Array.from(linearReference({ horizon: 2, weights: seasonalNaiveWeights(6, 2, 4) }, window))).toEqual([12, 13]);
  });
});

describe('mlpModel', () => {
  it('matches mlpReference on a batch', async () => {
    const shape = { lookback: 8, variables: 2, hidden: [16, 16], horizon: 4, seed: 11 };
    const bytes = mlpModel(shape);
    const layers = mlpWeights(shape);
    expect(layers.map((l) => [l.inputs, l.outputs])).toEqual([[16, 16], [16, 16], [16, 4]]);
    const window = randomWindow(5, 3 * 16);
    const out = await run(bytes, { window: new ort.Tensor('float32', window, [3, 8, 2]) });
    expect(out['forecast']?.dims).toEqual([3, 4]);
    for (let b = 0; b < 3; b++) {
      expectClose(rows(out['forecast']?.data as Float32Array, 4, b), mlpReference(layers, rows(window, 16, b)), 1e-4);
    }
  });

  it('is deterministic for a seed', () => {
    const shape = { lookback: 4, hidden: [8], horizon: 2, seed: 3 };
    expect(mlpModel(shape)).toEqual(mlpModel(shape));
    expect(mlpModel(shape)).not.toEqual(mlpModel({ ...shape, seed: 4 }));
  });
});

describe('slowModel', () => {
  it('matches slowReference and stays finite', async () => {
    const options = { size: 32, depth: 5, horizon: 3 };
    const window = randomWindow(9, 2 * 32);
    const out = await run(slowModel(options), { window: new ort.Tensor('float32', window, [2, 32]) });
    expect(out['forecast']?.dims).toEqual([2, 3]);
    for (let b = 0; b < 2; b++) {
      const expected = slowReference(options, rows(window, 32, b));
      for (const v of expected) expect(Number.isFinite(v)).toBe(true);
      expectClose(rows(out['forecast']?.data as Float32Array, 3, b), expected, 1e-4);
    }
  });
});

describe('multiOutputModel', () => {
  it('puts the forecast first and adds a float sum and an int64 argmax output', async () => {
    const weights = meanWeights(4, 2);
    const bytes = multiOutputModel({ lookback: 4, horizon: 2, weights, bias: 1 });
    const out = await run(bytes, { window: new ort.Tensor('float32', Float32Array.of(1, 2, 9, 4, 0, 0, 0, 8), [2, 4, 1]) });
    const session = await ort.InferenceSession.create(bytes);
    expect(session.outputNames).toEqual(['forecast', 'window_sum', 'window_argmax']);
    await session.release();
    expect(Array.from(out['forecast']?.data as Float32Array)).toEqual([5, 5, 3, 3]);
    expect(Array.from(out['window_sum']?.data as Float32Array)).toEqual([16, 8]);
    expect(out['window_argmax']?.type).toBe('int64');
    expect(Array.from(out['window_argmax']?.data as BigInt64Array)).toEqual([2n, 3n]);
  });
});

describe('nonFiniteModel', () => {
  it('log: finite for a positive mean, NaN for a negative one, -Infinity for zero', async () => {
    const bytes = nonFiniteModel({ lookback: 2, horizon: 2, op: 'log' });
    const window = Float32Array.of(Math.E, Math.E, -1, -3, 1, -1);
    const out = await run(bytes, { window: new ort.Tensor('float32', window, [3, 2, 1]) });
    const data = Array.from(out['forecast']?.data as Float32Array);
    expectClose(data.slice(0, 2), nonFiniteReference('log', 2, [Math.E, Math.E]), 1e-6);
    expect(data.slice(2, 4).every(Number.isNaN)).toBe(true);
    expect(data.slice(4, 6)).toEqual([-Infinity, -Infinity]);
    expect(Array.from(nonFiniteReference('log', 1, [1, -1]))).toEqual([-Infinity]);
  });

  it('reciprocal: Infinity when the mean is zero', async () => {
    const bytes = nonFiniteModel({ lookback: 2, horizon: 1, op: 'reciprocal', dtype: 'float64' });
    const out = await run(bytes, { window: new ort.Tensor('float64', Float64Array.of(2, 2, 3, -3), [2, 2, 1]) });
    expect(Array.from(out['forecast']?.data as Float64Array)).toEqual([0.5, Infinity]);
  });
});

describe('contractViolationModel', () => {
  const expected: Record<string, { inputs: string[]; inputShapes: unknown[]; output0: unknown }> = {
    'two-inputs': { inputs: ['window', 'offset'], inputShapes: [['batch', 4], ['batch', 1]], output0: ['float32', ['batch', 2]] },
    'no-inputs': { inputs: [], inputShapes: [], output0: ['float32', [1, 2]] },
    'int64-input': { inputs: ['window'], inputShapes: [['batch', 4, 1]], output0: ['float32', ['batch', 2]] },
    'int32-input': { inputs: ['window'], inputShapes: [['batch', 4, 1]], output0: ['float32', ['batch', 2]] },
    'rank-1-input': { inputs: ['window'], inputShapes: [[4]], output0: ['float32', [1, 2]] },
    'rank-4-input': { inputs: ['window'], inputShapes: [['batch', 4, 1, 1]], output0: ['float32', ['batch', 2]] },
    'int64-output': { inputs: ['window'], inputShapes: [['batch', 4]], output0: ['int64', ['batch', 2]] },
    'scalar-output': { inputs: ['window'], inputShapes: [['batch', 4]], output0: ['float32', []] },
    'fixed-batch': { inputs: ['window'], inputShapes: [[4, 4]], output0: ['float32', [4, 2]] },
  };

  for (const kind of CONTRACT_VIOLATIONS) {
    it(`${kind}: loads in ONNX Runtime with the documented signature`, async () => {
      const session = await ort.InferenceSession.create(contractViolationModel(kind));
      try {
        const want = expected[kind];
        expect(session.inputNames).toEqual(want?.inputs);
        expect(session.inputMetadata.map((m) => (m.isTensor ? m.shape : null))).toEqual(want?.inputShapes);
        const out = session.outputMetadata[0];
        expect(out && out.isTensor ? [out.type, out.shape] : null).toEqual(want?.output0);
      } finally {
        await session.release();
      }
    });
  }

  it('int64-input computes the mean of integer windows', async () => {
    const out = await run(contractViolationModel('int64-input'), {
      window: new ort.Tensor('int64', BigInt64Array.of(1n, 2n, 3n, 6n), [1, 4, 1]),
    });
    expect(Array.from(out['forecast']?.data as Float32Array)).toEqual([3, 3]);
  });

  it('two-inputs adds the offset', async () => {
    const out = await run(contractViolationModel('two-inputs'), {
      window: new ort.Tensor('float32', Float32Array.of(4, 4, 4, 4), [1, 4]),
      offset: new ort.Tensor('float32', Float32Array.of(1), [1, 1]),
    });
    expect(Array.from(out['forecast']?.data as Float32Array)).toEqual([5, 5]);
  });
});
