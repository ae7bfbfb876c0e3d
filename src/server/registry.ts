import { performance } from 'node:perf_hooks';
import { ForecastdError } from '../errors.js';
import type { ErrorCode } from '../errors.js';
import type { DatasetSnapshot, DatasetStatus } from '../datasets/types.js';
import { errorMessage, failureReason } from '../http/errors.js';
import type {
  DatasetListing,
  EntryStatus,
  ModelIdentity,
  ModelListing,
  PredictOutcome,
  ServingBackend,
} from '../http/types.js';
import type { Logger } from '../log.js';
import type { ModelMetrics, ServerMetrics } from '../metrics.js';
import { BatchingForecaster } from '../runtime/forecaster.js';
import type { Prediction } from '../runtime/forecaster.js';
import { formatShape } from '../runtime/model-contract.js';
import { PredictionCache } from '../runtime/prediction-cache.js';
import { InferenceSession } from '../runtime/session.js';
import type { ModelConfig, Spicepod } from '../spicepod/types.js';
import { DatasetHandle } from './dataset-handle.js';

/** One model of the pod and everything that serves it. */
class ModelEntry {
  status: EntryStatus = 'Initializing';
  /** The last load failure (message), null when none. */
  error: string | null = null;
  errorCode: ErrorCode = 'ERR_MODEL_LOAD';
  identity: ModelIdentity;
  session: InferenceSession | null = null;
  forecaster: BatchingForecaster | null = null;
  /** Bumped on every (re)load: part of the prediction cache key. */
  generation = 0;
  cache: PredictionCache<Prediction> | null = null;
  /** Set when the model failed only because its dataset was not available; retried when it is. */
  waitingForDataset = false;

  constructor(
    readonly config: ModelConfig,
    readonly dataset: DatasetHandle | undefined,
    readonly metrics: ModelMetrics,
  ) {
    this.identity = { name: config.name, version: config.params.version, lookback: config.params.lookback };
  }
}

export interface RegistryOptions {
  readonly logger: Logger;
  readonly metrics: ServerMetrics;
}

function dims(info: { readonly shape: readonly (number | string)[] }): string {
  return formatShape(info.shape);
}

/**
 * Turns a Spicepod into running parts: a started dataset per dataset entry, and per model a session, the
 * contract check, a batching forecaster and a warm-up run. Entries load concurrently and independently: one
 * that fails is `Error` with its reason while the rest serve.
 */
export class ModelRegistry implements ServingBackend {
  readonly pod: Spicepod;
  private readonly logger: Logger;
  private readonly serverMetrics: ServerMetrics;
  private readonly datasetEntries = new Map<string, DatasetHandle>();
  private readonly modelEntries = new Map<string, ModelEntry>();
  private loading: Promise<void> | null = null;
  private closed = false;

  constructor(pod: Spicepod, options: RegistryOptions) {
    this.pod = pod;
    this.logger = options.logger;
    this.serverMetrics = options.metrics;
    for (const config of pod.datasets) {
      const handle = new DatasetHandle(config, this.logger);
      this.datasetEntries.set(config.name, handle);
      this.serverMetrics.dataset(config.name, {
        rows: () => handle.snapshot?.rows ?? 0,
        loadedAt: () => handle.snapshot?.loadedAt ?? null,
      });
    }
    for (const config of pod.models) {
      const datasetName = config.datasets[0];
      const dataset = datasetName === undefined ? undefined : this.datasetEntries.get(datasetName);
      let entry: ModelEntry | null = null;
      const metrics = this.serverMetrics.model(config.name, {
        queueDepth: () => entry?.forecaster?.queueDepth ?? 0,
        cacheHits: () => entry?.cache?.hits ?? 0,
        cacheMisses: () => entry?.cache?.misses ?? 0,
      });
      entry = new ModelEntry(config, dataset, metrics);
      this.modelEntries.set(config.name, entry);
    }
  }

  /**
   * Starts every dataset and loads every model, concurrently. Resolves when every entry has left
   * Initializing (Ready or Error); never rejects.
   */
  start(): Promise<void> {
    this.loading ??= (async () => {
      const datasets = [...this.datasetEntries.values()].map((d) => d.start());
      const models = [...this.modelEntries.values()].map((m) => this.loadModel(m));
      await Promise.all([...datasets, ...models]);
    })();
    return this.loading;
  }

