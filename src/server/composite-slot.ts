/**
 * Ensemble and variants entries (SPEC "Ensembles and variants"): entries made of other models of the pod,
 * resolved by name from the registry at each use, so a member's reload, failure or removal shows at once and
 * a pod edit changes members and weights without a load of its own. An ensemble forecasts with every member
 * (each on its own window, through its own batching forecaster) and combines step by step; a variants entry
 * draws one member per request (weighted rendezvous hashing over a sticky key, or at random without one).
 */
import { createHash } from 'node:crypto';
import type { FailureReason } from '../errors.js';
import { backtest } from '../evaluation/backtest.js';
import type { BacktestForecaster, BacktestResult, EvaluationStatus } from '../evaluation/backtest.js';
import { Cancellation } from '../runtime/cancellation.js';
import type { FillMissing } from '../datasets/types.js';
import { FileSettle } from '../file-fingerprint.js';
import { combineForecasts } from '../forecast/combine.js';
import { formatFrequency, stepsAfter } from '../forecast/frequency.js';
import { quantileLevel } from '../forecast/layout.js';
import type { ForecastLayout } from '../forecast/layout.js';
import { snapshotFrequency } from '../datasets/snapshot-frequency.js';
import type { DatasetSnapshot } from '../datasets/types.js';
import type {
  CompositeMemberDetails,
  DrawKeys,
  EntryEvaluation,
  EvaluationReport,
  EntryStatus,
  ForecastExtras,
  IncludeOptions,
  ModelDetails,
  ModelIdentity,
  PredictOutcome,
  SeriesForecast,
  SeriesModelLookup,
} from '../http/types.js';
import type { Logger } from '../log.js';
import type { ModelMetrics } from '../metrics.js';
import type { AbortSignalLike } from '../runtime/cancellation.js';
import type { BackgroundResult, ForecasterSettings } from '../runtime/forecaster.js';
import type { ForecastModelShape } from '../runtime/model-contract.js';
import { PredictionCache } from '../runtime/prediction-cache.js';
import { allocateTensorData } from '../runtime/session.js';
import type { FloatArray } from '../runtime/types.js';
import type { CompositeMember, ModelConfig, StickyRule } from '../spicepod/types.js';
import type { DatasetHandle } from './dataset-handle.js';
import { ModelEvaluation } from './model-evaluation.js';
import type { EnsembleMember, EntryForecast, EntryShape, ForecastShape, PodEntry } from './pod-entry.js';

/** What a composite entry needs from the registry around it. */
export interface CompositeContext {
  readonly logger: Logger;
  /** The entry of that name in the pod now. */
  lookup(name: string): PodEntry | undefined;
  /** A variants entry's request was drawn to `variant` (forecastd_variant_requests_total). */
  variantDrawn(model: string, variant: string): void;
  /** The registry is closing: no new evaluation starts. */
  closed(): boolean;
}

/** An ensemble or variants entry for `config` (whose source is one of those kinds). */
export function compositeSlot(config: ModelConfig, dataset: DatasetHandle | undefined, metrics: ModelMetrics, ctx: CompositeContext): PodEntry {
  if (config.source.kind === 'variants') return new VariantsSlot(config, dataset, metrics, ctx);
  return new EnsembleSlot(config, dataset, metrics, ctx);
}

/** A member of the entry and the pod entry it names now. */
interface ResolvedMember {
  readonly name: string;
  readonly weight: number;
  readonly entry: PodEntry | undefined;
}

/** Why a composite cannot serve now, or that it can. */
type Standing = { readonly status: 'Initializing' | 'Error'; readonly message: string; readonly reason: FailureReason } | null;

/** A member's failure, carried to the composite's own answer. */
class MemberFailed extends Error {
  constructor(
    readonly reason: FailureReason,
    message: string,
    readonly detail: string | undefined,
  ) {
    super(message);
  }
}

let nextGeneration = 1;

/** What both kinds share: no file and no session of their own, so no load state; members are looked up by name. */
abstract class CompositeBase {
  removed = false;
  readonly busy = false;
  readonly filePath = null;
  readonly file = new FileSettle(0, null);
  /** Changes with every (re)load, i.e. every pod edit of this entry: part of its state key. */
  protected generation = nextGeneration++;

  constructor(
    public config: ModelConfig,
    public dataset: DatasetHandle | undefined,
    protected readonly metrics: ModelMetrics,
    protected readonly ctx: CompositeContext,
  ) {}

  get name(): string {
    return this.config.name;
  }

  protected abstract standing(): Standing;

  get status(): EntryStatus {
    return this.standing()?.status ?? 'Ready';
  }

  get error(): string | null {
    return this.standing()?.message ?? null;
  }

  isServing(): boolean {
    return this.standing() === null;
  }

  /** Takes the config as the pod now says (members, weights): nothing to load, the members serve. */
  load(): Promise<void> {
    this.generation = nextGeneration++;
    const standing = this.standing();
    const { name, from } = this.config;
    if (standing === null) this.ctx.logger.info({ model: name, from }, `${this.kind} ${name} ready`);
    else if (standing.status === 'Error') this.ctx.logger.error({ model: name, from }, `${this.kind} ${name} cannot serve: ${standing.message}`);
    return Promise.resolve();
  }

  settled(): Promise<void> {
    return Promise.resolve();
  }

  remove(): void {
    this.removed = true;
  }

  cacheHits(): number {
    return this.retiredHits + (this.ownCache?.hits ?? 0);
  }

