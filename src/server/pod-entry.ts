/**
 * What the registry and the reconciler need of a model entry of the pod, whichever kind it is: a model file
 * (ModelSlot) or an ensemble or variants entry made of other entries (composite-slot.ts). It also carries
 * what an ensemble needs of its members: their shape and a forecast of the dataset's newest window.
 */
import type { DatasetHandle } from './dataset-handle.js';
import type { FileSettle } from '../file-fingerprint.js';
import type { FailureReason } from '../errors.js';
import type { ForecastLayout } from '../forecast/layout.js';
import type { BacktestForecaster, BacktestResult } from '../evaluation/backtest.js';
import type {
  DrawKeys,
  EntryEvaluation,
  EntryStatus,
  IncludeOptions,
  ModelDetails,
  PredictOutcome,
  SeriesForecast,
  SeriesModelLookup,
} from '../http/types.js';
import type { AbortSignalLike } from '../runtime/cancellation.js';
import type { ModelConfig } from '../spicepod/types.js';
import type { FillMissing } from '../datasets/types.js';

/** What an entry forecasts, once it serves: what an ensemble checks its members against. */
export interface ForecastShape {
  readonly layout: ForecastLayout;
  /** Values per input time step. */
  readonly variables: number;
  readonly lookback: number;
  readonly inputType: 'float32' | 'float64';
  readonly pointType: 'float32' | 'float64';
}

/** An entry's shape, or why it has none now (still loading, or failed). */
export type EntryShape =
  | { readonly ok: true; readonly shape: ForecastShape }
  | { readonly ok: false; readonly status: 'Initializing' | 'Error'; readonly message: string; readonly reason: FailureReason };

/** One forecast of the dataset's newest window: output 0's slice and the raw quantile output (or null). */
export type EntryForecast =
  | ({ readonly ok: true } & SeriesForecast)
  | { readonly ok: false; readonly reason: FailureReason; readonly message: string; readonly detail?: string };

export interface PodEntry {
  readonly name: string;
  config: ModelConfig;
  dataset: DatasetHandle | undefined;
  readonly status: EntryStatus;
  /** The last load failure (or why a composite cannot serve); null when none. */
  readonly error: string | null;
  readonly removed: boolean;
  /** A load is running (or none was tried yet): the file's settle state decides nothing now. */
  readonly busy: boolean;
  /** The model file's settle state; only looked at when filePath is not null. */
  readonly file: FileSettle;
  readonly filePath: string | null;
  load(): Promise<void>;
  settled(): Promise<void>;
  remove(): void;
  retireServing(): void;
  servingDataset(): DatasetHandle | null;
  /** Can answer now (POST /v1/predict without a list names the entries that can). */
  isServing(): boolean;
  /**
   * Changes whenever what the entry serves changes (status, loaded version, members): part of the cache key
   * of every ensemble naming it, so a member's reload, removal or status change invalidates those entries.
   */
  stateKey(): string;
  predictNow(include: IncludeOptions | undefined, keys: DrawKeys | undefined): PredictOutcome | undefined;
  predict(signal: AbortSignalLike | undefined, include: IncludeOptions | undefined, keys: DrawKeys | undefined): Promise<PredictOutcome>;
  details(): ModelDetails;
  seriesModel(keys: DrawKeys | undefined): SeriesModelLookup;
  /** Predictions answered from the entry's own cache, and computed (forecastd_cache_*). */
  cacheHits(): number;
  cacheMisses(): number;
  /** GET /v1/models/:name/evaluation. */
  evaluationReport(): EntryEvaluation;
  /** The latest finished evaluation's results, for listings and gauges; null before one, and for variants. */
  evaluationResult(): BacktestResult | null;
  /** Resolves when no evaluation of the entry runs. */
  evaluationSettled(): Promise<void>;
  /** Set only on entries that can be an ensemble's members (models and ensembles). */
  readonly member: EnsembleMember | null;
}

/** What an ensemble asks of each member. */
export interface EnsembleMember {
  forecastShape(): EntryShape;
  /** Never rejects. */
  datasetForecast(signal: AbortSignalLike | undefined): Promise<EntryForecast>;
  /** Low-priority runs of the serving version, for the ensemble's own evaluation; null while none serves. */
  backtestForecaster(): BacktestForecaster | null;
  /** How the member's requests fill gaps in their windows. */
  readonly fillMissing: FillMissing;
}
