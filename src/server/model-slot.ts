import { performance } from 'node:perf_hooks';
import { ForecastdError, errorMessage, failureReason } from '../errors.js';
import type { ErrorCode, FailureReason } from '../errors.js';
import type { DatasetSnapshot } from '../datasets/types.js';
import { FileSettle, fileFingerprint } from '../file-fingerprint.js';
import type {
  DrawKeys,
  EntryStatus,
  ForecastExtras,
  IncludeOptions,
  ModelDetails,
  ModelIdentity,
  PredictOutcome,
  SeriesForecast,
  SeriesModelLookup,
} from '../http/types.js';
import { snapshotFrequency, snapshotGrid } from '../datasets/snapshot-frequency.js';
import { formatFrequency } from '../forecast/frequency.js';
import { checkQuantileSize, forecastLayout, quantileCrossings, quantileLevel } from '../forecast/layout.js';
import type { ForecastLayout } from '../forecast/layout.js';
import type { FloatArray } from '../runtime/types.js';
import type { Logger } from '../log.js';
import type { ModelMetrics } from '../metrics.js';
import type { AbortSignalLike } from '../runtime/cancellation.js';
import { availableCpus } from '../runtime/cpus.js';
import { BatchingForecaster } from '../runtime/forecaster.js';
import type { Prediction } from '../runtime/forecaster.js';
import { formatShape } from '../runtime/model-contract.js';
import { PredictionCache } from '../runtime/prediction-cache.js';
import { InferenceSession } from '../runtime/session.js';
import type { ModelConfig } from '../spicepod/types.js';
import type { DatasetHandle } from './dataset-handle.js';
import { userMessage } from './user-messages.js';
import type { ReloadMetrics } from './reload-metrics.js';
import type { EnsembleMember, EntryForecast, EntryShape, PodEntry } from './pod-entry.js';
import { ModelEvaluation } from './model-evaluation.js';
import type { EvaluationReport } from './model-evaluation.js';
import type { BacktestForecaster, BacktestResult } from '../evaluation/backtest.js';
import type { FillMissing } from '../datasets/types.js';

/**
 * One model of the pod through its whole life, as one state machine: load (session and dataset together) →
 * contract check → warm-up → serve → swap in a reloaded version → retire (drain, then dispose). Status is
 * Initializing until the first version serves, Refreshing while a new version loads beside it, Ready while
 * one serves (with `error` set if the last reload failed) and Error when none can.
 */

/**
 * One loaded version of a model: its session, forecaster and cache, and the config and dataset it was
 * loaded for. Immutable once built; a reload builds a new one and swaps it in with one assignment, so a
 * request uses one consistent version from start to end.
 */
interface ServingModel {
  readonly config: ModelConfig;
  /** null for a model that serves only client-sent series. */
  readonly dataset: DatasetHandle | null;
  /** Horizon and quantile layout; null when output 0 has no horizon (the Spice routes still serve it). */
  readonly layout: ForecastLayout | null;
  /** Why `layout` is null, for the routes that need one. */
  readonly layoutProblem: string | null;
  readonly session: InferenceSession;
  /** The session with more intra-op threads that lone runs use (intra_op_threads: auto), when it measured faster. */
  readonly loneSession: InferenceSession | null;
  readonly forecaster: BatchingForecaster;
  readonly identity: ModelIdentity;
  /** Process-unique: part of the prediction cache key, so no answer of another version can match. */
  readonly generation: number;
  readonly cache: PredictionCache<Prediction> | null;
  /** The cache key of the last snapshot version looked up: one string (its hash kept) while the data is unchanged. */
  readonly lastKey: { version: number; key: string };
  /** Removes the dataset listener that clears the cache. */
  readonly unsubscribe: () => void;
}

/** What a slot needs from the registry around it. */
export interface SlotContext {
  readonly logger: Logger;
  readonly reloadMetrics: ReloadMetrics;
  /** The settle time of the model file (see FileSettle). */
  readonly settleMs: number;
  /** True once the registry is closed: loads give up and free what they loaded. */
  closed(): boolean;
  /** A retired version drains until `done`; it still reads `dataset` until then. */
  draining(dataset: DatasetHandle | null, done: Promise<void>): void;
  /** The model file changed while it was read: look at it again after `ms`. */
  recheckIn(ms: number): void;
}

let nextGeneration = 1;

