import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { HistogramConfiguration } from 'prom-client';

/**
 * The server's Prometheus metrics, in their own registry (never prom-client's global one, so embedding
 * apps and several servers in one process do not collide). Hot paths use label children bound once.
 */

/**
 * One label set of a LocalHistogram: plain numbers, so an observation is a bucket search and three additions.
 * (A prom-client label child hashes and validates its labels on every observation.)
 */
class HistogramChild {
  /** Per bucket, not cumulative; the last slot counts values above every bound. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(
    readonly labels: Readonly<Record<string, string>>,
    private readonly bounds: readonly number[],
  ) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    // prom-client refuses non-finite values by throwing; on a request path that would turn a metric into a 500.
    if (!Number.isFinite(value)) return;
    const bounds = this.bounds;
    const n = bounds.length;
    let i = 0;
    while (i < n && value > bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
  }
}

type HistogramGet = Awaited<ReturnType<Histogram['get']>>;
type HistogramValue = HistogramGet['values'][number];

/** A value as prom-client's Registry prints it: the child's labels come after `le`, as prom-client orders them. */
interface HistogramExportValue {
  readonly labels: Readonly<Record<string, string | number>>;
  readonly sharedLabels: Readonly<Record<string, string>>;
  readonly value: number;
  readonly metricName: string;
}

/**
 * A prom-client Histogram (so it registers and prints as one, exactly as prom-client would) whose counts live
 * in HistogramChild objects bound once per label set.
 */
class LocalHistogram<L extends string> extends Histogram<L> {
  readonly #name: string;
  readonly #help: string;
  readonly #bounds: readonly number[];
  readonly #labelNames: readonly L[];
  readonly #children = new Map<string, HistogramChild>();

  constructor(config: HistogramConfiguration<L> & { readonly buckets: number[]; readonly labelNames: readonly L[] }) {
    super(config);
    this.#name = config.name;
    this.#help = config.help;
    this.#bounds = [...config.buckets].sort((a, b) => a - b);
    this.#labelNames = config.labelNames;
  }

  /** The child of these label values (in labelNames order), created on first use. */
  child(...values: string[]): HistogramChild {
    const key = values.join('\u0000');
    let child = this.#children.get(key);
    if (child === undefined) {
      const labels: Record<string, string> = {};
      this.#labelNames.forEach((name, i) => {
        labels[name] = values[i] ?? '';
      });
      child = new HistogramChild(labels, this.#bounds);
      this.#children.set(key, child);
    }
    return child;
  }

  /** Drops the child of these label values, so its series leaves the output. */
  removeChild(...values: string[]): void {
    this.#children.delete(values.join('\u0000'));
  }