  cacheMisses(): number {
    return this.retiredMisses + (this.ownCache?.misses ?? 0);
  }

  /** The entry's prediction cache (an ensemble's), null without one. */
  protected ownCache: PredictionCache<SeriesForecast> | null = null;
  /** Counts of caches replaced by a reload, so the metrics never go backwards. */
  protected retiredHits = 0;
  protected retiredMisses = 0;

  /** The members own the sessions; nothing to drain here. */
  retireServing(): void {}

  servingDataset(): DatasetHandle | null {
    return this.dataset ?? null;
  }

  protected abstract get kind(): 'ensemble' | 'variants';

  protected members(): ResolvedMember[] {
    const source = this.config.source;
    const members: readonly CompositeMember[] = source.kind === 'ensemble' || source.kind === 'variants' ? source.members : [];
    return members.map((m) => ({ name: m.name, weight: m.weight, entry: this.ctx.lookup(m.name) }));
  }

  /** This entry's generation and every member's state: equal keys, equal members serving. */
  protected membersKey(members: readonly ResolvedMember[]): string {
    let key = `${this.generation}(`;
    for (const m of members) key += (m.entry?.stateKey() ?? '-') + ',';
    return key + ')';
  }

  protected failureOutcome(model: ModelIdentity, standing: NonNullable<Standing>): PredictOutcome {
    this.metrics.failed(standing.reason);
    return { kind: 'failure', model, reason: standing.reason, message: `Model ${this.name} cannot serve: ${standing.message}` };
  }

  /** Members with their weights: `inUse` (the weights combining now), else the pod's. */
  protected memberDetails(members: readonly ResolvedMember[], inUse: readonly number[] | null = null): CompositeMemberDetails[] {
    return members.map((m, i) => ({ name: m.name, weight: inUse?.[i] ?? m.weight, status: m.entry?.status ?? 'Error' }));
  }

  protected frequency(): string | null {
    const snapshot = this.dataset?.snapshot ?? null;
    const frequency = snapshot === null ? null : snapshotFrequency(snapshot);
    return frequency === null ? null : formatFrequency(frequency);
  }
}

/** An ensemble as resolved against its members' current versions. */
interface EnsembleState {
  readonly key: string;
  /** Process-unique per state: the evaluation's version of the ensemble. */
  readonly generation: number;
  readonly standing: Standing;
  /** Set when it serves. */
  readonly shape: ForecastShape | null;
  readonly members: readonly { readonly name: string; readonly weight: number; readonly member: EnsembleMember }[];
  readonly identity: ModelIdentity;
}

/** A combined forecast: output 0 and the raw quantile output (levels innermost), as a model's. */
type Combined = SeriesForecast;

class EnsembleSlot extends CompositeBase implements PodEntry, EnsembleMember {
  private state: EnsembleState | null = null;
  /** The ensemble's own backtest, as a model's (SPEC: an ensemble is evaluated like a model). */
  private readonly evaluation: ModelEvaluation;
  /** Removes the dataset listener that evaluates again after a refresh. */
  private offDataset: () => void = () => undefined;
  private evaluated: { readonly state: EnsembleState; readonly forecaster: BacktestForecaster } | null = null;

  constructor(config: ModelConfig, dataset: DatasetHandle | undefined, metrics: ModelMetrics, ctx: CompositeContext) {
    super(config, dataset, metrics, ctx);
    this.ownCache = config.params.cachePredictions ? new PredictionCache<Combined>({ maxEntries: 16 }) : null;
    this.evaluation = new ModelEvaluation(config.name, config.datasets[0] ?? null, ctx.logger);
    this.watchDataset();
  }

  private watchDataset(): void {
    this.offDataset();
    const dataset = this.dataset;
    this.offDataset = dataset === undefined ? () => undefined : dataset.onChange(() => this.evaluate(this.resolve()));
  }

  override remove(): void {
    super.remove();
    this.offDataset();
    this.evaluation.stop();
  }

  override retireServing(): void {
    this.evaluation.stop();
  }

  evaluationReport(): EvaluationReport {
    this.evaluate(this.resolve());
    return this.evaluation.report();
  }

  evaluationResult(): BacktestResult | null {
    return this.evaluation.result;
  }

  async evaluationSettled(): Promise<void> {
    // Members first (inverse_mae weights need theirs), then the weights, then the ensemble's own evaluation.
    for (let round = 0; round < 3; round++) {
      await Promise.all(this.members().map((m) => m.entry?.evaluationSettled()));
      this.evaluate(this.resolve());
      const running = this.inverseRunning;
      if (running !== null) await running.done;
      this.evaluate(this.resolve());
      await this.evaluation.settled();
      if (this.inverseRunning === null) return;
    }
  }

  get fillMissing(): FillMissing {
    return this.commonFill(this.resolve());
  }

  /** The members' own fill when they agree; else none (an origin whose window has a gap is then skipped). */
  private commonFill(state: EnsembleState): FillMissing {
    const fills = new Set(state.members.map((m) => m.member.fillMissing));
    return fills.size === 1 ? ([...fills][0] as FillMissing) : 'none';
  }

  backtestForecaster(): BacktestForecaster | null {
    const state = this.resolve();
    if (state.standing !== null) return null;
    if (this.evaluated?.state === state) return this.evaluated.forecaster;
    const members: { forecaster: BacktestForecaster; weight: number }[] = [];
    for (const m of state.members) {
      const forecaster = m.member.backtestForecaster();
      if (forecaster === null) return null;
      members.push({ forecaster, weight: m.weight });
    }
    const forecaster = new EnsembleBacktest(members, this.combine, state.shape as ForecastShape);
    this.evaluated = { state, forecaster };
    return forecaster;
  }

