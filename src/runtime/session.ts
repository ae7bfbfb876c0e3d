/**
 * InferenceSession: an ONNX model loaded into the native addon. Loading and every run execute on the addon's
 * own threads, never on the JavaScript thread; inputs are read in place and outputs arrive without a copy.
 */
import path from 'node:path';

import { ForecastdError, type ErrorCode } from '../errors.js';
import { loadAddon, type NativeSession, type NativeSessionOptions } from './addon.js';
import { availableProvider, runtimeInfo } from './runtime.js';
import type {
  ExecutionMode,
  GraphOptimizationLevel,
  InputTensor,
  ModelMetadata,
  NumericTypedArray,
  OutputTensor,
  RunOptions,
  SessionOptions,
  TensorElementType,
  TensorInfo,
} from './types.js';

type TypedArrayConstructor =
  | Float32ArrayConstructor
  | Float64ArrayConstructor
  | Int8ArrayConstructor
  | Uint8ArrayConstructor
  | Int16ArrayConstructor
  | Uint16ArrayConstructor
  | Int32ArrayConstructor
  | Uint32ArrayConstructor
  | BigInt64ArrayConstructor
  | BigUint64ArrayConstructor;

/** The typed array that carries each element type (float16/bfloat16 as raw bits, bool as bytes). */
const ARRAY_FOR_TYPE: Readonly<Partial<Record<TensorElementType, TypedArrayConstructor>>> = {
  float32: Float32Array,
  float64: Float64Array,
  float16: Uint16Array,
  bfloat16: Uint16Array,
  int8: Int8Array,
  uint8: Uint8Array,
  int16: Int16Array,
  uint16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
  int64: BigInt64Array,
  uint64: BigUint64Array,
  bool: Uint8Array,
};

const OPTIMIZATION_LEVELS: readonly GraphOptimizationLevel[] = ['disabled', 'basic', 'extended', 'all'];
const EXECUTION_MODES: readonly ExecutionMode[] = ['sequential', 'parallel'];
const NATIVE_CODES: ReadonlySet<string> = new Set<ErrorCode>([
  'ERR_RUNTIME_LOAD',
  'ERR_MODEL_LOAD',
  'ERR_INFERENCE',
  'ERR_DISPOSED',
]);

/**
 * Turns what the addon rejected with into the error the caller sees, with the caller's stack (captured before
 * the work left the JavaScript thread) instead of an empty native one.
 */
function fromNative(error: unknown, callSite: Error): Error {
  let result: Error;
  const code = (error as { code?: unknown } | null)?.code;
  if (error instanceof TypeError || error instanceof RangeError || error instanceof ForecastdError) {
    result = error;
  } else if (typeof code === 'string' && NATIVE_CODES.has(code)) {
    result = new ForecastdError(code as ErrorCode, (error as Error).message);
  } else {
    result = new ForecastdError('ERR_INFERENCE', error instanceof Error ? error.message : String(error), {
      cause: error,
    });
  }
  const frames = callSite.stack?.split('\n').slice(1).join('\n') ?? '';
  result.stack = `${result.name}: ${result.message}\n${frames}`;
  return result;
}

function checkThreads(value: unknown, name: string, minimum: number): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < minimum || value > 1024) {
    throw new ForecastdError('ERR_INVALID_ARGUMENT', `${name} must be an integer from ${minimum} to 1024, got ${String(value)}`);
  }
  return value;
}

