/** Types shared by the addon wrapper (session.ts), the batching forecaster and the server. */

export type TensorElementType =
  | 'float32'
  | 'float64'
  | 'float16'
  | 'bfloat16'
  | 'int8'
  | 'uint8'
  | 'int16'
  | 'uint16'
  | 'int32'
  | 'uint32'
  | 'int64'
  | 'uint64'
  | 'bool'
  | 'string'
  | 'unknown';

/** A dimension: a number when concrete, the symbolic name (e.g. "batch") when symbolic, "?" when unnamed. */
export type Dim = number | string;

export interface TensorInfo {
  readonly name: string;
  readonly type: TensorElementType;
  readonly shape: readonly Dim[];
}

export interface ModelMetadata {
  readonly producerName: string;
  readonly graphName: string;
  readonly domain: string;
  readonly description: string;
  readonly graphDescription: string;
  /**
   * ModelProto.model_version, exactly, as a decimal string (an int64 does not fit a JavaScript number); absent
   * when the model has none (ONNX Runtime reports INT64_MAX then, as for PyTorch exports).
   */
  readonly version?: string;
  readonly custom: Readonly<Record<string, string>>;
}

export type NumericTypedArray =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;

export type FloatArray = Float32Array | Float64Array;

export interface InputTensor {
  readonly data: NumericTypedArray;
  readonly shape: readonly number[];
}

export interface OutputTensor {
  readonly name: string;
  readonly type: TensorElementType;
  readonly shape: readonly number[];
  readonly data: NumericTypedArray;
}

/** What run() resolves with: the outputs, in the order asked for, and how long the run itself took. */
export type RunOutputs = OutputTensor[] & {
  /** Milliseconds the run took on its run thread, from its start there to its end (no queueing or hand-over). */
  readonly executeMs: number;
};

export type GraphOptimizationLevel = 'disabled' | 'basic' | 'extended' | 'all';
export type ExecutionMode = 'sequential' | 'parallel';

export interface SessionOptions {
  /** ORT threads inside one run. Default 1: throughput comes from concurrent runs, not from one wide run. */
  readonly intraOpThreads?: number;
  readonly interOpThreads?: number;
  readonly graphOptimizationLevel?: GraphOptimizationLevel;
  readonly executionMode?: ExecutionMode;
  /** Default ["cpu"]. Asking for one the loaded ONNX Runtime library lacks is an ERR_MODEL_LOAD error. */
  readonly executionProviders?: readonly string[];
}

export interface RunOptions {
  /** Names of the outputs to return, in this order. Default: every output, in model order. */
  readonly outputs?: readonly string[];
}

export interface RuntimeOptions {
  /** Path of libonnxruntime. Default: $FORECASTD_ORT_LIBRARY, else the library inside onnxruntime-node. */
  readonly libraryPath?: string;
  /** Native threads that execute runs (the addon's own pool, not libuv's). Default: one per CPU the process may use (affinity mask and cgroup quota). */
  readonly runThreads?: number;
  /**
   * How long, in microseconds, a run thread that finished a run keeps polling for the next one before it sleeps
   * (at most one thread polls at a time, and polling pauses by itself while it finds nothing). A run that
   * arrives then starts without a thread wake-up, which on virtual machines costs the calling thread tens of
   * microseconds. 0 turns it off (e.g. on a machine whose CPUs are all busy). Default: $FORECASTD_RUN_SPIN_US,
   * else 300. Unlike the other options it can be changed at any time.
   */
  readonly runSpinMicros?: number;
  /**
   * How long, in microseconds, the JavaScript thread polls its event loop for I/O before it sleeps while none of
   * its runs is in flight: a request that arrives meanwhile is read without a thread wake-up, which on virtual
   * machines costs tens of microseconds (see docs/performance.md for what it gives a server at one connection).
   * It uses that CPU time while it polls, stops a millisecond before the loop's next timer, and pauses by itself
   * while it finds nothing (then polls at one in sixteen of the loop's wake-ups). 0 turns it off. Default:
   * $FORECASTD_IO_POLL_US, else 0 (the forecastd server sets 100). Like runSpinMicros it can be changed at any time.
   */
  readonly ioPollMicros?: number;
}

/** One line ONNX Runtime logged (warnings and errors; see setRuntimeLogHandler). */
export interface RuntimeLogEntry {
  readonly level: 'warning' | 'error' | 'fatal' | 'info' | 'verbose';
  /** ORT's category, e.g. "onnxruntime". */
  readonly category: string;
  readonly message: string;
}

export interface RuntimeInfo {
  readonly libraryPath: string;
  /** ONNX Runtime version string reported by the library, e.g. "1.30.0". */
  readonly version: string;
  /** The C API version the addon was compiled against. */
  readonly apiVersion: number;
  readonly runThreads: number;
  /** The run threads' spin budget in microseconds (RuntimeOptions.runSpinMicros). */
  readonly runSpinMicros: number;
  /** The JavaScript thread's poll for I/O before it sleeps, in microseconds (RuntimeOptions.ioPollMicros). */
  readonly ioPollMicros: number;
  readonly availableProviders: readonly string[];
}