  /** Evaluates the ensemble as it is now on the dataset's snapshot, unless that was done (or runs) already. */
  private evaluate(state: EnsembleState): void {
    if (this.removed || this.ctx.closed()) return;
    if (state.standing !== null) {
      if (state.standing.status === 'Error') this.evaluation.failed(`ensemble ${this.name} cannot serve: ${state.standing.message}`);
      return;
    }
    const forecaster = this.backtestForecaster();
    if (forecaster === null) return;
    const shape = state.shape as ForecastShape;
    const config: ModelConfig = {
      ...this.config,
      params: { ...this.config.params, fillMissing: this.commonFill(state), quantiles: shape.layout.quantiles?.levels ?? null },
    };
    this.evaluation.update({ config, forecaster, datasetName: this.dataset?.name ?? null, generation: state.generation }, this.dataset?.snapshot ?? null);
  }

  protected get kind(): 'ensemble' {
    return 'ensemble';
  }

  get member(): EnsembleMember {
    return this;
  }

  override load(): Promise<void> {
    this.retiredHits += this.ownCache?.hits ?? 0;
    this.retiredMisses += this.ownCache?.misses ?? 0;
    this.ownCache = this.config.params.cachePredictions ? new PredictionCache<Combined>({ maxEntries: 16 }) : null;
    this.watchDataset();
    const loaded = super.load();
    this.evaluate(this.resolve());
    return loaded;
  }

  private get combine(): 'mean' | 'median' | 'weighted' {
    const source = this.config.source;
    return source.kind === 'ensemble' ? source.combine : 'mean';
  }

  stateKey(): string {
    return 'E' + this.resolve().key;
  }

  protected standing(): Standing {
    return this.resolve().standing;
  }

  /** The members' current shapes checked against each other; recomputed only when a member's state changes. */
  private resolve(): EnsembleState {
    const members = this.members();
    let key = this.membersKey(members);
    let evaluations: string | null = null;
    if (this.inverseMae) {
      evaluations = memberEvaluationsKey(members);
      key += `w${this.inverse !== null && this.inverse.key === evaluations ? evaluations : 'equal'}`;
    }
    let state = this.state;
    if (state === null || state.key !== key) {
      const inverse = this.inverse !== null && this.inverse.key === evaluations ? this.inverse.weights : null;
      state = this.check(key, members, inverse);
      this.state = state;
      // The members changed (a reload, a failure, a recovery) or the weights did: evaluated again.
      this.evaluate(state);
    }
    // Every member has a (new) evaluation: the inverse_mae weights are computed from them.
    if (evaluations !== null && state.standing === null && this.inverse?.key !== evaluations && this.inverseRunning?.key !== evaluations) {
      this.computeInverseMae(evaluations, state);
    }
    return state;
  }

  /** params.weights is inverse_mae. */
  private get inverseMae(): boolean {
    const source = this.config.source;
    return source.kind === 'ensemble' && source.weightsFrom === 'inverse_mae';
  }

  /** inverse_mae weights and the members' evaluations they were computed from (memberEvaluationsKey). */
  private inverse: { readonly key: string; readonly weights: readonly number[] | null } | null = null;
  private inverseRunning: { readonly key: string; readonly done: Promise<void>; readonly cancel: Cancellation } | null = null;

  /**
   * inverse_mae (SPEC): 1/MAE of each member on the origins common to all members, normalised. Each member is
   * backtested on the ensemble's own origins (windows of the ensemble's lookback, of which it reads its newest
   * L_i steps), so every member is scored on the same origins; equal weights until that is done.
   */
  private computeInverseMae(key: string, state: EnsembleState): void {
    const snapshot = this.dataset?.snapshot ?? null;
    const params = this.config.params.evaluation;
    if (snapshot === null || params.origins === 0 || this.removed || this.ctx.closed()) return;
    this.inverseRunning?.cancel.abort(new Error('superseded'));
    const shape = state.shape as ForecastShape;
    const pointOnly: ForecastShape = { ...shape, layout: { ...shape.layout, quantiles: null } };
    const cancel = new Cancellation();
    const fill = this.commonFill(state);
    const runs = state.members.map((m) => {
      const forecaster = m.member.backtestForecaster();
      if (forecaster === null) return Promise.reject(new Error(`member ${m.name} does not serve`));
      return backtest(new EnsembleBacktest([{ forecaster, weight: 1 }], 'weighted', pointOnly), {
        snapshot,
        datasetName: this.dataset?.name ?? 'the dataset',
        fillMissing: fill,
        origins: params.origins,
        since: params.since,
        seasonLength: params.seasonLength,
        quantiles: null,
        signal: cancel,
      });
    });
    const done = Promise.all(runs).then(
      (results) => {
        if (this.inverseRunning?.key !== key) return;
        const weights = inverseMaeWeights(results.map((r) => r.mae));
        this.inverse = { key, weights };
        this.ctx.logger.info(
          { model: this.name, maes: results.map((r) => r.mae), weights },
          `ensemble ${this.name}: inverse_mae weights ${weights === null ? 'not computable (a member has no MAE); equal weights stay' : weights.map((w) => w.toFixed(3)).join(', ')} on ${results[0]?.origins ?? 0} common origins`,
        );
      },
      (error: unknown) => {
        if (this.inverseRunning?.key !== key || cancel.aborted) return;
        this.inverse = { key, weights: null };
        this.ctx.logger.warn({ model: this.name }, `ensemble ${this.name}: inverse_mae weights could not be computed; equal weights stay: ${error instanceof Error ? error.message : String(error)}`);
      },
    );
    const tracked = done.finally(() => {
      if (this.inverseRunning?.done === tracked) this.inverseRunning = null;
    });
    this.inverseRunning = { key, done: tracked, cancel };
  }

