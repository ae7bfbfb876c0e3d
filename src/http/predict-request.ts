/** At most this many items in one POST /v1/predict. */
export const MAX_PREDICTIONS_PER_REQUEST = 1000;

export type PredictRequest =
  /** `names` null: every Ready model (an empty body, `{}`, or no `predictions` key). */
  | { readonly ok: true; readonly names: readonly string[] | null }
  | { readonly ok: false; readonly message: string };

const SHAPE = '{"predictions": [{"model_name": "..."}]}';

// C0 controls, DEL and C1 controls: never part of a model name (the pod allows letters, digits, "_", "." and
// "-"), and refused outright rather than echoed back into responses and logs.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** Why a name can never be a model name, or null when it is fine to look up ("not found" is for the rest). */
function nameProblem(name: string): string | null {
  if (name === '') return 'is empty';
  if (CONTROL.test(name)) return 'contains a control character';
  return null;
}

/** Letters, digits, "_", "." and "-": a segment that is its own decoded name. */
const PLAIN_NAME = /^[\w.\-]+$/;

export type ModelNameInUrl = { readonly ok: true; readonly name: string } | { readonly ok: false; readonly message: string };

/**
 * The `:name` segment of /v1/models/:name/predict, exactly as it came in the request target. It must be
 * printable ASCII (other bytes percent-encoded), decode as percent-encoded UTF-8, and pass the same rule as a
 * POST item's model_name; otherwise the request is malformed (400). Any other name is only looked up in the
 * pod's model table (never used as a path), so "..", "a/b" and the like are simply not found.
 */
export function modelNameFromUrl(segment: string): ModelNameInUrl {
  return entryNameFromUrl(segment, 'model');
}

/** A model's or dataset's `:name` URL segment, under the rules of modelNameFromUrl. */
export function entryNameFromUrl(segment: string, kind: 'model' | 'dataset'): ModelNameInUrl {
  // The usual name: nothing to decode, nothing to refuse.
  if (PLAIN_NAME.test(segment)) return { ok: true, name: segment };
  if (!/^[\x21-\x7e]*$/.test(segment)) {
    return { ok: false, message: `The ${kind} name in the URL holds bytes that are not printable ASCII; percent-encode them` };
  }
  let name: string;
  try {
    name = decodeURIComponent(segment);
  } catch {
    return { ok: false, message: `The ${kind} name in the URL is not valid percent-encoded UTF-8` };
  }
  const problem = nameProblem(name);
  if (problem !== null) return { ok: false, message: `The ${kind} name in the URL ${problem}` };
  return { ok: true, name };
}

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
    const problem = nameProblem(name);
    if (problem !== null) return { ok: false, message: `predictions[${i}].model_name ${problem}` };
    names.push(name);
  }
  return { ok: true, names };
}
