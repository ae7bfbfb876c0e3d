import { setTimeout as delay } from 'node:timers/promises';
import { evaluationGauges } from './evaluation-gauges.js';
import type { DatasetConfig, ModelConfig, Spicepod } from '../spicepod/types.js';
import type { DatasetSnapshot, DatasetStatus } from '../datasets/types.js';
import { DEFAULT_SETTLE_MS } from '../file-fingerprint.js';
import type {
  DatasetListing,
  DatasetRows,
  DrawKeys,
  EntryEvaluation,
  EntryStatus,
  IncludeOptions,
  ModelDetails,
  ModelListing,
  PredictOutcome,
  SeriesModelLookup,
  ServingBackend,
} from '../http/types.js';
import type { Logger } from '../log.js';
import type { ServerMetrics } from '../metrics.js';
import type { AbortSignalLike } from '../runtime/cancellation.js';
import { DatasetHandle, rowsToKeep } from './dataset-handle.js';
import { ModelSlot } from './model-slot.js';
import { compositeSlot } from './composite-slot.js';
import type { PodEntry } from './pod-entry.js';
import { PodReconciler } from './pod-reconciler.js';
import type { PodParts, ReconcileStep, ReloadOutcome } from './pod-reconciler.js';
import { ReloadMetrics } from './reload-metrics.js';

export type { ReloadOutcome } from './pod-reconciler.js';

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

export interface RegistryOptions {
  readonly logger: Logger;
  readonly metrics: ServerMetrics;
  /** Environment for ${env:NAME} when the spicepod is read again. Default process.env. */
  readonly env?: NodeJS.ProcessEnv;
  /** The spicepod file's fingerprint when `pod` was read (see fileFingerprint); default: taken at start(). */
  readonly podSignature?: string;
  /** How long a changed spicepod, model or data file must hold still before it is read. Default 1 s. */
  readonly settleMs?: number;
  /** Called after a changed spicepod was applied (e.g. to apply runtime settings that live elsewhere). */
  readonly onPodApplied?: (pod: Spicepod, previous: Spicepod) => void;
  /** A file is settling (or changed while read): checkForChanges() is worth calling again after `ms`. */
  readonly onRecheck?: (ms: number) => void;
}

/**
 * Serves a pod: the datasets and model slots it holds now (see ModelSlot for one model's life and
 * PodReconciler for how file changes become new entries), the ServingBackend the HTTP layer calls, and the
 * bookkeeping of what is retired but still draining. Entries load concurrently and independently: one that
 * fails is `Error` with its reason while the rest serve.
 */
export class ModelRegistry implements ServingBackend {
  private readonly logger: Logger;
  private readonly serverMetrics: ServerMetrics;
  private readonly reloadMetrics: ReloadMetrics;
  private readonly settleMs: number;
  private readonly onRecheck: ((ms: number) => void) | undefined;
  private readonly datasetEntries = new Map<string, DatasetHandle>();
  private readonly modelEntries = new Map<string, PodEntry>();
  /** Datasets replaced or removed, still read by a version that serves or drains; stopped when none does. */
  private readonly retiredDatasets = new Set<DatasetHandle>();
  /** Versions swapped out or removed whose in-flight requests are finishing, with the dataset they read. */
  private readonly draining = new Map<Promise<void>, DatasetHandle | null>();
  /** Slots removed from the pod whose load may still run (close() waits for them). */
  private readonly removedSlots = new Set<PodEntry>();
  private readonly reconciler: PodReconciler;
  /** Spicepod reads and applies run one at a time (the loads they start do not hold the next one up). */
  private podWork: Promise<unknown> = Promise.resolve();
  private loading: Promise<void> | null = null;
  private drawHeadersOf: { pod: Spicepod; headers: readonly string[] } | null = null;
  /** Startup brought every entry out of Initializing: readiness holds from then on (SPEC "Readiness"). */
  private startedUp = false;
  private closed = false;

  constructor(pod: Spicepod, options: RegistryOptions) {
    this.logger = options.logger;
    this.serverMetrics = options.metrics;
    this.reloadMetrics = new ReloadMetrics(options.metrics.registry);
    this.settleMs = options.settleMs ?? DEFAULT_SETTLE_MS;
    this.onRecheck = options.onRecheck;
    const parts: PodParts = {
      datasets: this.datasetEntries,
      models: this.modelEntries,
      addDataset: (config, next) => this.addDataset(config, next),
      retireDataset: (handle, removed) => {
        this.retiredDatasets.add(handle);
        // Its series would otherwise stay in every scrape with its last values.
        if (removed) this.serverMetrics.forgetDataset(handle.name);
      },
      newSlot: (config) => this.newSlot(config),
      forgetModel: (slot) => {
        this.removedSlots.add(slot);
        void slot.settled().then(() => this.removedSlots.delete(slot));
        this.serverMetrics.forgetModel(slot.name);
        this.reloadMetrics.forgetModel(slot.name);
      },
      datasetFor: (config) => this.datasetFor(config),
      stopUnusedDatasets: () => this.stopUnusedDatasets(),
      closed: () => this.closed,
    };
    this.reconciler = new PodReconciler(pod, parts, {
      logger: this.logger,
      reloadMetrics: this.reloadMetrics,
      env: options.env ?? process.env,
      settleMs: this.settleMs,
      podFingerprint: options.podSignature ?? null,
      ...(options.onPodApplied === undefined ? {} : { onPodApplied: options.onPodApplied }),
    });
    for (const config of pod.datasets) this.addDataset(config, pod);
    for (const config of pod.models) this.modelEntries.set(config.name, this.newSlot(config));
  }