  /** Where the weights in use come from, for GET /v1/models/:name (inverse_mae ensembles only). */
  private weightsFrom(): 'inverse_mae' | 'equal' | undefined {
    if (!this.inverseMae) return undefined;
    const state = this.resolve();
    return this.inverse !== null && this.inverse.weights !== null && state.key.endsWith(`w${this.inverse.key}`) ? 'inverse_mae' : 'equal';
  }

  private check(key: string, resolved: readonly ResolvedMember[], inverse: readonly number[] | null): EnsembleState {
    const name = this.config.name;
    const shapes: { name: string; weight: number; member: EnsembleMember; shape: ForecastShape }[] = [];
    let waiting: Standing = null;
    let failed: Standing = null;
    for (const m of resolved) {
      const member = m.entry?.member ?? null;
      if (member === null) {
        failed ??= { status: 'Error', reason: 'ERR_MODEL_LOAD', message: `member ${m.name} is not a model or ensemble of the pod` };
        continue;
      }
      const shape: EntryShape = member.forecastShape();
      if (shape.ok) shapes.push({ name: m.name, weight: m.weight, member, shape: shape.shape });
      else if (shape.status === 'Error') failed ??= { status: 'Error', reason: shape.reason, message: `member ${m.name}: ${shape.message}` };
      else waiting ??= { status: 'Initializing', reason: 'MODEL_LOADING', message: `member ${m.name} is still loading` };
    }
    const identity: ModelIdentity = { name, version: this.config.params.version, lookback: null };
    const standing = failed ?? waiting ?? agreement(shapes);
    if (standing !== null) return { key, generation: nextGeneration++, standing, shape: null, members: [], identity };
    const first = (shapes[0] as (typeof shapes)[number]).shape;
    let levels = first.layout.quantiles?.levels ?? null;
    for (const s of shapes) {
      const own = s.shape.layout.quantiles?.levels ?? null;
      if (levels !== null && (own === null || own.length !== levels.length || own.some((l, i) => l !== levels?.[i]))) {
        this.ctx.logger.warn(
          { model: name, member: s.name },
          `ensemble ${name} gives no quantiles: member ${s.name} has ${own === null ? 'none' : `levels ${own.join(', ')}`}, others ${levels.join(', ')}`,
        );
        levels = null;
      }
    }
    const allFloat32 = (pick: (s: ForecastShape) => 'float32' | 'float64'): boolean => shapes.every((s) => pick(s.shape) === 'float32');
    const quantileType = shapes.every((s) => s.shape.layout.quantiles?.type === 'float32') ? 'float32' : 'float64';
    const layout: ForecastLayout = {
      horizon: first.layout.horizon,
      outputVariables: first.layout.outputVariables,
      perStepRows: first.layout.perStepRows,
      quantiles: levels === null ? null : { levels, output: 'quantiles', type: quantileType },
    };
    const shape: ForecastShape = {
      layout,
      variables: first.variables,
      lookback: Math.max(...shapes.map((s) => s.shape.lookback)),
      // The narrowest: a value every member can take.
      inputType: shapes.some((s) => s.shape.inputType === 'float32') ? 'float32' : 'float64',
      pointType: allFloat32((s) => s.pointType) ? 'float32' : 'float64',
    };
    return {
      key,
      generation: nextGeneration++,
      standing: null,
      shape,
      members: shapes.map((s, i) => ({ name: s.name, weight: inverse?.[i] ?? s.weight, member: s.member })),
      identity: { name, version: this.config.params.version, lookback: shape.lookback },
    };
  }

  forecastShape(): EntryShape {
    const state = this.resolve();
    if (state.standing !== null) return { ok: false, ...state.standing, message: `ensemble ${this.name}: ${state.standing.message}` };
    return { ok: true, shape: state.shape as ForecastShape };
  }

  predictNow(include: IncludeOptions | undefined): PredictOutcome | undefined {
    const state = this.resolve();
    if (state.standing !== null) return this.failureOutcome(state.identity, state.standing);
    const snapshot = this.dataset?.snapshot ?? null;
    if (this.ownCache === null || snapshot === null) return undefined;
    const value = this.ownCache.peek(`${state.key}:${snapshot.version}`);
    if (value === undefined) return undefined;
    this.metrics.succeeded();
    return this.success(state, snapshot, value, include);
  }

  predict(signal: AbortSignalLike | undefined, include: IncludeOptions | undefined): Promise<PredictOutcome> {
    const state = this.resolve();
    if (state.standing !== null) return Promise.resolve(this.failureOutcome(state.identity, state.standing));
    const snapshot = this.dataset?.snapshot ?? null;
    return this.forecast(state, snapshot, signal).then(
      (combined): PredictOutcome => {
        this.metrics.succeeded();
        return this.success(state, snapshot, combined, include);
      },
      (error: unknown): PredictOutcome => {
        const failed = asMemberFailure(error);
        this.metrics.failed(failed.reason);
        const outcome = { kind: 'failure', model: state.identity, reason: failed.reason, message: failed.message } as const;
        return failed.detail === undefined ? outcome : { ...outcome, detail: failed.detail };
      },
    );
  }

