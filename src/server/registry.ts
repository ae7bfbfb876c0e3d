import { performance } from 'node:perf_hooks';
import { ForecastdError } from '../errors.js';
import type { ErrorCode } from '../errors.js';
import type { DatasetSnapshot, DatasetStatus } from '../datasets/types.js';
import { errorMessage, failureReason } from '../http/errors.js';
import type {
  DatasetListing,
  DatasetRows,
  EntryStatus,
  ForecastExtras,
  IncludeOptions,
  ModelDetails,
  ModelIdentity,
  ModelListing,
  PredictOutcome,
  SeriesForecast,
  SeriesModelLookup,
  ServingBackend,
} from '../http/types.js';
import { snapshotFrequency } from '../datasets/snapshot-frequency.js';
import { formatFrequency, stepsAfter } from '../forecast/frequency.js';
import { checkQuantileSize, forecastLayout, quantileCrossings, quantileLevel } from '../forecast/layout.js';
import type { ForecastLayout } from '../forecast/layout.js';
import type { FloatArray } from '../runtime/types.js';
import type { Logger } from '../log.js';
import type { ModelMetrics, ServerMetrics } from '../metrics.js';
import { BatchingForecaster } from '../runtime/forecaster.js';
import type { Prediction } from '../runtime/forecaster.js';
import type { AbortSignalLike } from '../runtime/cancellation.js';
import { formatShape } from '../runtime/model-contract.js';
import { PredictionCache } from '../runtime/prediction-cache.js';
import { InferenceSession } from '../runtime/session.js';
import { loadSpicepod } from '../spicepod/load.js';
import type { DatasetConfig, ModelConfig, Spicepod } from '../spicepod/types.js';
import { DatasetHandle, rowsToKeep } from './dataset-handle.js';
import { fileSignature } from './file-signature.js';
import { ReloadMetrics } from './reload-metrics.js';

const NO_ROWS: DatasetRows = { columns: [], times: new Float64Array(0), values: new Float64Array(0) };

/** The newest `last` rows of a snapshot as views (no copy); none while the dataset has no data. */
function newestRows(snapshot: DatasetSnapshot | null, last: number): DatasetRows {
  if (snapshot === null) return NO_ROWS;
  const width = snapshot.columns.length;
  const first = Math.max(0, snapshot.rows - last);
  return {
    columns: snapshot.columns,
    times: snapshot.times.subarray(first, snapshot.rows),
    values: snapshot.values.subarray(first * width, snapshot.rows * width),
  };
}

/**
 * One loaded version of a model: its session, forecaster and cache, and the config and dataset it was
 * loaded for. Immutable once built; a reload builds a new one and swaps it in with one assignment, so a
 * request uses one consistent version from start to end.
 */
interface ServingModel {
  readonly config: ModelConfig;
  /** null for a model that serves only client-sent series. */
  readonly dataset: DatasetHandle | null;
  readonly session: InferenceSession;
  readonly forecaster: BatchingForecaster;
  readonly identity: ModelIdentity;
  /** Horizon and quantile layout; null when output 0 has no horizon (the Spice routes still serve it). */
  readonly layout: ForecastLayout | null;
  /** Why `layout` is null, for the routes that need one. */
  readonly layoutProblem: string | null;
  /** Process-unique: part of the prediction cache key, so no answer of another version can match. */
  readonly generation: number;
  readonly cache: PredictionCache<Prediction> | null;
  /** Removes the dataset listener that clears the cache. */
  readonly unsubscribe: () => void;
}

/** One model of the pod: what the pod says (config), what serves now (serving), and its load state. */
class ModelEntry {
  status: EntryStatus = 'Initializing';
  /** The last load or reload failure (message), null when none. */
  error: string | null = null;
  errorCode: ErrorCode = 'ERR_MODEL_LOAD';
  serving: ServingModel | null = null;
  /** The model file's signature as of the last load started (or scheduled); null before the first. */
  fileSignature: string | null = null;
  /** The load in progress, including reruns requested while it ran. */
  loading: Promise<void> | null = null;
  loadAgain = false;
  /** Set when the model failed only because its dataset was not available; retried when it is. */
  waitingForDataset = false;
  /** No longer in the pod: every load in progress gives up. */
  removed = false;
  /** Cache counters of versions already retired, so the metrics never go backwards. */
  retiredCacheHits = 0;
  retiredCacheMisses = 0;

