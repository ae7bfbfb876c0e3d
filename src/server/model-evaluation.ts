/**
 * One model's evaluation (SPEC "Evaluation"): when a serving version or its dataset's snapshot is new, the
 * backtest runs again (at most one at a time; a newer one cancels the running one; an unchanged snapshot is
 * not evaluated again), and the last results stay visible, with status Computing, while the next run.
 */
import { errorMessage } from '../errors.js';
import type { DatasetSnapshot } from '../datasets/types.js';
import { backtest, backtestProblem } from '../evaluation/backtest.js';
import type { BacktestForecaster, BacktestResult, EvaluationReport, EvaluationStatus } from '../evaluation/backtest.js';
import type { Logger } from '../log.js';
import { Cancellation } from '../runtime/cancellation.js';
import type { ModelConfig } from '../spicepod/types.js';
import { userMessage } from './user-messages.js';

export type { EvaluationReport, EvaluationStatus } from '../evaluation/backtest.js';

/** What an evaluation needs of a serving version. */
export interface EvaluationTarget {
  readonly config: ModelConfig;
  readonly forecaster: BacktestForecaster;
  readonly datasetName: string | null;
  /** Unique per serving version. */
  readonly generation: number;
}

export class ModelEvaluation {
  #status: EvaluationStatus = 'Computing';
  #error: string | null = null;
  #result: BacktestResult | null = null;
  /** generation:snapshot of the run in progress or last finished; a run whose key is no longer this is stale. */
  #key = '';
  #cancel: Cancellation | null = null;
  #running: Promise<void> | null = null;
  #dataset: string | null;

  constructor(
    private readonly model: string,
    dataset: string | null,
    private readonly logger: Logger,
  ) {
    this.#dataset = dataset;
  }

  get status(): EvaluationStatus {
    return this.#status;
  }

  /** The last finished results (also while the next run computes); null before the first. */
  get result(): BacktestResult | null {
    return this.#result;
  }

  /** Resolves when no run is in progress (tests and the CLI wait on it). */
  async settled(): Promise<void> {
    while (this.#running !== null) await this.#running;
  }

  /** The route's object. */
  report(): EvaluationReport {
    const head = { model: this.model, dataset: this.#dataset, status: this.#status };
    const withError = this.#error === null ? head : { ...head, error: this.#error };
    return this.#result === null ? withError : { ...withError, ...this.#result };
  }

  /** The model cannot be evaluated now or ever (no dataset, no horizon, turned off). */
  off(reason: string): void {
    this.stop();
    this.#key = '';
    this.#status = 'Off';
    this.#error = reason;
    this.#result = null;
  }

  /** The model failed to load: nothing to evaluate. */
  failed(reason: string): void {
    if (this.#result !== null) return;
    this.stop();
    this.#key = '';
    this.#status = 'Error';
    this.#error = reason;
  }

  /** Cancels a run in progress. */
  stop(): void {
    this.#cancel?.abort(new Error('evaluation superseded'));
    this.#cancel = null;
  }

  /**
   * Evaluates `target` on `snapshot` unless that pair was evaluated (or is being evaluated) already.
   * Never rejects: a failure becomes status Error with the reason.
   */
  update(target: EvaluationTarget, snapshot: DatasetSnapshot | null): void {
    this.#dataset = target.datasetName;
    const params = target.config.params.evaluation;
    if (target.datasetName === null) {
      this.off(`model ${this.model} has no dataset to evaluate on`);
      return;
    }
    if (params.origins === 0) {
      this.off('evaluation is turned off (params.evaluation.origins is 0)');
      return;
    }
    const problem = backtestProblem(target.forecaster);
    if (problem !== null) {
      this.off(problem);
      return;
    }
    if (snapshot === null) return;
    const key = `${target.generation}:${snapshot.version}`;
    if (key === this.#key) return;
    this.stop();
    this.#key = key;
    this.#status = 'Computing';
    const cancel = new Cancellation();
    this.#cancel = cancel;
    const run = backtest(target.forecaster, {
      snapshot,
      datasetName: target.datasetName,
      fillMissing: target.config.params.fillMissing,
      origins: params.origins,
      since: params.since,
      seasonLength: params.seasonLength,
      quantiles: target.config.params.quantiles,
      signal: cancel,
    }).then(
      (result) => {
        if (this.#key !== key) return;
        this.#result = result;
        this.#status = 'Ready';
        this.#error = null;
        this.logger.info(
          { model: this.model, origins: result.origins, skipped: result.skipped, mae: result.mae, skill: result.skill, ms: result.duration_ms },
          `model ${this.model} evaluated on ${result.origins} origins`,
        );
      },
      (error: unknown) => {
        if (this.#key !== key || cancel.aborted) return;
        this.#status = 'Error';
        this.#error = userMessage(error, { model: this.model, from: target.config.from });
        this.logger.warn({ model: this.model }, `model ${this.model} could not be evaluated: ${errorMessage(error)}`);
      },
    );
    const tracked: Promise<void> = run.finally(() => {
      if (this.#running === tracked) this.#running = null;
      if (this.#cancel === cancel) this.#cancel = null;
    });
    this.#running = tracked;
  }
}