  datasetForecast(signal: AbortSignalLike | undefined): Promise<EntryForecast> {
    const state = this.resolve();
    if (state.standing !== null) {
      return Promise.resolve({ ok: false, reason: state.standing.reason, message: `ensemble ${this.name}: ${state.standing.message}` });
    }
    return this.forecast(state, this.dataset?.snapshot ?? null, signal).then(
      (combined): EntryForecast => ({ ok: true, values: combined.values, quantiles: combined.quantiles }),
      (error: unknown): EntryForecast => {
        const failed = asMemberFailure(error);
        return failed.detail === undefined
          ? { ok: false, reason: failed.reason, message: failed.message }
          : { ok: false, reason: failed.reason, message: failed.message, detail: failed.detail };
      },
    );
  }

  /**
   * Every member's forecast of its own newest window, combined. With the cache, callers of one snapshot and
   * one set of member versions share one computation (which no single caller cancels).
   */
  private forecast(state: EnsembleState, snapshot: DatasetSnapshot | null, signal: AbortSignalLike | undefined): Promise<Combined> {
    const cache = this.ownCache;
    if (cache === null || snapshot === null) return this.combineMembers(state, signal);
    return cache.get(`${state.key}:${snapshot.version}`, () => this.combineMembers(state, undefined));
  }

  private combineMembers(state: EnsembleState, signal: AbortSignalLike | undefined): Promise<Combined> {
    return Promise.all(state.members.map((m) => m.member.datasetForecast(signal))).then((results) => {
      const values: FloatArray[] = [];
      const quantiles: FloatArray[] = [];
      for (let i = 0; i < results.length; i++) {
        const r = results[i] as EntryForecast;
        if (!r.ok) throw new MemberFailed(r.reason, `member ${(state.members[i] as { name: string }).name} of ensemble ${this.name}: ${r.message}`, r.detail);
        values.push(r.values);
        if (r.quantiles !== null) quantiles.push(r.quantiles);
      }
      return this.combined(state, values, quantiles);
    });
  }

  private combined(state: EnsembleState, values: readonly FloatArray[], quantiles: readonly FloatArray[]): Combined {
    const shape = state.shape as ForecastShape;
    const weights = state.members.map((m) => m.weight);
    const q = shape.layout.quantiles;
    return {
      values: combineForecasts(values, weights, this.combine, shape.pointType === 'float32'),
      quantiles: q === null || quantiles.length !== values.length ? null : combineForecasts(quantiles, weights, this.combine, q.type === 'float32'),
    };
  }

  private success(state: EnsembleState, snapshot: DatasetSnapshot | null, combined: Combined, include: IncludeOptions | undefined): PredictOutcome {
    const model = state.identity;
    if (include === undefined || (!include.timestamps && !include.quantiles)) return { kind: 'success', model, values: combined.values };
    const layout = (state.shape as ForecastShape).layout;
    let timestamps: Float64Array | null = null;
    if (include.timestamps && snapshot !== null && snapshot.rows > 0) {
      const frequency = snapshotFrequency(snapshot);
      if (frequency !== null) timestamps = stepsAfter(snapshot.times[snapshot.rows - 1] as number, frequency, layout.horizon);
    }
    let quantiles: ForecastExtras['quantiles'] = null;
    const q = combined.quantiles;
    if (include.quantiles && layout.quantiles !== null && q !== null) {
      const levels = layout.quantiles.levels;
      const steps = layout.horizon * layout.outputVariables;
      quantiles = { levels, type: layout.quantiles.type, values: levels.map((_, k) => quantileLevel(q, levels.length, k, steps)) };
    }
    return { kind: 'success', model, values: combined.values, extras: { timestamps, quantiles } };
  }

  details(): ModelDetails {
    const state = this.resolve();
    const shape = state.shape;
    return {
      name: this.name,
      from: this.config.from,
      datasets: this.config.datasets,
      status: state.standing?.status ?? 'Ready',
      error: state.standing?.message ?? null,
      version: this.config.params.version,
      lookback: shape?.lookback ?? null,
      horizon: shape?.layout.horizon ?? null,
      variables: shape?.variables ?? null,
      quantiles: shape?.layout.quantiles?.levels ?? null,
      frequency: this.frequency(),
      mae: this.evaluation.result?.mae ?? null,
      skill: this.evaluation.result?.skill ?? null,
      composite: {
        kind: 'ensemble',
        combine: this.combine,
        members: this.memberDetails(this.members(), state.standing === null ? state.members.map((m) => m.weight) : null),
        ...(this.inverseMae ? { weightsFrom: this.weightsFrom() } : {}),
      },
    };
  }

