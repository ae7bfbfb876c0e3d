import { performance } from 'node:perf_hooks';
import { ForecastdError } from '../errors.js';
import { availableCpus } from './cpus.js';
import { checkForecastModel, formatShape, type ForecastModelShape } from './model-contract.js';
import { allocateTensorData, type InferenceSession } from './session.js';
import type { FloatArray, InputTensor, OutputTensor, RunOptions, RunOutputs, TensorInfo } from './types.js';
import type { AbortSignalLike } from './cancellation.js';
import type { WindowInput } from './window.js';
import { RunCostModel } from './run-cost.js';

export interface ForecasterOptions {
  /** params.lookback; required only when the model's lookback dimension is symbolic. */
  lookback?: number | null;
  /** Value columns per row (V). Default 1. */
  variables?: number;
  /** Most windows in one run. Default 64; always 1 for fixed-batch models. */
  maxBatchSize?: number;
  /** Runs of this model in flight at once. 0 or undefined: one per CPU the process may use (cgroup quota included). */
  maxConcurrentRuns?: number;
  /**
   * Keep one run more than maxConcurrentRuns in flight while this model's runs are slow (0.1 ms or more on
   * average, from hand-over to result). The extra run waits in the run queue, so a run thread that finishes a
   * batch starts it at once instead of idling until the JavaScript thread, busy elsewhere (a server's sockets),
   * has taken the results and sent the next batch. Default false. Fast runs gain nothing from it (the
   * per-run cost dominates and their batches would only get smaller), so it stays off for them.
   */
  runAhead?: boolean;
  /** How long the oldest queued window may wait for a fuller batch. Default 0: never wait. */
  maxQueueDelayMs?: number;
  /** Windows waiting for a run slot beyond which predict() rejects with ERR_QUEUE_FULL. Default 1024. */
  maxQueueSize?: number;
  /** From predict() to its result; past it the call rejects with ERR_TIMEOUT. Default 30000; 0 or Infinity: none. */
  timeoutMs?: number;
  /** Called after every run, successful or not (for metrics). An exception it throws becomes a process warning. */
  onBatch?: (batch: BatchInfo) => void;
  /**
   * Other float outputs to return beside output 0, by name (e.g. a quantile output), each [B, ...]: every
   * prediction carries its item's slice of each in `extraOutputs`, in this order.
   */
  extraOutputs?: readonly string[];
  /**
   * A second session of the same model, loaded with more intra-op threads, for a run that starts while no other
   * run of this forecaster is in flight: a lone request then uses the cores that would otherwise idle. warmUp()
   * times both sessions on the same windows and keeps using this one only where it is faster
   * (`loneRunThreads` tells which). The forecaster does not own it: disposing it stays the caller's job.
   */
  loneRunSession?: InferenceSession;
  /** loneRunSession's intra-op threads, for `loneRunThreads`. Default 2. */
  loneRunSessionThreads?: number;
  /**
   * 'measured' (default): warmUp() keeps loneRunSession only where it times faster. 'always': lone runs use it
   * without a comparison (the caller has measured it, or pins it).
   */
  loneRunSessionPolicy?: 'measured' | 'always';
}

/** What warmUp() measured: the run costs the batching follows, and which session serves lone runs. */
export interface Calibration {
  /** Milliseconds a run costs whatever its size, and each window adds (RunCostModel); null: not measured. */
  readonly fixedMs: number | null;
  readonly perWindowMs: number | null;
  /** Median milliseconds of a one-window run on the main session, and on loneRunSession (null without one). */
  readonly singleMs: number | null;
  readonly loneSingleMs: number | null;
  /** Intra-op threads of the session that serves a run starting while no other is in flight. */
  readonly loneRunThreads: number;
}

/** One finished run. */
export interface BatchInfo {
  /** Windows in the run. */
  readonly size: number;
  /** Per window, in batch order: milliseconds from predict() to the run's start. */
  readonly queueMs: readonly number[];
  /** Milliseconds the run took, from handing the batch to the runtime to its result. */
  readonly inferenceMs: number;
  /** false when the run itself failed (every window in it rejected with ERR_INFERENCE). */
  readonly ok: boolean;
}

export interface Prediction {
  /**
   * This window's slice of output 0, flattened row-major. A view (subarray) of the batch's output buffer,
   * shared with the other windows of the same run: copy it before modifying it.
   */
  readonly values: FloatArray;
  /** This window's slice of each of the forecaster's `extraOutputs`, in order (views, like `values`). */
  readonly extraOutputs: readonly FloatArray[];
  /** Windows in the run that produced it. */
  readonly batchSize: number;
  /** Milliseconds from predict() to the run's start. */
  readonly queueMs: number;
  /** Milliseconds the run took. */
  readonly inferenceMs: number;
}

export interface PredictOptions {
  /**
   * Aborting removes a queued window, or drops the result of one in flight; the call rejects with the reason.
   * An AbortSignal, or a Cancellation where one is made per call (it is far cheaper).
   */
  readonly signal?: AbortSignalLike;
  /** Overrides the forecaster's timeoutMs for this call. */
  readonly timeoutMs?: number;
}