  constructor(
    public config: ModelConfig,
    public dataset: DatasetHandle | undefined,
    readonly metrics: ModelMetrics,
  ) {}

  /** What responses say about the model: the serving version's, else what the config says. */
  get identity(): ModelIdentity {
    return this.serving?.identity ?? { name: this.config.name, version: this.config.params.version, lookback: this.config.params.lookback };
  }
}

export interface RegistryOptions {
  readonly logger: Logger;
  readonly metrics: ServerMetrics;
  /** Environment for ${env:NAME} when the spicepod is read again. Default process.env. */
  readonly env?: NodeJS.ProcessEnv;
  /** The spicepod file's signature when `pod` was read (see fileSignature); default: taken at start(). */
  readonly podSignature?: string;
  /** Called after a changed spicepod was applied (e.g. to apply runtime settings that live elsewhere). */
  readonly onPodApplied?: (pod: Spicepod, previous: Spicepod) => void;
}

/** What a reload did. */
export interface ReloadOutcome {
  /** A changed spicepod was read and applied. */
  readonly applied: boolean;
  /** Why the spicepod could not be applied (file:line: key ...); null when it was, or was unchanged. */
  readonly error: string | null;
  /** Models whose (re)load was started, and that have now finished it (see modelStatus for the result). */
  readonly reloadedModels: readonly string[];
}

let nextGeneration = 1;