export class ModelSlot implements PodEntry, EnsembleMember {
  status: EntryStatus = 'Initializing';
  /** The last load or reload failure (message), null when none. */
  error: string | null = null;
  errorCode: ErrorCode = 'ERR_MODEL_LOAD';
  serving: ServingModel | null = null;
  /** The model file's settle state: `applied` is the file as last loaded (see FileSettle). */
  readonly file: FileSettle;
  /** No longer in the pod: every load in progress gives up. */
  removed = false;
  /** Set when the model failed only because its dataset was not available; retried when it is. */
  private waitingForDataset = false;
  /** The load in progress, including reruns requested while it ran. */
  private loading: Promise<void> | null = null;
  private loadAgain = false;
  /** A load has been attempted: the file is judged by its settle state from then on. */
  private attempted = false;
  /** The backtest of the serving version on its dataset (SPEC "Evaluation"). */
  readonly evaluation: ModelEvaluation;
  /** Cache counters of versions already retired, so the metrics never go backwards. */
  private retiredCacheHits = 0;
  private retiredCacheMisses = 0;

  constructor(
    public config: ModelConfig,
    public dataset: DatasetHandle | undefined,
    readonly metrics: ModelMetrics,
    private readonly ctx: SlotContext,
  ) {
    this.file = new FileSettle(ctx.settleMs, null);
    this.evaluation = new ModelEvaluation(config.name, config.datasets[0] ?? null, ctx.logger);
  }

  get name(): string {
    return this.config.name;
  }

  get member(): EnsembleMember {
    return this;
  }

  isServing(): boolean {
    return this.serving !== null;
  }

  evaluationReport(): EvaluationReport {
    return this.evaluation.report();
  }

  evaluationResult(): BacktestResult | null {
    return this.evaluation.result;
  }

  evaluationSettled(): Promise<void> {
    return this.evaluation.settled();
  }

  backtestForecaster(): BacktestForecaster | null {
    return this.serving?.forecaster ?? null;
  }

  get fillMissing(): FillMissing {
    return (this.serving?.config ?? this.config).params.fillMissing;
  }

  stateKey(): string {
    return `${this.status}.${this.serving?.generation ?? 0}`;
  }

  /** What the serving version forecasts, for the ensembles naming it. */
  forecastShape(): EntryShape {
    const serving = this.serving;
    const name = this.config.name;
    if (serving === null) {
      if (this.status === 'Error') return { ok: false, status: 'Error', reason: this.errorCode, message: `model ${name} failed to load: ${this.error ?? 'unknown error'}` };
      return { ok: false, status: 'Initializing', reason: 'MODEL_LOADING', message: `model ${name} is still loading` };
    }
    if (serving.layout === null) {
      return { ok: false, status: 'Error', reason: 'ERR_MODEL_CONTRACT', message: `model ${name} has no horizon: ${serving.layoutProblem ?? 'output 0 has no horizon'}` };
    }
    const shape = serving.forecaster.shape;
    return {
      ok: true,
      shape: { layout: serving.layout, variables: shape.variables, lookback: shape.lookback, inputType: shape.inputType, pointType: shape.outputType },
    };
  }

  /** A forecast of the newest window of the serving version's dataset, for an ensemble. Never rejects. */
  datasetForecast(signal: AbortSignalLike | undefined): Promise<EntryForecast> {
    const ready = this.readyToRun();
    if (!('serving' in ready)) return Promise.resolve(failedForecast(ready));
    const { serving, dataset, snapshot } = ready;
    let run: Promise<Prediction>;
    try {
      run = this.run(serving, dataset, snapshot, signal);
    } catch (error) {
      run = Promise.reject(error);
    }
    return run.then(
      (prediction): EntryForecast => {
        this.metrics.succeeded();
        return { ok: true, values: prediction.values, quantiles: prediction.extraOutputs[0] ?? null };
      },
      (error: unknown): EntryForecast => {
        if (signal?.aborted === true) return { ok: false, reason: 'ERR_INFERENCE', message: 'the client went away' };
        const reason = failureReason(error);
        this.metrics.failed(reason);
        const message = userMessage(error, { model: this.config.name, from: serving.config.from });
        const detail = errorMessage(error);
        return detail === message ? { ok: false, reason, message } : { ok: false, reason, message, detail };
      },
    );
  }

  /** What responses say about the model: the serving version's, else what the config says. */
  get identity(): ModelIdentity {
    return this.serving?.identity ?? { name: this.config.name, version: this.config.params.version, lookback: this.config.params.lookback };
  }

