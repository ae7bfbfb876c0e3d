/**
 * The setup the HAProxy and nginx suites share: three replicas over one PostgreSQL table serving models
 * alpha and beta, the balancer in front, the answers each model may give, and closed-loop loads against the
 * balancer. balancedCluster() starts it before a describe block's tests and stops it after them.
 */
import { afterAll, beforeAll, expect } from 'vitest';
import { Balancer, scratchDir, type BalancerKind } from './harness.js';
import { Cluster, modelFile, type ModelFile } from './cluster.js';
import { ClosedLoopLoad, type LoadOptions } from './load.js';

/** Connections of every closed-loop load. */
const CONNECTIONS = 24;

export interface BalancedOptions {
  readonly kind: BalancerKind;
  /** Seeds of alpha's and beta's model files (model_version 1). */
  readonly seeds: readonly [number, number];
  /** Arguments every replica gets after the pod folder. */
  readonly replicaArgs?: readonly string[];
}

export class BalancedCluster {
  readonly kind: BalancerKind;
  readonly models: Record<string, ModelFile>;
  /** Per model, the answers (answerKey) a correct replica may give now. */
  readonly accepted = new Map<string, Set<string>>();
  readonly #scratch: { dir: string; remove(): void };
  readonly #replicaArgs: readonly string[] | undefined;
  #cluster: Cluster | undefined;
  #balancer: Balancer | undefined;

  constructor(options: BalancedOptions) {
    this.kind = options.kind;
    this.models = { alpha: modelFile(options.seeds[0], 1), beta: modelFile(options.seeds[1], 1) };
    this.#scratch = scratchDir(`forecastd-scale-${options.kind}-`);
    this.#replicaArgs = options.replicaArgs;
  }

  get cluster(): Cluster {
    if (this.#cluster === undefined) throw new Error('the replicas are not started (balancedCluster starts them in beforeAll)');
    return this.#cluster;
  }

  get balancer(): Balancer {
    if (this.#balancer === undefined) throw new Error(`${this.kind} is not started (balancedCluster starts it in beforeAll)`);
    return this.#balancer;
  }

  async start(): Promise<void> {
    this.#cluster = await Cluster.start(this.#scratch.dir, this.models, this.#replicaArgs === undefined ? {} : { args: this.#replicaArgs });
    this.#balancer = await Balancer.start(this.kind, this.#cluster.replicas, this.#scratch.dir);
    await this.accept('alpha', this.models.alpha!);
    await this.accept('beta', this.models.beta!);
  }

  async stop(): Promise<void> {
    await this.#balancer?.stop();
    await this.#cluster?.stop();
    this.#scratch.remove();
  }

  /**
   * Adds the answer `file` gives over the table's newest `rows` rows (the rows it holds now by default) to those
   * `model` may give, or, with `replace`, makes it the only one. Resolves to that answer's key.
   */
  async accept(model: string, file: ModelFile, replace = false, rows = this.cluster.rows): Promise<string> {
    const key = await this.cluster.reference(file, rows);
    const known = this.accepted.get(model);
    if (replace || known === undefined) this.accepted.set(model, new Set([key]));
    else known.add(key);
    return key;
  }

  /** A closed-loop load of alpha and beta through the balancer, each answer checked against `accepted`. */
  load(extra: Partial<LoadOptions> = {}): ClosedLoopLoad {
    return new ClosedLoopLoad({
      url: this.balancer.url,
      connections: CONNECTIONS,
      models: () => ['alpha', 'beta'],
      accepted: (m) => this.accepted.get(m) ?? new Set(),
      ...extra,
    });
  }

  /** One `[scale-out]` line of a test's numbers (times, p99, retries): printed, never asserted on. */
  report(test: string, numbers: Record<string, unknown>): void {
    console.info(`[scale-out] ${this.kind} ${test} ${JSON.stringify(numbers)}`);
  }
}

/** A BalancedCluster started before the tests of the describe block that calls this, stopped after them. */
export function balancedCluster(options: BalancedOptions): BalancedCluster {
  const setup = new BalancedCluster(options);
  beforeAll(() => setup.start());
  afterAll(() => setup.stop());
  return setup;
}

/** Milliseconds to one decimal, as the reports print them. */
export function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}

/** A load that sent requests and met no failure (the first five failures shown when it did). */
export function expectNoFailures(run: ClosedLoopLoad): void {
  expect(run.failures.slice(0, 5)).toEqual([]);
  expect(run.requests).toBeGreaterThan(0);
}

/** The numbers every rolling-restart report starts with: the load, its failures, the roll's length, p99 before and during it. */
export function rollNumbers(run: ClosedLoopLoad, rollStart: number, rollEnd: number): Record<string, number> {
  return {
    connections: CONNECTIONS,
    requests: run.requests,
    failed: run.failures.length,
    clientResends: run.clientResends,
    rollSeconds: round((rollEnd - rollStart) / 1000),
    p99SteadyMs: round(run.percentile(99, 1_000, rollStart)),
    p99RollMs: round(run.percentile(99, rollStart, rollEnd)),
  };
}