  override reset(): void {
    super.reset();
    // prom-client's constructor calls reset() before this class's fields exist.
    if (!(#children in this)) return;
    for (const child of this.#children.values()) {
      child.counts.fill(0);
      child.sum = 0;
      child.count = 0;
    }
  }

  /** What prom-client's Registry prints from (the shape prom-client's own Histogram gives it). */
  async getForPromString(): Promise<{ name: string; help: string; type: 'histogram'; aggregator: 'sum'; values: HistogramExportValue[] }> {
    const values: HistogramExportValue[] = [];
    const name = this.#name;
    for (const child of this.#children.values()) {
      // As prom-client: a label set appears once something was observed for it.
      if (child.count === 0) continue;
      const shared = child.labels;
      let acc = 0;
      this.#bounds.forEach((bound, i) => {
        acc += child.counts[i]!;
        values.push({ labels: { le: bound }, sharedLabels: shared, value: acc, metricName: `${name}_bucket` });
      });
      values.push({ labels: { le: '+Inf' }, sharedLabels: shared, value: child.count, metricName: `${name}_bucket` });
      values.push({ labels: {}, sharedLabels: shared, value: child.sum, metricName: `${name}_sum` });
      values.push({ labels: {}, sharedLabels: shared, value: child.count, metricName: `${name}_count` });
    }
    return { name, help: this.#help, type: 'histogram', aggregator: 'sum', values };
  }

  override async get(): Promise<HistogramGet> {
    const data = await this.getForPromString();
    const values = data.values.map(
      ({ labels, sharedLabels, value, metricName }): HistogramValue => ({ value, metricName, labels: { ...labels, ...sharedLabels } }),
    );
    // prom-client's typings declare `type` as a numeric enum its runtime never uses: the value is the string.
    return { ...data, type: data.type as unknown as HistogramGet['type'], values, collect: () => undefined };
  }
}

/**
 * Counts per label set in plain numbers, copied into its prom-client Counter at scrape time (a prom-client
 * label child hashes and validates its labels on every inc).
 */
class CounterChild {
  value = 0;
  constructor(readonly labels: Readonly<Record<string, string>>) {}
  inc(): void {
    this.value++;
  }
}

/** Fixed route labels: the label set stays small whatever URLs clients send. */
export type RouteLabel =
  | '/v1/models/:name/predict'
  | '/v1/models/:name'
  | '/v1/models/:name/evaluation'
  | '/v1/timeseries/forecast'
  | '/v1/timeseries/models'
  | '/v1/predict'
  | '/v1/models'
  | '/v1/datasets'
  | '/health'
  | '/v1/ready'
  | '/metrics'
  | '/v1/datasets/:name/rows'
  | '/openapi.json'
  | '/'
  | '/assets/*'
  | 'unmatched';

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];

/** Live numbers a model exposes; read at scrape time so nothing is updated per request. */
export interface ModelGaugeSource {
  queueDepth(): number;
  cacheHits(): number;
  cacheMisses(): number;
  /** The latest finished evaluation's numbers; null before one (absent: the model is never evaluated). */
  evaluation?(): EvaluationGauges | null;
}

/** What /metrics shows of a model's evaluation (SPEC "Evaluation"). */
export interface EvaluationGauges {
  readonly mae: number | null;
  readonly skill: number | null;
  /** [quantile level, calibration] per level. */
  readonly calibration: readonly (readonly [number, number | null])[];
  /** [nominal coverage, coverage] per interval. */
  readonly coverage: readonly (readonly [number, number | null])[];
}

/** Live numbers a dataset exposes; read at scrape time. */
export interface DatasetGaugeSource {
  rows(): number;
  /**
   * Epoch ms of the last successful refresh check (one that found nothing new counts: the data is known
   * current as of then), null before the first.
   */
  refreshedAt(): number | null;
}

export interface ModelMetrics {
  /** A prediction answered successfully (from a run or from the cache). */
  succeeded(): void;
  failed(reason: string): void;
  /** One run the forecaster finished: its size, each window's wait, and the run's time. */
  batch(size: number, queueMs: readonly number[], inferenceMs: number): void;
  /** A forecast whose quantile output was not monotone in the level for some step. */
  quantileCrossing(): void;
}

/** One route's children of http_request_duration_seconds and http_requests_total. */
interface RouteChildren {
  readonly duration: HistogramChild;
  readonly byStatus: Map<number, CounterChild>;
  /** byStatus's 200, the status of nearly every answer, looked up without hashing. */
  ok: CounterChild | null;
}

export class ServerMetrics {
  readonly registry: Registry;
  private readonly requestDuration: LocalHistogram<'route'>;
  private readonly batchSize: LocalHistogram<'model'>;
  private readonly queueTime: LocalHistogram<'model'>;
  private readonly inferenceTime: LocalHistogram<'model'>;
  /** Per route: its duration child and its request counters by status code (200's also at hand). */
  private readonly routeChildren = new Map<RouteLabel, RouteChildren>();
  /** Children of http_requests_total, forecastd_predictions_total and ..._failures_total, in first-use order. */
  private readonly requestCounts: CounterChild[] = [];
  private readonly predictionCounts: CounterChild[] = [];
  private readonly failureCounts: CounterChild[] = [];
  private readonly crossingCounts: CounterChild[] = [];
  private readonly stalledClients: Counter;
  /** forecastd_variant_requests_total, by "model\u0000variant". */
  private readonly variantCounts = new Map<string, CounterChild>();
  private readonly modelSources = new Map<string, ModelGaugeSource>();
  private readonly datasetSources = new Map<string, DatasetGaugeSource>();
  private inFlight: () => number = () => 0;

