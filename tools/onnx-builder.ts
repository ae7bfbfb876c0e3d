/**
 * Builds ONNX models (ModelProto bytes) from TypeScript with onnx-proto.
 *
 * Tests, benches and the bundled example use these instead of committed binaries, so every model the project
 * runs can be read and regenerated. Each high-level builder has a matching `*Reference` function computing the
 * same forecast in float64 JavaScript, for comparing against what ONNX Runtime returns.
 *
 * Models use IR version 8 and opset 17 (the default ai.onnx domain), both supported by ONNX Runtime 1.30.
 */
import onnxProto from 'onnx-proto';
import type { onnx as OnnxTypes } from 'onnx-proto';

const { onnx } = onnxProto;

export const IR_VERSION = 8;
export const OPSET_VERSION = 17;
export const DEFAULT_PRODUCER = 'forecastd-onnx-builder';

/** Element types the builders can declare for graph inputs, outputs and initializers. */
export type ElementType = 'float32' | 'float64' | 'int64' | 'int32';
export type FloatType = 'float32' | 'float64';

/**
 * One dimension of a declared shape: a number is concrete, a string is symbolic (ONNX dim_param, e.g. "batch"),
 * null is symbolic without a name.
 */
export type DimSpec = number | string | null;

const ELEMENT_TYPE_CODE: Readonly<Record<ElementType, number>> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  float64: onnx.TensorProto.DataType.DOUBLE,
  int64: onnx.TensorProto.DataType.INT64,
  int32: onnx.TensorProto.DataType.INT32,
};

// ---------------------------------------------------------------------------------------------------------------
// Low-level graph pieces
// ---------------------------------------------------------------------------------------------------------------

export type TensorProtoSpec = OnnxTypes.ITensorProto;
export type NodeProtoSpec = OnnxTypes.INodeProto;
export type ValueInfoSpec = OnnxTypes.IValueInfoProto;
export type AttributeSpec = OnnxTypes.IAttributeProto;

/** A graph input or output declaration. */
export function valueInfo(name: string, type: ElementType, shape: readonly DimSpec[]): ValueInfoSpec {
  return {
    name,
    type: {
      tensorType: {
        elemType: ELEMENT_TYPE_CODE[type],
        shape: {
          dim: shape.map((d) => (d === null ? {} : typeof d === 'number' ? { dimValue: d } : { dimParam: d })),
        },
      },
    },
  };
}

/**
 * A constant tensor (graph initializer), stored little-endian in raw_data so large weights encode quickly.
 * `values` must hold exactly the product of `dims` elements, row-major.
 */
export function initializer(
  name: string,
  type: ElementType,
  dims: readonly number[],
  values: ArrayLike<number> | ArrayLike<bigint>,
): TensorProtoSpec {
  const count = dims.reduce((a, b) => a * b, 1);
  if (values.length !== count) {
    throw new RangeError(
      `initializer ${name}: shape [${dims.join(', ')}] needs ${count} values, got ${values.length}`,
    );
  }
  const width = type === 'float64' || type === 'int64' ? 8 : 4;
  const bytes = new Uint8Array(count * width);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < count; i++) {
    const v = values[i] as number | bigint;
    switch (type) {
      case 'float32':
        view.setFloat32(i * 4, Number(v), true);
        break;
      case 'float64':
        view.setFloat64(i * 8, Number(v), true);
        break;
      case 'int32':
        view.setInt32(i * 4, Number(v), true);
        break;
      case 'int64':
        view.setBigInt64(i * 8, typeof v === 'bigint' ? v : BigInt(Math.trunc(v)), true);
        break;
    }
  }
  return { name, dataType: ELEMENT_TYPE_CODE[type], dims: [...dims], rawData: bytes };
}

/** Node attribute values: a JS number is an INT unless wrapped with `floatAttr`; arrays are INTS. */
export type AttributeValue = number | readonly number[] | string | { readonly float: number };

export function floatAttr(value: number): { readonly float: number } {
  return { float: value };
}

function attribute(name: string, value: AttributeValue): AttributeSpec {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof value === 'number') return { name, type: T.INT, i: value };
  if (typeof value === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(value) };
  if (Array.isArray(value)) return { name, type: T.INTS, ints: [...(value as readonly number[])] };
  return { name, type: T.FLOAT, f: (value as { readonly float: number }).float };
}

/** One operator of the default ai.onnx domain. */
export function node(
  opType: string,
  inputs: readonly string[],
  outputs: readonly string[],
  attributes: Readonly<Record<string, AttributeValue>> = {},
  name?: string,
): NodeProtoSpec {
  return {
    opType,
    input: [...inputs],
    output: [...outputs],
    name: name ?? `${opType}_${outputs[0] ?? ''}`,
    attribute: Object.entries(attributes).map(([k, v]) => attribute(k, v)),
  };
}

/** Model-level fields every builder accepts. */
export interface ModelInfo {
  /**
   * ModelProto.model_version (an int64: pass a bigint for values beyond 2^53). Absent by default, as in PyTorch's
   * exports (ONNX Runtime then reports INT64_MAX).
   */
  readonly modelVersion?: number | bigint;
  /** Default "forecastd-onnx-builder". */
  readonly producerName?: string;
  readonly producerVersion?: string;
  readonly domain?: string;
  readonly docString?: string;
  /** Graph name; default "forecast". */
  readonly graphName?: string;
  readonly graphDocString?: string;
  /** ModelProto.metadata_props (custom metadata). */
  readonly metadata?: Readonly<Record<string, string>>;
  /** Default 17. */
  readonly opset?: number;
}

export interface GraphSpec extends ModelInfo {
  readonly nodes: readonly NodeProtoSpec[];
  readonly initializers?: readonly TensorProtoSpec[];
  readonly inputs: readonly ValueInfoSpec[];
  readonly outputs: readonly ValueInfoSpec[];
}