  /** Client series: each member takes its own newest points of the series sent (SPEC "Shapes"). */
  seriesModel(keys: DrawKeys | undefined): SeriesModelLookup {
    const state = this.resolve();
    if (state.standing !== null) {
      const message = `Model ${this.name} cannot serve: ${state.standing.message}`;
      return state.standing.status === 'Error' ? { kind: 'failed', message } : { kind: 'loading', message };
    }
    const shape = state.shape as ForecastShape;
    const lookups: { name: string; lookback: number; forecast: (window: FloatArray, signal?: AbortSignalLike) => Promise<SeriesForecast> }[] = [];
    for (const m of state.members) {
      const lookup = this.ctx.lookup(m.name)?.seriesModel(keys);
      if (lookup === undefined || lookup.kind === 'not_found') return { kind: 'failed', message: `Model ${this.name} cannot serve: member ${m.name} is gone` };
      if (lookup.kind !== 'ready') return { ...lookup, message: `Model ${this.name}: member ${m.name}: ${lookup.message}` };
      lookups.push({ name: m.name, lookback: lookup.details.lookback ?? shape.lookback, forecast: lookup.forecast });
    }
    const lookback = shape.lookback;
    const variables = shape.variables;
    return {
      kind: 'ready',
      details: this.details(),
      layout: shape.layout,
      pointType: shape.inputType,
      forecast: async (window: FloatArray, signal?: AbortSignalLike): Promise<SeriesForecast> => {
        try {
          const results = await Promise.all(lookups.map((l) => l.forecast(window.subarray((lookback - l.lookback) * variables), signal)));
          const combined = this.combined(
            state,
            results.map((r) => r.values),
            results.flatMap((r) => (r.quantiles === null ? [] : [r.quantiles])),
          );
          this.metrics.succeeded();
          return combined;
        } catch (error) {
          if (signal?.aborted !== true) this.metrics.failed(asMemberFailure(error).reason);
          throw error;
        }
      },
    };
  }
}

/** Members that serve must forecast alike: the same horizon, layout and variables (SPEC "Shapes"). */
function agreement(shapes: readonly { name: string; shape: ForecastShape }[], levels = false): Standing {
  const first = shapes[0];
  if (first === undefined) return null;
  for (const s of shapes.slice(1)) {
    const a = first.shape;
    const b = s.shape;
    const differ = (what: string, x: unknown, y: unknown): Standing => ({
      status: 'Error',
      reason: 'ERR_MODEL_CONTRACT',
      message: `members disagree on ${what}: ${first.name} has ${String(x)}, ${s.name} has ${String(y)}`,
    });
    if (a.layout.horizon !== b.layout.horizon) return differ('the horizon', a.layout.horizon, b.layout.horizon);
    if (a.layout.outputVariables !== b.layout.outputVariables || a.layout.perStepRows !== b.layout.perStepRows) {
      return differ('the output layout', layoutText(a.layout), layoutText(b.layout));
    }
    if (a.variables !== b.variables) return differ('the variables', a.variables, b.variables);
    if (levels) {
      const la = a.layout.quantiles?.levels ?? [];
      const lb = b.layout.quantiles?.levels ?? [];
      if (la.length !== lb.length || la.some((l, i) => l !== lb[i])) {
        return differ('the quantile levels', la.length === 0 ? 'none' : la.join(', '), lb.length === 0 ? 'none' : lb.join(', '));
      }
    }
  }
  return null;
}

function layoutText(layout: ForecastLayout): string {
  return layout.perStepRows ? `[batch, ${layout.horizon}, ${layout.outputVariables}]` : `[batch, ${layout.horizon}]`;
}

function asMemberFailure(error: unknown): { reason: FailureReason; message: string; detail: string | undefined } {
  if (error instanceof MemberFailed) return { reason: error.reason, message: error.message, detail: error.detail };
  const message = error instanceof Error ? error.message : String(error);
  return { reason: 'ERR_INFERENCE', message, detail: undefined };
}

/** A variants entry as resolved against its members' current versions. */
interface VariantsState {
  readonly key: string;
  readonly standing: Standing;
  /** Members that can be drawn: serving, with a weight above 0. */
  readonly drawable: readonly { readonly name: string; readonly weight: number; readonly entry: PodEntry }[];
  readonly totalWeight: number;
  readonly identity: ModelIdentity;
}

class VariantsSlot extends CompositeBase implements PodEntry {
  readonly member = null;
  private state: VariantsState | null = null;
  /** Per member identity (one per loaded version), the identity answers carry: stable, so bodies shape once. */
  private readonly identities = new WeakMap<ModelIdentity, ModelIdentity>();

  protected get kind(): 'variants' {
    return 'variants';
  }

  private get sticky(): StickyRule {
    const source = this.config.source;
    return source.kind === 'variants' ? source.sticky : { kind: 'none' };
  }

  stateKey(): string {
    return 'V' + this.resolve().key;
  }

  protected standing(): Standing {
    return this.resolve().standing;
  }

  private resolve(): VariantsState {
    const members = this.members();
    const key = this.membersKey(members);
    if (this.state !== null && this.state.key === key) return this.state;
    const state = this.check(key, members);
    this.state = state;
    return state;
  }

  private check(key: string, members: readonly ResolvedMember[]): VariantsState {
    const identity: ModelIdentity = { name: this.name, version: this.config.params.version, lookback: null };
    const serving: { name: string; weight: number; entry: PodEntry; shape: ForecastShape }[] = [];
    const problems: string[] = [];
    let waiting = false;
    for (const m of members) {
      const shape = m.entry?.member?.forecastShape() ?? null;
      if (m.entry === undefined || shape === null) {
        problems.push(`${m.name}: not a model or ensemble of the pod`);
      } else if (shape.ok) {
        serving.push({ name: m.name, weight: m.weight, entry: m.entry, shape: shape.shape });
      } else {
        if (shape.status === 'Initializing' && m.weight > 0) waiting = true;
        problems.push(`${m.name}: ${shape.message}`);
      }
    }
    const mismatch = agreement(serving, true);
    if (mismatch !== null) return { key, standing: mismatch, drawable: [], totalWeight: 0, identity };
    const drawable = serving.filter((m) => m.weight > 0).map((m) => ({ name: m.name, weight: m.weight, entry: m.entry }));
    if (drawable.length === 0) {
      const standing: Standing = waiting
        ? { status: 'Initializing', reason: 'MODEL_LOADING', message: 'no member with a weight above 0 serves yet' }
        : { status: 'Error', reason: 'ERR_MODEL_LOAD', message: `no member with a weight above 0 can serve (${problems.join('; ') || 'every serving member has weight 0'})` };
      return { key, standing, drawable, totalWeight: 0, identity };
    }
    const totalWeight = drawable.reduce((sum, m) => sum + m.weight, 0);
    return { key, standing: null, drawable, totalWeight, identity };
  }