  /** The model file, for an ONNX source. */
  get filePath(): string | null {
    return this.config.source.kind === 'onnx' ? this.config.source.path : null;
  }

  /** A load is running, or none was tried yet: the file's settle state does not decide anything now. */
  get busy(): boolean {
    return this.loading !== null || !this.attempted;
  }

  cacheHits(): number {
    return this.retiredCacheHits + (this.serving?.cache?.hits ?? 0);
  }

  cacheMisses(): number {
    return this.retiredCacheMisses + (this.serving?.cache?.misses ?? 0);
  }

  /**
   * Loads the model as its config now says. A request while a load runs makes it run once more afterwards
   * (the file or config may have changed after the running load read them); the promise covers that rerun.
   */
  load(): Promise<void> {
    if (this.ctx.closed() || this.removed) return Promise.resolve();
    this.attempted = true;
    if (this.loading !== null) {
      this.loadAgain = true;
      return this.loading;
    }
    const run = (async () => {
      do {
        this.loadAgain = false;
        await this.loadOnce();
      } while (this.loadAgain && !this.removed && !this.ctx.closed());
    })().finally(() => {
      this.loading = null;
    });
    this.loading = run;
    return run;
  }

  /** Resolves when no load runs (for close()). */
  settled(): Promise<void> {
    return this.loading ?? Promise.resolve();
  }

  /** Gone from the pod: new requests are answered "not found" by the registry; queued ones finish. */
  remove(): void {
    this.removed = true;
    this.retireServing();
  }

  /** Evaluates the serving version on its dataset's snapshot now, unless that was done (or runs) already. */
  evaluateServing(): void {
    const serving = this.serving;
    if (serving === null) return;
    this.evaluation.update(
      { config: serving.config, forecaster: serving.forecaster, datasetName: serving.dataset?.name ?? null, generation: serving.generation },
      serving.dataset?.snapshot ?? null,
    );
  }

  /** Stops serving (the registry closes); the version drains in the background. */
  retireServing(): void {
    const serving = this.serving;
    this.serving = null;
    this.evaluation.stop();
    if (serving !== null) this.retire(serving);
  }

  /** The dataset the serving version reads, if any. */
  servingDataset(): DatasetHandle | null {
    return this.serving?.dataset ?? null;
  }