  private async loadModel(entry: ModelEntry): Promise<void> {
    const { config } = entry;
    const started = performance.now();
    const source = config.source;
    if (source.kind === 'unsupported') {
      this.fail(entry, 'ERR_MODEL_LOAD', source.reason);
      return;
    }
    const dataset = entry.dataset;
    if (dataset === undefined) {
      this.fail(entry, 'ERR_DATASET', `model ${config.name} names no dataset to read its window from`);
      return;
    }
    // Disposed again if anything after the load fails.
    let loaded: InferenceSession | null = null;
    try {
      const params = config.params;
      // The session loads while the dataset does; the contract needs the dataset's column count.
      const [session] = await Promise.all([
        InferenceSession.load(source.path, { intraOpThreads: params.intraOpThreads }),
        dataset.firstLoad(),
      ]);
      loaded = session;
      if (this.closed) {
        session.dispose();
        return;
      }
      const variables = dataset.variables();
      if (variables === null) {
        entry.waitingForDataset = true;
        throw new ForecastdError(
          'ERR_DATASET',
          `dataset ${dataset.name} is not available (${dataset.error ?? dataset.status}), so the model cannot be checked against its columns`,
        );
      }
      const metrics = entry.metrics;
      const forecaster = new BatchingForecaster(session, {
        lookback: params.lookback,
        variables,
        maxBatchSize: params.maxBatchSize,
        maxConcurrentRuns: params.maxConcurrentRuns,
        maxQueueDelayMs: params.maxQueueDelayMs,
        maxQueueSize: params.maxQueueSize,
        timeoutMs: params.timeoutMs,
        onBatch: (batch) => metrics.batch(batch.size, batch.queueMs, batch.inferenceMs),
      });
      await forecaster.warmUp();
      if (this.closed) {
        await forecaster.close();
        session.dispose();
        return;
      }
      const metadataVersion = session.metadata.version;
      entry.identity = {
        name: config.name,
        version: params.version ?? (metadataVersion !== 0 ? String(metadataVersion) : null),
        lookback: forecaster.shape.lookback,
      };
      entry.session = session;
      entry.forecaster = forecaster;
      entry.generation++;
      entry.cache = params.cachePredictions ? new PredictionCache<Prediction>({ maxEntries: 16 }) : null;
      entry.status = 'Ready';
      entry.error = null;
      entry.waitingForDataset = false;
      const input = session.inputs[0];
      const output = session.outputs[0];
      this.logger.info(
        {
          model: config.name,
          from: config.from,
          dataset: dataset.name,
          version: entry.identity.version,
          lookback: forecaster.shape.lookback,
          variables: forecaster.shape.variables,
          input: input === undefined ? undefined : `${input.name} ${input.type} ${dims(input)}`,
          output: output === undefined ? undefined : `${output.name} ${output.type} ${dims(output)}`,
          maxBatchSize: forecaster.settings.maxBatchSize,
          ms: Math.round(performance.now() - started),
        },
        `model ${config.name} ready`,
      );
      // A dataset change (refresh, reload) frees cached predictions of the old data at once.
      dataset.onChange(() => entry.cache?.clear());
    } catch (error) {
      loaded?.dispose();
      this.fail(entry, failureReason(error), errorMessage(error));
      if (entry.waitingForDataset) {
        // Serve as soon as the dataset comes back.
        dataset.onceAvailable(() => {
          if (!this.closed && entry.status === 'Error' && entry.waitingForDataset) {
            entry.status = 'Initializing';
            void this.loadModel(entry);
          }
        });
      }
    }
  }

  private fail(entry: ModelEntry, cause: ErrorCode, message: string): void {
    // A model in Error answers 500 whatever stopped it (even a warm-up that timed out, which on a live
    // request would be a 504): keep the codes that say why, call the rest a load failure.
    const code: ErrorCode = cause === 'ERR_MODEL_CONTRACT' || cause === 'ERR_DATASET' ? cause : 'ERR_MODEL_LOAD';
    entry.status = 'Error';
    entry.error = message;
    entry.errorCode = code;
    this.logger.error({ model: entry.config.name, from: entry.config.from, code }, `model ${entry.config.name} failed to load: ${message}`);
  }

  async predict(name: string, signal?: AbortSignal): Promise<PredictOutcome> {
    const entry = this.modelEntries.get(name);
    if (entry === undefined) return { kind: 'not_found', name };
    const model = entry.identity;
    const forecaster = entry.forecaster;
    if (forecaster === null) {
      if (entry.status === 'Error') {
        entry.metrics.failed(entry.errorCode);
        return { kind: 'failure', model, reason: entry.errorCode, message: `Model ${name} failed to load: ${entry.error ?? 'unknown error'}` };
      }
      entry.metrics.failed('MODEL_LOADING');
      return { kind: 'failure', model, reason: 'MODEL_LOADING', message: `Model ${name} is still loading; retry shortly` };
    }
    const dataset = entry.dataset!;
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
      const prediction = await this.run(entry, forecaster, snapshot, signal);
      entry.metrics.succeeded();
      return { kind: 'success', model, values: prediction.values };
    } catch (error) {
      if (signal?.aborted === true) {
        return { kind: 'failure', model, reason: 'ERR_INFERENCE', message: 'the client went away' };
      }
      const reason = failureReason(error);
      entry.metrics.failed(reason);
      return { kind: 'failure', model, reason, message: errorMessage(error) };
    }
  }

  private run(
    entry: ModelEntry,
    forecaster: BatchingForecaster,
    snapshot: DatasetSnapshot,
    signal: AbortSignal | undefined,
  ): Promise<Prediction> {
    const { lookback } = forecaster.shape;
    const fill = entry.config.params.fillMissing;
    const dataset = entry.dataset!;
    const cache = entry.cache;
    if (cache === null) return forecaster.predict(dataset.window(snapshot, lookback, fill), { signal });
    // Callers share one computation, so it must not be cancelled by any one of them going away. The snapshot
    // version is process-unique and the generation changes on reload: a stale key can never match.
    return cache.get(`${entry.generation}:${snapshot.version}`, () =>
      forecaster.predict(dataset.window(snapshot, lookback, fill)),
    );
  }

  readyModelNames(): string[] {
    const names: string[] = [];
    for (const entry of this.modelEntries.values()) {
      if (entry.forecaster !== null && entry.status !== 'Error') names.push(entry.config.name);
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

  /** Stops refreshes, lets in-flight predictions finish, and frees every session. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(
      [...this.modelEntries.values()].map(async (m) => {
        const forecaster = m.forecaster;
        const session = m.session;
        m.forecaster = null;
        m.session = null;
        if (forecaster !== null) await forecaster.close();
        session?.dispose();
      }),
    );
    await Promise.all([...this.datasetEntries.values()].map((d) => d.stop()));
  }
}