function nativeOptions(options: SessionOptions, what: string): NativeSessionOptions {
  if (typeof options !== 'object' || options === null) {
    throw new ForecastdError('ERR_INVALID_ARGUMENT', 'session options must be an object');
  }
  const level = options.graphOptimizationLevel;
  if (level !== undefined && !OPTIMIZATION_LEVELS.includes(level)) {
    throw new ForecastdError('ERR_INVALID_ARGUMENT', `graphOptimizationLevel must be one of ${OPTIMIZATION_LEVELS.join(', ')}, got ${String(level)}`);
  }
  const mode = options.executionMode;
  if (mode !== undefined && !EXECUTION_MODES.includes(mode)) {
    throw new ForecastdError('ERR_INVALID_ARGUMENT', `executionMode must be one of ${EXECUTION_MODES.join(', ')}, got ${String(mode)}`);
  }
  const requested = options.executionProviders ?? ['cpu'];
  if (!Array.isArray(requested) || requested.length === 0 || !requested.every((p) => typeof p === 'string')) {
    throw new ForecastdError('ERR_INVALID_ARGUMENT', 'executionProviders must be a non-empty array of provider names, e.g. ["cpu"]');
  }
  const nativeNames: string[] = [];
  for (const provider of requested) {
    const ortName = availableProvider(provider);
    if (ortName === undefined) {
      const runtime = runtimeInfo();
      throw new ForecastdError(
        'ERR_MODEL_LOAD',
        `${what}: execution provider "${provider}" is not available in ${runtime.libraryPath} (ONNX Runtime ` +
          `${runtime.version}); available: ${runtime.availableProviders.join(', ')}. Other providers need an ONNX ` +
          'Runtime build that has them: set FORECASTD_ORT_LIBRARY or configureRuntime({ libraryPath }).',
      );
    }
    if (!nativeNames.includes(ortName)) nativeNames.push(ortName);
  }
  return {
    intraOpThreads: checkThreads(options.intraOpThreads, 'intraOpThreads', 1) ?? 1,
    interOpThreads: checkThreads(options.interOpThreads, 'interOpThreads', 0) ?? 0,
    graphOptimizationLevel: level ?? 'all',
    executionMode: mode ?? 'sequential',
    executionProviders: nativeNames,
  };
}

/** What run() checks each feed against, computed once per session. */
interface InputPlan {
  readonly info: TensorInfo;
  readonly arrayType: TypedArrayConstructor | undefined;
}

function describeShape(shape: readonly (number | string)[]): string {
  return `[${shape.join(', ')}]`;
}

function checkFeed(plan: InputPlan, tensor: InputTensor): void {
  const { info, arrayType } = plan;
  if (typeof tensor !== 'object' || tensor === null) {
    throw new TypeError(`input ${info.name} must be an object { data, shape }`);
  }
  const { data, shape } = tensor;
  if (arrayType === undefined) {
    throw new TypeError(`input ${info.name} has element type ${info.type}, which forecastd cannot feed`);
  }
  if (!(data instanceof arrayType)) {
    const got = ArrayBuffer.isView(data) ? data.constructor.name : typeof data;
    throw new TypeError(`input ${info.name} has element type ${info.type} and needs a ${arrayType.name}, got ${got}`);
  }
  if (!Array.isArray(shape)) throw new TypeError(`the shape of input ${info.name} must be an array of numbers`);
  if (shape.length !== info.shape.length) {
    throw new RangeError(
      `input ${info.name} has rank ${info.shape.length} ${describeShape(info.shape)}, got shape ${describeShape(shape)}`,
    );
  }
  let elements = 1;
  for (let d = 0; d < shape.length; d++) {
    const size = shape[d];
    const declared = info.shape[d];
    if (typeof size !== 'number' || !Number.isInteger(size) || size < 0) {
      throw new RangeError(`the shape of input ${info.name} must hold non-negative integers, got ${describeShape(shape)}`);
    }
    if (typeof declared === 'number' && declared !== size) {
      throw new RangeError(
        `input ${info.name} needs shape ${describeShape(info.shape)}, got ${describeShape(shape)} (dimension ${d})`,
      );
    }
    elements *= size;
  }
  if (elements !== data.length) {
    throw new RangeError(
      `input ${info.name} has ${data.length} elements, but shape ${describeShape(shape)} needs ${elements}`,
    );
  }
}

/** An ONNX model loaded into ONNX Runtime through the native addon. */
export class InferenceSession {
  readonly inputs: readonly TensorInfo[];
  readonly outputs: readonly TensorInfo[];
  readonly metadata: ModelMetadata;
  readonly #native: NativeSession;
  readonly #plans: ReadonlyMap<string, InputPlan>;
  readonly #outputNames: readonly string[];
  #disposed = false;

