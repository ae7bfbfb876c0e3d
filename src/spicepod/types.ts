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
  readonly intraOpThreads: number;
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
}

export type ModelFrom =
  | { readonly kind: 'onnx'; readonly path: string }
  /** A source forecastd cannot serve (openai/..., huggingface:..., a non-.onnx file): the entry is Error. */
  | { readonly kind: 'unsupported'; readonly reason: string };

export interface ModelConfig {
  readonly name: string;
  readonly from: string;
  readonly source: ModelFrom;
  /** Empty for a model served only to client-sent series (POST /v1/timeseries/forecast). */
  readonly datasets: readonly string[];
  readonly params: ModelParams;
}
