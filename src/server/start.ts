import { HttpServer } from '../http/server.js';
import { silentLogger } from '../log.js';
import type { Logger } from '../log.js';
import { ServerMetrics } from '../metrics.js';
import { runtimeInfo } from '../runtime/runtime.js';
import { loadSpicepod } from '../spicepod/load.js';
import type { Spicepod } from '../spicepod/types.js';
import { ModelRegistry } from './registry.js';

export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_PORT = 8090;
export const DEFAULT_DRAIN_TIMEOUT_MS = 10_000;

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
  /** Environment for ${env:NAME} in the pod. Default process.env. */
  readonly env?: NodeJS.ProcessEnv;
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
   * Stops accepting connections, lets in-flight requests finish for up to `drainTimeoutMs`, then closes
   * every connection and frees models and datasets. Resolves true when everything in flight finished.
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
  const pod =
    typeof options.spicepod === 'string' ? await loadSpicepod(options.spicepod, options.env ?? process.env) : options.spicepod;
  for (const warning of pod.warnings) logger.warn(warning);
  const metrics = new ServerMetrics();
  const registry = new ModelRegistry(pod, { logger, metrics });
  const http = new HttpServer({
    backend: registry,
    metrics,
    logger,
    apiKeys: pod.runtime.auth === null ? null : pod.runtime.auth.apiKeys,
  });
  const host = options.host ?? DEFAULT_HOST;
  const address = await http.listen(host, options.port ?? DEFAULT_PORT);
  const url = `http://${urlHost(host)}:${address.port}`;
  logger.info(
    { url, pod: pod.file, models: pod.models.length, datasets: pod.datasets.length, auth: pod.runtime.auth !== null },
    `forecastd listening on ${url}`,
  );

  try {
    const info = runtimeInfo();
    logger.info({ version: info.version, library: info.libraryPath, runThreads: info.runThreads }, 'ONNX Runtime loaded');
  } catch (error) {
    // Every model will report the same failure as its Error; say it once here too.
    logger.error({ err: error }, 'ONNX Runtime could not be loaded');
  }

  const loading = registry.start().then(() => {
    const models = registry.models();
    const ready = models.filter((m) => m.status === 'Ready').length;
    logger.info({ ready, failed: models.length - ready }, `loaded ${ready} of ${models.length} models`);
  });

  const drainDefault = options.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS;
  let shuttingDown: Promise<boolean> | null = null;
  const shutdown = (drainTimeoutMs = drainDefault): Promise<boolean> => {
    shuttingDown ??= (async () => {
      http.stopAccepting();
      const drained = await http.drain(drainTimeoutMs);
      if (!drained) logger.warn({ pending: http.pending }, `requests still in flight after ${drainTimeoutMs} ms; closing anyway`);
      http.closeConnections();
      await registry.close();
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
    shutdown,
    close: async () => {
      await shutdown();
    },
  };
}