  private async loadOnce(): Promise<void> {
    const { config, dataset } = this;
    const started = performance.now();
    const reloading = this.serving !== null;
    this.status = reloading ? 'Refreshing' : 'Initializing';
    this.waitingForDataset = false;
    const source = config.source;
    if (source.kind !== 'onnx') {
      // Ensembles and variants are served by CompositeSlot; only an unsupported source reaches here.
      const reason = source.kind === 'unsupported' ? source.reason : `${config.name} is a ${source.kind} entry, not a model file`;
      this.fail('ERR_MODEL_LOAD', reason, reason);
      return;
    }
    if (dataset === undefined && config.datasets.length > 0) {
      const message = `model ${config.name} names dataset ${config.datasets[0]}, which the pod does not have`;
      this.fail('ERR_DATASET', message, message);
      return;
    }
    // Taken before reading and compared after: a file that changed meanwhile may have been read half-way.
    const before = await fileFingerprint(source.path);
    // Disposed again if anything after the load fails.
    let session: InferenceSession | null = null;
    let loneSession: InferenceSession | null = null;
    let forecaster: BatchingForecaster | null = null;
    try {
      const params = config.params;
      // The session loads while the dataset does; the contract needs the dataset's column count.
      const [loaded] = await Promise.all([
        InferenceSession.load(source.path, { intraOpThreads: params.intraOpThreads === 'auto' ? 1 : params.intraOpThreads }).catch(async (error: unknown) => {
          const after = await fileFingerprint(source.path);
          if (after === before) {
            // Read whole and still not a model: only a change to the file is worth another load.
            this.file.succeeded(before);
          } else {
            // It changed while read (a writer is at work): load again once it settles.
            this.file.afterRead(after, Date.now());
            this.ctx.recheckIn(this.ctx.settleMs);
          }
          throw error;
        }),
        dataset?.firstLoad(),
      ]);
      session = loaded;
      const after = await fileFingerprint(source.path);
      if (after !== before) {
        // Changed while read: drop what was read and wait for the file to settle.
        session.dispose();
        session = null;
        if (this.file.applied === null && !reloading) this.status = 'Initializing';
        else if (reloading) this.status = 'Ready';
        this.file.afterRead(after, Date.now());
        this.ctx.logger.info({ model: config.name }, `model file of ${config.name} changed while it was read; waiting for it to settle`);
        this.ctx.recheckIn(this.ctx.settleMs);
        return;
      }
      // The file was read whole: whatever else fails, only a change to it is worth another load.
      this.file.succeeded(before);
      if (this.superseded(config, dataset)) {
        session.dispose();
        return;
      }
      const variables = dataset === undefined ? variablesOfModel(session) : dataset.variables();
      if (variables === null) {
        if (dataset === undefined) {
          throw new ForecastdError(
            'ERR_MODEL_CONTRACT',
            `model ${config.name} has no dataset and its input's variables dimension is symbolic; give it a fixed size, or a dataset`,
          );
        }
        this.waitingForDataset = true;
        throw new ForecastdError(
          'ERR_DATASET',
          `dataset ${dataset.name} is not available (${dataset.userError ?? dataset.status}), so the model cannot be checked against its columns`,
        );
      }
      const metrics = this.metrics;
      // intra_op_threads: auto: a second session with a thread per CPU serves runs that start while none is in
      // flight, where warmUp() measures it faster than the one-thread session (see docs/performance.md).
      const loneThreads = params.intraOpThreads === 'auto' ? Math.min(availableCpus(), MAX_AUTO_INTRA_OP_THREADS) : 1;
      if (loneThreads > 1) loneSession = await this.loadLoneSession(source.path, loneThreads, before);
      forecaster = new BatchingForecaster(session, {
        lookback: params.lookback,
        variables,
        maxBatchSize: params.maxBatchSize,
        maxConcurrentRuns: params.maxConcurrentRuns,
        runAhead: serverRunAhead(params.maxConcurrentRuns),
        maxQueueDelayMs: params.maxQueueDelayMs,
        maxQueueSize: params.maxQueueSize,
        timeoutMs: params.timeoutMs,
        onBatch: (batch) => metrics.batch(batch.size, batch.queueMs, batch.inferenceMs),
        ...(params.quantileOutput === null ? {} : { extraOutputs: [params.quantileOutput] }),
        ...(loneSession === null ? {} : { loneRunSession: loneSession, loneRunSessionThreads: loneThreads }),
      });
      const point = session.outputs[0];
      const layout = point === undefined ? null : forecastLayout(point, session.outputs, params.quantiles, params.quantileOutput);
      await forecaster.warmUp();
      if (loneSession !== null && !forecaster.usesLoneRunSession) {
        loneSession.dispose();
        loneSession = null;
      }
      if (this.superseded(config, dataset)) {
        dispose(forecaster, session, loneSession);
        return;
      }
      const metadataVersion = session.metadata.version;
      const cache = params.cachePredictions ? new PredictionCache<Prediction>({ maxEntries: 16 }) : null;
      // A dataset change (refresh, reload) frees cached predictions of the old data at once, and is evaluated.
      const offCache = cache === null || dataset === undefined ? () => undefined : dataset.onChange(() => cache.clear());
      const offEvaluation = dataset === undefined ? () => undefined : dataset.onChange(() => this.evaluateServing());
      const next: ServingModel = {
        config,
        dataset: dataset ?? null,
        session,
        loneSession,
        forecaster,
        layout,
        layoutProblem: layout === null && point !== undefined ? (horizonProblem(point) ?? null) : null,
        identity: {
          name: config.name,
          // The ONNX model_version, exact (int64 as a decimal string); absent or 0 means none.
          version: params.version ?? (metadataVersion !== undefined && metadataVersion !== '0' ? metadataVersion : null),
          lookback: forecaster.shape.lookback,
        },
        generation: nextGeneration++,
        cache,
        lastKey: { version: -1, key: '' },
        unsubscribe: () => {
          offCache();
          offEvaluation();
        },
      };
      const previous = this.serving;
      // The swap: from here on every new request uses the new version.
      this.serving = next;
      this.status = 'Ready';
      this.error = null;
      if (previous !== null) {
        this.ctx.reloadMetrics.modelReloaded(config.name, true);
        this.retire(previous);
      }
      this.evaluateServing();
      const input = session.inputs[0];
      const output = session.outputs[0];
      this.ctx.logger.info(
        {
          model: config.name,
          from: config.from,
          dataset: dataset?.name,
          version: next.identity.version,
          lookback: forecaster.shape.lookback,
          variables: forecaster.shape.variables,
          input: input === undefined ? undefined : `${input.name} ${input.type} ${formatShape(input.shape)}`,
          output: output === undefined ? undefined : `${output.name} ${output.type} ${formatShape(output.shape)}`,
          maxBatchSize: forecaster.settings.maxBatchSize,
          maxConcurrentRuns: forecaster.settings.maxConcurrentRuns,
          runAhead: forecaster.settings.runAhead,
          intraOpThreads: params.intraOpThreads === 'auto' ? `auto: ${forecaster.loneRunThreads} for a lone run, 1 beside others` : params.intraOpThreads,
          ...calibrationLog(forecaster),
          ms: Math.round(performance.now() - started),
        },
        previous === null ? `model ${config.name} ready` : `model ${config.name} reloaded; the new version serves`,
      );
    } catch (error) {
      if (session !== null) {
        if (forecaster !== null) dispose(forecaster, session, loneSession);
        else {
          session.dispose();
          loneSession?.dispose();
        }
      }
      if (this.superseded(config, dataset)) return;
      this.fail(failureReason(error), userMessage(error, { model: config.name, from: config.from }), errorMessage(error));
      if (this.waitingForDataset && dataset !== undefined) {
        // Serve as soon as the dataset comes back.
        dataset.onceAvailable(() => {
          if (!this.ctx.closed() && !this.removed && this.dataset === dataset && this.waitingForDataset) void this.load();
        });
      }
    }
  }