  /** The draw key of a request under this entry's `sticky`; null when it has none (a random draw). */
  private drawKey(keys: DrawKeys | undefined): string | null {
    const sticky = this.sticky;
    if (sticky.kind === 'none' || keys === undefined) return null;
    const key = sticky.kind === 'api_key' ? keys.apiKey : (keys.headers.get(sticky.name) ?? null);
    return key === null || key === '' ? null : key;
  }

  /** One member by weight: rendezvous hashing over the key, or a random draw without one. */
  private draw(state: VariantsState, keys: DrawKeys | undefined): { readonly name: string; readonly entry: PodEntry } {
    const key = this.drawKey(keys);
    const drawable = state.drawable;
    if (key === null) {
      let r = Math.random() * state.totalWeight;
      for (const m of drawable) {
        r -= m.weight;
        if (r < 0) return m;
      }
      return drawable[drawable.length - 1] as (typeof drawable)[number];
    }
    let best = drawable[0] as (typeof drawable)[number];
    let bestScore = -Infinity;
    for (const m of drawable) {
      const score = rendezvousScore(key, m.name, m.weight);
      if (score > bestScore) {
        best = m;
        bestScore = score;
      }
    }
    return best;
  }

  /** Draws happen in predict(), once per request; here only an entry that cannot serve is answered. */
  predictNow(): PredictOutcome | undefined {
    const state = this.resolve();
    return state.standing === null ? undefined : this.failureOutcome(state.identity, state.standing);
  }

  predict(signal: AbortSignalLike | undefined, include: IncludeOptions | undefined, keys: DrawKeys | undefined): Promise<PredictOutcome> {
    const state = this.resolve();
    if (state.standing !== null) return Promise.resolve(this.failureOutcome(state.identity, state.standing));
    const drawn = this.draw(state, keys);
    this.ctx.variantDrawn(this.name, drawn.name);
    return drawn.entry.predict(signal, include, keys).then((outcome) => this.relabel(outcome, drawn.name));
  }

  /** A member's answer as this entry's: model_name as requested, the member as `variant`. */
  private relabel(outcome: PredictOutcome, variant: string): PredictOutcome {
    if (outcome.kind === 'not_found') {
      this.metrics.failed('ERR_MODEL_LOAD');
      return { kind: 'failure', model: this.identityOf({ name: variant, version: null, lookback: null }, variant), reason: 'ERR_MODEL_LOAD', message: `member ${variant} of ${this.name} is gone` };
    }
    if (outcome.kind === 'success') this.metrics.succeeded();
    else this.metrics.failed(outcome.reason);
    return { ...outcome, model: this.identityOf(outcome.model, variant) };
  }

  private identityOf(member: ModelIdentity, variant: string): ModelIdentity {
    let identity = this.identities.get(member);
    if (identity === undefined || identity.variant !== variant || identity.name !== this.name) {
      identity = { name: this.name, version: this.config.params.version ?? member.version, lookback: member.lookback, variant };
      this.identities.set(member, identity);
    }
    return identity;
  }

  details(): ModelDetails {
    const state = this.resolve();
    const members = this.members();
    const shown = state.drawable[0]?.entry.details() ?? null;
    return {
      name: this.name,
      from: this.config.from,
      datasets: this.config.datasets,
      status: state.standing?.status ?? 'Ready',
      error: state.standing?.message ?? null,
      version: this.config.params.version,
      lookback: shown?.lookback ?? null,
      horizon: shown?.horizon ?? null,
      variables: shown?.variables ?? null,
      quantiles: shown?.quantiles ?? null,
      frequency: this.frequency(),
      // A variants entry has no metrics of its own: its members' evaluations are listed side by side.
      mae: null,
      skill: null,
      composite: { kind: 'variants', sticky: stickyText(this.sticky), members: this.memberDetails(members) },
    };
  }

  /** Each member's own evaluation with its weight, side by side (SPEC); no metrics of the entry's own. */
  evaluationReport(): EntryEvaluation {
    const variants: Record<string, EntryEvaluation & { weight: number }> = {};
    const statuses: EvaluationStatus[] = [];
    for (const m of this.members()) {
      const report: EntryEvaluation =
        m.entry?.evaluationReport() ?? { model: m.name, dataset: null, status: 'Error', error: `member ${m.name} is not in the pod` };
      variants[m.name] = { ...report, weight: m.weight };
      statuses.push(report.status);
    }
    return { model: this.name, status: combinedStatus(statuses), variants };
  }

  evaluationResult(): null {
    return null;
  }

  async evaluationSettled(): Promise<void> {
    await Promise.all(this.members().map((m) => m.entry?.evaluationSettled()));
  }