  constructor() {
    this.registry = new Registry();
    collectDefaultMetrics({ register: this.registry });
    const registers = [this.registry];
    const requestCounts = this.requestCounts;
    const predictionCounts = this.predictionCounts;
    const failureCounts = this.failureCounts;
    const crossingCounts = this.crossingCounts;
    const variantCounts = this.variantCounts;
    new Counter({
      name: 'forecastd_variant_requests_total',
      help: 'Requests to a variants entry, by entry (model) and the member drawn to answer (variant).',
      labelNames: ['model', 'variant'],
      registers,
      collect() {
        copyCounts(this, [...variantCounts.values()]);
      },
    });
    new Counter({
      name: 'forecastd_quantile_crossings_total',
      help: 'Forecasts whose quantile output was not monotone in the level for some step (a higher level below a lower one), by model.',
      labelNames: ['model'],
      registers,
      collect() {
        copyCounts(this, crossingCounts);
      },
    });
    this.stalledClients = new Counter({
      name: 'forecastd_http_stalled_connections_total',
      help: 'Connections closed because the client took nothing of a large answer for the stall time.',
      registers,
    });
    new Counter({
      name: 'http_requests_total',
      help: 'HTTP requests answered, by route and status code.',
      labelNames: ['route', 'status'],
      registers,
      collect() {
        copyCounts(this, requestCounts);
      },
    });
    this.requestDuration = new LocalHistogram({
      name: 'http_request_duration_seconds',
      help: 'Time from a request arriving to its response being written, by route.',
      labelNames: ['route'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    new Counter({
      name: 'forecastd_predictions_total',
      help: 'Predictions answered successfully, by model.',
      labelNames: ['model'],
      registers,
      collect() {
        copyCounts(this, predictionCounts);
      },
    });
    new Counter({
      name: 'forecastd_prediction_failures_total',
      help: 'Predictions that failed, by model and reason (an error code, or MODEL_LOADING).',
      labelNames: ['model', 'reason'],
      registers,
      collect() {
        copyCounts(this, failureCounts);
      },
    });
    this.batchSize = new LocalHistogram({
      name: 'forecastd_batch_size',
      help: 'Windows per inference run, by model.',
      labelNames: ['model'],
      buckets: BATCH_BUCKETS,
      registers,
    });
    this.queueTime = new LocalHistogram({
      name: 'forecastd_queue_seconds',
      help: 'Time a prediction waited for its batch to start, by model.',
      labelNames: ['model'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.inferenceTime = new LocalHistogram({
      name: 'forecastd_inference_seconds',
      help: 'Time of one inference run (a whole batch), by model.',
      labelNames: ['model'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    // prom-client calls collect() with `this` bound to the metric.
    const self = this;
    new Gauge({
      name: 'http_requests_in_flight',
      help: 'Requests received and not yet answered.',
      registers,
      collect() {
        this.set(self.inFlight());
      },
    });
    const modelSources = this.modelSources;
    const datasetSources = this.datasetSources;
    // Evaluation gauges: read from each model's latest finished evaluation at scrape time.
    const evaluationGauge = (name: string, help: string, labelNames: string[], read: (e: EvaluationGauges) => readonly (readonly [Record<string, string>, number | null])[]): void => {
      new Gauge({
        name,
        help,
        labelNames,
        registers,
        collect() {
          this.reset();
          for (const [model, source] of modelSources) {
            const e = source.evaluation?.() ?? null;
            if (e === null) continue;
            for (const [labels, value] of read(e)) if (value !== null && Number.isFinite(value)) this.set({ model, ...labels }, value);
          }
        },
      });
    };
    evaluationGauge('forecastd_evaluation_mae', 'Mean absolute error of the latest rolling-origin evaluation, by model.', ['model'], (e) => [[{}, e.mae]]);
    evaluationGauge(
      'forecastd_evaluation_skill',
      'Skill of the latest evaluation: 1 - MAE / MAE of the seasonal-naive baseline (naive when the season length is 1), by model.',
      ['model'],
      (e) => [[{}, e.skill]],
    );
    evaluationGauge(
      'forecastd_evaluation_quantile_calibration',
      'Share of actuals at or below the forecast of each quantile level in the latest evaluation, by model and level.',
      ['model', 'quantile'],
      (e) => e.calibration.map(([q, v]) => [{ quantile: String(q) }, v] as const),
    );
    evaluationGauge(
      'forecastd_evaluation_interval_coverage',
      'Share of actuals inside each symmetric quantile interval in the latest evaluation, by model and nominal coverage.',
      ['model', 'nominal'],
      (e) => e.coverage.map(([n, v]) => [{ nominal: String(n) }, v] as const),
    );
    new Gauge({
      name: 'forecastd_queue_depth',
      help: 'Predictions waiting for an inference run, by model.',
      labelNames: ['model'],
      registers,
      collect() {
        this.reset();
        for (const [model, source] of modelSources) this.set({ model }, source.queueDepth());
      },
    });
    new Counter({
      name: 'forecastd_prediction_cache_hits_total',
      help: 'Predictions answered from the prediction cache, by model.',
      labelNames: ['model'],
      registers,
      collect() {
        this.reset();
        for (const [model, source] of modelSources) this.inc({ model }, source.cacheHits());
      },
    });
    new Counter({
      name: 'forecastd_prediction_cache_misses_total',
      help: 'Predictions the prediction cache had to compute, by model.',
      labelNames: ['model'],
      registers,
      collect() {
        this.reset();
        for (const [model, source] of modelSources) this.inc({ model }, source.cacheMisses());
      },
    });
    new Gauge({
      name: 'forecastd_dataset_rows',
      help: 'Rows held in memory, by dataset.',
      labelNames: ['dataset'],
      registers,
      collect() {
        this.reset();
        for (const [dataset, source] of datasetSources) this.set({ dataset }, source.rows());
      },
    });
    new Gauge({
      name: 'forecastd_dataset_age_seconds',
      help: 'Seconds since the dataset was last checked against its source successfully (even when nothing changed), by dataset.',
      labelNames: ['dataset'],
      registers,
      collect() {
        this.reset();
        const now = Date.now();
        for (const [dataset, source] of datasetSources) {
          const at = source.refreshedAt();
          if (at !== null) this.set({ dataset }, Math.max(0, (now - at) / 1000));
        }
      },
    });
  }

  /** Counts one connection closed for taking nothing of its answer for the stall time. */
  stalledClient(): void {
    this.stalledClients.inc();
  }

  /** Where http_requests_in_flight reads its value. */
  trackInFlight(source: () => number): void {
    this.inFlight = source;
  }

  /** Counts one answered HTTP request. */
  request(route: RouteLabel, httpStatus: number, seconds: number): void {
    let children = this.routeChildren.get(route);
    if (children === undefined) {
      children = { duration: this.requestDuration.child(route), byStatus: new Map(), ok: null };
      this.routeChildren.set(route, children);
    }
    let counter = httpStatus === 200 ? children.ok : children.byStatus.get(httpStatus);
    if (counter == null) {
      counter = new CounterChild({ route, status: String(httpStatus) });
      children.byStatus.set(httpStatus, counter);
      if (httpStatus === 200) children.ok = counter;
      this.requestCounts.push(counter);
    }
    counter.inc();
    children.duration.observe(seconds);
  }

  /** Metrics of one model, label children bound once; `source` feeds the scrape-time gauges. */
  model(name: string, source: ModelGaugeSource): ModelMetrics {
    this.modelSources.set(name, source);
    // A model reloaded under the same name keeps counting where its previous version stopped.
    let predictions = this.predictionCounts.find((c) => c.labels['model'] === name);
    if (predictions === undefined) {
      predictions = new CounterChild({ model: name });
      this.predictionCounts.push(predictions);
    }
    const counted = predictions;
    const batchSize = this.batchSize.child(name);
    const queueTime = this.queueTime.child(name);
    const inferenceTime = this.inferenceTime.child(name);
    const failures = new Map<string, CounterChild>();
    const failureCounts = this.failureCounts;
    let crossings = this.crossingCounts.find((c) => c.labels['model'] === name);
    if (crossings === undefined) {
      crossings = new CounterChild({ model: name });
      this.crossingCounts.push(crossings);
    }
    const crossed = crossings;
    return {
      succeeded() {
        counted.inc();
      },
      failed(reason) {
        let counter = failures.get(reason);
        if (counter === undefined) {
          counter = failureCounts.find((c) => c.labels['model'] === name && c.labels['reason'] === reason);
          if (counter === undefined) {
            counter = new CounterChild({ model: name, reason });
            failureCounts.push(counter);
          }
          failures.set(reason, counter);
        }
        counter.inc();
      },
      batch(size, queueMs, inferenceMs) {
        batchSize.observe(size);
        for (let i = 0; i < queueMs.length; i++) queueTime.observe(queueMs[i]! / 1000);
        inferenceTime.observe(inferenceMs / 1000);
      },
      quantileCrossing() {
        crossed.inc();
      },
    };
  }

  /** A request to variants entry `model` was drawn to its member `variant`. */
  variantRequest(model: string, variant: string): void {
    const key = model + '\u0000' + variant;
    let counter = this.variantCounts.get(key);
    if (counter === undefined) {
      counter = new CounterChild({ model, variant });
      this.variantCounts.set(key, counter);
    }
    counter.inc();
  }

  dataset(name: string, source: DatasetGaugeSource): void {
    this.datasetSources.set(name, source);
  }

  /**
   * Removes every series of a model no longer served (e.g. gone from the pod after a reload). Metrics
   * objects handed out for it keep working but are no longer exported; a model added again under the same
   * name starts from zero, which Prometheus reads as a counter reset.
   */
  forgetModel(name: string): void {
    this.modelSources.delete(name);
    removeWhere(this.predictionCounts, (c) => c.labels['model'] === name);
    removeWhere(this.failureCounts, (c) => c.labels['model'] === name);
    removeWhere(this.crossingCounts, (c) => c.labels['model'] === name);
    for (const [key, counter] of this.variantCounts) if (counter.labels['model'] === name) this.variantCounts.delete(key);
    this.batchSize.removeChild(name);
    this.queueTime.removeChild(name);
    this.inferenceTime.removeChild(name);
  }

  /** Removes the series of a dataset no longer in the pod. */
  forgetDataset(name: string): void {
    this.datasetSources.delete(name);
  }

  /** Prometheus text exposition. */
  async text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

/** Removes, in place, the items that match. */
function removeWhere<T>(items: T[], match: (item: T) => boolean): void {
  let kept = 0;
  for (const item of items) if (!match(item)) items[kept++] = item;
  items.length = kept;
}

/** Sets a prom-client Counter to the children's counts at scrape time. */
function copyCounts<L extends string>(counter: Counter<L>, children: readonly CounterChild[]): void {
  counter.reset();
  // As prom-client: a label set appears once it was counted.
  for (const child of children) if (child.value > 0) counter.inc(child.labels as Partial<Record<L, string>>, child.value);
}