  /** The pod as last applied. */
  get pod(): Spicepod {
    return this.reconciler.pod;
  }

  /** Why the spicepod on disk could not be applied at the last reload; null when it was. */
  get reloadError(): string | null {
    return this.reconciler.error;
  }

  private addDataset(config: DatasetConfig, pod: Spicepod): DatasetHandle {
    const handle = new DatasetHandle(config, this.logger, rowsToKeep(config, pod), this.settleMs);
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

  private newSlot(config: ModelConfig): PodEntry {
    if (config.source.kind === 'ensemble' || config.source.kind === 'variants') {
      let entry: PodEntry | null = null;
      const metrics = this.serverMetrics.model(config.name, {
        queueDepth: () => 0,
        cacheHits: () => entry?.cacheHits() ?? 0,
        cacheMisses: () => entry?.cacheMisses() ?? 0,
        evaluation: () => evaluationGauges(entry?.evaluationResult() ?? null),
      });
      entry = compositeSlot(config, this.datasetFor(config), metrics, {
        logger: this.logger,
        closed: () => this.closed,
        lookup: (name) => this.modelEntries.get(name),
        variantDrawn: (model, variant) => this.serverMetrics.variantRequest(model, variant),
      });
      return entry;
    }
    let slot: ModelSlot | null = null;
    const metrics = this.serverMetrics.model(config.name, {
      queueDepth: () => slot?.serving?.forecaster.queueDepth ?? 0,
      cacheHits: () => slot?.cacheHits() ?? 0,
      cacheMisses: () => slot?.cacheMisses() ?? 0,
      evaluation: () => evaluationGauges(slot?.evaluation.result ?? null),
    });
    slot = new ModelSlot(config, this.datasetFor(config), metrics, {
      logger: this.logger,
      reloadMetrics: this.reloadMetrics,
      settleMs: this.settleMs,
      closed: () => this.closed,
      draining: (dataset, done) => {
        const tracked = done.finally(() => {
          this.draining.delete(tracked);
          this.stopUnusedDatasets();
        });
        this.draining.set(tracked, dataset);
      },
      recheckIn: (ms) => this.onRecheck?.(ms),
    });
    return slot;
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
      await this.reconciler.start();
      const datasets = [...this.datasetEntries.values()].map((d) => d.start());
      const models = [...this.modelEntries.values()].map((m) => m.load());
      await Promise.all([...datasets, ...models]);
      this.startedUp = true;
      this.lookAtComposites();
    })();
    return this.loading;
  }

  /**
   * Reads the spicepod again and applies what changed, then reloads models whose file changed; a file that
   * is changing is waited for until it settles (as for SIGHUP). Resolves once every load it started has
   * finished; never rejects (a pod that cannot be applied is reported in the outcome, the log and
   * `reloadError`, and the current configuration keeps serving).
   */
  async reload(): Promise<ReloadOutcome> {
    let force = true;
    const reloaded = new Set<string>();
    const loads: Promise<void>[] = [];
    let applied = false;
    for (;;) {
      const step = await this.pass(force);
      if (step.podRead) force = false;
      applied ||= step.outcome.applied;
      for (const [name, load] of step.loads) {
        reloaded.add(name);
        loads.push(load);
      }
      if (step.waitMs === null || this.closed) break;
      await delay(step.waitMs);
    }
    await Promise.all(loads);
    this.lookAtComposites();
    return { applied, error: this.reconciler.error, reloadedModels: [...reloaded] };
  }

  /**
   * Cheap: compares the spicepod and model files with what is loaded (stat only) and applies what changed
   * and settled. Resolves once the loads it started have finished.
   */
  async checkForChanges(): Promise<ReloadOutcome> {
    const step = await this.pass(false);
    await Promise.all(step.loads.values());
    this.lookAtComposites();
    return step.outcome;
  }

  /**
   * Ensembles follow their members lazily (at each use); after loads, each entry is looked at once, so an
   * ensemble whose members just became Ready starts its evaluation without waiting for a request.
   */
  private lookAtComposites(): void {
    if (this.closed) return;
    for (const entry of this.modelEntries.values()) entry.stateKey();
  }

  /**
   * One look at the files for the watcher: applies what settled and starts loads without waiting for them.
   * Resolves with the ms after which a change still settling is worth another look, or null.
   */
  async checkFiles(): Promise<number | null> {
    return (await this.pass(false)).waitMs;
  }

  private pass(force: boolean): Promise<ReconcileStep> {
    const run = this.podWork.then(() => this.reconciler.reconcile(force));
    this.podWork = run.catch(() => undefined);
    return run;
  }

  /** Every file whose change checkForChanges() notices: the spicepod and each model file. */
  watchedFiles(): string[] {
    return this.reconciler.watchedFiles();
  }

  /** Stops datasets no longer in the pod once no serving or draining version reads them. */
  private stopUnusedDatasets(): void {
    if (this.retiredDatasets.size === 0) return;
    const used = new Set<DatasetHandle | null>(this.draining.values());
    for (const slot of this.modelEntries.values()) {
      const dataset = slot.servingDataset();
      if (dataset !== null) used.add(dataset);
    }
    for (const handle of this.retiredDatasets) {
      if (used.has(handle)) continue;
      this.retiredDatasets.delete(handle);
      void handle.stop();
    }
  }

  predictNow(name: string, include?: IncludeOptions, keys?: DrawKeys): PredictOutcome | undefined {
    const slot = this.modelEntries.get(name);
    if (slot === undefined) return { kind: 'not_found', name };
    return slot.predictNow(include, keys);
  }

  predict(name: string, signal?: AbortSignalLike, include?: IncludeOptions, keys?: DrawKeys): Promise<PredictOutcome> {
    const slot = this.modelEntries.get(name);
    if (slot === undefined) return Promise.resolve({ kind: 'not_found', name });
    return slot.predict(signal, include, keys);
  }

  /** Request headers the pod's variants entries draw by, worked out once per applied pod. */
  drawHeaders(): readonly string[] {
    const pod = this.reconciler.pod;
    if (this.drawHeadersOf?.pod !== pod) {
      const headers = new Set<string>();
      for (const model of pod.models) {
        if (model.source.kind !== 'variants') continue;
        const sticky = model.source.sticky;
        if (sticky.kind === 'header') headers.add(sticky.name);
        else if (sticky.kind === 'api_key') {
          headers.add('x-api-key');
          headers.add('authorization');
        }
      }
      this.drawHeadersOf = { pod, headers: [...headers] };
    }
    return this.drawHeadersOf.headers;
  }

  drawsPerCall(name: string): boolean {
    return this.modelEntries.get(name)?.config.source.kind === 'variants';
  }

  /** A model's details (GET /v1/models/:name), or undefined when the pod has none of that name. */
  modelDetails(name: string): ModelDetails | undefined {
    return this.modelEntries.get(name)?.details();
  }

  /** Resolves once no model's evaluation is running (after start(): every model evaluated or failed). */
  async evaluationsSettled(): Promise<void> {
    await Promise.all([...this.modelEntries.values()].map((slot) => slot.evaluationSettled()));
  }

  /** A model's evaluation, or undefined when the pod has none of that name. */
  evaluation(name: string): EntryEvaluation | undefined {
    return this.modelEntries.get(name)?.evaluationReport();
  }

  /** Every model's details, in pod order (GET /v1/timeseries/models). */
  allModelDetails(): readonly ModelDetails[] {
    return [...this.modelEntries.values()].map((slot) => slot.details());
  }

  /** The serving version of a model for client-sent series (POST /v1/timeseries/forecast). */
  seriesModel(name: string, keys?: DrawKeys): SeriesModelLookup {
    const slot = this.modelEntries.get(name);
    return slot === undefined ? { kind: 'not_found' } : slot.seriesModel(keys);
  }

  readyModelNames(): string[] {
    const names: string[] = [];
    for (const slot of this.modelEntries.values()) {
      if (slot.isServing()) names.push(slot.name);
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
      mae: m.evaluationResult()?.mae ?? null,
      skill: m.evaluationResult()?.skill ?? null,
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

  /**
   * Latched: once startup has brought every entry out of Initializing, entries added by a reload or retried
   * later (Initializing again) do not flip it back, so an orchestrator never pulls a pod whose models serve.
   */
  ready(): boolean {
    if (this.startedUp) return true;
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
    return d === undefined ? undefined : { status: d.status, error: d.userError };
  }

  /** Stops refreshes and reloads, lets in-flight predictions finish, and frees every session. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const slots = [...this.modelEntries.values(), ...this.removedSlots];
    for (const slot of this.modelEntries.values()) slot.retireServing();
    const datasets = [...this.datasetEntries.values(), ...this.retiredDatasets];
    this.retiredDatasets.clear();
    // Loads in progress see `closed` and free what they loaded; wait for them so nothing outlives close().
    await Promise.all([
      ...this.draining.keys(),
      ...datasets.map((d) => d.stop()),
      ...slots.map((s) => s.settled()),
      this.podWork,
    ]);
  }
}
