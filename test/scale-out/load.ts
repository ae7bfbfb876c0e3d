/**
 * A closed-loop load through the balancer: `connections` keep-alive clients, each sending its next request
 * as soon as the last is answered, alternating GET /v1/models/:name/predict and POST /v1/predict. Every
 * answer is checked: HTTP 200 and, for each model, a prediction (with its model_version) that is one of the
 * answers the test currently accepts. Anything else is a failure, kept with what was received.
 */
import http from 'node:http';
import { performance } from 'node:perf_hooks';

/** `${model_version}|${prediction}`: one answer a model may give. */
export function answerKey(version: string | undefined, prediction: readonly number[]): string {
  return `${version ?? ''}|${prediction.map(String).join(',')}`;
}

/** The connection closed before any byte of an answer arrived. */
class ClosedUnanswered extends Error {}

export interface Sample {
  /** ms since the load started, at the answer. */
  readonly at: number;
  readonly latencyMs: number;
  readonly ok: boolean;
}

export interface Failure {
  readonly at: number;
  readonly request: string;
  readonly problem: string;
}

export interface LoadOptions {
  readonly url: string;
  readonly connections: number;
  /** The models every request asks for; each must answer one of `accepted(model)`. */
  readonly models: () => readonly string[];
  readonly accepted: (model: string) => ReadonlySet<string>;
  /**
   * A model that may not exist everywhere yet (a rolling spicepod change): asked for by one request in four,
   * its "not found" 400 is counted in `notYet`, not as a failure.
   */
  readonly newModel?: () => string | null;
}

interface ItemBody {
  status?: unknown;
  model_name?: unknown;
  model_version?: unknown;
  prediction?: unknown;
  error_message?: unknown;
}

export class ClosedLoopLoad {
  readonly samples: Sample[] = [];
  readonly failures: Failure[] = [];
  /** Answers per accepted key, to show which versions clients saw. */
  readonly seen = new Map<string, number>();
  notYet = 0;
  /** Requests sent again because their connection closed before any byte of an answer. */
  clientResends = 0;
  newModelServed = 0;
  readonly #agent: http.Agent;
  readonly #started = performance.now();
  #running = true;
  readonly #workers: Promise<void>[] = [];

  constructor(readonly options: LoadOptions) {
    this.#agent = new http.Agent({ keepAlive: true, maxSockets: options.connections });
    for (let i = 0; i < options.connections; i++) this.#workers.push(this.#worker(i));
  }

  /** ms since the load started. */
  now(): number {
    return performance.now() - this.#started;
  }

  get requests(): number {
    return this.samples.length;
  }

  async stop(): Promise<void> {
    this.#running = false;
    await Promise.all(this.#workers);
    this.#agent.destroy();
  }

  /** Latency percentile (0-100) of the answers received between `from` and `to` (ms since start). */
  percentile(p: number, from = 0, to = Infinity): number {
    const latencies = this.samples
      .filter((s) => s.at >= from && s.at < to)
      .map((s) => s.latencyMs)
      .sort((a, b) => a - b);
    if (latencies.length === 0) return Number.NaN;
    return latencies[Math.min(latencies.length - 1, Math.ceil((p / 100) * latencies.length) - 1)]!;
  }

  count(from = 0, to = Infinity): number {
    return this.samples.filter((s) => s.at >= from && s.at < to).length;
  }

  async #worker(index: number): Promise<void> {
    for (let n = 0; this.#running; n++) {
      const models = this.options.models();
      const newModel = this.options.newModel?.() ?? null;
      const post = (n + index) % 2 === 1;
      const askNew = !post && newModel !== null && Math.floor(n / 2) % 2 === 0;
      const path = post ? '/v1/predict' : `/v1/models/${askNew ? newModel : models[n % models.length]}/predict`;
      const body = post ? JSON.stringify({ predictions: models.map((m) => ({ model_name: m })) }) : null;
      const started = performance.now();
      let problem: string | null;
      try {
        const answer = await this.#send(path, body);
        problem = askNew ? this.#checkNewModel(answer) : this.#check(answer, post, models);
      } catch (error) {
        problem = `no answer: ${error instanceof Error ? error.message : String(error)}`;
      }
      const at = this.now();
      this.samples.push({ at, latencyMs: performance.now() - started, ok: problem === null });
      if (problem !== null) this.failures.push({ at, request: `${post ? 'POST' : 'GET'} ${path}`, problem });
    }
  }

