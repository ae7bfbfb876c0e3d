import { errorMessage, failureReason } from '../errors.js';

/**
 * Failures in the user's terms, for everything HTTP shows (predict bodies, `error` in /v1/models and
 * /v1/datasets): what is wrong, named by model, dataset, `from` as the pod writes it, timestamps and counts,
 * never an absolute file path, a database host or user, or the text of a cell. ONNX Runtime's messages are
 * reworded. The log line keeps the full message beside the request id.
 */

/** What the message is about, to name things as the pod does. */
export interface MessageContext {
  /** The entry's `from`, as written in the pod (shown instead of the resolved file path). */
  readonly from?: string;
  /** The resolved file behind `from`, when it is one. */
  readonly path?: string;
  readonly model?: string;
  /** Words that name infrastructure (database host, user): never shown. */
  readonly hidden?: readonly string[];
}

/** Absolute paths: a slash-led run of path characters (a URL's // and ratios like 3/4 do not start one). */
const ABSOLUTE_PATH = /(?<![\w.:/])\/(?:[\w.@+~-]+\/)*[\w.@+~-]+/g;

/** Rewords a thrown value for users; see the module comment. */
export function userMessage(error: unknown, context: MessageContext = {}): string {
  const message = errorMessage(error);
  switch (failureReason(error)) {
    case 'ERR_MODEL_LOAD':
      return modelLoadMessage(message, context);
    case 'ERR_INFERENCE':
      return inferenceMessage(message);
    default:
      return userText(message, context);
  }
}

/** A message of forecastd's own, with what users must not see taken out. */
export function userText(message: string, context: MessageContext = {}): string {
  let text = message;
  if (context.path !== undefined && context.from !== undefined) text = text.split(context.path).join(context.from);
  text = text
    // PostgreSQL: "<from> at host:port/db (user u): reason" names the server; the pod's params already do for its owner.
    .replace(/ at \S+ \(user [^)]*\)(?=:)/g, '')
    .replace(/ at (?!\d{4}-\d\d-\d\dT)(?:\[[0-9a-f:.]+\]|[\w.-]+):\d+(?=:)/gi, '')
    .replace(/\b(user|role|database) "[^"]*"/g, '$1')
    .replace(/\b(E[A-Z]{4,}) (?:\[[0-9a-f:.]+\]|[\w.-]+)(?::\d+)?/g, '$1')
    // Raw cells of a data file.
    .replace(/: (?:"(?:[^"\\]|\\.)*"|'[^']*'|an empty value) is not a number/g, ': a value that is not a number')
    .replace(/cannot read "(?:[^"\\]|\\.)*"/g, 'cannot read the value');
  const hidden = context.hidden ?? [];
  if (hidden.length > 0) {
    // `from` stays as written even when it contains a hidden word (a user named like the source kind).
    const hide = (part: string): string => hidden.reduce((t, word) => (word === '' ? t : t.split(word).join('(hidden)')), part);
    text = context.from === undefined ? hide(text) : text.split(context.from).map(hide).join(context.from);
  }
  return text.replace(ABSOLUTE_PATH, (path) => path.slice(path.lastIndexOf('/') + 1));
}

function modelLoadMessage(message: string, context: MessageContext): string {
  const file = context.from ?? 'the model file';
  if (/no such file|not found|ENOENT|does not exist|doesn't exist/i.test(message)) return `${file}: the model file was not found`;
  if (/permission denied|EACCES/i.test(message)) return `${file}: the model file cannot be read (permission denied)`;
  if (/protobuf|parse|invalid model|ModelProto|INVALID_PROTOBUF/i.test(message)) {
    return `${file}: the file is not a valid ONNX model (a damaged or half-written file, or not ONNX)`;
  }
  if (/opset|ir version|not supported|NOT_IMPLEMENTED/i.test(message)) {
    return `${file}: ONNX Runtime cannot load this model (an operator, opset or IR version it does not support)`;
  }
  return userText(message, context);
}

/**
 * ONNX Runtime's run failures look like "Non-zero status code returned while running Gather node.
 * Name:'g' Status Message: /src/onnxruntime/.../gather.cc:123 ... indices element out of data bounds, ...":
 * keep the operator and the reason, drop node names and the runtime's source paths.
 */
function inferenceMessage(message: string): string {
  const run = /running (\w+) node\.(?:.*?Status Message:)?\s*(.*)$/s.exec(message);
  if (run !== null) {
    const reason = cleanRuntimeText(run[2] ?? '');
    return `inference failed: the model's ${run[1]} operation failed${reason === '' ? '' : `: ${reason}`}`;
  }
  const reason = cleanRuntimeText(message);
  return reason === '' ? 'inference failed in ONNX Runtime' : `inference failed: ${reason}`;
}

function cleanRuntimeText(text: string): string {
  return text
    .replace(/\S*\.(?:cc|h|cpp):\d+\s*(?:[\w:<>~]+\([^)]*\)\s*)?/g, '')
    .replace(/\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*\w+\s*:\s*/g, '')
    .replace(ABSOLUTE_PATH, (path) => path.slice(path.lastIndexOf('/') + 1))
    .replace(/\s+/g, ' ')
    .trim();
}
