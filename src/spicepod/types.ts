import type { DelimitedTextOptions, FileCompression, FileFormat, JsonOptions } from '../datasets/file-format.js';
import type { DatasetLimits } from '../datasets/limits.js';
import type { AccelerationConfig, FillMissing, TimeFormat } from '../datasets/types.js';

/** A validated spicepod.yaml. Produced by loadSpicepod() (src/spicepod/load.ts). */
export interface Spicepod {
  /** Absolute path of the spicepod.yaml. */
  readonly file: string;
  /** Folder of the spicepod.yaml; relative paths resolve against it. */
  readonly dir: string;
  readonly name: string;
  readonly version: string;
  readonly runtime: RuntimeConfig;
  readonly datasets: readonly DatasetConfig[];
  readonly models: readonly ModelConfig[];
  /** Non-fatal findings (unknown keys, extra datasets on a model), each naming file, line and key. */
  readonly warnings: readonly string[];
}

export interface RuntimeConfig {
  readonly auth: { readonly apiKeys: readonly string[] } | null;
}

/** The acceleration settings are the datasets' own type; the pod maps its YAML into it. */
export type { AccelerationConfig };

export type DatasetFrom =
  | {
      readonly kind: 'file';
      readonly path: string;
      readonly format: FileFormat;
      /** file_compression_type; UNCOMPRESSED for Parquet, whose pages carry their own codec. */
      readonly compression: FileCompression;
      /** csv_* / tsv_* params, defaults filled in; null for other formats. */
      readonly delimited: DelimitedTextOptions | null;
      /** json_format and flatten_json for file_format json; null for other formats. */
      readonly json: JsonOptions | null;
    }
  | {
      readonly kind: 'postgres';
      /** From `postgres:DATABASE.SCHEMA.TABLE`: the database to connect to, which wins over pg_db. */
      readonly database?: string | null;
      readonly schema: string | null;
      readonly table: string;
    };

export interface DatasetConfig {
  readonly name: string;
  /** As written in the pod (after ${env:} substitution), for display. */
  readonly from: string;
  readonly source: DatasetFrom;
  readonly timeColumn: string;
  /** null = infer: strings are ISO 8601, numbers unix seconds. */
  readonly timeFormat: TimeFormat | null;
  /** null = every column but the time column, in source order. */
  readonly columns: readonly string[] | null;
  /** Every other param as a string (pg_host, pg_port, ...). */
  readonly params: Readonly<Record<string, string>>;
  /** params.max_cells and params.max_record_bytes (the latter for files only), defaults filled in. */
  readonly limits: DatasetLimits;
  readonly acceleration: AccelerationConfig;
}

export interface ModelParams {
  /** null = the ONNX model_version if non-zero, else omitted. */
  readonly version: string | null;
  /** Required only when the model's lookback dimension is symbolic. */
  readonly lookback: number | null;
  readonly fillMissing: FillMissing;
  /** ONNX Runtime threads inside one run: 'auto' (chosen per model from measured runs) or a pinned number. */
  readonly intraOpThreads: number | 'auto';
  readonly maxBatchSize: number;
  /** 0 = one per CPU core. */
  readonly maxConcurrentRuns: number;
  readonly maxQueueDelayMs: number;
  readonly maxQueueSize: number;
  readonly timeoutMs: number;
  readonly cachePredictions: boolean;
  /** Levels of the quantile output, strictly increasing in (0, 1); null = no quantile output. */
  readonly quantiles: readonly number[] | null;
  /** The output holding the quantiles ([B, H, Q] or [B, H, V, Q]); set exactly when `quantiles` is. */
  readonly quantileOutput: string | null;
  /** params.evaluation: the rolling-origin backtest of the model on its dataset. */
  readonly evaluation: EvaluationParams;
}

export interface EvaluationParams {
  /** Scored origins, newest first; 0 turns evaluation off. */
  readonly origins: number;
  /** Only origins at or after this time (epoch ms); null: every origin. */
  readonly since: number | null;
  /** m for the seasonal-naive baseline and MASE; null: from the dataset's frequency. */
  readonly seasonLength: number | null;
}

export type ModelFrom =
  | { readonly kind: 'onnx'; readonly path: string }
  /** A source forecastd cannot serve (openai/..., huggingface:..., a non-.onnx file): the entry is Error. */
  | { readonly kind: 'unsupported'; readonly reason: string }
  /** `ensemble:a,b,...`: every member forecasts on its own window; the forecasts are combined step by step. */
  | {
      readonly kind: 'ensemble';
      readonly members: readonly CompositeMember[];
      readonly combine: CombineRule;
      /**
       * Where the weights come from: the pod (equal for mean and median, params.weights for weighted), or
       * `inverse_mae`: 1/MAE of each member on the origins common to all, normalised, once every member's
       * evaluation is Ready (the members' weights here are the equal ones used until then).
       */
      readonly weightsFrom: 'pod' | 'inverse_mae';
    }
  /** `variants:a=90,b=10`: each request is answered by one member, drawn by weight. */
  | { readonly kind: 'variants'; readonly members: readonly CompositeMember[]; readonly sticky: StickyRule };

/** A member of an ensemble or variants entry: another model of the same pod, by name. */
export interface CompositeMember {
  readonly name: string;
  /**
   * Ensemble: the member's share of the combination (mean: equal; weighted: params.weights normalised to sum
   * to 1). Variants: the integer weight of its draw (0: never drawn).
   */
  readonly weight: number;
}

/** How an ensemble combines its members' forecasts, step by step. */
export type CombineRule = 'mean' | 'median' | 'weighted';

/** What keeps a variants entry's caller on one member: nothing, the API key, or a request header's value. */
export type StickyRule = { readonly kind: 'none' } | { readonly kind: 'api_key' } | { readonly kind: 'header'; readonly name: string };

export interface ModelConfig {
  readonly name: string;
  readonly from: string;
  readonly source: ModelFrom;
  /** Empty for a model served only to client-sent series (POST /v1/timeseries/forecast). */
  readonly datasets: readonly string[];
  readonly params: ModelParams;
}
