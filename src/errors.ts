/**
 * Every error forecastd raises carries a stable string `code`, and why a prediction failed is one of these
 * codes (or MODEL_LOADING). The HTTP layer maps them to statuses in one place (src/http/errors.ts); library
 * users can switch on `code` without parsing messages.
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
  | 'ERR_ADDRESS_IN_USE' // another process listens on the listen address (at start)
  | 'ERR_LISTEN' // the listen address cannot be used: not on this machine, no permission (at start)
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

/** Why a prediction for a known model failed: an error code, or the model has not finished loading. */
export type FailureReason = ErrorCode | 'MODEL_LOADING';

/** The failure reason of anything a prediction threw: its ForecastdError code, else an inference failure. */
export function failureReason(error: unknown): ErrorCode {
  return error instanceof ForecastdError ? error.code : 'ERR_INFERENCE';
}

/** A thrown value's message (for logs; HTTP bodies say it in the user's terms, see server/user-messages). */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
