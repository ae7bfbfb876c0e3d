import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The server's Prometheus metrics, in their own registry (never prom-client's global one, so embedding
 * apps and several servers in one process do not collide). Hot paths use label children bound once.
 */

/** Fixed route labels: the label set stays small whatever URLs clients send. */
export type RouteLabel =
  | '/v1/models/:name/predict'
  | '/v1/predict'
  | '/v1/models'
  | '/v1/datasets'
  | '/health'
  | '/v1/ready'
  | '/metrics'
  | 'unmatched';

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];

/** Live numbers a model exposes; read at scrape time so nothing is updated per request. */
export interface ModelGaugeSource {
  queueDepth(): number;
  cacheHits(): number;
  cacheMisses(): number;
}

/** Live numbers a dataset exposes; read at scrape time. */
export interface DatasetGaugeSource {
  rows(): number;
  /** Epoch ms of the last successful load, null before the first. */
  loadedAt(): number | null;
}

export interface ModelMetrics {
  /** A prediction answered successfully (from a run or from the cache). */
  succeeded(): void;
  failed(reason: string): void;
  /** One run the forecaster finished: its size, each window's wait, and the run's time. */
  batch(size: number, queueMs: readonly number[], inferenceMs: number): void;
}

export class ServerMetrics {
  readonly registry: Registry;
  private readonly requests: Counter<'route' | 'status'>;
  private readonly requestDuration: Histogram<'route'>;
  private readonly predictions: Counter<'model'>;
  private readonly failures: Counter<'model' | 'reason'>;
  private readonly batchSize: Histogram<'model'>;
  private readonly queueTime: Histogram<'model'>;
  private readonly inferenceTime: Histogram<'model'>;
  private readonly requestChildren = new Map<string, Counter.Internal>();
  private readonly durationChildren = new Map<RouteLabel, Histogram.Internal<'route'>>();
  private readonly modelSources = new Map<string, ModelGaugeSource>();
  private readonly datasetSources = new Map<string, DatasetGaugeSource>();
  private inFlight: () => number = () => 0;

  constructor() {
    this.registry = new Registry();
    collectDefaultMetrics({ register: this.registry });
    const registers = [this.registry];
    this.requests = new Counter({
      name: 'http_requests_total',
      help: 'HTTP requests answered, by route and status code.',
      labelNames: ['route', 'status'],
      registers,
    });
    this.requestDuration = new Histogram({
      name: 'http_request_duration_seconds',
      help: 'Time from a request arriving to its response being written, by route.',
      labelNames: ['route'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.predictions = new Counter({
      name: 'forecastd_predictions_total',
      help: 'Predictions answered successfully, by model.',
      labelNames: ['model'],
      registers,
    });
    this.failures = new Counter({
      name: 'forecastd_prediction_failures_total',
      help: 'Predictions that failed, by model and reason (an error code, or MODEL_LOADING).',
      labelNames: ['model', 'reason'],
      registers,
    });
    this.batchSize = new Histogram({
      name: 'forecastd_batch_size',
      help: 'Windows per inference run, by model.',
      labelNames: ['model'],
      buckets: BATCH_BUCKETS,
      registers,
    });
    this.queueTime = new Histogram({
      name: 'forecastd_queue_seconds',
      help: 'Time a prediction waited for its batch to start, by model.',
      labelNames: ['model'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.inferenceTime = new Histogram({
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
      help: 'Seconds since the dataset was last loaded or refreshed successfully, by dataset.',
      labelNames: ['dataset'],
      registers,
      collect() {
        this.reset();
        const now = Date.now();
        for (const [dataset, source] of datasetSources) {
          const at = source.loadedAt();
          if (at !== null) this.set({ dataset }, Math.max(0, (now - at) / 1000));
        }
      },
    });
  }

  /** Where http_requests_in_flight reads its value. */
  trackInFlight(source: () => number): void {
    this.inFlight = source;
  }

  /** Counts one answered HTTP request. */
  request(route: RouteLabel, httpStatus: number, seconds: number): void {
    const key = route + ' ' + httpStatus;
    let counter = this.requestChildren.get(key);
    if (counter === undefined) {
      counter = this.requests.labels(route, String(httpStatus));
      this.requestChildren.set(key, counter);
    }
    counter.inc();
    let histogram = this.durationChildren.get(route);
    if (histogram === undefined) {
      histogram = this.requestDuration.labels(route);
      this.durationChildren.set(route, histogram);
    }
    histogram.observe(seconds);
  }

  /** Metrics of one model, label children bound once; `source` feeds the scrape-time gauges. */
  model(name: string, source: ModelGaugeSource): ModelMetrics {
    this.modelSources.set(name, source);
    const predictions = this.predictions.labels(name);
    const batchSize = this.batchSize.labels(name);
    const queueTime = this.queueTime.labels(name);
    const inferenceTime = this.inferenceTime.labels(name);
    const failures = new Map<string, Counter.Internal>();
    const failureCounter = this.failures;
    return {
      succeeded() {
        predictions.inc();
      },
      failed(reason) {
        let counter = failures.get(reason);
        if (counter === undefined) {
          counter = failureCounter.labels(name, reason);
          failures.set(reason, counter);
        }
        counter.inc();
      },
      batch(size, queueMs, inferenceMs) {
        batchSize.observe(size);
        for (const ms of queueMs) queueTime.observe(ms / 1000);
        inferenceTime.observe(inferenceMs / 1000);
      },
    };
  }

  dataset(name: string, source: DatasetGaugeSource): void {
    this.datasetSources.set(name, source);
  }

  /** Prometheus text exposition. */
  async text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
