import { setTimeout as delay } from 'node:timers/promises';
import { ForecastdError } from '../errors.js';
import { HttpServer } from '../http/server.js';
import { defaultMaxConnections } from '../http/connection-limit.js';
import { silentLogger } from '../log.js';
import type { Logger } from '../log.js';
import { ServerMetrics } from '../metrics.js';
import { configureRuntime, microsecondsChoice, raiseOpenFileLimit, setRuntimeLogHandler } from '../runtime/runtime.js';
import { findSpicepodFile, loadSpicepod } from '../spicepod/load.js';
import type { Spicepod } from '../spicepod/types.js';
import { DEFAULT_SETTLE_MS, fileFingerprint } from '../file-fingerprint.js';
import { PodWatcher } from './pod-watcher.js';
import { ModelRegistry } from './registry.js';
import type { ReloadOutcome } from './registry.js';

export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_PORT = 8090;
/**
 * The server's I/O poll (ServerOptions.ioPollMicros): long enough for a client on the same machine to read an
 * answer and send its next request, so that the server's thread need not be woken for it.
 */
export const DEFAULT_IO_POLL_MICROS = 100;
export const DEFAULT_DRAIN_TIMEOUT_MS = 10_000;
export const DEFAULT_SHUTDOWN_DELAY_MS = 0;
/** How long shutdown waits for native work (runs, loads, warm-ups) to stop after the drain. */
export const TEARDOWN_TIMEOUT_MS = 2_000;

export interface ServerOptions {
  /** A spicepod.yaml, a folder holding one, or an already loaded pod. */
  readonly spicepod: string | Spicepod;
  /** Default 127.0.0.1. */
  readonly host?: string;
  /** Default 8090; 0 picks a free port (see `port` on the result). */
  readonly port?: number;
  /** Default: a logger that drops everything. */
  readonly logger?: Logger;
  /** How long close() lets in-flight requests finish. Default 10 s. */
  readonly drainTimeoutMs?: number;
  /**
   * How long shutdown keeps accepting after /v1/ready turned 503, so a load balancer or Kubernetes sees the
   * pod go unready before its socket closes (set it to the health-check period). Default 0.
   */
  readonly shutdownDelayMs?: number;
  /** How long shutdown waits for models and datasets to stop after the drain. Default 2 s. */
  readonly teardownTimeoutMs?: number;
  /**
   * How long a changed spicepod, model or data file must keep the same fingerprint before it is read (and
   * it must still have it after the read): a writer pausing for less is never seen half-way. Default 1000.
   */
  readonly settleMs?: number;
  /**
   * At most this many bytes of a large answer (GET /v1/datasets/:name/rows) are held for one connection whose
   * client is not reading. Default 1 MiB.
   */
  readonly writeBufferBytes?: number;
  /** A client that takes nothing of a large answer for this long is disconnected, in ms. Default 30,000. */
  readonly writeStallMs?: number;
  /**
   * Open connections at most; past it new connections are refused until some close. Default: the open file
   * limit less 128 descriptors (none when the limit is unlimited).
   */
  readonly maxConnections?: number;
  /**
   * How long, in microseconds, the JavaScript thread polls for the next request before it sleeps while no run is
   * in flight (RuntimeOptions.ioPollMicros; process-wide, set when the server starts). A request that arrives
   * meanwhile is read without a thread wake-up; the poll pauses by itself while requests do not come that fast.
   * 0 turns it off. Default: $FORECASTD_IO_POLL_US, else 100.
   */
  readonly ioPollMicros?: number;
  /** Environment for ${env:NAME} in the pod. Default process.env. */
  readonly env?: NodeJS.ProcessEnv;
  /**
   * Hot reload: watch the spicepod and model files and apply changes without a restart. `true` uses the
   * defaults (a check 150 ms after the last file event, and every 2 s in case events are missed). Default
   * false; the CLI turns it on. reload() works either way.
   */
  readonly watch?: boolean | WatchOptions;
}

export interface WatchOptions {
  /** Period of the fallback check (stat of each file), ms. Default 2000. */
  readonly intervalMs?: number;
  /** Quiet time after the last file event before checking, ms. Default 150. */
  readonly debounceMs?: number;
}