  /**
   * The second session of intra_op_threads: auto, from the same file. Optional: when it cannot be loaded, or the
   * file changed since the first session was read from it (it could hold other weights), the model serves
   * without it (a changed file is loaded again anyway once it settles).
   */
  private async loadLoneSession(path: string, threads: number, fingerprint: string): Promise<InferenceSession | null> {
    let session: InferenceSession;
    try {
      session = await InferenceSession.load(path, { intraOpThreads: threads });
    } catch (error) {
      this.ctx.logger.warn({ model: this.config.name, err: errorMessage(error) }, `model ${this.config.name}: no session with ${threads} intra-op threads; lone runs use one thread`);
      return null;
    }
    if ((await fileFingerprint(path)) !== fingerprint) {
      session.dispose();
      return null;
    }
    return session;
  }

  /** The load's result no longer matters: the server closes, the model went, or its config changed since. */
  private superseded(config: ModelConfig, dataset: DatasetHandle | undefined): boolean {
    return this.ctx.closed() || this.removed || this.config !== config || this.dataset !== dataset;
  }

  /** Drains a version no longer served (its queued and in-flight requests finish), then frees it. */
  private retire(serving: ServingModel): void {
    serving.unsubscribe();
    this.retiredCacheHits += serving.cache?.hits ?? 0;
    this.retiredCacheMisses += serving.cache?.misses ?? 0;
    const done = serving.forecaster.close().finally(() => {
      serving.session.dispose();
      serving.loneSession?.dispose();
    });
    this.ctx.draining(serving.dataset, done);
  }

  /** `message` is for users (HTTP, listings); `detail` for the log. */
  private fail(cause: ErrorCode, message: string, detail: string): void {
    // A model in Error answers 500 whatever stopped it (even a warm-up that timed out, which on a live
    // request would be a 504): keep the codes that say why, call the rest a load failure.
    const code: ErrorCode = cause === 'ERR_MODEL_CONTRACT' || cause === 'ERR_DATASET' ? cause : 'ERR_MODEL_LOAD';
    this.error = message;
    this.errorCode = code;
    const { name, from } = this.config;
    if (this.serving !== null) {
      this.status = 'Ready';
      this.ctx.reloadMetrics.modelReloaded(name, false);
      this.ctx.logger.error({ model: name, from, code }, `model ${name} reload failed; still serving the previous version: ${detail}`);
    } else {
      this.status = 'Error';
      this.evaluation.failed(`model ${name} failed to load: ${message}`);
      this.ctx.logger.error({ model: name, from, code }, `model ${name} failed to load: ${detail}`);
    }
  }

  /**
   * The answer to a prediction when it needs no inference: a model still loading or failed, a dataset not
   * ready, or a cached prediction of the data held now. undefined when a run is needed (then call predict()).
   * Lets the HTTP layer answer in the request's own handler, with no promise and no abort handler.
   */
  predictNow(include?: IncludeOptions, _keys?: DrawKeys): PredictOutcome | undefined {
    const ready = this.readyToRun();
    if (!('serving' in ready)) return ready;
    const { serving, snapshot } = ready;
    const value = serving.cache?.peek(cacheKey(serving, snapshot));
    if (value === undefined) return undefined;
    this.metrics.succeeded();
    return success(serving, snapshot, value, include);
  }