  /** One KServe request is one draw. */
  seriesModel(keys: DrawKeys | undefined): SeriesModelLookup {
    const state = this.resolve();
    if (state.standing !== null) {
      const message = `Model ${this.name} cannot serve: ${state.standing.message}`;
      return state.standing.status === 'Error' ? { kind: 'failed', message } : { kind: 'loading', message };
    }
    const drawn = this.draw(state, keys);
    this.ctx.variantDrawn(this.name, drawn.name);
    const lookup = drawn.entry.seriesModel(keys);
    if (lookup.kind !== 'ready') return lookup;
    const details = this.details();
    return {
      ...lookup,
      details: { ...lookup.details, name: this.name, from: this.config.from, version: this.config.params.version ?? lookup.details.version, composite: details.composite },
      variant: drawn.name,
    } as SeriesModelLookup;
  }
}

/**
 * What inverse_mae weights are computed from: every member's latest evaluation (and version); null until every
 * member has one.
 */
function memberEvaluationsKey(members: readonly ResolvedMember[]): string | null {
  let key = '';
  for (const m of members) {
    const result = m.entry?.evaluationResult() ?? null;
    if (m.entry === undefined || result === null) return null;
    key += `${m.entry.stateKey()}@${result.computed_at};`;
  }
  return key;
}

/** 1/MAE normalised; a member with MAE 0 takes all the weight (shared with others at 0); null if one has none. */
export function inverseMaeWeights(maes: readonly (number | null)[]): number[] | null {
  if (maes.some((m) => m === null || !Number.isFinite(m))) return null;
  const values = maes as readonly number[];
  const perfect = values.filter((m) => m === 0).length;
  const raw = perfect > 0 ? values.map((m) => (m === 0 ? 1 : 0)) : values.map((m) => 1 / m);
  const total = raw.reduce((a, b) => a + b, 0);
  return raw.map((w) => w / total);
}

/** A variants entry's evaluation status from its members': Computing while any computes, Ready once all can say. */
function combinedStatus(statuses: readonly EvaluationStatus[]): EvaluationStatus {
  if (statuses.includes('Computing')) return 'Computing';
  if (statuses.length > 0 && statuses.every((s) => s === 'Off')) return 'Off';
  if (statuses.length > 0 && statuses.every((s) => s === 'Error' || s === 'Off')) return 'Error';
  return 'Ready';
}

/**
 * An ensemble as a backtest sees a forecaster: each low-priority run hands every member the newest L_i steps of
 * each window (the ensemble's window is the longest), runs them on the members' own forecasters, and combines
 * the outputs as requests are combined.
 */
class EnsembleBacktest implements BacktestForecaster {
  readonly shape: ForecastModelShape;
  readonly extraOutputs: readonly string[];
  readonly settings: ForecasterSettings;

  constructor(
    private readonly members: readonly { readonly forecaster: BacktestForecaster; readonly weight: number }[],
    private readonly combine: 'mean' | 'median' | 'weighted',
    shape: ForecastShape,
  ) {
    const layout = shape.layout;
    this.shape = {
      inputName: 'window',
      inputType: shape.inputType,
      rank: 3,
      lookback: shape.lookback,
      variables: shape.variables,
      batch: members.some((m) => m.forecaster.shape.batch === 1) ? 1 : 'dynamic',
      outputName: 'forecast',
      outputType: shape.pointType,
      outputItemShape: layout.perStepRows ? [layout.horizon, layout.outputVariables] : [layout.horizon],
    };
    this.extraOutputs = layout.quantiles === null ? [] : ['quantiles'];
    const first = (members[0] as { forecaster: BacktestForecaster }).forecaster.settings;
    this.settings = { ...first, maxConcurrentRuns: Math.min(...members.map((m) => m.forecaster.settings.maxConcurrentRuns)) };
  }

  async runBackground(data: Float32Array | Float64Array, count: number): Promise<BackgroundResult> {
    const { lookback, variables } = this.shape;
    const results = await Promise.all(
      this.members.map((m) => {
        const own = m.forecaster.shape.lookback;
        const window = allocateTensorData(m.forecaster.shape.inputType, count * own * variables);
        for (let k = 0; k < count; k++) {
          window.set(data.subarray((k * lookback + lookback - own) * variables, (k + 1) * lookback * variables), k * own * variables);
        }
        return m.forecaster.runBackground(window, count);
      }),
    );
    const weights = this.members.map((m) => m.weight);
    const outputs: FloatArray[] = [combineForecasts(results.map((r) => r.outputs[0] as FloatArray), weights, this.combine, this.shape.outputType === 'float32')];
    if (this.extraOutputs.length > 0) {
      outputs.push(combineForecasts(results.map((r) => r.outputs[1] as FloatArray), weights, this.combine, false));
    }
    return { outputs, inferenceMs: Math.max(...results.map((r) => r.inferenceMs)) };
  }
}

function stickyText(sticky: StickyRule): string {
  return sticky.kind === 'header' ? `header:${sticky.name}` : sticky.kind;
}

/**
 * Weighted rendezvous hashing (Schindelhauer and Schomaker's logarithmic method): the member with the highest
 * -weight / ln(u) wins, u uniform in (0, 1) from SHA-256 over (key, member). Unseeded, so every replica and
 * restart draws alike; member order does not matter; a weight change moves only the keys it must.
 */
export function rendezvousScore(key: string, member: string, weight: number): number {
  const digest = createHash('sha256').update(key, 'utf8').update('\u0000').update(member, 'utf8').digest();
  // 52 bits of the digest, strictly inside (0, 1).
  const high = digest.readUInt32BE(0) >>> 12;
  const low = digest.readUInt32BE(4);
  const u = (high * 2 ** 32 + low + 0.5) / 2 ** 52;
  return -weight / Math.log(u);
}