export interface ForecastdServer {
  readonly host: string;
  readonly port: number;
  /** http://HOST:PORT */
  readonly url: string;
  readonly registry: ModelRegistry;
  readonly metrics: ServerMetrics;
  /** Resolves once every model and dataset has finished loading (Ready or Error). */
  loaded(): Promise<void>;
  /**
   * Reads the spicepod again and applies what changed (and reloads models whose file changed). Resolves
   * once the loads it started have finished; a spicepod that cannot be applied is reported in the outcome
   * and the log while the current configuration keeps serving.
   */
  reload(): Promise<ReloadOutcome>;
  /**
   * The shutdown sequence: /v1/ready answers 503 at once; connections are still accepted for
   * `shutdownDelayMs`; then the listen socket closes, in-flight requests finish for up to `drainTimeoutMs`,
   * every connection closes, and models and datasets are stopped, waiting at most `teardownTimeoutMs` for
   * native work. Resolves true when every request received was answered (false: some were cut off).
   */
  shutdown(drainTimeoutMs?: number): Promise<boolean>;
  /** shutdown() with the configured drain timeout. */
  close(): Promise<void>;
}

function urlHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/**
 * Starts forecastd: reads the pod (fatal errors reject with ERR_SPICEPOD), listens at once, and loads
 * datasets and models in the background, so /v1/ready and 503 answers reflect what is still loading.
 */