  /**
   * One prediction from the version serving now (read once, so a swap meanwhile cannot mix versions).
   * Never rejects. `detail` receives the full reason of a failure for the log line.
   */
  predict(signal: AbortSignalLike | undefined, include?: IncludeOptions, _keys?: DrawKeys): Promise<PredictOutcome> {
    const ready = this.readyToRun();
    if (!('serving' in ready)) return Promise.resolve(ready);
    const { serving, dataset, snapshot } = ready;
    let run: Promise<Prediction>;
    try {
      run = this.run(serving, dataset, snapshot, signal);
    } catch (error) {
      // The window is taken synchronously, and a gap or too few rows throws there: still this call's outcome.
      run = Promise.reject(error);
    }
    return run.then(
      (prediction) => {
        this.metrics.succeeded();
        return success(serving, snapshot, prediction, include);
      },
      (error: unknown) => {
        const model = serving.identity;
        if (signal?.aborted === true) return failure(model, 'ERR_INFERENCE', 'the client went away');
        const reason = failureReason(error);
        this.metrics.failed(reason);
        return failure(model, reason, userMessage(error, { model: this.config.name, from: serving.config.from }), errorMessage(error));
      },
    );
  }

  /** The serving version with the snapshot to read a window from, or why there is none (counted as a failure). */
  private readyToRun(): { serving: ServingModel; dataset: DatasetHandle; snapshot: DatasetSnapshot } | PredictOutcome {
    const name = this.config.name;
    const serving = this.serving;
    if (serving === null) {
      const model = this.identity;
      if (this.status === 'Error') {
        this.metrics.failed(this.errorCode);
        return failure(model, this.errorCode, `Model ${name} failed to load: ${this.error ?? 'unknown error'}`);
      }
      this.metrics.failed('MODEL_LOADING');
      return failure(model, 'MODEL_LOADING', `Model ${name} is still loading; retry shortly`);
    }
    const model = serving.identity;
    const dataset = serving.dataset;
    if (dataset === null) {
      this.metrics.failed('ERR_DATASET');
      return failure(model, 'ERR_DATASET', `Model ${name} has no dataset to read a window from; send it series with POST /v1/timeseries/forecast`);
    }
    const snapshot = dataset.snapshot;
    if (snapshot === null) {
      this.metrics.failed('ERR_DATASET');
      const why = dataset.error === null ? ` (${dataset.status})` : `: ${dataset.userError ?? dataset.error}`;
      return failure(model, 'ERR_DATASET', `Dataset ${dataset.name} is not ready${why}`, dataset.error ?? undefined);
    }
    return { serving, dataset, snapshot };
  }

  /**
   * Hands the window to the forecaster synchronously, so a swap after this call cannot strand it. With the
   * cache, callers share one computation (single flight): it has no deadline of its own and no caller can
   * cancel it, while each caller waits for it only up to its own timeout_ms from its own arrival.
   */
  private run(serving: ServingModel, dataset: DatasetHandle, snapshot: DatasetSnapshot, signal: AbortSignalLike | undefined): Promise<Prediction> {
    const { forecaster, cache } = serving;
    const { lookback } = forecaster.shape;
    const fill = serving.config.params.fillMissing;
    if (cache === null) return this.checked(serving, forecaster.predict(dataset.window(snapshot, lookback, fill), { signal }));
    const key = cacheKey(serving, snapshot);
    const ready = cache.peek(key);
    if (ready !== undefined) return Promise.resolve(ready);
    const shared = cache.get(key, () => this.checked(serving, forecaster.predict(dataset.window(snapshot, lookback, fill), { timeoutMs: 0 })));
    return ownDeadline(shared, forecaster.settings.timeoutMs, signal);
  }

  /**
   * A computed prediction's quantiles: of the size the layout says and finite (else the prediction fails),
   * and counted in the crossing metric when a higher level has a lower value somewhere (not an error).
   */
  private checked(serving: ServingModel, prediction: Promise<Prediction>): Promise<Prediction> {
    const layout = serving.layout;
    const quantiles = layout?.quantiles;
    if (layout == null || quantiles == null) return prediction;
    return prediction.then((result) => {
      const q = result.extraOutputs[0];
      if (q === undefined) return result;
      checkQuantileSize(layout, q);
      for (let i = 0; i < q.length; i++) {
        const v = q[i] as number;
        if (v - v !== 0) throw new ForecastdError('ERR_NON_FINITE', `quantile output '${quantiles.output}' contains ${String(v)} at index ${i}`);
      }
      if (quantileCrossings(q, quantiles.levels.length) > 0) this.metrics.quantileCrossing();
      return result;
    });
  }

