/**
 * Every error forecastd raises carries a stable string `code`. The HTTP layer maps codes to statuses in
 * one place (src/http/errors.ts); library users can switch on `code` without parsing messages.
 */
export type ErrorCode =
  | 'ERR_RUNTIME_LOAD' // the ONNX Runtime library is missing, too old, or a different one was already chosen
  | 'ERR_MODEL_LOAD' // a model file is missing, corrupt, or not ONNX
  | 'ERR_MODEL_CONTRACT' // the model breaks the forecasting model contract (SPEC "The model contract")
  | 'ERR_INFERENCE' // ONNX Runtime failed inside a run
  | 'ERR_NON_FINITE' // a prediction holds NaN or Infinity
  | 'ERR_DISPOSED' // the session or forecaster was disposed
  | 'ERR_QUEUE_FULL' // more than max_queue_size requests waiting
  | 'ERR_TIMEOUT' // waited longer than timeout_ms
  | 'ERR_WINDOW' // too few rows, or a gap in the lookback window
  | 'ERR_DATASET' // dataset not ready or failed to load
  | 'ERR_SPICEPOD' // the spicepod is invalid (fatal at start)
  | 'ERR_INVALID_ARGUMENT'; // a library call got a bad argument

export class ForecastdError extends Error {
  readonly code: ErrorCode;
  /**
   * ONNX Runtime's own error code when the failure came from it ("ORT_INVALID_ARGUMENT", "ORT_NO_SUCHFILE",
   * "ORT_INVALID_PROTOBUF", "ORT_RUNTIME_EXCEPTION", "ORT_EP_FAIL", ...); absent otherwise.
   */
  readonly ortCode?: string;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; ortCode?: string }) {
    super(message, options);
    this.name = 'ForecastdError';
    this.code = code;
    if (options?.ortCode !== undefined) this.ortCode = options.ortCode;
  }
}