function sameConfig(a: ModelConfig | DatasetConfig, b: ModelConfig | DatasetConfig): boolean {
  // Both come from the same validator, so equal pods give equal JSON.
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * Turns a Spicepod into running parts: a started dataset per dataset entry, and per model a session, the
 * contract check, a batching forecaster and a warm-up run. Entries load concurrently and independently: one
 * that fails is `Error` with its reason while the rest serve.
 *
 * Hot reload: `reload()` reads the spicepod again and applies the difference (removed entries stop, added
 * ones start, changed ones are replaced); `checkForChanges()` does so only for files whose signature
 * changed, and also reloads models whose file changed. A model is reloaded beside the version serving it
 * (status Refreshing), checked and warmed up, then swapped in with one assignment; requests already queued
 * finish on the old version, which is then drained and disposed. A reload that fails leaves the old version
 * serving (status Ready with `error` set).
 */
export class ModelRegistry implements ServingBackend {
  private currentPod: Spicepod;
  private podSignature: string | null;
  private podError: string | null = null;
  private readonly logger: Logger;
  private readonly serverMetrics: ServerMetrics;
  private readonly reloadMetrics: ReloadMetrics;
  private readonly env: NodeJS.ProcessEnv;
  private readonly onPodApplied: ((pod: Spicepod, previous: Spicepod) => void) | undefined;
  private readonly datasetEntries = new Map<string, DatasetHandle>();
  private readonly modelEntries = new Map<string, ModelEntry>();
  /** Datasets replaced or removed, still read by a version that serves or drains; stopped when none does. */
  private readonly retiredDatasets = new Set<DatasetHandle>();
  /** Versions swapped out or removed whose in-flight requests are finishing. */
  private readonly draining = new Map<ServingModel, Promise<void>>();
  /** Every model load in progress, including those of models since removed. */
  private readonly loads = new Set<Promise<void>>();
  /** Spicepod reloads run one at a time. */
  private podWork: Promise<unknown> = Promise.resolve();
  private loading: Promise<void> | null = null;
  private closed = false;

  constructor(pod: Spicepod, options: RegistryOptions) {
    this.currentPod = pod;
    this.logger = options.logger;
    this.serverMetrics = options.metrics;
    this.reloadMetrics = new ReloadMetrics(options.metrics.registry);
    this.env = options.env ?? process.env;
    this.podSignature = options.podSignature ?? null;
    this.onPodApplied = options.onPodApplied;
    for (const config of pod.datasets) this.addDataset(config, pod);
    for (const config of pod.models) this.modelEntries.set(config.name, this.newModelEntry(config));
  }

  /** The pod as last applied. */
  get pod(): Spicepod {
    return this.currentPod;
  }

  /** Why the spicepod on disk could not be applied at the last reload; null when it was. */
  get reloadError(): string | null {
    return this.podError;
  }

  private addDataset(config: DatasetConfig, pod: Spicepod): DatasetHandle {
    const handle = new DatasetHandle(config, this.logger, rowsToKeep(config, pod));
    this.datasetEntries.set(config.name, handle);
    const name = config.name;
    // Looked up at scrape time: the entry of that name may be replaced by a reload.
    this.serverMetrics.dataset(name, {
      rows: () => this.datasetEntries.get(name)?.snapshot?.rows ?? 0,
      refreshedAt: () => {
        const entry = this.datasetEntries.get(name);
        return entry?.refreshedAt ?? entry?.snapshot?.loadedAt ?? null;
      },
    });
    return handle;
  }

  private newModelEntry(config: ModelConfig): ModelEntry {
    let entry: ModelEntry | null = null;
    const metrics = this.serverMetrics.model(config.name, {
      queueDepth: () => entry?.serving?.forecaster.queueDepth ?? 0,
      cacheHits: () => (entry === null ? 0 : entry.retiredCacheHits + (entry.serving?.cache?.hits ?? 0)),
      cacheMisses: () => (entry === null ? 0 : entry.retiredCacheMisses + (entry.serving?.cache?.misses ?? 0)),
    });
    entry = new ModelEntry(config, this.datasetFor(config), metrics);
    return entry;
  }

  private datasetFor(config: ModelConfig): DatasetHandle | undefined {
    const name = config.datasets[0];
    return name === undefined ? undefined : this.datasetEntries.get(name);
  }

  /**
   * Starts every dataset and loads every model, concurrently. Resolves when every entry has left
   * Initializing (Ready or Error); never rejects.
   */
  start(): Promise<void> {
    this.loading ??= (async () => {
      this.podSignature ??= await fileSignature(this.currentPod.file);
      const datasets = [...this.datasetEntries.values()].map((d) => d.start());
      const models = [...this.modelEntries.values()].map((m) => this.scheduleLoad(m));
      await Promise.all([...datasets, ...models]);
    })();
    return this.loading;
  }

  /**
   * Loads the entry's model as its config now says. A request while a load runs makes it run once more
   * afterwards (the file or config may have changed after the running load read them); the promise covers
   * that rerun too.
   */
  private scheduleLoad(entry: ModelEntry): Promise<void> {
    if (entry.loading !== null) {
      entry.loadAgain = true;
      return entry.loading;
    }
    const run = (async () => {
      do {
        entry.loadAgain = false;
        await this.loadOnce(entry);
      } while (entry.loadAgain && !entry.removed && !this.closed);
    })().finally(() => {
      entry.loading = null;
      this.loads.delete(run);
    });
    entry.loading = run;
    this.loads.add(run);
    return run;
  }

  private async loadOnce(entry: ModelEntry): Promise<void> {
    const { config, dataset } = entry;
    const started = performance.now();
    const reloading = entry.serving !== null;
    entry.status = reloading ? 'Refreshing' : 'Initializing';
    entry.waitingForDataset = false;
    const source = config.source;
    if (source.kind === 'unsupported') {
      this.fail(entry, 'ERR_MODEL_LOAD', source.reason);
      return;
    }
    if (dataset === undefined && config.datasets.length > 0) {
      this.fail(entry, 'ERR_DATASET', `model ${config.name} names dataset ${config.datasets[0]}, which the pod does not have`);
      return;
    }
    // Taken before reading: a write during the load changes it again and triggers another reload.
    entry.fileSignature = await fileSignature(source.path);
    // Disposed again if anything after the load fails.
    let session: InferenceSession | null = null;
    let forecaster: BatchingForecaster | null = null;
    try {
      const params = config.params;
      // The session loads while the dataset does; the contract needs the dataset's column count.
      const [loaded] = await Promise.all([
        InferenceSession.load(source.path, { intraOpThreads: params.intraOpThreads }),
        dataset?.firstLoad(),
      ]);
      session = loaded;
      if (this.superseded(entry, config, dataset)) {
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
        entry.waitingForDataset = true;
        throw new ForecastdError(
          'ERR_DATASET',
          `dataset ${dataset.name} is not available (${dataset.error ?? dataset.status}), so the model cannot be checked against its columns`,
        );
      }
      const metrics = entry.metrics;
      forecaster = new BatchingForecaster(session, {
        lookback: params.lookback,
        variables,
        maxBatchSize: params.maxBatchSize,
        maxConcurrentRuns: params.maxConcurrentRuns,
        maxQueueDelayMs: params.maxQueueDelayMs,
        maxQueueSize: params.maxQueueSize,
        timeoutMs: params.timeoutMs,
        onBatch: (batch) => metrics.batch(batch.size, batch.queueMs, batch.inferenceMs),
        ...(params.quantileOutput === null ? {} : { extraOutputs: [params.quantileOutput] }),
      });
      const point = session.outputs[0];
      const layout = point === undefined ? null : forecastLayout(point, session.outputs, params.quantiles, params.quantileOutput);
      await forecaster.warmUp();
      if (this.superseded(entry, config, dataset)) {
        this.dispose(forecaster, session);
        return;
      }
      const metadataVersion = session.metadata.version;
      const cache = params.cachePredictions ? new PredictionCache<Prediction>({ maxEntries: 16 }) : null;
      const next: ServingModel = {
        config,
        dataset: dataset ?? null,
        session,
        forecaster,
        layout,
        layoutProblem: layout === null && point !== undefined ? (horizonProblem(point) ?? null) : null,
        identity: {
          name: config.name,
          version: params.version ?? (metadataVersion !== 0 ? String(metadataVersion) : null),
          lookback: forecaster.shape.lookback,
        },
        generation: nextGeneration++,
        cache,
        // A dataset change (refresh, reload) frees cached predictions of the old data at once.
        unsubscribe: cache === null || dataset === undefined ? () => undefined : dataset.onChange(() => cache.clear()),
      };
      const previous = entry.serving;
      // The swap: from here on every new request uses the new version.
      entry.serving = next;
      entry.status = 'Ready';
      entry.error = null;
      if (previous !== null) {
        this.reloadMetrics.modelReloaded(config.name, true);
        this.retire(entry, previous);
      }
      const input = session.inputs[0];
      const output = session.outputs[0];
      this.logger.info(
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
          ms: Math.round(performance.now() - started),
        },
        previous === null ? `model ${config.name} ready` : `model ${config.name} reloaded; the new version serves`,
      );
    } catch (error) {
      if (session !== null) {
        if (forecaster !== null) this.dispose(forecaster, session);
        else session.dispose();
      }
      if (this.superseded(entry, config, dataset)) return;
      this.fail(entry, failureReason(error), errorMessage(error));
      if (entry.waitingForDataset && dataset !== undefined) {
        // Serve as soon as the dataset comes back.
        dataset.onceAvailable(() => {
          if (!this.closed && !entry.removed && entry.dataset === dataset && entry.waitingForDataset) void this.scheduleLoad(entry);
        });
      }
    }
  }

  /** The load's result no longer matters: the server closes, the model went, or its config changed since. */
  private superseded(entry: ModelEntry, config: ModelConfig, dataset: DatasetHandle | undefined): boolean {
    return this.closed || entry.removed || entry.config !== config || entry.dataset !== dataset;
  }

  /** Frees a version that never served (a run may still be in flight, e.g. a warm-up that timed out). */
  private dispose(forecaster: BatchingForecaster, session: InferenceSession): void {
    void forecaster.close().finally(() => session.dispose());
  }

  /** Drains a version no longer served (its queued and in-flight requests finish), then frees it. */
  private retire(entry: ModelEntry, serving: ServingModel): void {
    serving.unsubscribe();
    entry.retiredCacheHits += serving.cache?.hits ?? 0;
    entry.retiredCacheMisses += serving.cache?.misses ?? 0;
    const done = serving.forecaster
      .close()
      .finally(() => {
        serving.session.dispose();
        this.draining.delete(serving);
        this.stopUnusedDatasets();
      });
    this.draining.set(serving, done);
  }

  private fail(entry: ModelEntry, cause: ErrorCode, message: string): void {
    // A model in Error answers 500 whatever stopped it (even a warm-up that timed out, which on a live
    // request would be a 504): keep the codes that say why, call the rest a load failure.
    const code: ErrorCode = cause === 'ERR_MODEL_CONTRACT' || cause === 'ERR_DATASET' ? cause : 'ERR_MODEL_LOAD';
    entry.error = message;
    entry.errorCode = code;
    const { name, from } = entry.config;
    if (entry.serving !== null) {
      entry.status = 'Ready';
      this.reloadMetrics.modelReloaded(name, false);
      this.logger.error({ model: name, from, code }, `model ${name} reload failed; still serving the previous version: ${message}`);
    } else {
      entry.status = 'Error';
      this.logger.error({ model: name, from, code }, `model ${name} failed to load: ${message}`);
    }
  }

  /**
   * Reads the spicepod again and applies what changed, then reloads models whose file changed. Resolves
   * once every load it started has finished; never rejects (a pod that cannot be applied is reported in the
   * outcome, the log and `reloadError`, and the current configuration keeps serving).
   */
  reload(): Promise<ReloadOutcome> {
    return this.serialized(() => this.reloadNow(true));
  }

  /**
   * Cheap: compares the spicepod and model files with what is loaded (stat only) and reloads what changed,
   * as reload() does. Resolves once the loads it started have finished.
   */
  checkForChanges(): Promise<ReloadOutcome> {
    return this.serialized(() => this.reloadNow(false));
  }

  /** Every file whose change checkForChanges() notices: the spicepod and each model file. */
  watchedFiles(): string[] {
    const files = [this.currentPod.file];
    for (const entry of this.modelEntries.values()) {
      if (entry.config.source.kind === 'onnx') files.push(entry.config.source.path);
    }
    return files;
  }

  private serialized<T>(work: () => Promise<T>): Promise<T> {
    const run = this.podWork.then(work);
    this.podWork = run.catch(() => undefined);
    return run;
  }

  private async reloadNow(force: boolean): Promise<ReloadOutcome> {
    if (this.closed) return { applied: false, error: null, reloadedModels: [] };
    const loads = new Map<string, Promise<void>>();
    let applied = false;
    const file = this.currentPod.file;
    const signature = await fileSignature(file);
    if (force || signature !== this.podSignature) {
      // Taken before reading, as for models: a write during the read is seen at the next check.
      this.podSignature = signature;
      let next: Spicepod | null = null;
      try {
        next = await loadSpicepod(file, this.env);
      } catch (error) {
        const message = errorMessage(error);
        this.podError = message;
        this.reloadMetrics.podReloaded(false);
        this.logger.error(
          { pod: file, code: error instanceof ForecastdError ? error.code : undefined },
          `spicepod reload failed; still serving the configuration applied before: ${message}`,
        );
      }
      if (next !== null && !this.closed) {
        this.podError = null;
        this.reloadMetrics.podReloaded(true);
        for (const warning of next.warnings) this.logger.warn(warning);
        this.applyPod(next, loads);
        applied = true;
      }
    }
    if (this.closed) return { applied, error: this.podError, reloadedModels: [] };
    for (const entry of this.modelEntries.values()) {
      const source = entry.config.source;
      if (source.kind !== 'onnx' || loads.has(entry.config.name) || entry.fileSignature === null) continue;
      const current = await fileSignature(source.path);
      if (current === entry.fileSignature || entry.removed) continue;
      this.logger.info({ model: entry.config.name, file: source.path }, `model file of ${entry.config.name} changed; reloading`);
      // Recorded now, so the next check does not schedule the same change again.
      entry.fileSignature = current;
      loads.set(entry.config.name, this.scheduleLoad(entry));
    }
    await Promise.all(loads.values());
    return { applied, error: this.podError, reloadedModels: [...loads.keys()] };
  }

  /** Applies a newly read pod: datasets and models removed, added and changed, in the new pod's order. */
  private applyPod(next: Spicepod, loads: Map<string, Promise<void>>): void {
    const previous = this.currentPod;
    this.currentPod = next;
    const changes: string[] = [];

    const oldDatasets = new Map(this.datasetEntries);
    const replaced = new Set<string>();
    this.datasetEntries.clear();
    for (const config of next.datasets) {
      const old = oldDatasets.get(config.name);
      // A model's lookback change can change how many rows a dataset must keep: that is a changed dataset too.
      if (old !== undefined && sameConfig(old.config, config) && old.maxRows === rowsToKeep(config, next)) {
        this.datasetEntries.set(config.name, old);
        oldDatasets.delete(config.name);
        continue;
      }
      const handle = this.addDataset(config, next);
      if (old !== undefined) {
        oldDatasets.delete(config.name);
        this.retiredDatasets.add(old);
        replaced.add(config.name);
        changes.push(`dataset ${config.name} changed`);
      } else {
        changes.push(`dataset ${config.name} added`);
      }
      void handle.start();
    }
    for (const [name, old] of oldDatasets) {
      this.retiredDatasets.add(old);
      // Its series would otherwise stay in every scrape with its last values.
      this.serverMetrics.forgetDataset(name);
      changes.push(`dataset ${name} removed`);
    }

    const oldModels = new Map(this.modelEntries);
    this.modelEntries.clear();
    for (const config of next.models) {
      const old = oldModels.get(config.name);
      oldModels.delete(config.name);
      if (old === undefined) {
        const entry = this.newModelEntry(config);
        this.modelEntries.set(config.name, entry);
        changes.push(`model ${config.name} added`);
        loads.set(config.name, this.scheduleLoad(entry));
        continue;
      }
      this.modelEntries.set(config.name, old);
      const datasetName = config.datasets[0];
      const configChanged = !sameConfig(old.config, config);
      if (!configChanged && (datasetName === undefined || !replaced.has(datasetName))) continue;
      old.config = config;
      old.dataset = this.datasetFor(config);
      changes.push(configChanged ? `model ${config.name} changed` : `model ${config.name} reloads for its changed dataset`);
      loads.set(config.name, this.scheduleLoad(old));
    }
    for (const [name, entry] of oldModels) {
      // Gone from the pod: new requests are answered "not found" at once; queued ones finish.
      entry.removed = true;
      const serving = entry.serving;
      entry.serving = null;
      if (serving !== null) this.retire(entry, serving);
      this.serverMetrics.forgetModel(name);
      this.reloadMetrics.forgetModel(name);
      changes.push(`model ${name} removed`);
    }
    this.stopUnusedDatasets();

    if (JSON.stringify(previous.runtime) !== JSON.stringify(next.runtime)) changes.push('runtime settings changed');
    this.logger.info(
      { pod: next.file, changes },
      changes.length === 0 ? 'spicepod reloaded; nothing changed' : `spicepod reloaded: ${changes.join(', ')}`,
    );
    try {
      this.onPodApplied?.(next, previous);
    } catch (error) {
      this.logger.error({ err: error }, 'applying the reloaded spicepod\'s runtime settings failed');
    }
  }

  /** Stops datasets no longer in the pod once no serving or draining version reads them. */
  private stopUnusedDatasets(): void {
    if (this.retiredDatasets.size === 0) return;
    const used = new Set<DatasetHandle>();
    for (const entry of this.modelEntries.values()) {
      if (entry.serving?.dataset) used.add(entry.serving.dataset);
    }
    for (const serving of this.draining.keys()) if (serving.dataset !== null) used.add(serving.dataset);
    for (const handle of this.retiredDatasets) {
      if (used.has(handle)) continue;
      this.retiredDatasets.delete(handle);
      void handle.stop();
    }
  }

  async predict(name: string, signal?: AbortSignalLike, include?: IncludeOptions): Promise<PredictOutcome> {
    const entry = this.modelEntries.get(name);
    if (entry === undefined) return { kind: 'not_found', name };
    // Read once: the whole request uses this version even if a reload swaps another in meanwhile.
    const serving = entry.serving;
    if (serving === null) {
      const model = entry.identity;
      if (entry.status === 'Error') {
        entry.metrics.failed(entry.errorCode);
        return { kind: 'failure', model, reason: entry.errorCode, message: `Model ${name} failed to load: ${entry.error ?? 'unknown error'}` };
      }
      entry.metrics.failed('MODEL_LOADING');
      return { kind: 'failure', model, reason: 'MODEL_LOADING', message: `Model ${name} is still loading; retry shortly` };
    }
    const model = serving.identity;
    const dataset = serving.dataset;
    if (dataset === null) {
      entry.metrics.failed('ERR_DATASET');
      return {
        kind: 'failure',
        model,
        reason: 'ERR_DATASET',
        message: `Model ${name} has no dataset to read a window from; send it series with POST /v1/timeseries/forecast`,
      };
    }
    const snapshot = dataset.snapshot;
    if (snapshot === null) {
      entry.metrics.failed('ERR_DATASET');
      return {
        kind: 'failure',
        model,
        reason: 'ERR_DATASET',
        message: `Dataset ${dataset.name} is not ready${dataset.error === null ? ` (${dataset.status})` : `: ${dataset.error}`}`,
      };
    }
    try {
      const prediction = await this.run(entry, serving, dataset, snapshot, signal);
      entry.metrics.succeeded();
      if (include === undefined || (!include.timestamps && !include.quantiles)) return { kind: 'success', model, values: prediction.values };
      return { kind: 'success', model, values: prediction.values, extras: extrasOf(serving, snapshot, prediction, include) };
    } catch (error) {
      if (signal?.aborted === true) {
        return { kind: 'failure', model, reason: 'ERR_INFERENCE', message: 'the client went away' };
      }
      const reason = failureReason(error);
      entry.metrics.failed(reason);
      return { kind: 'failure', model, reason, message: errorMessage(error) };
    }
  }

  /** Hands the window to the forecaster synchronously, so a swap after this call cannot strand it. */
  private run(
    entry: ModelEntry,
    serving: ServingModel,
    dataset: DatasetHandle,
    snapshot: DatasetSnapshot,
    signal: AbortSignalLike | undefined,
  ): Promise<Prediction> {
    const { forecaster, cache } = serving;
    const { lookback } = forecaster.shape;
    const fill = serving.config.params.fillMissing;
    if (cache === null) return this.checked(entry, serving, forecaster.predict(dataset.window(snapshot, lookback, fill), { signal }));
    // Callers share one computation, so it must not be cancelled by any one of them going away. The snapshot
    // version is process-unique and so is the generation: a stale key can never match.
    return cache.get(`${serving.generation}:${snapshot.version}`, () =>
      this.checked(entry, serving, forecaster.predict(dataset.window(snapshot, lookback, fill))),
    );
  }

  /**
   * A computed prediction's quantiles: of the size the layout says and finite (else the prediction fails),
   * and counted in the crossing metric when a higher level has a lower value somewhere (not an error).
   */
  private async checked(entry: ModelEntry, serving: ServingModel, prediction: Promise<Prediction>): Promise<Prediction> {
    const result = await prediction;
    const layout = serving.layout;
    const q = result.extraOutputs[0];
    if (layout?.quantiles == null || q === undefined) return result;
    checkQuantileSize(layout, q);
    for (let i = 0; i < q.length; i++) {
      const v = q[i] as number;
      if (v - v !== 0) throw new ForecastdError('ERR_NON_FINITE', `quantile output '${layout.quantiles.output}' contains ${String(v)} at index ${i}`);
    }
    if (quantileCrossings(q, layout.quantiles.levels.length) > 0) entry.metrics.quantileCrossing();
    return result;
  }

  /** A model's details (GET /v1/models/:name), or undefined when the pod has none of that name. */
  modelDetails(name: string): ModelDetails | undefined {
    const entry = this.modelEntries.get(name);
    return entry === undefined ? undefined : detailsOf(entry);
  }

  /** Every model's details, in pod order (GET /v1/timeseries/models). */
  allModelDetails(): readonly ModelDetails[] {
    return [...this.modelEntries.values()].map(detailsOf);
  }

  /**
   * The serving version of a model for client-sent series (POST /v1/timeseries/forecast): every forecast
   * made through the returned handle runs on that one version, through its batching forecaster, so the
   * inputs of one request (and of concurrent ones) share runs.
   */
  seriesModel(name: string): SeriesModelLookup {
    const entry = this.modelEntries.get(name);
    if (entry === undefined) return { kind: 'not_found' };
    const serving = entry.serving;
    if (serving === null) {
      if (entry.status === 'Error') return { kind: 'failed', message: `Model ${name} failed to load: ${entry.error ?? 'unknown error'}` };
      return { kind: 'loading', message: `Model ${name} is still loading; retry shortly` };
    }
    const layout = serving.layout;
    if (layout === null) return { kind: 'no_horizon', message: `Model ${name} cannot forecast client series: ${serving.layoutProblem ?? 'output 0 has no horizon'}` };
    const { forecaster } = serving;
    return {
      kind: 'ready',
      details: detailsOf(entry),
      layout,
      pointType: forecaster.shape.outputType,
      forecast: async (window: FloatArray, signal?: AbortSignalLike): Promise<SeriesForecast> => {
        try {
          const p = await this.checked(entry, serving, forecaster.predict(window, { signal }));
          entry.metrics.succeeded();
          return { values: p.values, quantiles: p.extraOutputs[0] ?? null };
        } catch (error) {
          if (signal?.aborted !== true) entry.metrics.failed(failureReason(error));
          throw error;
        }
      },
    };
  }

  readyModelNames(): string[] {
    const names: string[] = [];
    for (const entry of this.modelEntries.values()) {
      if (entry.serving !== null) names.push(entry.config.name);
    }
    return names;
  }

  models(): readonly ModelListing[] {
    return [...this.modelEntries.values()].map((m) => ({
      name: m.config.name,
      from: m.config.from,
      datasets: m.config.datasets,
      status: m.status,
      error: m.error,
    }));
  }

  datasets(): readonly DatasetListing[] {
    return [...this.datasetEntries.values()].map((d) => d.describe());
  }

  datasetRows(name: string, last: number): DatasetRows | null {
    const handle = this.datasetEntries.get(name);
    if (handle === undefined) return null;
    return newestRows(handle.snapshot, last);
  }

  ready(): boolean {
    for (const d of this.datasetEntries.values()) if (d.status === 'Initializing') return false;
    for (const m of this.modelEntries.values()) if (m.status === 'Initializing') return false;
    return true;
  }

  /** Status of one model, or undefined when the pod has none of that name. */
  modelStatus(name: string): { status: EntryStatus; error: string | null } | undefined {
    const m = this.modelEntries.get(name);
    return m === undefined ? undefined : { status: m.status, error: m.error };
  }

  /** Status of one dataset, or undefined when the pod has none of that name. */
  datasetStatus(name: string): { status: DatasetStatus; error: string | null } | undefined {
    const d = this.datasetEntries.get(name);
    return d === undefined ? undefined : { status: d.status, error: d.error };
  }

  /** Stops refreshes and reloads, lets in-flight predictions finish, and frees every session. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const entry of this.modelEntries.values()) {
      const serving = entry.serving;
      entry.serving = null;
      if (serving !== null) this.retire(entry, serving);
    }
    await Promise.all(this.draining.values());
    const datasets = [...this.datasetEntries.values(), ...this.retiredDatasets];
    this.retiredDatasets.clear();
    await Promise.all(datasets.map((d) => d.stop()));
    // Loads in progress see `closed` and free what they loaded; wait for them so nothing outlives close().
    await Promise.all(this.loads);
    await this.podWork;
  }
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

/** Timestamps and quantiles of a dataset prediction, as `include` asks and the model and dataset allow. */
function extrasOf(serving: ServingModel, snapshot: DatasetSnapshot, prediction: Prediction, include: IncludeOptions): ForecastExtras {
  const layout = serving.layout;
  let timestamps: Float64Array | null = null;
  let quantiles: ForecastExtras['quantiles'] = null;
  if (include.timestamps && layout !== null && snapshot.rows > 0) {
    const frequency = snapshotFrequency(snapshot);
    if (frequency !== null) timestamps = stepsAfter(snapshot.times[snapshot.rows - 1] as number, frequency, layout.horizon);
  }
  const q = prediction.extraOutputs[0];
  if (include.quantiles && layout?.quantiles != null && q !== undefined) {
    const levels = layout.quantiles.levels;
    const steps = layout.horizon * layout.outputVariables;
    quantiles = { levels, type: layout.quantiles.type, values: levels.map((_, k) => quantileLevel(q, levels.length, k, steps)) };
  }
  return { timestamps, quantiles };
}

function detailsOf(entry: ModelEntry): ModelDetails {
  const serving = entry.serving;
  const snapshot = serving?.dataset?.snapshot ?? null;
  const frequency = snapshot === null ? null : snapshotFrequency(snapshot);
  return {
    name: entry.config.name,
    from: entry.config.from,
    datasets: entry.config.datasets,
    status: entry.status,
    error: entry.error,
    version: entry.identity.version,
    lookback: serving?.forecaster.shape.lookback ?? entry.config.params.lookback,
    horizon: serving?.layout?.horizon ?? null,
    variables: serving?.forecaster.shape.variables ?? null,
    quantiles: serving?.layout?.quantiles?.levels ?? entry.config.params.quantiles,
    frequency: frequency === null ? null : formatFrequency(frequency),
  };
}