/** The options in force after defaults and the model's own limits were applied. */
export interface ForecasterSettings {
  readonly maxBatchSize: number;
  readonly maxConcurrentRuns: number;
  readonly runAhead: boolean;
  readonly maxQueueDelayMs: number;
  readonly maxQueueSize: number;
  /** Infinity when there is no timeout. */
  readonly timeoutMs: number;
}

const NO_EXTRAS: readonly FloatArray[] = Object.freeze([]);

const QUEUED = 0;
const RUNNING = 1;
const DONE = 2;

/** One low-priority run (runBackground) waiting for a run thread that requests do not need. */
interface BackgroundRun {
  readonly data: Float32Array | Float64Array;
  readonly count: number;
  readonly resolve: (result: BackgroundResult) => void;
  readonly reject: (e: unknown) => void;
}

/** What a low-priority run returns: every output the forecaster reads, whole, for `count` windows. */
export interface BackgroundResult {
  /** Output 0 then each of `extraOutputs`, [count, ...] flattened. */
  readonly outputs: readonly FloatArray[];
  /** Milliseconds the run took, from handing it to the runtime to its result. */
  readonly inferenceMs: number;
}

/** One predict() call from acceptance to settlement. */
class PendingPrediction {
  state: typeof QUEUED | typeof RUNNING | typeof DONE = QUEUED;
  queueMs = 0;
  onAbort: (() => void) | undefined = undefined;
  constructor(
    readonly window: WindowInput,
    readonly resolve: (p: Prediction) => void,
    readonly reject: (e: unknown) => void,
    readonly enqueuedAt: number,
    readonly deadline: number,
    readonly timeoutMs: number,
    readonly signal: AbortSignalLike | undefined,
    readonly checkFinite: boolean,
  ) {}
}

// runAhead acts while the moving average of run times is at least this. bench/http on 2 CPUs, 64 connections:
// the heavy MLP (a batch of 8 takes about 0.12 ms at its inference ceiling) served 15-20% more
// requests per second with a run ahead; the linear models (whose runs cost less than handing them over) up to
// 10% fewer, in smaller batches.
const RUN_AHEAD_MIN_MS = 0.1;

// Requests this recent count as a server under load for low-priority runs (runBackground).
const REQUESTS_RECENT_MS = 100;

// warmUp() calibration: at most this many rounds (each a run of every measured kind), and no new round past the
// time budget once the minimum is done, nor past the hard budget after the first (a model whose runs take
// seconds). A lone-run session must be faster by this factor to be kept.
const CALIBRATION_ROUNDS = 9;
const CALIBRATION_MIN_ROUNDS = 3;
const CALIBRATION_BUDGET_MS = 150;
const CALIBRATION_HARD_BUDGET_MS = 1000;
const LONE_RUN_GAIN = 0.9;
// Largest batch timed by the calibration (the second point of the cost line).
const CALIBRATION_BATCH = 16;

// The calibration in progress in this process (warmUp() runs one at a time).
let calibrating: Promise<void> = Promise.resolve();

// Compacting the FIFO costs O(remaining); doing it only past this many consumed slots keeps it amortized O(1).
const COMPACT_AFTER = 1024;

function positiveInt(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new ForecastdError('ERR_INVALID_ARGUMENT', `${name} must be a positive integer, got ${value}`);
  }
  return value;
}

function nonNegative(name: string, value: number, integer: boolean): number {
  if (Number.isNaN(value) || value < 0 || (integer && !Number.isInteger(value))) {
    throw new ForecastdError(
      'ERR_INVALID_ARGUMENT',
      `${name} must be ${integer ? 'an integer' : 'a number'} >= 0, got ${value}`,
    );
  }
  return value;
}

function timeoutOf(value: number, name: string): number {
  nonNegative(name, value, false);
  return value === 0 ? Infinity : value;
}