  /**
   * One request. When the connection closes before any byte of an answer (ECONNRESET, "socket hang up") the
   * request is sent once more on a new connection: RFC 9110 (9.2.2) lets a client retry a request it knows
   * to be idempotent, and every route here is a read. Browsers, curl and Go's net/http do the same for
   * reused connections; nginx also closes a just-accepted connection when a reload retires its worker.
   * Such resends are counted in `clientResends`; a second failure is a failure.
   */
  async #send(path: string, body: string | null): Promise<{ status: number; body: string }> {
    try {
      return await this.#sendOnce(path, body);
    } catch (error) {
      if (!(error instanceof ClosedUnanswered)) throw error;
      this.clientResends += 1;
      // Not on another pooled connection: it may be closing for the same reason.
      return this.#sendOnce(path, body, false);
    }
  }

  #sendOnce(path: string, body: string | null, pooled = true): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      let answered = false;
      const req = http.request(
        `${this.options.url}${path}`,
        {
          method: body === null ? 'GET' : 'POST',
          agent: pooled ? this.#agent : false,
          headers: body === null ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          answered = true;
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (text += d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
          res.on('error', reject);
        },
      );
      req.setTimeout(30_000, () => req.destroy(new Error('no answer in 30 s')));
      req.on('error', (error: NodeJS.ErrnoException) => {
        reject(!answered && error.code === 'ECONNRESET' ? new ClosedUnanswered(error.message) : error);
      });
      req.end(body ?? undefined);
    });
  }

  #checkItem(item: ItemBody, expectedModel: string): string | null {
    if (item.status !== 'Success' || item.model_name !== expectedModel || !Array.isArray(item.prediction)) {
      return `unexpected item ${JSON.stringify(item)}`;
    }
    const version = typeof item.model_version === 'string' ? item.model_version : undefined;
    const key = answerKey(version, item.prediction as number[]);
    if (!this.options.accepted(expectedModel).has(key)) return `wrong prediction for ${expectedModel}: ${key}`;
    this.seen.set(`${expectedModel}@${key}`, (this.seen.get(`${expectedModel}@${key}`) ?? 0) + 1);
    return null;
  }

  #check(answer: { status: number; body: string }, post: boolean, models: readonly string[]): string | null {
    if (answer.status !== 200) return `HTTP ${answer.status}: ${answer.body.slice(0, 300)}`;
    let parsed: unknown;
    try {
      parsed = JSON.parse(answer.body);
    } catch {
      return `not JSON: ${answer.body.slice(0, 300)}`;
    }
    if (!post) {
      const model = (parsed as ItemBody).model_name;
      return typeof model === 'string' && models.includes(model)
        ? this.#checkItem(parsed as ItemBody, model)
        : `unexpected body ${answer.body.slice(0, 300)}`;
    }
    const items = (parsed as { predictions?: unknown }).predictions;
    if (!Array.isArray(items) || items.length !== models.length) return `unexpected body ${answer.body.slice(0, 300)}`;
    for (let i = 0; i < models.length; i++) {
      const problem = this.#checkItem(items[i] as ItemBody, models[i]!);
      if (problem !== null) return problem;
    }
    return null;
  }

  #checkNewModel(answer: { status: number; body: string }): string | null {
    const model = this.options.newModel?.() ?? '';
    if (answer.status === 400 && answer.body.includes(`"error_message":"Model ${model} not found"`)) {
      this.notYet += 1;
      return null;
    }
    if (answer.status !== 200) return `HTTP ${answer.status}: ${answer.body.slice(0, 300)}`;
    const problem = this.#checkItem(JSON.parse(answer.body) as ItemBody, model);
    if (problem === null) this.newModelServed += 1;
    return problem;
  }
}