  private constructor(native: NativeSession) {
    this.#native = native;
    this.inputs = Object.freeze(native.inputs.map((t) => Object.freeze({ ...t, shape: Object.freeze([...t.shape]) })));
    this.outputs = Object.freeze(native.outputs.map((t) => Object.freeze({ ...t, shape: Object.freeze([...t.shape]) })));
    this.metadata = Object.freeze({ ...native.metadata, custom: Object.freeze({ ...native.metadata.custom }) });
    this.#plans = new Map(this.inputs.map((info) => [info.name, { info, arrayType: ARRAY_FOR_TYPE[info.type] }]));
    this.#outputNames = Object.freeze(this.outputs.map((o) => o.name));
  }

  /**
   * Loads a model from a file path or from its bytes (the Uint8Array is read in place, not copied; do not
   * modify it until the promise settles). Parsing and optimizing happen on the addon's threads. Rejects with
   * ERR_MODEL_LOAD naming the file and ONNX Runtime's reason when the model is missing, corrupt or not ONNX.
   */
  static async load(source: string | Uint8Array, options: SessionOptions = {}): Promise<InferenceSession> {
    const callSite = new Error();
    let what: string;
    let nativeSource: string | Uint8Array;
    if (typeof source === 'string') {
      nativeSource = path.resolve(source);
      what = `cannot load model ${nativeSource}`;
    } else if (source instanceof Uint8Array) {
      nativeSource = source;
      what = `cannot load model from ${source.byteLength} bytes`;
    } else {
      throw new TypeError('InferenceSession.load() needs a file path or the model bytes as a Uint8Array');
    }
    const native = nativeOptions(options, what);
    let session: NativeSession;
    try {
      session = await loadAddon().loadSession(nativeSource, native);
    } catch (error) {
      throw fromNative(error, callSite);
    }
    return new InferenceSession(session);
  }

  /** True after dispose(). */
  get disposed(): boolean {
    return this.#disposed;
  }

  /**
   * Runs the model on the addon's run threads. `feeds` maps every model input to a typed array matching its
   * element type (Float32Array for float32, BigInt64Array for int64...) and a shape that fits the declared one.
   * Wrong types reject with TypeError, wrong sizes with RangeError; failures inside ONNX Runtime with
   * ERR_INFERENCE; a disposed session with ERR_DISPOSED. Do not modify the input arrays until it settles.
   */
  run(feeds: Readonly<Record<string, InputTensor>>, options: RunOptions = {}): Promise<OutputTensor[]> {
    const callSite = new Error();
    try {
      if (this.#disposed) {
        throw new ForecastdError('ERR_DISPOSED', 'the session was disposed; load the model again to run it');
      }
      if (typeof feeds !== 'object' || feeds === null) throw new TypeError('feeds must be an object of input tensors');
      const names = Object.keys(feeds);
      const arrays: NumericTypedArray[] = [];
      const shapes: (readonly number[])[] = [];
      for (const name of names) {
        const plan = this.#plans.get(name);
        if (plan === undefined) {
          throw new TypeError(`the model has no input named ${name}; its inputs are: ${[...this.#plans.keys()].join(', ')}`);
        }
        const tensor = feeds[name] as InputTensor;
        checkFeed(plan, tensor);
        arrays.push(tensor.data);
        shapes.push(tensor.shape);
      }
      if (names.length !== this.#plans.size) {
        const missing = [...this.#plans.keys()].filter((n) => !(n in feeds));
        throw new TypeError(`missing input${missing.length > 1 ? 's' : ''}: ${missing.join(', ')}`);
      }
      let outputNames = this.#outputNames;
      if (options.outputs !== undefined) {
        for (const name of options.outputs) {
          if (!this.#outputNames.includes(name)) {
            throw new TypeError(`the model has no output named ${name}; its outputs are: ${this.#outputNames.join(', ')}`);
          }
        }
        if (options.outputs.length === 0) throw new TypeError('options.outputs must name at least one output');
        outputNames = options.outputs;
      }
      return this.#native.run(names, arrays, shapes, outputNames).catch((error: unknown) => {
        throw fromNative(error, callSite);
      });
    } catch (error) {
      return Promise.reject(fromNative(error, callSite));
    }
  }

  /** Releases the session. Safe to call more than once; runs already in flight finish and resolve normally. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#native.dispose();
  }
}