export async function startServer(options: ServerOptions): Promise<ForecastdServer> {
  const logger = options.logger ?? silentLogger();
  const env = options.env ?? process.env;
  let pod: Spicepod;
  let podSignature: string | undefined;
  if (typeof options.spicepod === 'string') {
    const file = await findSpicepodFile(options.spicepod);
    // Taken before reading, so an edit made while the server starts is still seen by the first check.
    podSignature = await fileFingerprint(file);
    pod = await loadSpicepod(file, env);
  } else {
    pod = options.spicepod;
  }
  const watchOptions = options.watch === true ? {} : options.watch === false || options.watch === undefined ? null : options.watch;
  for (const warning of pod.warnings) logger.warn(warning);
  const metrics = new ServerMetrics();
  let http: HttpServer | null = null;
  let watcher: PodWatcher | null = null;
  const settleMs = options.settleMs ?? DEFAULT_SETTLE_MS;
  if (!Number.isFinite(settleMs) || settleMs < 0) {
    throw new ForecastdError('ERR_INVALID_ARGUMENT', `settleMs must be a number of milliseconds >= 0, got ${settleMs}`);
  }
  const registry = new ModelRegistry(pod, {
    logger,
    metrics,
    env,
    settleMs,
    onRecheck: (ms) => watcher?.checkIn(ms),
    ...(podSignature === undefined ? {} : { podSignature }),
    onPodApplied: (next, previous) => {
      if (JSON.stringify(next.runtime.auth) === JSON.stringify(previous.runtime.auth)) return;
      http?.setApiKeys(next.runtime.auth === null ? null : next.runtime.auth.apiKeys);
      logger.info({ auth: next.runtime.auth !== null }, 'API keys changed; they apply from the next request');
    },
  });
  http = new HttpServer({
    backend: registry,
    metrics,
    logger,
    apiKeys: pod.runtime.auth === null ? null : pod.runtime.auth.apiKeys,
    ...(options.writeBufferBytes === undefined ? {} : { writeBufferBytes: options.writeBufferBytes }),
    ...(options.writeStallMs === undefined ? {} : { writeStallMs: options.writeStallMs }),
  });
  const server = http;
  // Built before listening, so bad watch options fail the start rather than leave a half-started server.
  watcher =
    watchOptions === null
      ? null
      : new PodWatcher({
          files: () => registry.watchedFiles(),
          check: () => registry.checkFiles(),
          logger,
          ...watchOptions,
        });
  // Each connection is a descriptor: the soft limit (often 1024) would cap connections far below what the
  // machine allows.
  if (options.maxConnections !== undefined && !(Number.isInteger(options.maxConnections) && options.maxConnections >= 1)) {
    throw new ForecastdError('ERR_INVALID_ARGUMENT', `maxConnections must be a whole number above 0, got ${options.maxConnections}`);
  }
  let maxConnections = options.maxConnections ?? null;
  // Checked before listening: a bad value or $FORECASTD_IO_POLL_US stops the start.
  const ioPollMicros = microsecondsChoice(options.ioPollMicros, 'ioPollMicros', 'FORECASTD_IO_POLL_US') ?? DEFAULT_IO_POLL_MICROS;
  try {
    const limit = raiseOpenFileLimit();
    logger.info(limit, `open file limit ${limit.soft}${limit.soft === limit.before ? '' : ` (raised from ${limit.before})`}`);
    maxConnections ??= defaultMaxConnections(limit.soft);
  } catch (error) {
    logger.warn({ err: error }, 'could not raise the open file limit');
  }
  const host = options.host ?? DEFAULT_HOST;
  const address = await server.listen(host, options.port ?? DEFAULT_PORT);
  if (maxConnections !== null) {
    server.limitConnections(maxConnections);
    logger.info({ maxConnections }, `at most ${maxConnections} connections`);
  }
  const url = `http://${urlHost(host)}:${address.port}`;
  logger.info(
    { url, pod: pod.file, models: pod.models.length, datasets: pod.datasets.length, auth: pod.runtime.auth !== null },
    `forecastd listening on ${url}`,
  );

  // ONNX Runtime's own warnings (e.g. nodes not placed on the requested execution provider) go to the log.
  setRuntimeLogHandler((entry) =>
    logger[entry.level === 'error' || entry.level === 'fatal' ? 'error' : 'warn']({ category: entry.category }, `ONNX Runtime: ${entry.message}`),
  );
  try {
    const info = configureRuntime({ ioPollMicros });
    logger.info(
      {
        version: info.version,
        library: info.libraryPath,
        runThreads: info.runThreads,
        runSpinMicros: info.runSpinMicros,
        ioPollMicros: info.ioPollMicros,
      },
      'ONNX Runtime loaded',
    );
  } catch (error) {
    // Every model will report the same failure as its Error; say it once here too.
    logger.error({ err: error }, 'ONNX Runtime could not be loaded');
  }

  const loading = registry.start().then(() => {
    const models = registry.models();
    const ready = models.filter((m) => m.status === 'Ready').length;
    logger.info({ ready, failed: models.length - ready }, `loaded ${ready} of ${models.length} models`);
  });

  if (watcher !== null) {
    watcher.start();
    logger.info({ files: registry.watchedFiles().length, settleMs }, 'watching the spicepod and model files for changes');
  }

  const drainDefault = options.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS;
  const shutdownDelayMs = options.shutdownDelayMs ?? DEFAULT_SHUTDOWN_DELAY_MS;
  const teardownTimeoutMs = options.teardownTimeoutMs ?? TEARDOWN_TIMEOUT_MS;
  let shuttingDown: Promise<boolean> | null = null;
  const shutdown = (drainTimeoutMs = drainDefault): Promise<boolean> => {
    shuttingDown ??= (async () => {
      server.beginShutdown();
      // A check in progress may be loading models: closing the registry makes it give up.
      const stopWatching = watcher?.close();
      if (shutdownDelayMs > 0) {
        logger.info({ shutdownDelayMs }, `stopping: /v1/ready answers 503; still accepting for ${shutdownDelayMs} ms`);
        await delay(shutdownDelayMs);
      }
      server.stopAccepting();
      // After the listen socket is closed, so whoever reads the line can count on new connections being refused.
      logger.info({ drainTimeoutMs }, 'shutting down: no new connections, finishing requests in flight');
      const drained = await server.drain(drainTimeoutMs);
      if (!drained) logger.warn({ pending: server.pending }, `requests still in flight after ${drainTimeoutMs} ms; closing anyway`);
      server.closeConnections();
      // Runs and warm-ups in flight cannot be interrupted inside ONNX Runtime: wait for them only so long.
      const stopped = await Promise.race([
        Promise.all([registry.close(), stopWatching]).then(() => true),
        delay(teardownTimeoutMs, false),
      ]);
      if (!stopped) logger.warn({ teardownTimeoutMs }, `models still running after ${teardownTimeoutMs} ms; not waiting for them`);
      return drained;
    })();
    return shuttingDown;
  };

  return {
    host,
    port: address.port,
    url,
    registry,
    metrics,
    loaded: () => loading,
    reload: () => registry.reload(),
    shutdown,
    close: async () => {
      await shutdown();
    },
  };
}
