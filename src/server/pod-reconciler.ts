import { ForecastdError, errorMessage } from '../errors.js';
import { FileSettle, fileFingerprint } from '../file-fingerprint.js';
import type { Logger } from '../log.js';
import { loadSpicepod } from '../spicepod/load.js';
import type { DatasetConfig, ModelConfig, Spicepod } from '../spicepod/types.js';
import { rowsToKeep } from './dataset-handle.js';
import type { DatasetHandle } from './dataset-handle.js';
import type { PodEntry } from './pod-entry.js';
import type { ReloadMetrics } from './reload-metrics.js';

/**
 * The one place that judges files "changed" and turns a changed pod into running parts: it compares the
 * spicepod and the model files with what was last read (fingerprints), waits for a change to settle (see
 * FileSettle: two looks a settle time apart, unchanged by the end of the read), reads the pod, diffs it with
 * the pod applied, and applies the difference (datasets and models removed, added, changed). Loads it starts
 * run on their own: a pod edit never waits behind the slow loads of an earlier one.
 */

/** What the reconciler changes: the registry's entries and the bookkeeping around them. */
export interface PodParts {
  readonly datasets: Map<string, DatasetHandle>;
  readonly models: Map<string, PodEntry>;
  /** Creates a dataset entry for `config` (not yet started) and puts it in `datasets`. */
  addDataset(config: DatasetConfig, pod: Spicepod): DatasetHandle;
  /** A dataset replaced or removed: stopped once no serving or draining version reads it. */
  retireDataset(handle: DatasetHandle, removed: boolean): void;
  /** Creates a model slot for `config` (not yet loading). */
  newSlot(config: ModelConfig): PodEntry;
  /** A model gone from the pod (its metrics go too). */
  forgetModel(slot: PodEntry): void;
  datasetFor(config: ModelConfig): DatasetHandle | undefined;
  stopUnusedDatasets(): void;
  closed(): boolean;
}

export interface ReconcilerOptions {
  readonly logger: Logger;
  readonly reloadMetrics: ReloadMetrics;
  readonly env: NodeJS.ProcessEnv;
  readonly settleMs: number;
  /** The spicepod file's fingerprint when `pod` was read; null: taken at the first check. */
  readonly podFingerprint: string | null;
  /** Called after a changed spicepod was applied (e.g. to apply runtime settings that live elsewhere). */
  readonly onPodApplied?: (pod: Spicepod, previous: Spicepod) => void;
}

/** What a reload did. */
export interface ReloadOutcome {
  /** A changed spicepod was read and applied. */
  readonly applied: boolean;
  /** Why the spicepod could not be applied (file:line: key ...); null when it was, or was unchanged. */
  readonly error: string | null;
  /** Models whose (re)load was started (and, from reload(), has finished: see modelStatus for the result). */
  readonly reloadedModels: readonly string[];
}

/** One pass over the files. */
export interface ReconcileStep {
  readonly outcome: ReloadOutcome;
  /** The loads it started, by model. */
  readonly loads: ReadonlyMap<string, Promise<void>>;
  /** A change is waiting to settle: look again in this many ms. null: nothing pending. */
  readonly waitMs: number | null;
  /** The spicepod was read in this pass (applied or not). */
  readonly podRead: boolean;
}