  /** GET /v1/models/:name and /v1/timeseries/models. */
  details(): ModelDetails {
    const serving = this.serving;
    const snapshot = serving?.dataset?.snapshot ?? null;
    const frequency = snapshot === null ? null : snapshotFrequency(snapshot);
    return {
      name: this.config.name,
      from: this.config.from,
      datasets: this.config.datasets,
      status: this.status,
      error: this.error,
      version: this.identity.version,
      lookback: serving?.forecaster.shape.lookback ?? this.config.params.lookback,
      horizon: serving?.layout?.horizon ?? null,
      variables: serving?.forecaster.shape.variables ?? null,
      quantiles: serving?.layout?.quantiles?.levels ?? this.config.params.quantiles,
      frequency: frequency === null ? null : formatFrequency(frequency),
      mae: this.evaluation.result?.mae ?? null,
      skill: this.evaluation.result?.skill ?? null,
    };
  }

  /**
   * The serving version for client-sent series (POST /v1/timeseries/forecast): every forecast made through
   * the returned handle runs on that one version, through its batching forecaster, so the inputs of one
   * request (and of concurrent ones) share runs.
   */
  seriesModel(_keys?: DrawKeys): SeriesModelLookup {
    const name = this.config.name;
    const serving = this.serving;
    if (serving === null) {
      if (this.status === 'Error') return { kind: 'failed', message: `Model ${name} failed to load: ${this.error ?? 'unknown error'}` };
      return { kind: 'loading', message: `Model ${name} is still loading; retry shortly` };
    }
    const layout = serving.layout;
    if (layout === null) return { kind: 'no_horizon', message: `Model ${name} cannot forecast client series: ${serving.layoutProblem ?? 'output 0 has no horizon'}` };
    const { forecaster } = serving;
    return {
      kind: 'ready',
      details: this.details(),
      layout,
      pointType: forecaster.shape.outputType,
      forecast: async (window: FloatArray, signal?: AbortSignalLike): Promise<SeriesForecast> => {
        try {
          const p = await this.checked(serving, forecaster.predict(window, { signal }));
          this.metrics.succeeded();
          return { values: p.values, quantiles: p.extraOutputs[0] ?? null };
        } catch (error) {
          if (signal?.aborted !== true) this.metrics.failed(failureReason(error));
          throw error;
        }
      },
    };
  }
}

/**
 * Whether a model runs one batch ahead (BatchingForecaster's runAhead) in the server: with
 * max_concurrent_runs 0 on more than one CPU. The server's JavaScript thread answers and reads sockets between
 * runs, so with one run per CPU a run thread that finishes a batch of a slow model idles until it gets the
 * next. bench/http, heavy MLP, cache off, 64 connections on 2 CPUs: 46,107 req/s against 37,990 without. A number
 * given in the pod is a limit on runs in flight and is kept exactly; on one CPU the threads share it and a run
 * ahead gains nothing.
 */
export function serverRunAhead(configured: number, cpus: number = availableCpus()): boolean {
  return configured === 0 && cpus > 1;
}

// intra_op_threads: auto never asks for more threads than this for one run: beyond it, a batch-1 run of a
// forecasting model has too little work per operator to split.
const MAX_AUTO_INTRA_OP_THREADS = 8;

/** What the forecaster's warm-up measured, for the "model ready" log line (microseconds, rounded). */
function calibrationLog(forecaster: BatchingForecaster): Record<string, number> {
  const c = forecaster.calibration;
  const out: Record<string, number> = {};
  if (c === null) return out;
  const put = (key: string, ms: number | null): void => {
    if (ms !== null) out[key] = Math.round(ms * 1000);
  };
  put('runFixedUs', c.fixedMs);
  put('runPerWindowUs', c.perWindowMs);
  put('singleRunUs', c.singleMs);
  put('loneSingleRunUs', c.loneSingleMs);
  return out;
}

/** Values per time step of a model's input when it has no dataset to say: V of [B, L, V], or 1 for [B, L]. */
function variablesOfModel(session: InferenceSession): number | null {
  const shape = session.inputs[0]?.shape;
  if (shape === undefined) return 1;
  if (shape.length === 2) return 1;
  const v = shape[2];
  return typeof v === 'number' ? v : null;
}

