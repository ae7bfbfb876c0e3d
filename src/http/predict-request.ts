/** At most this many items in one POST /v1/predict. */
export const MAX_PREDICTIONS_PER_REQUEST = 1000;

export type PredictRequest =
  /** `names` null: every Ready model (an empty body, `{}`, or no `predictions` key). */
  | { readonly ok: true; readonly names: readonly string[] | null }
  | { readonly ok: false; readonly message: string };

const SHAPE = '{"predictions": [{"model_name": "..."}]}';

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Reads a POST /v1/predict body. It is always JSON, whatever the Content-Type says (Spice's documented curl
 * call sends application/x-www-form-urlencoded).
 */
export function parsePredictRequest(body: string): PredictRequest {
  if (body.trim() === '') return { ok: true, names: null };
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    return { ok: false, message: `The request body is not valid JSON (${reason}); expected ${SHAPE}` };
  }
  if (!isObject(value)) {
    return { ok: false, message: `The request body must be a JSON object: ${SHAPE}` };
  }
  const predictions = value['predictions'];
  if (predictions === undefined) return { ok: true, names: null };
  if (!Array.isArray(predictions)) {
    return { ok: false, message: `"predictions" must be an array of {"model_name": "..."} objects` };
  }
  if (predictions.length > MAX_PREDICTIONS_PER_REQUEST) {
    return {
      ok: false,
      message: `"predictions" holds ${predictions.length} items; at most ${MAX_PREDICTIONS_PER_REQUEST} are allowed in one request`,
    };
  }
  const names: string[] = [];
  for (let i = 0; i < predictions.length; i++) {
    const item: unknown = predictions[i];
    if (!isObject(item)) {
      return { ok: false, message: `predictions[${i}] must be an object like {"model_name": "..."}` };
    }
    const name = item['model_name'];
    if (name === undefined) return { ok: false, message: `predictions[${i}] has no "model_name"` };
    if (typeof name !== 'string') {
      return { ok: false, message: `predictions[${i}].model_name must be a string` };
    }
    names.push(name);
  }
  return { ok: true, names };
}