function sameConfig(a: ModelConfig | DatasetConfig, b: ModelConfig | DatasetConfig): boolean {
  // Both come from the same validator, so equal pods give equal JSON.
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Which kind of entry serves a model config: a model file, an ensemble or a variants entry. */
function entryKind(config: ModelConfig): 'model' | 'ensemble' | 'variants' {
  const kind = config.source.kind;
  return kind === 'ensemble' || kind === 'variants' ? kind : 'model';
}

function earliest(a: number | null, b: number): number {
  return a === null ? b : Math.min(a, b);
}

export class PodReconciler {
  private current: Spicepod;
  private podError: string | null = null;
  private readonly podFile: FileSettle;
  private podFingerprintKnown: boolean;

  constructor(
    pod: Spicepod,
    private readonly parts: PodParts,
    private readonly options: ReconcilerOptions,
  ) {
    this.current = pod;
    this.podFile = new FileSettle(options.settleMs, options.podFingerprint);
    this.podFingerprintKnown = options.podFingerprint !== null;
  }

  get pod(): Spicepod {
    return this.current;
  }

  /** Why the spicepod on disk could not be applied at the last read; null when it was. */
  get error(): string | null {
    return this.podError;
  }

  /** Records the spicepod's fingerprint at startup when the caller had none (a pod passed in already read). */
  async start(): Promise<void> {
    if (this.podFingerprintKnown) return;
    this.podFingerprintKnown = true;
    this.podFile.succeeded(await fileFingerprint(this.current.file));
  }

  /** Every file whose change is noticed: the spicepod and each model file. */
  watchedFiles(): string[] {
    const files = [this.current.file];
    for (const slot of this.parts.models.values()) {
      const path = slot.filePath;
      if (path !== null) files.push(path);
    }
    return files;
  }

  /**
   * Looks at the spicepod and model files once and applies what changed and settled. `force` reads the
   * spicepod even when it looks unchanged (SIGHUP: `${env:...}` may differ); a changed one still waits to
   * settle. Never rejects: a pod that cannot be applied is reported (outcome, log, `error`, metrics) and the
   * current configuration keeps serving.
   */
  async reconcile(force: boolean): Promise<ReconcileStep> {
    const loads = new Map<string, Promise<void>>();
    let applied = false;
    let waitMs: number | null = null;
    let podRead = false;
    if (this.parts.closed()) return { outcome: { applied, error: this.podError, reloadedModels: [] }, loads, waitMs, podRead };
    const file = this.current.file;
    const fingerprint = await fileFingerprint(file);
    const verdict = this.podFile.observe(fingerprint, Date.now());
    if (verdict.kind === 'wait') {
      waitMs = verdict.ms;
    } else if (verdict.kind === 'read' || force) {
      podRead = true;
      const next = await this.readPod(file);
      if (next !== null) {
        const after = await fileFingerprint(file);
        const unchangedByRead = verdict.kind === 'unchanged' ? after === fingerprint : this.podFile.afterRead(after, Date.now());
        if (!unchangedByRead) {
          // It was being written while read: what was read may be half of it.
          this.options.logger.info({ pod: file }, 'the spicepod changed while it was read; waiting for it to settle');
          waitMs = this.options.settleMs;
        } else if (!this.parts.closed()) {
          this.podFile.succeeded(after);
          this.podError = null;
          this.options.reloadMetrics.podReloaded(true);
          for (const warning of next.warnings) this.options.logger.warn(warning);
          this.apply(next, loads);
          applied = true;
        }
      }
    }
    if (!this.parts.closed()) {
      for (const slot of this.parts.models.values()) {
        const path = slot.filePath;
        if (path === null || loads.has(slot.name) || slot.removed || slot.busy) continue;
        const current = await fileFingerprint(path);
        const model = slot.file.observe(current, Date.now());
        if (model.kind === 'wait') {
          waitMs = earliest(waitMs, model.ms);
        } else if (model.kind === 'read' && !slot.removed) {
          this.options.logger.info({ model: slot.name, file: path }, `model file of ${slot.name} changed; reloading`);
          loads.set(slot.name, slot.load());
        }
      }
    }
    return { outcome: { applied, error: this.podError, reloadedModels: [...loads.keys()] }, loads, waitMs, podRead };
  }

  private async readPod(file: string): Promise<Spicepod | null> {
    try {
      return await loadSpicepod(file, this.options.env);
    } catch (error) {
      const message = errorMessage(error);
      this.podError = message;
      // Not recorded as read: the same file is tried again (backing off) until it reads or changes.
      this.podFile.failed(Date.now());
      this.options.reloadMetrics.podReloaded(false);
      this.options.logger.error(
        { pod: file, code: error instanceof ForecastdError ? error.code : undefined },
        `spicepod reload failed; still serving the configuration applied before: ${message}`,
      );
      return null;
    }
  }

  /** Applies a newly read pod: datasets and models removed, added and changed, in the new pod's order. */
  private apply(next: Spicepod, loads: Map<string, Promise<void>>): void {
    const { parts } = this;
    const previous = this.current;
    this.current = next;
    const changes: string[] = [];

    const oldDatasets = new Map(parts.datasets);
    const replaced = new Set<string>();
    parts.datasets.clear();
    for (const config of next.datasets) {
      const old = oldDatasets.get(config.name);
      // A model's lookback change can change how many rows a dataset must keep: that is a changed dataset too.
      if (old !== undefined && sameConfig(old.config, config) && old.maxRows === rowsToKeep(config, next)) {
        parts.datasets.set(config.name, old);
        oldDatasets.delete(config.name);
        continue;
      }
      const handle = parts.addDataset(config, next);
      if (old !== undefined) {
        oldDatasets.delete(config.name);
        parts.retireDataset(old, false);
        replaced.add(config.name);
        changes.push(`dataset ${config.name} changed`);
      } else {
        changes.push(`dataset ${config.name} added`);
      }
      void handle.start();
    }
    for (const [name, old] of oldDatasets) {
      parts.retireDataset(old, true);
      changes.push(`dataset ${name} removed`);
    }

    const oldModels = new Map(parts.models);
    parts.models.clear();
    for (const config of next.models) {
      const old = oldModels.get(config.name);
      oldModels.delete(config.name);
      if (old === undefined) {
        const slot = parts.newSlot(config);
        parts.models.set(config.name, slot);
        changes.push(`model ${config.name} added`);
        loads.set(config.name, slot.load());
        continue;
      }
      if (entryKind(old.config) !== entryKind(config)) {
        // A model file became an ensemble or variants entry (or the other way): a new entry of the new kind;
        // the old one drains as a removed one does.
        old.remove();
        parts.forgetModel(old);
        const slot = parts.newSlot(config);
        parts.models.set(config.name, slot);
        changes.push(`model ${config.name} changed kind`);
        loads.set(config.name, slot.load());
        continue;
      }
      parts.models.set(config.name, old);
      const datasetName = config.datasets[0];
      const configChanged = !sameConfig(old.config, config);
      if (!configChanged && (datasetName === undefined || !replaced.has(datasetName))) continue;
      old.config = config;
      old.dataset = parts.datasetFor(config);
      changes.push(configChanged ? `model ${config.name} changed` : `model ${config.name} reloads for its changed dataset`);
      loads.set(config.name, old.load());
    }
    for (const [name, slot] of oldModels) {
      // Gone from the pod: new requests are answered "not found" at once; queued ones finish.
      slot.remove();
      parts.forgetModel(slot);
      changes.push(`model ${name} removed`);
    }
    parts.stopUnusedDatasets();

    if (JSON.stringify(previous.runtime) !== JSON.stringify(next.runtime)) changes.push('runtime settings changed');
    this.options.logger.info(
      { pod: next.file, changes },
      changes.length === 0 ? 'spicepod reloaded; nothing changed' : `spicepod reloaded: ${changes.join(', ')}`,
    );
    try {
      this.options.onPodApplied?.(next, previous);
    } catch (error) {
      this.options.logger.error({ err: error }, 'applying the reloaded spicepod\'s runtime settings failed');
    }
  }
}