function horizonProblem(point: { readonly name: string; readonly type: string; readonly shape: readonly (number | string)[] }): string | null {
  const layout = forecastLayout(point, [point], null, null);
  return layout === null ? `output '${point.name}' has shape ${formatShape(point.shape)}; timestamps, quantiles and client series need [batch, horizon] or [batch, horizon, variables] with a fixed horizon` : null;
}

/** The prediction cache key: the snapshot version is process-unique and so is the generation, so a stale key never matches. */
function cacheKey(serving: ServingModel, snapshot: DatasetSnapshot): string {
  const last = serving.lastKey;
  if (last.version !== snapshot.version) {
    last.version = snapshot.version;
    last.key = `${serving.generation}:${snapshot.version}`;
  }
  return last.key;
}

/** A success outcome, with what `include` asks for. */
function success(serving: ServingModel, snapshot: DatasetSnapshot, prediction: Prediction, include: IncludeOptions | undefined): PredictOutcome {
  const model = serving.identity;
  if (include === undefined || (!include.timestamps && !include.quantiles)) return { kind: 'success', model, values: prediction.values };
  return { kind: 'success', model, values: prediction.values, extras: extrasOf(serving, snapshot, prediction, include) };
}

/** Timestamps and quantiles of a dataset prediction, as `include` asks and the model and dataset allow. */
function extrasOf(serving: ServingModel, snapshot: DatasetSnapshot, prediction: Prediction, include: IncludeOptions): ForecastExtras {
  const layout = serving.layout;
  let timestamps: Float64Array | null = null;
  let quantiles: ForecastExtras['quantiles'] = null;
  if (include.timestamps && layout !== null && snapshot.rows > 0) {
    // Forecast steps continue the grid from its anchor (a stray newest row does not move them).
    const grid = snapshotGrid(snapshot);
    if (grid !== null) timestamps = grid.stepsAfterAnchor(layout.horizon);
  }
  const q = prediction.extraOutputs[0];
  if (include.quantiles && layout?.quantiles != null && q !== undefined) {
    const levels = layout.quantiles.levels;
    const steps = layout.horizon * layout.outputVariables;
    quantiles = { levels, type: layout.quantiles.type, values: levels.map((_, k) => quantileLevel(q, levels.length, k, steps)) };
  }
  return { timestamps, quantiles };
}

/** A failed prediction outcome as an ensemble member's failed forecast. */
function failedForecast(outcome: PredictOutcome): EntryForecast {
  if (outcome.kind !== 'failure') return { ok: false, reason: 'ERR_INFERENCE', message: 'the member gave no forecast' };
  return outcome.detail === undefined
    ? { ok: false, reason: outcome.reason, message: outcome.message }
    : { ok: false, reason: outcome.reason, message: outcome.message, detail: outcome.detail };
}

function failure(model: ModelIdentity, reason: FailureReason, message: string, detail?: string): PredictOutcome {
  return detail === undefined || detail === message
    ? { kind: 'failure', model, reason, message }
    : { kind: 'failure', model, reason, message, detail };
}

/** Frees a version that never served (a run may still be in flight, e.g. a warm-up that timed out). */
function dispose(forecaster: BatchingForecaster, session: InferenceSession, loneSession: InferenceSession | null = null): void {
  void forecaster.close().finally(() => {
    session.dispose();
    loneSession?.dispose();
  });
}

/** `shared` as one caller sees it: rejected with ERR_TIMEOUT after `timeoutMs`, or when `signal` aborts. */
function ownDeadline<T>(shared: Promise<T>, timeoutMs: number, signal: AbortSignalLike | undefined): Promise<T> {
  if (timeoutMs === Infinity && signal === undefined) return shared;
  return new Promise<T>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const onAbort = (): void => {
      if (timer !== undefined) clearTimeout(timer);
      reject(signal?.reason);
    };
    if (timeoutMs !== Infinity) {
      timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        reject(
          new ForecastdError('ERR_TIMEOUT', `the prediction waited longer than its timeout (${timeoutMs} ms); the model is overloaded or too slow`),
        );
      }, timeoutMs);
      timer.unref();
    }
    if (signal !== undefined) {
      if (signal.aborted) {
        onAbort();
        return;
      }
      signal.addEventListener('abort', onAbort, { once: true });
    }
    shared.then(
      (value) => {
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}