function toInferenceError(err: unknown): ForecastdError {
  if (err instanceof ForecastdError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new ForecastdError('ERR_INFERENCE', message, { cause: err });
}

/**
 * Batches concurrent predictions for one model into single runs (a dynamic batcher in the manner of
 * Triton's). When the forecaster is idle, a window runs at once: no timer, only the end of the current
 * microtask checkpoint, so that callers resumed together (by one finished run, or one Promise.all) share a
 * batch, and free slots split what arrived between them. When a run is already in flight and a slot is free,
 * windows wait for the end of the event loop's current turn (setImmediate), so that everything that turn
 * brings (a server's requests from many sockets, each its own task) shares the batch rather than the first
 * window taking the slot alone. While every slot is busy, windows queue, and each finished run
 * starts the next with everything queued (up to maxBatchSize). With maxQueueDelayMs > 0 a batch waits until
 * it is full or its oldest window has waited that long.
 *
 * The forecaster does not own the session: close() drains it, disposing the session is the caller's job.
 * It holds no timer while idle, so it never keeps the process alive.
 */
export class BatchingForecaster {
  readonly session: InferenceSession;
  readonly shape: ForecastModelShape;
  readonly settings: ForecasterSettings;

  readonly #onBatch: ((batch: BatchInfo) => void) | undefined;
  readonly #windowLength: number;
  readonly #runOptions: RunOptions;
  readonly #extraOutputs: readonly string[];
  readonly #ArrayType: Float32ArrayConstructor | Float64ArrayConstructor;

  // FIFO: an array consumed from #head. Aborted or timed-out windows stay as DONE tombstones until passed.
  #queue: PendingPrediction[] = [];
  #head = 0;
  #queued = 0;
  #inFlight = 0;
  readonly #running = new Set<PendingPrediction[]>();

  // One timer for every deadline: armed for the earliest one, it rescans when it fires.
  #sweepTimer: NodeJS.Timeout | undefined = undefined;
  #sweepAt = Infinity;
  #delayTimer: NodeJS.Timeout | undefined = undefined;
  #delayAt = Infinity;

  // Moving average of run times (ms), for runAhead.
  #runMs = 0;
  // What runs cost by batch size, for splitting queued windows between free slots.
  readonly #cost = new RunCostModel();
  // Serves a run that starts while none is in flight, when warmUp() found it faster (loneRunSession).
  #lone: InferenceSession | null = null;
  readonly #loneCandidate: InferenceSession | null;
  readonly #loneCandidateThreads: number;
  readonly #lonePolicy: 'measured' | 'always';
  #calibration: Calibration | null = null;

  // Low-priority runs (runBackground): FIFO and how many are in flight.
  #background: BackgroundRun[] = [];
  #backgroundInFlight = 0;
  // When the last request arrived, and the earliest a low-priority run may start while requests keep coming.
  #lastRequestAt = -Infinity;
  #backgroundNotBefore = 0;
  #backgroundTimer: NodeJS.Timeout | undefined = undefined;

  #flushScheduled = false;
  #closing = false;
  #closed: Promise<void> | undefined = undefined;
  #drained: (() => void) | undefined = undefined;

  constructor(session: InferenceSession, options: ForecasterOptions = {}) {
    this.session = session;
    this.shape = checkForecastModel(session, {
      lookback: options.lookback ?? null,
      variables: options.variables ?? 1,
    });
    const maxBatchSize = positiveInt('maxBatchSize', options.maxBatchSize ?? 64);
    const runs = nonNegative('maxConcurrentRuns', options.maxConcurrentRuns ?? 0, true);
    this.settings = Object.freeze({
      maxBatchSize: this.shape.batch === 1 ? 1 : maxBatchSize,
      maxConcurrentRuns: runs === 0 ? availableCpus() : runs,
      runAhead: options.runAhead ?? false,
      maxQueueDelayMs: nonNegative('maxQueueDelayMs', options.maxQueueDelayMs ?? 0, false),
      maxQueueSize: nonNegative('maxQueueSize', options.maxQueueSize ?? 1024, true),
      timeoutMs: timeoutOf(options.timeoutMs ?? 30000, 'timeoutMs'),
    });
    this.#onBatch = options.onBatch;
    this.#windowLength = this.shape.lookback * this.shape.variables;
    this.#extraOutputs = [...(options.extraOutputs ?? [])];
    for (const name of this.#extraOutputs) {
      const info = session.outputs.find((o) => o.name === name);
      if (info === undefined) {
        const names = session.outputs.map((o) => `'${o.name}'`).join(', ');
        throw new ForecastdError('ERR_MODEL_CONTRACT', `the model has no output '${name}' (its outputs: ${names})`);
      }
      if (info.type !== 'float32' && info.type !== 'float64') {
        throw new ForecastdError('ERR_MODEL_CONTRACT', `output '${name}' is ${info.type}; it must be float32 or float64`);
      }
      if (name === this.shape.outputName) {
        throw new ForecastdError('ERR_MODEL_CONTRACT', `output '${name}' is output 0, the point forecast; name another output`);
      }
    }
    this.#runOptions = { outputs: [this.shape.outputName, ...this.#extraOutputs] };
    this.#ArrayType = this.shape.inputType === 'float32' ? Float32Array : Float64Array;
    const lone = options.loneRunSession;
    if (lone !== undefined && lone !== session) {
      if (!sameTensors(lone.inputs, session.inputs) || !sameTensors(lone.outputs, session.outputs)) {
        throw new ForecastdError('ERR_INVALID_ARGUMENT', 'loneRunSession must be the same model as the session (its inputs and outputs differ)');
      }
    }
    this.#loneCandidate = lone ?? null;
    this.#lonePolicy = options.loneRunSessionPolicy ?? 'measured';
    if (this.#lonePolicy !== 'measured' && this.#lonePolicy !== 'always') {
      throw new ForecastdError('ERR_INVALID_ARGUMENT', `loneRunSessionPolicy must be 'measured' or 'always', got ${String(this.#lonePolicy)}`);
    }
    if (this.#lonePolicy === 'always') this.#lone = this.#loneCandidate;
    this.#loneCandidateThreads = positiveInt('loneRunSessionThreads', options.loneRunSessionThreads ?? 2);
  }

  /** What warmUp() measured; null before it has run. */
  get calibration(): Calibration | null {
    return this.#calibration;
  }

  /** Intra-op threads of the session a lone run uses: loneRunSession's where warmUp() kept it, else 1's. */
  get loneRunThreads(): number {
    return this.#lone === null ? 1 : this.#loneCandidateThreads;
  }

  /** True when warmUp() kept loneRunSession (otherwise the caller may dispose it). */
  get usesLoneRunSession(): boolean {
    return this.#lone !== null;
  }

  /** The outputs read beside output 0 (ForecasterOptions.extraOutputs), in order. */
  get extraOutputs(): readonly string[] {
    return this.#extraOutputs;
  }

  /** Windows waiting for a run slot. */
  get queueDepth(): number {
    return this.#queued;
  }

  /** Runs handed to the runtime and not yet finished. */
  get inFlightRuns(): number {
    return this.#inFlight;
  }

  /**
   * Forecast from one window of lookback * variables values, row-major [L, V], oldest row first. A typed
   * array window is read when its batch starts: leave it unmodified until the promise settles.
   */
  predict(window: WindowInput, options?: PredictOptions): Promise<Prediction> {
    return this.#enqueue(window, options, true);
  }

  /**
   * A low-priority run of `count` windows already laid out in `data` (count * lookback * variables values in
   * the model's input type; from allocateTensorData() it is not copied). It starts only when no request waits
   * for a run slot, takes only slots that requests leave free, and while any request run is in flight at most
   * one low-priority run is. Used for evaluation, which must never slow serving much: callers size `count` so
   * that one run takes about a millisecond. Output values are not checked for finiteness here.
   */
  runBackground(data: Float32Array | Float64Array, count: number): Promise<BackgroundResult> {
    if (this.#closing) {
      return Promise.reject(new ForecastdError('ERR_DISPOSED', 'the forecaster is closed; it accepts no new runs'));
    }
    if (!Number.isInteger(count) || count < 1 || (this.shape.batch === 1 && count !== 1)) {
      return Promise.reject(new ForecastdError('ERR_INVALID_ARGUMENT', `a run takes 1${this.shape.batch === 1 ? '' : ' or more'} windows, got ${count}`));
    }
    const expected = count * this.#windowLength;
    if (data.length !== expected || !(data instanceof this.#ArrayType)) {
      return Promise.reject(
        new ForecastdError('ERR_INVALID_ARGUMENT', `the run's data must be ${this.shape.inputType} with ${expected} values (${count} windows), got ${data.length}`),
      );
    }
    return new Promise<BackgroundResult>((resolve, reject) => {
      this.#background.push({ data, count, resolve, reject });
      this.#pumpBackground();
    });
  }

  /**
   * Starts low-priority runs on the slots requests leave: none while requests queue; while requests are in
   * flight or arrived in the last REQUESTS_RECENT_MS, one at a time, and each followed by as long a pause as
   * it ran (so that evaluation takes at most half a run thread from a server under load, and the CPU the
   * JavaScript thread needs stays free); with no requests, every slot.
   */
  #pumpBackground(): void {
    const limit = this.settings.maxConcurrentRuns;
    while (this.#background.length > 0 && this.#queued === 0) {
      const now = performance.now();
      const busy = this.#inFlight > 0 || now - this.#lastRequestAt < REQUESTS_RECENT_MS;
      const allowed = busy ? 1 : limit;
      if (this.#backgroundInFlight >= allowed || this.#inFlight + this.#backgroundInFlight >= limit) return;
      if (busy && now < this.#backgroundNotBefore) {
        this.#armBackground(this.#backgroundNotBefore - now);
        return;
      }
      const run = this.#background.shift() as BackgroundRun;
      this.#dispatchBackground(run);
    }
  }

  #armBackground(ms: number): void {
    if (this.#backgroundTimer !== undefined) return;
    // Referenced: the low-priority run waiting on it is pending work of its caller.
    this.#backgroundTimer = setTimeout(() => {
      this.#backgroundTimer = undefined;
      this.#pumpBackground();
    }, Math.max(1, Math.ceil(ms)));
  }

  #dispatchBackground(job: BackgroundRun): void {
    const { rank, lookback, variables, inputName } = this.shape;
    const n = job.count;
    const tensor: InputTensor = { data: job.data, shape: rank === 3 ? [n, lookback, variables] : [n, lookback] };
    this.#backgroundInFlight++;
    const start = performance.now();
    let run: Promise<OutputTensor[]>;
    try {
      run = this.session.run({ [inputName]: tensor }, this.#runOptions);
    } catch (err) {
      run = Promise.reject(err);
    }
    const finish = (): void => {
      const ran = performance.now() - start;
      this.#backgroundNotBefore = performance.now() + ran;
      this.#backgroundInFlight--;
      this.#pump();
      this.#pumpBackground();
      this.#checkIdle();
    };
    run.then(
      (outputs) => {
        const inferenceMs = performance.now() - start;
        let failure: ForecastdError | undefined;
        const names = [this.shape.outputName, ...this.#extraOutputs];
        for (let k = 0; failure === undefined && k < names.length; k++) failure = this.#checkOutput(outputs[k], n, names[k] as string);
        finish();
        if (failure !== undefined) job.reject(failure);
        else job.resolve({ outputs: outputs.map((o) => o.data as FloatArray), inferenceMs });
      },
      (err: unknown) => {
        finish();
        job.reject(toInferenceError(err));
      },
    );
  }

  /**
   * One inference on a zero window, so the first real request does not pay for the runtime's setup; then a
   * short calibration (at most CALIBRATION_ROUNDS rounds, and none past CALIBRATION_BUDGET_MS once three are
   * done): runs of 1 and of up to 16 windows, which seed the run-cost estimate, and, with a loneRunSession,
   * one-window runs on it, alternating, whose median decides whether lone runs use it.
   */
  async warmUp(): Promise<void> {
    // The model's answer to zeros may legitimately be non-finite (e.g. a window normalized by its spread).
    // A warm-up is not a request: timeout_ms bounds callers' waits, not the first (slowest) run.
    await this.#enqueue(new this.#ArrayType(this.#windowLength), { timeoutMs: 0 }, false);
    if (this.#calibration !== null || this.#closing) return;
    // One calibration at a time in the process: models loading side by side would otherwise time each other.
    const previous = calibrating;
    let done = (): void => undefined;
    calibrating = new Promise<void>((resolve) => {
      done = resolve;
    });
    try {
      await previous;
      if (this.#calibration === null && !this.#closing) this.#calibration = await this.#calibrate();
    } catch {
      // A failed calibration run (a session disposed meanwhile, a runtime error) costs the model its
      // measurements, not its service: it is batched as an unmeasured model, without a lone-run session.
      if (this.#lonePolicy === 'measured') this.#lone = null;
    } finally {
      done();
    }
  }

  async #calibrate(): Promise<Calibration> {
    const { rank, lookback, variables, inputName, inputType } = this.shape;
    const large = Math.min(this.settings.maxBatchSize, CALIBRATION_BATCH);
    const feeds = (n: number): Record<string, InputTensor> => ({
      [inputName]: { data: allocateTensorData(inputType, n * this.#windowLength), shape: rank === 3 ? [n, lookback, variables] : [n, lookback] },
    });
    // The run thread's own time: no queueing behind other work, no hand-over.
    const time = async (session: InferenceSession, n: number): Promise<number> => {
      const started = performance.now();
      const outputs = await session.run(feeds(n), this.#runOptions);
      return runThreadMs(outputs, performance.now() - started);
    };
    const lone = this.#loneCandidate;
    const single: number[] = [];
    const batch: number[] = [];
    const loneSingle: number[] = [];
    // The first run of each kind warms it (the lone-run session has not run yet; a new batch size allocates).
    if (large > 1) await time(this.session, large);
    const loneWarm = lone === null || this.#lonePolicy === 'always' ? null : await time(lone, 1).catch(() => Number.NaN);
    const measureLone = loneWarm !== null && !Number.isNaN(loneWarm) ? lone : null;
    const began = performance.now();
    for (let round = 0; round < CALIBRATION_ROUNDS && !this.#closing; round++) {
      const spent = performance.now() - began;
      if (round >= CALIBRATION_MIN_ROUNDS && spent > CALIBRATION_BUDGET_MS) break;
      if (round >= 1 && spent > CALIBRATION_HARD_BUDGET_MS) break;
      single.push(await time(this.session, 1));
      if (large > 1 && !this.#closing) batch.push(await time(this.session, large));
      if (measureLone !== null && !this.#closing) {
        // The lone-run session is optional: one that fails is simply not kept.
        const ms = await time(measureLone, 1).catch(() => Number.NaN);
        if (Number.isNaN(ms)) {
          loneSingle.length = 0;
          break;
        }
        loneSingle.push(ms);
      }
    }
    const singleMs = median(single);
    const batchMs = median(batch);
    const loneSingleMs = median(loneSingle);
    if (singleMs !== null && batchMs !== null) this.#cost.calibrate(1, singleMs, large, batchMs);
    // Kept only where clearly faster: its median 10% below the one-thread median, and below every one-thread run
    // timed (so that the noise of runs of a few microseconds does not decide).
    if (measureLone !== null && singleMs !== null && loneSingleMs !== null && loneSingleMs < LONE_RUN_GAIN * singleMs && loneSingleMs < Math.min(...single)) {
      this.#lone = measureLone;
    }
    return {
      fixedMs: this.#cost.known ? this.#cost.fixedMs : null,
      perWindowMs: this.#cost.known ? this.#cost.perWindowMs : null,
      singleMs,
      loneSingleMs,
      loneRunThreads: this.loneRunThreads,
    };
  }

  /** Stops accepting (ERR_DISPOSED); resolves once every queued and in-flight window has settled. */
  close(): Promise<void> {
    if (this.#closed === undefined) {
      this.#closing = true;
      this.#closed = new Promise((resolve) => {
        this.#drained = resolve;
      });
      // Nothing new will arrive to fill a batch, so waiting for one would only delay the drain.
      this.#clearDelay();
      // Low-priority runs not started yet are dropped: they serve no request.
      const dropped = this.#background;
      this.#background = [];
      if (this.#backgroundTimer !== undefined) clearTimeout(this.#backgroundTimer);
      this.#backgroundTimer = undefined;
      for (const job of dropped) job.reject(new ForecastdError('ERR_DISPOSED', 'the forecaster closed before this run started'));
      this.#pump();
      this.#checkIdle();
    }
    return this.#closed;
  }

  #enqueue(window: WindowInput, options: PredictOptions | undefined, checkFinite: boolean): Promise<Prediction> {
    if (this.#closing) {
      return Promise.reject(new ForecastdError('ERR_DISPOSED', 'the forecaster is closed; it accepts no new predictions'));
    }
    if (window === null || typeof window !== 'object' || window.length !== this.#windowLength) {
      const got = window !== null && typeof window === 'object' ? `${window.length} values` : String(window);
      const { lookback, variables } = this.shape;
      return Promise.reject(
        new ForecastdError(
          'ERR_INVALID_ARGUMENT',
          `the window has ${got} but the model takes ${this.#windowLength} (lookback ${lookback} x ${variables} variable${variables === 1 ? '' : 's'})`,
        ),
      );
    }
    const signal = options?.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (checkFinite) this.#lastRequestAt = performance.now();
    let timeoutMs = this.settings.timeoutMs;
    if (options?.timeoutMs !== undefined) {
      try {
        timeoutMs = timeoutOf(options.timeoutMs, 'timeoutMs');
      } catch (err) {
        return Promise.reject(err);
      }
    }
    const { maxBatchSize, maxQueueDelayMs, maxQueueSize } = this.settings;
    // Windows that free slots are about to take are not waiting for a slot: they do not count as queued.
    const slotsFree = this.#runLimit() - this.#inFlight;
    const waiting = this.#queued - slotsFree * maxBatchSize;
    if (waiting >= maxQueueSize) {
      return Promise.reject(
        new ForecastdError('ERR_QUEUE_FULL', `model queue is full (${waiting} waiting); retry later`),
      );
    }

    return new Promise<Prediction>((resolve, reject) => {
      const now = performance.now();
      const deadline = now + timeoutMs;
      const item = new PendingPrediction(window, resolve, reject, now, deadline, timeoutMs, signal, checkFinite);
      if (signal !== undefined) {
        item.onAbort = () => this.#abort(item);
        signal.addEventListener('abort', item.onAbort, { once: true });
      }
      if (deadline < this.#sweepAt) this.#armSweep(deadline);
      this.#queue.push(item);
      this.#queued++;
      if (maxQueueDelayMs > 0) {
        this.#pump();
        this.#checkIdle();
      } else if (slotsFree > 0 && !this.#flushScheduled) {
        this.#flushScheduled = true;
        // Idle: run at once (after this microtask checkpoint). Busy: wait for the end of this event-loop turn, so
        // that every window of the turn (all the requests read from the sockets in it) shares one batch instead
        // of the first one or two taking the free slot alone.
        if (this.#inFlight === 0) queueMicrotask(this.#flush);
        else setImmediate(this.#flush);
      }
    });
  }

  readonly #flush = (): void => {
    this.#flushScheduled = false;
    this.#pump();
    this.#checkIdle();
  };

  /** Runs allowed in flight now: maxConcurrentRuns, and one more ahead while runs are slow (runAhead). */
  #runLimit(): number {
    const { maxConcurrentRuns, runAhead } = this.settings;
    return runAhead && this.#runMs >= RUN_AHEAD_MIN_MS ? maxConcurrentRuns + 1 : maxConcurrentRuns;
  }

  /** Starts batches while slots are free and queued windows are due. */
  #pump(): void {
    const { maxBatchSize, maxQueueDelayMs } = this.settings;
    const limit = this.#runLimit();
    while (this.#queued > 0 && this.#inFlight < limit) {
      const now = performance.now();
      let size = maxBatchSize;
      if (maxQueueDelayMs > 0) {
        if (!this.#closing && this.#queued < maxBatchSize) {
          const oldest = this.#peek();
          if (oldest === undefined) break;
          const due = oldest.enqueuedAt + maxQueueDelayMs;
          if (now < due) {
            this.#armDelay(due);
            return;
          }
        }
      } else {
        // Free slots share what waits, so the runs go in parallel rather than one full and one idle; but no run
        // gets fewer windows than the measured efficient batch, below which a run's fixed part costs more than its
        // windows (a heavy model's weights read once per run, a light model's hand-over): such a split spends the
        // CPU the server's requests need on parallelism nobody gains from.
        const efficient = this.#cost.efficientBatch(maxBatchSize);
        const runs = Math.max(1, Math.min(limit - this.#inFlight, Math.floor(this.#queued / efficient)));
        size = Math.min(maxBatchSize, Math.ceil(this.#queued / runs));
      }
      const batch = this.#take(size, now);
      if (batch.length > 0) this.#dispatch(batch, now);
    }
  }

  /** The oldest queued window, skipping tombstones. */
  #peek(): PendingPrediction | undefined {
    const queue = this.#queue;
    while (this.#head < queue.length) {
      const item = queue[this.#head];
      if (item !== undefined && item.state === QUEUED) return item;
      this.#head++;
    }
    return undefined;
  }

  /** Dequeues up to `count` live windows; ones already past their deadline time out instead. */
  #take(count: number, now: number): PendingPrediction[] {
    const queue = this.#queue;
    const batch: PendingPrediction[] = [];
    let head = this.#head;
    while (batch.length < count && head < queue.length) {
      const item = queue[head++];
      if (item === undefined || item.state !== QUEUED) continue;
      this.#queued--;
      if (item.deadline <= now) {
        this.#settleError(item, this.#timeoutError(item));
        continue;
      }
      item.state = RUNNING;
      batch.push(item);
    }
    this.#head = head;
    if (head === queue.length) {
      queue.length = 0;
      this.#head = 0;
    } else if (head > COMPACT_AFTER && head * 2 > queue.length) {
      this.#queue = queue.slice(head);
      this.#head = 0;
    }
    return batch;
  }

  #dispatch(items: PendingPrediction[], now: number): void {
    const per = this.#windowLength;
    // Built straight in addon-owned memory: run() holds it instead of copying, so a window is copied once.
    let data = allocateTensorData(this.shape.inputType, items.length * per);
    let n = 0;
    // A warm-up window (checkFinite off) is the first, slowest run: it would mislead the cost estimate.
    let requests = true;
    for (const item of items) {
      requests &&= item.checkFinite;
      try {
        const w = item.window;
        if (w instanceof Float32Array || w instanceof Float64Array) data.set(w, n * per);
        else w.copyInto(data, n * per);
      } catch (err) {
        this.#settleError(item, err);
        continue;
      }
      item.queueMs = now - item.enqueuedAt;
      items[n++] = item;
    }
    if (n === 0) return;
    if (n < items.length) {
      items.length = n;
      data = data.subarray(0, n * per);
    }
    const { rank, lookback, variables, inputName } = this.shape;
    const tensor: InputTensor = { data, shape: rank === 3 ? [n, lookback, variables] : [n, lookback] };
    // Lone: nothing else in flight and nothing left queued (the first of several runs split from one burst is not
    // alone: the others run beside it, and would share the cores with its threads).
    const alone = this.#inFlight === 0 && this.#backgroundInFlight === 0 && this.#queued === 0;
    const session = alone && this.#lone !== null ? this.#lone : this.session;
    const measured = requests && session === this.session;
    this.#inFlight++;
    this.#running.add(items);
    const start = performance.now();
    let run: Promise<RunOutputs>;
    try {
      run = session.run({ [inputName]: tensor }, this.#runOptions);
    } catch (err) {
      run = Promise.reject(err);
    }
    run.then(
      (outputs) => this.#complete(items, start, outputs, undefined, measured),
      (err: unknown) => this.#complete(items, start, undefined, err, false),
    );
  }

  #complete(items: PendingPrediction[], start: number, outputs: RunOutputs | undefined, err: unknown, measured: boolean): void {
    const inferenceMs = performance.now() - start;
    this.#runMs += (inferenceMs - this.#runMs) / 4;
    if (measured && outputs !== undefined) this.#cost.observe(items.length, runThreadMs(outputs, inferenceMs));
    this.#inFlight--;
    this.#running.delete(items);
    // Start the next batch before settling this one: the runtime gets work while callers are resumed.
    this.#pump();
    this.#pumpBackground();

    const n = items.length;
    let failure: ForecastdError | undefined;
    const output = outputs?.[0];
    if (outputs === undefined) failure = toInferenceError(err);
    else {
      failure = this.#checkOutput(output, n, this.shape.outputName);
      for (let k = 0; failure === undefined && k < this.#extraOutputs.length; k++) {
        failure = this.#checkOutput(outputs[k + 1], n, this.#extraOutputs[k] as string);
      }
    }

    if (failure !== undefined || output === undefined) {
      const error = failure ?? new ForecastdError('ERR_INFERENCE', 'the run returned no output');
      for (const item of items) if (item.state === RUNNING) this.#settleError(item, error);
    } else {
      const data = output.data as FloatArray;
      const itemSize = data.length / n;
      const extras = (outputs as OutputTensor[]).slice(1).map((o) => o.data as FloatArray);
      const now = performance.now();
      for (let i = 0; i < n; i++) {
        const item = items[i] as PendingPrediction;
        if (item.state !== RUNNING) continue; // timed out or aborted while running
        // The deadline may have passed while the event loop was busy, before the sweep could run.
        if (item.deadline <= now) {
          this.#settleError(item, this.#timeoutError(item));
          continue;
        }
        const values = data.subarray(i * itemSize, (i + 1) * itemSize);
        if (item.checkFinite) {
          const bad = firstNonFinite(values);
          if (bad >= 0) {
            this.#settleError(
              item,
              new ForecastdError('ERR_NON_FINITE', `prediction contains ${String(values[bad])} at index ${bad}`),
            );
            continue;
          }
        }
        this.#settle(item);
        const extraOutputs = extras.length === 0 ? NO_EXTRAS : extras.map((x) => x.subarray((i * x.length) / n, ((i + 1) * x.length) / n));
        item.resolve({ values, extraOutputs, batchSize: n, queueMs: item.queueMs, inferenceMs });
      }
    }

    if (this.#onBatch !== undefined) {
      const queueMs = items.map((item) => item.queueMs);
      try {
        this.#onBatch({ size: n, queueMs, inferenceMs, ok: failure === undefined });
      } catch (hookError) {
        process.emitWarning(`forecaster onBatch hook threw: ${String(hookError)}`);
      }
    }
    this.#checkIdle();
  }

  #checkOutput(output: OutputTensor | undefined, n: number, name: string): ForecastdError | undefined {
    if (output === undefined) return new ForecastdError('ERR_INFERENCE', `the run did not return output '${name}'`);
    if (!(output.data instanceof Float32Array || output.data instanceof Float64Array)) {
      return new ForecastdError('ERR_INFERENCE', `output '${name}' came back as ${output.type}, not float32 or float64`);
    }
    if (output.shape[0] !== n || output.data.length % n !== 0) {
      return new ForecastdError(
        'ERR_INFERENCE',
        `output '${name}' came back with shape ${formatShape(output.shape)} for a batch of ${n}; its first dimension must be the batch`,
      );
    }
    return undefined;
  }

  #settle(item: PendingPrediction): void {
    item.state = DONE;
    if (item.onAbort !== undefined) item.signal?.removeEventListener('abort', item.onAbort);
  }

  #settleError(item: PendingPrediction, error: unknown): void {
    this.#settle(item);
    item.reject(error);
  }

  #abort(item: PendingPrediction): void {
    if (item.state === DONE) return;
    if (item.state === QUEUED) this.#queued--;
    this.#settleError(item, item.signal?.reason);
    this.#checkIdle();
  }

  #timeoutError(item: PendingPrediction): ForecastdError {
    return new ForecastdError(
      'ERR_TIMEOUT',
      `the prediction waited longer than its timeout (${item.timeoutMs} ms); the model is overloaded or too slow`,
    );
  }

  #armSweep(at: number): void {
    if (this.#sweepTimer !== undefined) clearTimeout(this.#sweepTimer);
    this.#sweepAt = at;
    this.#sweepTimer = setTimeout(this.#sweep, Math.max(1, Math.ceil(at - performance.now())));
    // Pending work is kept alive by its run or by the delay timer; deadlines alone must not hold the process.
    this.#sweepTimer.unref();
  }

  readonly #sweep = (): void => {
    this.#sweepTimer = undefined;
    this.#sweepAt = Infinity;
    const now = performance.now();
    let next = Infinity;
    const queue = this.#queue;
    for (let i = this.#head; i < queue.length; i++) {
      const item = queue[i] as PendingPrediction;
      if (item.state !== QUEUED) continue;
      if (item.deadline <= now) {
        this.#queued--;
        this.#settleError(item, this.#timeoutError(item));
      } else if (item.deadline < next) next = item.deadline;
    }
    for (const items of this.#running) {
      for (const item of items) {
        if (item.state !== RUNNING) continue;
        if (item.deadline <= now) this.#settleError(item, this.#timeoutError(item));
        else if (item.deadline < next) next = item.deadline;
      }
    }
    if (next < Infinity) this.#armSweep(next);
    this.#checkIdle();
  };

  #armDelay(at: number): void {
    if (this.#delayTimer !== undefined && this.#delayAt <= at) return;
    this.#clearDelay();
    this.#delayAt = at;
    // Referenced on purpose: queued windows wait on it, and it lives at most maxQueueDelayMs.
    this.#delayTimer = setTimeout(this.#onDelay, Math.max(1, Math.ceil(at - performance.now())));
  }

  readonly #onDelay = (): void => {
    this.#delayTimer = undefined;
    this.#delayAt = Infinity;
    this.#pump();
  };

  #clearDelay(): void {
    if (this.#delayTimer !== undefined) clearTimeout(this.#delayTimer);
    this.#delayTimer = undefined;
    this.#delayAt = Infinity;
  }

  #checkIdle(): void {
    if (this.#queued !== 0 || this.#inFlight !== 0) return;
    if (this.#background.length > 0) this.#pumpBackground();
    if (this.#backgroundInFlight !== 0) return;
    this.#queue.length = 0;
    this.#head = 0;
    if (this.#sweepTimer !== undefined) clearTimeout(this.#sweepTimer);
    this.#sweepTimer = undefined;
    this.#sweepAt = Infinity;
    this.#clearDelay();
    if (this.#closing && this.#drained !== undefined) {
      this.#drained();
      this.#drained = undefined;
    }
  }
}

/** The same tensors in the same order: names, element types and shapes. */
function sameTensors(a: readonly TensorInfo[], b: readonly TensorInfo[]): boolean {
  return a.length === b.length && a.every((t, i) => t.name === b[i]?.name && t.type === b[i]?.type && formatShape(t.shape) === formatShape(b[i]?.shape ?? []));
}

/** The run thread's own milliseconds for a run, or `handOverMs` (from hand-over to result) where not reported. */
function runThreadMs(outputs: RunOutputs, handOverMs: number): number {
  const ms: unknown = outputs.executeMs;
  return typeof ms === 'number' && Number.isFinite(ms) ? ms : handOverMs;
}

function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** Index of the first NaN or ±Infinity, or -1. */
function firstNonFinite(values: FloatArray): number {
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as number;
    // v - v is 0 for every finite v and NaN for NaN and ±Infinity.
    if (v - v !== 0) return i;
  }
  return -1;
}