/** An int64 as protobufjs writes it exactly (low and high 32-bit halves), whatever its size. */
function int64(value: number | bigint): { low: number; high: number; unsigned: boolean } {
  const bits = BigInt.asUintN(64, BigInt(value));
  return { low: Number(bits & 0xffffffffn) | 0, high: Number(bits >> 32n) | 0, unsigned: false };
}

/** Encodes a complete graph as ModelProto bytes. */
export function buildModel(spec: GraphSpec): Uint8Array {
  const model = onnx.ModelProto.create({
    irVersion: IR_VERSION,
    opsetImport: [{ domain: '', version: spec.opset ?? OPSET_VERSION }],
    producerName: spec.producerName ?? DEFAULT_PRODUCER,
    producerVersion: spec.producerVersion ?? '',
    domain: spec.domain ?? '',
    ...(spec.modelVersion !== undefined ? { modelVersion: int64(spec.modelVersion) } : {}),
    docString: spec.docString ?? '',
    metadataProps: Object.entries(spec.metadata ?? {}).map(([key, value]) => ({ key, value })),
    graph: {
      name: spec.graphName ?? 'forecast',
      docString: spec.graphDocString ?? '',
      node: [...spec.nodes],
      initializer: [...(spec.initializers ?? [])],
      input: [...spec.inputs],
      output: [...spec.outputs],
    },
  });
  return onnx.ModelProto.encode(model).finish();
}

/** Decodes ModelProto bytes (for inspecting what a builder wrote). */
export function decodeModel(bytes: Uint8Array): OnnxTypes.ModelProto {
  return onnx.ModelProto.decode(bytes);
}

// ---------------------------------------------------------------------------------------------------------------
// Deterministic numbers
// ---------------------------------------------------------------------------------------------------------------

