/**
 * InferenceSession: an ONNX model loaded into the native addon. Loading and every run execute on the addon's
 * own threads, never on the JavaScript thread. Inputs are copied into memory the addon owns when run() is called
 * (unless they already live there: allocateTensorData), so the caller's buffers are free again at once; large
 * outputs arrive without a copy.
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
  RunOutputs,
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
 * Turns what the addon threw or rejected with into the error the caller sees. With `callSite` (captured before
 * the work left the JavaScript thread) its stack is the caller's instead of an empty native one.
 */
function fromNative(error: unknown, callSite?: Error): Error {
  let result: Error;
  const code = (error as { code?: unknown } | null)?.code;
  if (error instanceof TypeError || error instanceof RangeError || error instanceof ForecastdError) {
    result = error;
  } else if (typeof code === 'string' && NATIVE_CODES.has(code)) {
    const ortCode = (error as { ortCode?: unknown }).ortCode;
    result = new ForecastdError(code as ErrorCode, (error as Error).message, {
      ...(typeof ortCode === 'string' ? { ortCode } : {}),
    });
  } else {
    result = new ForecastdError('ERR_INFERENCE', error instanceof Error ? error.message : String(error), {
      cause: error,
    });
  }
  if (callSite !== undefined) {
    const frames = callSite.stack?.split('\n').slice(1).join('\n') ?? '';
    result.stack = `${result.name}: ${result.message}\n${frames}`;
  }
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

/**
 * A zero-filled Float32Array or Float64Array of `length` elements over memory the addon owns. run() holds such
 * memory for the run instead of copying it (the batching forecaster builds its batches here, so a window is copied
 * once, into the batch). The array may still be transferred or dropped at any time; writing to it while a run
 * that uses it is in flight changes what that run reads, as with any shared memory. Where external buffers are
 * not allowed (Electron) it is an ordinary typed array, which run() copies.
 */
export function allocateTensorData(type: 'float32', length: number): Float32Array;
export function allocateTensorData(type: 'float64', length: number): Float64Array;
export function allocateTensorData(type: 'float32' | 'float64', length: number): Float32Array | Float64Array;
export function allocateTensorData(type: 'float32' | 'float64', length: number): Float32Array | Float64Array {
  if (type !== 'float32' && type !== 'float64') {
    throw new ForecastdError('ERR_INVALID_ARGUMENT', `allocateTensorData() supports float32 and float64, got ${String(type)}`);
  }
  if (!Number.isSafeInteger(length) || length < 0 || length > 2 ** 31) {
    throw new RangeError(`allocateTensorData() length must be an integer from 0 to 2^31, got ${String(length)}`);
  }
  return loadAddon().allocateTensorData(type, length);
}

/** What run() checks each feed against, computed once per session. */
interface InputPlan {
  readonly info: TensorInfo;
  readonly arrayType: TypedArrayConstructor | undefined;
}

function describeShape(shape: readonly (number | string)[]): string {
  return `[${shape.join(', ')}]`;
}

/**
 * Checks one feed and returns its shape as a fresh array. `data` and `shape` were each read once from the
 * caller's object, and every element of `shape` is read once here: a getter cannot show the checks one value and
 * the addon another.
 */
function checkFeed(plan: InputPlan, data: unknown, shape: unknown): number[] {
  const { info, arrayType } = plan;
  if (arrayType === undefined) {
    throw new TypeError(`input ${info.name} has element type ${info.type}, which forecastd cannot feed`);
  }
  if (!(data instanceof arrayType)) {
    const got = ArrayBuffer.isView(data) ? data.constructor.name : typeof data;
    throw new TypeError(`input ${info.name} has element type ${info.type} and needs a ${arrayType.name}, got ${got}`);
  }
  if (!Array.isArray(shape)) throw new TypeError(`the shape of input ${info.name} must be an array of numbers`);
  const rank = shape.length;
  if (rank !== info.shape.length) {
    throw new RangeError(`input ${info.name} has rank ${info.shape.length} ${describeShape(info.shape)}, got a shape of rank ${rank}`);
  }
  const dims: number[] = [];
  for (let d = 0; d < rank; d++) {
    const size: unknown = shape[d];
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
      throw new RangeError(`the shape of input ${info.name} must hold integers from 0 to 2^53-1, got ${describeShape([...dims, String(size)])}`);
    }
    dims.push(size);
  }
  let elements = 1;
  for (let d = 0; d < rank; d++) {
    const declared = info.shape[d];
    const size = dims[d] as number;
    if (typeof declared === 'number' && declared !== size) {
      throw new RangeError(
        `input ${info.name} needs shape ${describeShape(info.shape)}, got ${describeShape(dims)} (dimension ${d})`,
      );
    }
    elements *= size;
  }
  if (elements !== data.length) {
    throw new RangeError(
      `input ${info.name} has ${data.length} elements, but shape ${describeShape(dims)} needs ${elements}`,
    );
  }
  return dims;
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
   * Loads a model from a file path or from its bytes (copied when load() is called: the Uint8Array is free again
   * at once). Parsing and optimizing happen on the addon's threads. Rejects with ERR_MODEL_LOAD naming the file
   * and ONNX Runtime's reason (and its `ortCode`) when the model is missing, corrupt or not ONNX.
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
   * ERR_INFERENCE (and ONNX Runtime's `ortCode`); a disposed session with ERR_DISPOSED. The inputs are copied
   * before run() returns (arrays from allocateTensorData() are held instead): the caller may reuse, resize or
   * transfer them at once.
   */
  run(feeds: Readonly<Record<string, InputTensor>>, options: RunOptions = {}): Promise<RunOutputs> {
    try {
      if (this.#disposed) {
        throw new ForecastdError('ERR_DISPOSED', 'the session was disposed; load the model again to run it');
      }
      if (typeof feeds !== 'object' || feeds === null) throw new TypeError('feeds must be an object of input tensors');
      // Every value the caller passed is read exactly once (getters may run, and may even dispose this session),
      // and only fresh copies of the lists reach the addon.
      const names = Object.keys(feeds);
      const arrays: NumericTypedArray[] = [];
      const shapes: (readonly number[])[] = [];
      for (const name of names) {
        const plan = this.#plans.get(name);
        if (plan === undefined) {
          throw new TypeError(`the model has no input named ${name}; its inputs are: ${[...this.#plans.keys()].join(', ')}`);
        }
        const tensor: unknown = feeds[name];
        if (typeof tensor !== 'object' || tensor === null) {
          throw new TypeError(`input ${name} must be an object { data, shape }`);
        }
        const data: unknown = (tensor as InputTensor).data;
        const shape: unknown = (tensor as InputTensor).shape;
        shapes.push(checkFeed(plan, data, shape));
        arrays.push(data as NumericTypedArray);
      }
      if (names.length !== this.#plans.size) {
        const missing = [...this.#plans.keys()].filter((n) => !names.includes(n));
        throw new TypeError(`missing input${missing.length > 1 ? 's' : ''}: ${missing.join(', ')}`);
      }
      let outputNames = this.#outputNames;
      const requested: unknown = typeof options === 'object' && options !== null ? options.outputs : undefined;
      if (requested !== undefined) {
        if (!Array.isArray(requested)) throw new TypeError('options.outputs must be an array of output names');
        const list: unknown[] = Array.from(requested as unknown[]);
        for (const name of list) {
          if (typeof name !== 'string' || !this.#outputNames.includes(name)) {
            throw new TypeError(`the model has no output named ${String(name)}; its outputs are: ${this.#outputNames.join(', ')}`);
          }
        }
        if (list.length === 0) throw new TypeError('options.outputs must name at least one output');
        outputNames = list as string[];
      }
      if (this.#disposed) {
        throw new ForecastdError('ERR_DISPOSED', 'the session was disposed; load the model again to run it');
      }
      // No call-site capture here (new Error() costs ~2 µs of this thread per run): a run that ONNX Runtime
      // fails carries no caller frames; every error thrown before the run starts has the caller's stack.
      return this.#native.run(names, arrays, shapes, outputNames).catch((error: unknown) => {
        throw fromNative(error);
      });
    } catch (error) {
      return Promise.reject(fromNative(error));
    }
  }

  /** Releases the session. Safe to call more than once; runs already in flight finish and resolve normally. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#native.dispose();
  }
}
