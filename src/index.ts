/**
 * forecastd as a library: the ONNX Runtime session API and the batching forecaster (usable without the
 * server), the pieces that feed them windows from datasets, and startServer() for embedding the server.
 */
export { ForecastdError } from './errors.js';
export type { ErrorCode } from './errors.js';

export { InferenceSession } from './runtime/session.js';
export { configureRuntime, runtimeInfo, setRuntimeLogHandler } from './runtime/runtime.js';
export { allocateTensorData } from './runtime/session.js';
export { availableCpus } from './runtime/cpus.js';
export type {
  Dim,
  ExecutionMode,
  FloatArray,
  GraphOptimizationLevel,
  InputTensor,
  ModelMetadata,
  NumericTypedArray,
  OutputTensor,
  RunOptions,
  RunOutputs,
  RuntimeInfo,
  RuntimeLogEntry,
  RuntimeOptions,
  SessionOptions,
  TensorElementType,
  TensorInfo,
} from './runtime/types.js';
export type { WindowInput, WindowSource } from './runtime/window.js';

export { checkForecastModel } from './runtime/model-contract.js';
export type { ForecastContractOptions, ForecastModelShape } from './runtime/model-contract.js';
export { BatchingForecaster } from './runtime/forecaster.js';
export type { BatchInfo, Calibration, ForecasterOptions, ForecasterSettings, Prediction, PredictOptions } from './runtime/forecaster.js';
export { RunCostModel } from './runtime/run-cost.js';
export { SeriesForecaster } from './runtime/series-forecaster.js';
export type { SeriesForecasterOptions, SeriesForecastRequest, SeriesForecastResult, SeriesStep } from './runtime/series-forecaster.js';
export { addSteps, formatFrequency, inferFrequency, monthsFrom, stepsAfter } from './forecast/frequency.js';
export type { CalendarFrequency, FixedFrequency, Frequency } from './forecast/frequency.js';
export { formatTimestamp, parseTimestamp } from './forecast/timestamps.js';
export type { ParsedTimestamp } from './forecast/timestamps.js';
export type { ForecastLayout, QuantileLayout } from './forecast/layout.js';
export { backtest, backtestProblem } from './evaluation/backtest.js';
export type {
  BacktestOptions,
  BacktestResult,
  PastForecast,
  BaselineMetrics,
  EvaluationReport,
  EvaluationStatus,
  IntervalMetrics,
  QuantileMetrics,
  VariableMetrics,
} from './evaluation/backtest.js';
export type { BackgroundResult } from './runtime/forecaster.js';
export { Cancellation } from './runtime/cancellation.js';
export type { AbortSignalLike } from './runtime/cancellation.js';
export { PredictionCache } from './runtime/prediction-cache.js';
export type { PredictionCacheOptions } from './runtime/prediction-cache.js';

export { loadSpicepod } from './spicepod/load.js';
export type { DatasetConfig, ModelConfig, ModelParams, RuntimeConfig, Spicepod } from './spicepod/types.js';

export { Dataset, describeDataset } from './datasets/dataset.js';
export type { DatasetDescription, DatasetOptions, RefreshOutcome } from './datasets/dataset.js';
export { FileSource } from './datasets/file-source.js';
export type { FileSourceOptions } from './datasets/file-source.js';
export { createPostgresSource } from './datasets/postgres.js';
export type { PostgresSourceConfig } from './datasets/postgres.js';
export { windowFor } from './datasets/window.js';
export type { AccelerationConfig, DatasetSnapshot, DatasetSource, DatasetStatus, FillMissing, LoadOptions, LoadedRows } from './datasets/types.js';

export { formatFloat32, formatFloat64 } from './http/float-format.js';
export { startServer } from './server/start.js';
export type { ForecastdServer, ServerOptions, WatchOptions } from './server/start.js';
export { ModelRegistry } from './server/registry.js';
export type { ReloadOutcome } from './server/registry.js';
export { createLogger } from './log.js';
export type { Logger, LoggerOptions } from './log.js';