/** A seeded PRNG (mulberry32): the same seed always yields the same sequence of floats in [0, 1). */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `count` values uniform in [-bound, bound), rounded to float32 so references use the weights the model holds. */
export function uniformWeights(random: () => number, count: number, bound: number): Float32Array {
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = (random() * 2 - 1) * bound;
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Shared option pieces
// ---------------------------------------------------------------------------------------------------------------

export interface WindowInputOptions {
  /** L: rows in the window. */
  readonly lookback: number;
  /** V: values per row (columns). Default 1. */
  readonly variables?: number;
  /**
   * Batch dimension: a number is a fixed batch, a string a symbolic name ('symbolic' means "batch"), null a
   * symbolic dimension without a name. Default "batch".
   */
  readonly batch?: DimSpec | 'symbolic';
  /**
   * The lookback dimension as declared in the input shape. Default: `lookback` (concrete). A string declares it
   * symbolic; the weights still expect `lookback` rows, so running with another length fails inside the model.
   */
  readonly lookbackDim?: DimSpec;
  /** 2: input [B, L] (needs variables = 1); 3: input [B, L, V]. Default 3. */
  readonly rank?: 2 | 3;
  /** Element type of the input and of the weights. Default float32. */
  readonly dtype?: FloatType;
  /** Default "window". */
  readonly inputName?: string;
  /** Default "forecast". */
  readonly outputName?: string;
}

function batchDim(batch: DimSpec | 'symbolic' | undefined): DimSpec {
  if (batch === undefined || batch === 'symbolic') return 'batch';
  return batch;
}

interface ResolvedWindow {
  readonly lookback: number;
  readonly variables: number;
  readonly inputSize: number;
  readonly dtype: FloatType;
  readonly inputName: string;
  readonly outputName: string;
  readonly batch: DimSpec;
  readonly input: ValueInfoSpec;
}

function resolveWindow(o: WindowInputOptions): ResolvedWindow {
  const variables = o.variables ?? 1;
  const rank = o.rank ?? 3;
  if (!Number.isInteger(o.lookback) || o.lookback < 1) throw new RangeError(`lookback must be a positive integer`);
  if (!Number.isInteger(variables) || variables < 1) throw new RangeError(`variables must be a positive integer`);
  if (rank === 2 && variables !== 1) throw new RangeError(`a rank-2 input [B, L] holds one variable, not ${variables}`);
  const dtype = o.dtype ?? 'float32';
  const inputName = o.inputName ?? 'window';
  const batch = batchDim(o.batch);
  const lookbackDim = o.lookbackDim === undefined ? o.lookback : o.lookbackDim;
  const shape: DimSpec[] = rank === 2 ? [batch, lookbackDim] : [batch, lookbackDim, variables];
  return {
    lookback: o.lookback,
    variables,
    inputSize: o.lookback * variables,
    dtype,
    inputName,
    outputName: o.outputName ?? 'forecast',
    batch,
    input: valueInfo(inputName, dtype, shape),
  };
}

function vectorOf(value: number | ArrayLike<number>, length: number, what: string): ArrayLike<number> {
  if (typeof value === 'number') return new Float64Array(length).fill(value);
  if (value.length !== length) throw new RangeError(`${what} needs ${length} values, got ${value.length}`);
  return value;
}

// ---------------------------------------------------------------------------------------------------------------
// Linear forecaster
// ---------------------------------------------------------------------------------------------------------------

export interface LinearModelOptions extends WindowInputOptions, ModelInfo {
  /** H: values predicted per item (the product of `outputShape` when that is given). */
  readonly horizon: number;
  /** Row-major [L*V, H]: weights[i * H + h] multiplies window value i (row-major [L, V]) for output h. */
  readonly weights: ArrayLike<number>;
  /** [H] or one number for every step. Default 0. */
  readonly bias?: number | ArrayLike<number>;
  /**
   * Per-item output shape, default [H]. E.g. [6, 2] declares output [B, 6, 2] (a Reshape of the [B, 12]
   * product), whose row-major flattening is the same 12 values.
   */
  readonly outputShape?: readonly number[];
  /** Element type of output 0; a Cast is added when it differs from `dtype`. Default `dtype`. */
  readonly outputDtype?: FloatType;
}

/**
 * A linear autoregression: output[b, h] = sum_i window[b, i] * weights[i, h] + bias[h], the window flattened
 * row-major to L*V values (Flatten axis 1, so a symbolic lookback dimension is accepted).
 */
export function linearModel(o: LinearModelOptions): Uint8Array {
  return buildModel(linearGraph(o));
}

/** The graph `linearModel` encodes, for builders that extend it. The flattened window is the value "flat". */
export function linearGraph(o: LinearModelOptions): GraphSpec {
  const w = resolveWindow(o);
  const outputShape = o.outputShape ?? [o.horizon];
  const outputSize = outputShape.reduce((a, b) => a * b, 1);
  if (outputSize !== o.horizon) {
    throw new RangeError(`outputShape [${outputShape.join(', ')}] holds ${outputSize} values, horizon is ${o.horizon}`);
  }
  if (o.weights.length !== w.inputSize * o.horizon) {
    throw new RangeError(
      `weights must be [L*V, H] = [${w.inputSize}, ${o.horizon}] (${w.inputSize * o.horizon} values), got ${o.weights.length}`,
    );
  }
  const outputDtype = o.outputDtype ?? w.dtype;
  const nodes: NodeProtoSpec[] = [
    node('Flatten', [w.inputName], ['flat'], { axis: 1 }),
    node('MatMul', ['flat', 'weights'], ['product']),
  ];
  const initializers: TensorProtoSpec[] = [
    initializer('weights', w.dtype, [w.inputSize, o.horizon], o.weights),
    initializer('bias', w.dtype, [o.horizon], vectorOf(o.bias ?? 0, o.horizon, 'bias')),
  ];
  let last = 'affine';
  nodes.push(node('Add', ['product', 'bias'], [last]));
  if (outputShape.length !== 1) {
    // 0 copies the batch dimension from the input, so fixed and symbolic batches both reshape correctly.
    initializers.push(initializer('output_shape', 'int64', [outputShape.length + 1], [0, ...outputShape]));
    nodes.push(node('Reshape', [last, 'output_shape'], ['reshaped']));
    last = 'reshaped';
  }
  if (outputDtype !== w.dtype) {
    nodes.push(node('Cast', [last], ['cast'], { to: ELEMENT_TYPE_CODE[outputDtype] }));
    last = 'cast';
  }
  nodes.push(node('Identity', [last], [w.outputName]));
  return {
    ...o,
    nodes,
    initializers,
    inputs: [w.input],
    outputs: [valueInfo(w.outputName, outputDtype, [w.batch, ...outputShape])],
  };
}

/** What `linearReference` needs: the same weights and bias given to `linearModel`. */
export interface LinearParams {
  readonly horizon: number;
  readonly weights: ArrayLike<number>;
  readonly bias?: number | ArrayLike<number>;
}

/**
 * The linear model's forecast for one window (row-major [L, V], oldest first), in float64. A float32 model
 * rounds its weights and sums differently, so compare with a tolerance.
 */
export function linearReference(params: LinearParams, window: ArrayLike<number>): Float64Array {
  const h = params.horizon;
  const inputSize = params.weights.length / h;
  if (window.length !== inputSize) throw new RangeError(`window needs ${inputSize} values, got ${window.length}`);
  const bias = vectorOf(params.bias ?? 0, h, 'bias');
  const out = new Float64Array(h);
  for (let j = 0; j < h; j++) out[j] = bias[j] as number;
  for (let i = 0; i < inputSize; i++) {
    const x = window[i] as number;
    for (let j = 0; j < h; j++) out[j] = (out[j] as number) + x * (params.weights[i * h + j] as number);
  }
  return out;
}

/** Weights [L*V, H] of a model that repeats the window's mean for every step: handy for hand-checkable tests. */
export function meanWeights(inputSize: number, horizon: number): Float64Array {
  return new Float64Array(inputSize * horizon).fill(1 / inputSize);
}

/** Weights [L, H] (one variable) of the naive forecast: every step repeats the window's last value. */
export function lastValueWeights(lookback: number, horizon: number): Float64Array {
  const w = new Float64Array(lookback * horizon);
  for (let h = 0; h < horizon; h++) w[(lookback - 1) * horizon + h] = 1;
  return w;
}

/**
 * Weights [L, H] (one variable) of the seasonal-naive forecast: step h (0-based, h+1 periods ahead of the last
 * row) predicts the value one `period` before it, window row L - period + h. Needs horizon <= period <= L.
 */
export function seasonalNaiveWeights(lookback: number, horizon: number, period: number): Float64Array {
  if (period > lookback || horizon > period) {
    throw new RangeError(`seasonal naive needs horizon (${horizon}) <= period (${period}) <= lookback (${lookback})`);
  }
  const w = new Float64Array(lookback * horizon);
  for (let h = 0; h < horizon; h++) w[(lookback - period + h) * horizon + h] = 1;
  return w;
}

// ---------------------------------------------------------------------------------------------------------------
// Multi-layer perceptron
// ---------------------------------------------------------------------------------------------------------------

export interface MlpLayer {
  readonly inputs: number;
  readonly outputs: number;
  /** Row-major [inputs, outputs], float32-rounded. */
  readonly weights: Float32Array;
  readonly bias: Float32Array;
}

export interface MlpShape {
  readonly lookback: number;
  readonly variables?: number;
  /** Widths of the hidden layers, e.g. [512, 512, 512]. */
  readonly hidden: readonly number[];
  readonly horizon: number;
  readonly seed: number;
}

/**
 * Deterministic MLP weights: each layer uniform in ±1/sqrt(fan_in) (PyTorch's default scale), drawn from
 * `seededRandom(seed)` layer by layer, weights before bias.
 */
export function mlpWeights(shape: MlpShape): MlpLayer[] {
  const random = seededRandom(shape.seed);
  const widths = [shape.lookback * (shape.variables ?? 1), ...shape.hidden, shape.horizon];
  const layers: MlpLayer[] = [];
  for (let k = 0; k + 1 < widths.length; k++) {
    const inputs = widths[k] as number;
    const outputs = widths[k + 1] as number;
    const bound = 1 / Math.sqrt(inputs);
    const weights = uniformWeights(random, inputs * outputs, bound);
    const bias = uniformWeights(random, outputs, bound);
    layers.push({ inputs, outputs, weights, bias });
  }
  return layers;
}

export interface MlpModelOptions extends MlpShape, Omit<WindowInputOptions, 'lookback' | 'variables'>, ModelInfo {}

/** An MLP L*V -> hidden... -> H with Relu between layers (none after the last), weights from `mlpWeights`. */
export function mlpModel(o: MlpModelOptions): Uint8Array {
  const w = resolveWindow(o);
  const layers = mlpWeights(o);
  const nodes: NodeProtoSpec[] = [node('Flatten', [w.inputName], ['h0'], { axis: 1 })];
  const initializers: TensorProtoSpec[] = [];
  layers.forEach((layer, k) => {
    initializers.push(initializer(`w${k}`, w.dtype, [layer.inputs, layer.outputs], layer.weights));
    initializers.push(initializer(`b${k}`, w.dtype, [layer.outputs], layer.bias));
    nodes.push(node('MatMul', [`h${k}`, `w${k}`], [`m${k}`]));
    const isLast = k === layers.length - 1;
    const sum = isLast ? w.outputName : `a${k}`;
    nodes.push(node('Add', [`m${k}`, `b${k}`], [sum]));
    if (!isLast) nodes.push(node('Relu', [sum], [`h${k + 1}`]));
  });
  return buildModel({
    ...o,
    nodes,
    initializers,
    inputs: [w.input],
    outputs: [valueInfo(w.outputName, w.dtype, [w.batch, o.horizon])],
  });
}

/** The MLP's forecast for one window (row-major [L, V]), in float64 over the float32 weights. */
export function mlpReference(layers: readonly MlpLayer[], window: ArrayLike<number>): Float64Array {
  let x = Float64Array.from(window as ArrayLike<number>);
  layers.forEach((layer, k) => {
    if (x.length !== layer.inputs) throw new RangeError(`layer ${k} needs ${layer.inputs} inputs, got ${x.length}`);
    const y = new Float64Array(layer.outputs);
    for (let j = 0; j < layer.outputs; j++) y[j] = layer.bias[j] as number;
    for (let i = 0; i < layer.inputs; i++) {
      const xi = x[i] as number;
      if (xi === 0) continue;
      const row = i * layer.outputs;
      for (let j = 0; j < layer.outputs; j++) y[j] = (y[j] as number) + xi * (layer.weights[row + j] as number);
    }
    if (k < layers.length - 1) for (let j = 0; j < y.length; j++) y[j] = Math.max(0, y[j] as number);
    x = y;
  });
  return x;
}

// ---------------------------------------------------------------------------------------------------------------
// Recurrent forecaster (GRU)
// ---------------------------------------------------------------------------------------------------------------

export interface GruShape {
  readonly lookback: number;
  /** Values per time step (the GRU's input size). Default 1. */
  readonly variables?: number;
  /** The GRU's hidden size. */
  readonly hidden: number;
  readonly horizon: number;
  readonly seed: number;
}

/** Weights of `gruModel`, float32-rounded, laid out as ONNX's GRU takes them (gates in the order z, r, h). */
export interface GruWeights {
  readonly inputs: number;
  readonly hidden: number;
  /** Row-major [3 * hidden, inputs]: rows 0..H-1 the update gate z, H..2H-1 the reset gate r, 2H..3H-1 the candidate h. */
  readonly w: Float32Array;
  /** Row-major [3 * hidden, hidden], the recurrent weights, gates as in `w`. */
  readonly r: Float32Array;
  /** [3 * hidden]: the input biases Wb (z, r, h). */
  readonly wb: Float32Array;
  /** [3 * hidden]: the recurrent biases Rb (z, r, h). */
  readonly rb: Float32Array;
  /** The output layer: last hidden state [hidden] to the forecast [horizon]. */
  readonly head: MlpLayer;
}

/**
 * Deterministic GRU weights: everything uniform in ±1/sqrt(hidden) (PyTorch's default for GRU and for a Linear
 * layer fed by it), drawn from `seededRandom(seed)` in the order W, R, Wb, Rb, head weights, head bias.
 */
export function gruWeights(shape: GruShape): GruWeights {
  const inputs = shape.variables ?? 1;
  const hidden = shape.hidden;
  if (!Number.isInteger(hidden) || hidden < 1) throw new RangeError('hidden must be a positive integer');
  const random = seededRandom(shape.seed);
  const bound = 1 / Math.sqrt(hidden);
  const w = uniformWeights(random, 3 * hidden * inputs, bound);
  const r = uniformWeights(random, 3 * hidden * hidden, bound);
  const wb = uniformWeights(random, 3 * hidden, bound);
  const rb = uniformWeights(random, 3 * hidden, bound);
  const headWeights = uniformWeights(random, hidden * shape.horizon, bound);
  const headBias = uniformWeights(random, shape.horizon, bound);
  return { inputs, hidden, w, r, wb, rb, head: { inputs: hidden, outputs: shape.horizon, weights: headWeights, bias: headBias } };
}

export interface GruModelOptions extends GruShape, Omit<WindowInputOptions, 'lookback' | 'variables' | 'rank' | 'dtype'>, ModelInfo {}

/**
 * A recurrent forecaster: input [B, L, V] transposed to ONNX GRU's [L, B, V] layout, one forward GRU layer
 * (default activations, linear_before_reset 0, initial state zero), its last hidden state [B, hidden] through a
 * Gemm to the forecast [B, H]. float32 only (ONNX Runtime's GRU kernel is float32).
 */
export function gruModel(o: GruModelOptions): Uint8Array {
  const w = resolveWindow({ ...o, rank: 3 });
  const g = gruWeights(o);
  const H = g.hidden;
  const bias = new Float32Array(6 * H);
  bias.set(g.wb, 0);
  bias.set(g.rb, 3 * H);
  return buildModel({
    ...o,
    nodes: [
      node('Transpose', [w.inputName], ['sequence'], { perm: [1, 0, 2] }),
      // Output 0 (every step's state) is not needed: only Y_h, the last state [1, B, hidden].
      node('GRU', ['sequence', 'gru_w', 'gru_r', 'gru_b'], ['', 'last_state'], { hidden_size: H, direction: 'forward' }),
      node('Squeeze', ['last_state', 'squeeze_axes'], ['state']),
      node('Gemm', ['state', 'head_w', 'head_b'], [w.outputName]),
    ],
    initializers: [
      initializer('gru_w', 'float32', [1, 3 * H, g.inputs], g.w),
      initializer('gru_r', 'float32', [1, 3 * H, H], g.r),
      initializer('gru_b', 'float32', [1, 6 * H], bias),
      initializer('squeeze_axes', 'int64', [1], [0]),
      initializer('head_w', 'float32', [H, o.horizon], g.head.weights),
      initializer('head_b', 'float32', [o.horizon], g.head.bias),
    ],
    inputs: [w.input],
    outputs: [valueInfo(w.outputName, 'float32', [w.batch, o.horizon])],
  });
}

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/**
 * The GRU forecaster's output for one window (row-major [L, V], oldest first), in float64 over the float32
 * weights, step by step as ONNX defines GRU: z = σ(W_z x + R_z h + Wb_z + Rb_z), r likewise,
 * n = tanh(W_h x + R_h (r ⊙ h) + Wb_h + Rb_h), h' = (1 - z) ⊙ n + z ⊙ h, from h = 0.
 */
export function gruReference(weights: GruWeights, window: ArrayLike<number>): Float64Array {
  const { inputs: V, hidden: H, w, r, wb, rb } = weights;
  if (window.length % V !== 0) throw new RangeError(`window of ${window.length} values is not whole rows of ${V}`);
  const steps = window.length / V;
  let h = new Float64Array(H);
  const z = new Float64Array(H);
  const reset = new Float64Array(H);
  for (let t = 0; t < steps; t++) {
    const next = new Float64Array(H);
    for (let j = 0; j < H; j++) {
      let zj = (wb[j] as number) + (rb[j] as number);
      let rj = (wb[H + j] as number) + (rb[H + j] as number);
      for (let v = 0; v < V; v++) {
        const x = window[t * V + v] as number;
        zj += (w[j * V + v] as number) * x;
        rj += (w[(H + j) * V + v] as number) * x;
      }
      for (let k = 0; k < H; k++) {
        const hk = h[k] as number;
        zj += (r[j * H + k] as number) * hk;
        rj += (r[(H + j) * H + k] as number) * hk;
      }
      z[j] = sigmoid(zj);
      reset[j] = sigmoid(rj);
    }
    for (let j = 0; j < H; j++) {
      let nj = (wb[2 * H + j] as number) + (rb[2 * H + j] as number);
      for (let v = 0; v < V; v++) nj += (w[(2 * H + j) * V + v] as number) * (window[t * V + v] as number);
      for (let k = 0; k < H; k++) nj += (r[(2 * H + j) * H + k] as number) * (reset[k] as number) * (h[k] as number);
      const zj = z[j] as number;
      next[j] = (1 - zj) * Math.tanh(nj) + zj * (h[j] as number);
    }
    h = next;
  }
  return mlpReference([weights.head], h);
}

// ---------------------------------------------------------------------------------------------------------------
// Convolutional forecaster (1-D)
// ---------------------------------------------------------------------------------------------------------------

export interface ConvShape {
  readonly lookback: number;
  /** Values per time step: the first convolution's input channels. Default 1. */
  readonly variables?: number;
  /** Output channels of each convolution, in order, e.g. [64, 64]. */
  readonly channels: readonly number[];
  /** Kernel width of every convolution: odd, so that "same" padding keeps the length at `lookback`. */
  readonly kernel: number;
  readonly horizon: number;
  readonly seed: number;
}

export interface ConvLayer {
  readonly inputs: number;
  readonly outputs: number;
  readonly kernel: number;
  /** Row-major [outputs, inputs, kernel], float32-rounded (ONNX Conv's weight layout). */
  readonly weights: Float32Array;
  readonly bias: Float32Array;
}

export interface ConvWeights {
  readonly layers: readonly ConvLayer[];
  /** The output layer: the last convolution's [channels, lookback] flattened channel-major, to [horizon]. */
  readonly head: MlpLayer;
}

/**
 * Deterministic convolution weights: each layer uniform in ±1/sqrt(fan_in) (fan_in = input channels × kernel for
 * a convolution, channels × lookback for the output layer; PyTorch's default scale), drawn from
 * `seededRandom(seed)` layer by layer, weights before bias.
 */
export function convWeights(shape: ConvShape): ConvWeights {
  if (!Number.isInteger(shape.kernel) || shape.kernel < 1 || shape.kernel % 2 === 0) {
    throw new RangeError(`kernel must be an odd positive integer, got ${shape.kernel}`);
  }
  if (shape.channels.length === 0) throw new RangeError('a convolutional model needs at least one convolution');
  const random = seededRandom(shape.seed);
  const layers: ConvLayer[] = [];
  let inputs = shape.variables ?? 1;
  for (const outputs of shape.channels) {
    const bound = 1 / Math.sqrt(inputs * shape.kernel);
    const weights = uniformWeights(random, outputs * inputs * shape.kernel, bound);
    const bias = uniformWeights(random, outputs, bound);
    layers.push({ inputs, outputs, kernel: shape.kernel, weights, bias });
    inputs = outputs;
  }
  const flat = inputs * shape.lookback;
  const bound = 1 / Math.sqrt(flat);
  const headWeights = uniformWeights(random, flat * shape.horizon, bound);
  const headBias = uniformWeights(random, shape.horizon, bound);
  return { layers, head: { inputs: flat, outputs: shape.horizon, weights: headWeights, bias: headBias } };
}

export interface ConvModelOptions extends ConvShape, Omit<WindowInputOptions, 'lookback' | 'variables' | 'rank' | 'dtype' | 'lookbackDim'>, ModelInfo {}

/**
 * A 1-D convolutional forecaster: input [B, L, V] transposed to [B, V, L] (channels first), then per entry of
 * `channels` a Conv (kernel `kernel`, stride 1, "same" zero padding) and a Relu, the result [B, C, L] flattened
 * channel-major and a Gemm to the forecast [B, H]. float32 only.
 */
export function convModel(o: ConvModelOptions): Uint8Array {
  const w = resolveWindow({ ...o, rank: 3 });
  const { layers, head } = convWeights(o);
  const pad = (o.kernel - 1) / 2;
  const nodes: NodeProtoSpec[] = [node('Transpose', [w.inputName], ['c0'], { perm: [0, 2, 1] })];
  const initializers: TensorProtoSpec[] = [];
  layers.forEach((layer, k) => {
    initializers.push(initializer(`conv${k}_w`, 'float32', [layer.outputs, layer.inputs, layer.kernel], layer.weights));
    initializers.push(initializer(`conv${k}_b`, 'float32', [layer.outputs], layer.bias));
    nodes.push(
      node('Conv', [`c${k}`, `conv${k}_w`, `conv${k}_b`], [`conv${k}`], {
        kernel_shape: [layer.kernel],
        pads: [pad, pad],
        strides: [1],
        dilations: [1],
        group: 1,
      }),
    );
    nodes.push(node('Relu', [`conv${k}`], [`c${k + 1}`]));
  });
  nodes.push(node('Flatten', [`c${layers.length}`], ['flat'], { axis: 1 }));
  initializers.push(initializer('head_w', 'float32', [head.inputs, head.outputs], head.weights));
  initializers.push(initializer('head_b', 'float32', [head.outputs], head.bias));
  nodes.push(node('Gemm', ['flat', 'head_w', 'head_b'], [w.outputName]));
  return buildModel({
    ...o,
    nodes,
    initializers,
    inputs: [w.input],
    outputs: [valueInfo(w.outputName, 'float32', [w.batch, o.horizon])],
  });
}

/**
 * The convolutional forecaster's output for one window (row-major [L, V], oldest first), in float64 over the
 * float32 weights: y[o, t] = b[o] + Σ_c Σ_k W[o, c, k] · x[c, t + k - pad] with zeros outside the window (ONNX
 * Conv is a cross-correlation), Relu, then the output layer over the channel-major flattening.
 */
export function convReference(weights: ConvWeights, window: ArrayLike<number>): Float64Array {
  const first = weights.layers[0];
  if (!first) throw new RangeError('no convolution layers');
  const V = first.inputs;
  if (window.length % V !== 0) throw new RangeError(`window of ${window.length} values is not whole rows of ${V}`);
  const L = window.length / V;
  // Channels first: x[c * L + t].
  let x = new Float64Array(V * L);
  for (let t = 0; t < L; t++) for (let c = 0; c < V; c++) x[c * L + t] = window[t * V + c] as number;
  for (const layer of weights.layers) {
    const pad = (layer.kernel - 1) / 2;
    const y = new Float64Array(layer.outputs * L);
    for (let out = 0; out < layer.outputs; out++) {
      for (let t = 0; t < L; t++) {
        let sum = layer.bias[out] as number;
        for (let c = 0; c < layer.inputs; c++) {
          for (let k = 0; k < layer.kernel; k++) {
            const s = t + k - pad;
            if (s < 0 || s >= L) continue;
            sum += (layer.weights[(out * layer.inputs + c) * layer.kernel + k] as number) * (x[c * L + s] as number);
          }
        }
        y[out * L + t] = Math.max(0, sum);
      }
    }
    x = y;
  }
  return mlpReference([weights.head], x);
}

// ---------------------------------------------------------------------------------------------------------------
// Deliberately slow model
// ---------------------------------------------------------------------------------------------------------------

export interface SlowModelOptions extends ModelInfo {
  /** Input [B, size] (L = size, V = 1) and the side of the square weight matrix. */
  readonly size: number;
  /** How many [size, size] MatMul + Tanh steps run in sequence. Work per item: about 2 * depth * size^2 flops. */
  readonly depth: number;
  /** Output [B, horizon] from a final [size, horizon] MatMul. Default 1. */
  readonly horizon?: number;
  readonly batch?: DimSpec | 'symbolic';
  readonly seed?: number;
  readonly inputName?: string;
  readonly outputName?: string;
}

function slowWeights(o: SlowModelOptions): { square: Float32Array; head: Float32Array } {
  const random = seededRandom(o.seed ?? 7);
  // ±sqrt(3/size) keeps activations near unit scale, so Tanh neither saturates nor vanishes along the chain.
  const square = uniformWeights(random, o.size * o.size, Math.sqrt(3 / o.size));
  const head = uniformWeights(random, o.size * (o.horizon ?? 1), 1 / Math.sqrt(o.size));
  return { square, head };
}

/**
 * A model whose run time grows with `depth` and `size` (one shared [size, size] weight, so the file stays
 * size^2 floats whatever the depth): for checking that inference never blocks the event loop. Values stay
 * finite because every step ends in Tanh.
 */
export function slowModel(o: SlowModelOptions): Uint8Array {
  if (!Number.isInteger(o.depth) || o.depth < 1) throw new RangeError('depth must be a positive integer');
  const horizon = o.horizon ?? 1;
  const inputName = o.inputName ?? 'window';
  const outputName = o.outputName ?? 'forecast';
  const { square, head } = slowWeights(o);
  const nodes: NodeProtoSpec[] = [];
  let last = inputName;
  for (let k = 0; k < o.depth; k++) {
    nodes.push(node('MatMul', [last, 'square'], [`m${k}`]));
    nodes.push(node('Tanh', [`m${k}`], [`t${k}`]));
    last = `t${k}`;
  }
  nodes.push(node('MatMul', [last, 'head'], [outputName]));
  const batch = batchDim(o.batch);
  return buildModel({
    ...o,
    nodes,
    initializers: [
      initializer('square', 'float32', [o.size, o.size], square),
      initializer('head', 'float32', [o.size, horizon], head),
    ],
    inputs: [valueInfo(inputName, 'float32', [batch, o.size])],
    outputs: [valueInfo(outputName, 'float32', [batch, horizon])],
  });
}

/** The slow model's output for one window of `size` values, in float64 (keep size small in tests). */
export function slowReference(o: SlowModelOptions, window: ArrayLike<number>): Float64Array {
  const { square, head } = slowWeights(o);
  const horizon = o.horizon ?? 1;
  let x = Float64Array.from(window as ArrayLike<number>);
  for (let k = 0; k < o.depth; k++) {
    const y = new Float64Array(o.size);
    for (let i = 0; i < o.size; i++) {
      const xi = x[i] as number;
      for (let j = 0; j < o.size; j++) y[j] = (y[j] as number) + xi * (square[i * o.size + j] as number);
    }
    x = y.map(Math.tanh);
  }
  return mlpReference([{ inputs: o.size, outputs: horizon, weights: head, bias: new Float32Array(horizon) }], x);
}

// ---------------------------------------------------------------------------------------------------------------
// Quantile forecaster
// ---------------------------------------------------------------------------------------------------------------

export interface QuantileModelOptions extends Omit<LinearModelOptions, 'outputDtype'> {
  /**
   * Offsets from the point forecast, row-major [...outputShape, Q]: quantile q of output value i is
   * point[i] + offsets[i * Q + q]. Offsets increasing in q give a monotone quantile output.
   */
  readonly offsets: ArrayLike<number>;
  /** Q: levels in the quantile output. */
  readonly levels: number;
  /** Name of the quantile output; default "quantiles". */
  readonly quantileOutputName?: string;
}

/**
 * The linear forecaster as output 0, and a quantile output [B, ...outputShape, Q]: the point forecast plus a
 * fixed offset per value and level (the shape of a point model with empirical residual quantiles).
 */
export function quantileModel(o: QuantileModelOptions): Uint8Array {
  const w = resolveWindow(o);
  const g = linearGraph(o);
  const outputShape = o.outputShape ?? [o.horizon];
  if (o.offsets.length !== o.horizon * o.levels) {
    throw new RangeError(`offsets must be [...outputShape, Q] = ${o.horizon * o.levels} values, got ${o.offsets.length}`);
  }
  const name = o.quantileOutputName ?? 'quantiles';
  return buildModel({
    ...g,
    nodes: [
      ...g.nodes,
      node('Unsqueeze', [w.outputName, 'last_axis'], ['point_column']),
      node('Add', ['point_column', 'quantile_offsets'], [name]),
    ],
    initializers: [
      ...(g.initializers ?? []),
      initializer('last_axis', 'int64', [1], [-1]),
      initializer('quantile_offsets', w.dtype, [...outputShape, o.levels], o.offsets),
    ],
    outputs: [...g.outputs, valueInfo(name, w.dtype, [w.batch, ...outputShape, o.levels])],
  });
}

/** What `quantileModel` computes for one item: [...outputShape, Q] row-major, in float64. */
export function quantileReference(point: ArrayLike<number>, offsets: ArrayLike<number>, levels: number): Float64Array {
  const out = new Float64Array(point.length * levels);
  for (let i = 0; i < point.length; i++) {
    for (let q = 0; q < levels; q++) out[i * levels + q] = (point[i] as number) + (offsets[i * levels + q] as number);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Models with extra outputs, non-finite results, and contract violations
// ---------------------------------------------------------------------------------------------------------------

export interface MultiOutputModelOptions extends Omit<LinearModelOptions, 'outputDtype'> {}

/**
 * The linear model as output 0, followed by outputs the forecast contract ignores: "window_sum" float [B]
 * (the sum of each window) and "window_argmax" int64 [B, 1] (the flat index of each window's largest value).
 */
export function multiOutputModel(o: MultiOutputModelOptions): Uint8Array {
  const w = resolveWindow(o);
  const g = linearGraph(o);
  return buildModel({
    ...g,
    nodes: [
      ...g.nodes,
      node('ReduceSum', ['flat', 'sum_axes'], ['window_sum'], { keepdims: 0 }),
      node('ArgMax', ['flat'], ['window_argmax'], { axis: 1, keepdims: 1 }),
    ],
    initializers: [...(g.initializers ?? []), initializer('sum_axes', 'int64', [1], [1])],
    outputs: [...g.outputs, valueInfo('window_sum', w.dtype, [w.batch]), valueInfo('window_argmax', 'int64', [w.batch, 1])],
  });
}

export interface NonFiniteModelOptions extends Omit<WindowInputOptions, 'dtype'>, ModelInfo {
  readonly horizon: number;
  /**
   * 'log': every step is ln(mean of the window): NaN when the mean is negative, -Infinity when it is 0.
   * 'reciprocal': every step is 1 / (mean of the window): Infinity when the mean is 0.
   */
  readonly op: 'log' | 'reciprocal';
  readonly dtype?: FloatType;
}

/** A model whose forecast is finite or not depending on the data: see `op`. */
export function nonFiniteModel(o: NonFiniteModelOptions): Uint8Array {
  const w = resolveWindow(o);
  const g = linearGraph({ ...o, weights: meanWeights(w.inputSize, o.horizon), bias: 0, outputName: 'mean' });
  return buildModel({
    ...g,
    nodes: [...g.nodes, node(o.op === 'log' ? 'Log' : 'Reciprocal', ['mean'], [w.outputName])],
    outputs: [valueInfo(w.outputName, w.dtype, [w.batch, o.horizon])],
  });
}

export function nonFiniteReference(op: 'log' | 'reciprocal', horizon: number, window: ArrayLike<number>): Float64Array {
  let sum = 0;
  for (let i = 0; i < window.length; i++) sum += window[i] as number;
  const mean = sum / window.length;
  return new Float64Array(horizon).fill(op === 'log' ? Math.log(mean) : 1 / mean);
}

/**
 * Models that ONNX Runtime loads and runs but that break the forecast model contract:
 * - 'two-inputs': inputs "window" float [B, L*V] and "offset" float [B, 1]; output window·W + offset.
 * - 'no-inputs': no input; output a constant float [1, H].
 * - 'int64-input': input int64 [B, L, V] (Cast to float inside).
 * - 'int32-input': input int32 [B, L, V].
 * - 'rank-1-input': input float [L]; output [1, H].
 * - 'rank-4-input': input float [B, L, V, 1].
 * - 'int64-output': output 0 int64 [B, H] (the forecast cast to integers).
 * - 'scalar-output': output 0 float with shape [] (the sum of the forecast over the batch).
 * - 'fixed-batch': input [4, L*V] and output [4, H]: a fixed batch above 1.
 * Every variant has lookback `lookback`, horizon `horizon`, and mean weights.
 */
export type ContractViolation =
  | 'two-inputs'
  | 'no-inputs'
  | 'int64-input'
  | 'int32-input'
  | 'rank-1-input'
  | 'rank-4-input'
  | 'int64-output'
  | 'scalar-output'
  | 'fixed-batch';

export const CONTRACT_VIOLATIONS: readonly ContractViolation[] = [
  'two-inputs',
  'no-inputs',
  'int64-input',
  'int32-input',
  'rank-1-input',
  'rank-4-input',
  'int64-output',
  'scalar-output',
  'fixed-batch',
];

export interface ContractViolationOptions extends ModelInfo {
  readonly lookback?: number;
  readonly horizon?: number;
  readonly variables?: number;
}

export function contractViolationModel(kind: ContractViolation, o: ContractViolationOptions = {}): Uint8Array {
  const lookback = o.lookback ?? 4;
  const horizon = o.horizon ?? 2;
  const variables = o.variables ?? 1;
  const size = lookback * variables;
  const weights = initializer('weights', 'float32', [size, horizon], meanWeights(size, horizon));
  const B = 'batch';
  const forecastOut = (shape: DimSpec[]): ValueInfoSpec => valueInfo('forecast', 'float32', shape);
  const base = (nodes: NodeProtoSpec[], inputs: ValueInfoSpec[], outputs: ValueInfoSpec[], extra: TensorProtoSpec[] = []) =>
    buildModel({ ...o, nodes, inputs, outputs, initializers: [weights, ...extra] });
  switch (kind) {
    case 'two-inputs':
      return base(
        [node('MatMul', ['window', 'weights'], ['product']), node('Add', ['product', 'offset'], ['forecast'])],
        [valueInfo('window', 'float32', [B, size]), valueInfo('offset', 'float32', [B, 1])],
        [forecastOut([B, horizon])],
      );
    case 'no-inputs': {
      const constant = initializer('constant', 'float32', [1, horizon], new Float32Array(horizon).fill(1));
      return buildModel({
        ...o,
        nodes: [node('Identity', ['constant'], ['forecast'])],
        inputs: [],
        outputs: [forecastOut([1, horizon])],
        initializers: [constant],
      });
    }
    case 'int64-input':
    case 'int32-input':
      return base(
        [
          node('Flatten', ['window'], ['flat'], { axis: 1 }),
          node('Cast', ['flat'], ['flat_f'], { to: ELEMENT_TYPE_CODE.float32 }),
          node('MatMul', ['flat_f', 'weights'], ['forecast']),
        ],
        [valueInfo('window', kind === 'int64-input' ? 'int64' : 'int32', [B, lookback, variables])],
        [forecastOut([B, horizon])],
      );
    case 'rank-1-input':
      return base(
        [
          node('Reshape', ['window', 'row_shape'], ['row']),
          node('MatMul', ['row', 'weights'], ['forecast']),
        ],
        [valueInfo('window', 'float32', [size])],
        [forecastOut([1, horizon])],
        [initializer('row_shape', 'int64', [2], [1, size])],
      );
    case 'rank-4-input':
      return base(
        [node('Flatten', ['window'], ['flat'], { axis: 1 }), node('MatMul', ['flat', 'weights'], ['forecast'])],
        [valueInfo('window', 'float32', [B, lookback, variables, 1])],
        [forecastOut([B, horizon])],
      );
    case 'int64-output':
      return base(
        [
          node('MatMul', ['window', 'weights'], ['product']),
          node('Cast', ['product'], ['forecast'], { to: ELEMENT_TYPE_CODE.int64 }),
        ],
        [valueInfo('window', 'float32', [B, size])],
        [valueInfo('forecast', 'int64', [B, horizon])],
      );
    case 'scalar-output':
      return base(
        [node('MatMul', ['window', 'weights'], ['product']), node('ReduceSum', ['product'], ['forecast'], { keepdims: 0 })],
        [valueInfo('window', 'float32', [B, size])],
        [forecastOut([])],
      );
    case 'fixed-batch':
      return base(
        [node('MatMul', ['window', 'weights'], ['forecast'])],
        [valueInfo('window', 'float32', [4, size])],
        [forecastOut([4, horizon])],
      );
  }
}
