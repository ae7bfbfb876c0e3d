import type { FailureReason } from '../errors.js';
import type { Logger } from '../log.js';

/** How often one model's failures of one reason get a log line. */
export const FAILURE_LOG_INTERVAL_MS = 10_000;

/**
 * Log lines for failed predictions. They are expected under load or while data is bad (timeouts, a gap,
 * a dataset not ready) and would otherwise be one synchronous line per request: at most one line per model
 * and reason per interval, with the request id and full detail of the one it shows and how many more there
 * were. forecastd_prediction_failures_total counts every one.
 */
export class FailureLog {
  readonly #logger: Logger;
  readonly #intervalMs: number;
  readonly #last = new Map<string, { at: number; suppressed: number }>();

  constructor(logger: Logger, intervalMs = FAILURE_LOG_INTERVAL_MS) {
    this.#logger = logger;
    this.#intervalMs = intervalMs;
  }

  log(reqId: string, model: string, reason: FailureReason, detail: string): void {
    // Loading and overload are expected and counted in metrics; log only what someone should look at.
    const level = reason === 'MODEL_LOADING' || reason === 'ERR_QUEUE_FULL' ? 'debug' : 'warn';
    if (!this.#logger.isLevelEnabled(level)) return;
    const key = `${model}\u0000${reason}`;
    const now = Date.now();
    const last = this.#last.get(key);
    if (last !== undefined && now - last.at < this.#intervalMs) {
      last.suppressed++;
      return;
    }
    const suppressed = last?.suppressed ?? 0;
    this.#last.set(key, { at: now, suppressed: 0 });
    if (suppressed === 0) {
      this.#logger[level]({ reqId, model, reason }, detail);
    } else {
      this.#logger[level](
        { reqId, model, reason, suppressed },
        `${detail} (and ${suppressed} more ${reason} failures of ${model} since the last line; forecastd_prediction_failures_total counts them all)`,
      );
    }
  }
}
