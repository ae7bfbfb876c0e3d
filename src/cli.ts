#!/usr/bin/env node
import { existsSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ForecastdError } from './errors.js';
import { DEFAULT_SETTLE_MS } from './file-fingerprint.js';
import { createLogger, parseLogLevel } from './log.js';
import type { Logger } from './log.js';
import { DEFAULT_WATCH_INTERVAL_MS } from './server/pod-watcher.js';
import { DEFAULT_DRAIN_TIMEOUT_MS, DEFAULT_HOST, DEFAULT_PORT, DEFAULT_SHUTDOWN_DELAY_MS, startServer } from './server/start.js';
import type { ForecastdServer } from './server/start.js';
import { DEFAULT_WRITE_BUFFER_BYTES, DEFAULT_WRITE_STALL_MS, MIN_WRITE_BUFFER_BYTES } from './http/server.js';
import { DESCRIPTOR_RESERVE } from './http/connection-limit.js';

const USAGE = `Usage: forecastd [PATH] [options]
       forecastd bench MODEL.onnx|--http URL [options]   (forecastd bench --help; a pod folder named
                                                          bench is served with ./bench)
       forecastd evaluate [PATH] [options]               backtest every model on its dataset
                                                          (forecastd evaluate --help)

Serves the datasets and forecasting models of a spicepod over HTTP.

  PATH                    a spicepod.yaml, or a folder holding one (default: ./spicepod.yaml)

Options:
  --http HOST:PORT        listen address (default: ${DEFAULT_HOST}:${DEFAULT_PORT}; port 0 picks a free one)
  --log-level LEVEL       fatal, error, warn, info, debug, trace or silent (default: info,
                          or $FORECASTD_LOG_LEVEL); $FORECASTD_LOG_FORMAT=json|pretty picks the format
  --shutdown-delay MS     on SIGINT/SIGTERM, /v1/ready answers 503 at once but connections are still
                          accepted this long (default: ${DEFAULT_SHUTDOWN_DELAY_MS}; behind a load balancer or in
                          Kubernetes, set it to the health-check period)
  --drain-timeout MS      then, how long in-flight requests may finish (default: ${DEFAULT_DRAIN_TIMEOUT_MS})
  --settle-ms MS           a changed spicepod, model or data file is read only once it kept the same size,
                          mtime and inode this long, and still has them after the read (default: ${DEFAULT_SETTLE_MS})
  --write-buffer BYTES    at most this many bytes of a large answer (GET /v1/datasets/NAME/rows) are held
                          for one connection while its client is not reading (default: ${DEFAULT_WRITE_BUFFER_BYTES})
  --write-stall-timeout MS  a client that takes nothing of a large answer for this long is disconnected
                          (default: ${DEFAULT_WRITE_STALL_MS})
  --max-connections N     open connections at most; past it new connections are refused until some close
                          (default: the open file limit less ${DESCRIPTOR_RESERVE})
  --no-watch              do not reload on changes to the spicepod or model files (SIGHUP still reloads)
  --watch-interval MS     how often files are also checked in case change events are missed
                          (default: ${DEFAULT_WATCH_INTERVAL_MS})
  -h, --help              show this help
  -v, --version           show the version
`;

class UsageError extends Error {}

interface CliOptions {
  readonly path: string;
  readonly host: string;
  readonly port: number;
  readonly logLevel: string | undefined;
  readonly drainTimeoutMs: number;
  readonly shutdownDelayMs: number;
  readonly settleMs: number;
  readonly writeBufferBytes: number;
  readonly writeStallMs: number;
  readonly maxConnections: number | undefined;
  /** null: no watching. */
  readonly watchIntervalMs: number | null;
}

function version(): string {
  // dist/cli.js and src/cli.ts both sit one folder below package.json.
  const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return manifest.version;
}

/** "HOST:PORT", ":PORT" or "[IPv6]:PORT". */
function parseListenAddress(value: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(value);
  if (match === null) throw new UsageError(`--http must be HOST:PORT (for example 0.0.0.0:8090), not '${value}'`);
  const port = Number(match[3]);
  if (!Number.isInteger(port) || port > 65535) throw new UsageError(`--http port must be 0-65535, not ${match[3]}`);
  const host = match[1] ?? match[2] ?? '';
  return { host: host === '' ? DEFAULT_HOST : host, port };
}

function parseCommandLine(argv: readonly string[]): CliOptions | 'help' | 'version' {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        http: { type: 'string' },
        'log-level': { type: 'string' },
        'drain-timeout': { type: 'string' },
        'shutdown-delay': { type: 'string' },
        'settle-ms': { type: 'string' },
        'write-buffer': { type: 'string' },
        'write-stall-timeout': { type: 'string' },
        'max-connections': { type: 'string' },
        'no-watch': { type: 'boolean' },
        'watch-interval': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
    });
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  const { values, positionals } = parsed;
  if (values.help === true) return 'help';
  if (values.version === true) return 'version';
  if (positionals.length > 1) throw new UsageError(`expected at most one PATH, got ${positionals.length}: ${positionals.join(' ')}`);
  let path = positionals[0];
  if (path === undefined) {
    if (!existsSync('spicepod.yaml')) throw new UsageError('no PATH given and there is no ./spicepod.yaml');
    path = 'spicepod.yaml';
  }
  const address = values.http === undefined ? { host: DEFAULT_HOST, port: DEFAULT_PORT } : parseListenAddress(values.http);
  const drainTimeoutMs = milliseconds('--drain-timeout', values['drain-timeout'], DEFAULT_DRAIN_TIMEOUT_MS);
  const shutdownDelayMs = milliseconds('--shutdown-delay', values['shutdown-delay'], DEFAULT_SHUTDOWN_DELAY_MS);
  const settleMs = milliseconds('--settle-ms', values['settle-ms'], DEFAULT_SETTLE_MS);
  const writeStallMs = milliseconds('--write-stall-timeout', values['write-stall-timeout'], DEFAULT_WRITE_STALL_MS);
  if (writeStallMs === 0) throw new UsageError('--write-stall-timeout must be above 0 milliseconds');
  let writeBufferBytes = DEFAULT_WRITE_BUFFER_BYTES;
  const writeBuffer = values['write-buffer'];
  if (writeBuffer !== undefined) {
    writeBufferBytes = /^\d{1,15}$/.test(writeBuffer.trim()) ? Number(writeBuffer.trim()) : NaN;
    if (!(writeBufferBytes >= MIN_WRITE_BUFFER_BYTES)) {
      throw new UsageError(`--write-buffer must be a whole number of bytes, at least ${MIN_WRITE_BUFFER_BYTES}, not '${writeBuffer}'`);
    }
  }
  let watchIntervalMs: number | null = DEFAULT_WATCH_INTERVAL_MS;
  if (values['watch-interval'] !== undefined) {
    watchIntervalMs = Number(values['watch-interval']);
    if (!Number.isFinite(watchIntervalMs) || watchIntervalMs <= 0) {
      throw new UsageError(`--watch-interval must be a number of milliseconds above 0, not '${values['watch-interval']}'`);
    }
  }
  if (values['no-watch'] === true) watchIntervalMs = null;
  const logLevel = values['log-level'];
  if (logLevel !== undefined) {
    try {
      parseLogLevel(logLevel);
    } catch (error) {
      throw new UsageError(`--log-level: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  let maxConnections: number | undefined;
  const maxConnectionsText = values['max-connections'];
  if (maxConnectionsText !== undefined) {
    maxConnections = /^\d{1,9}$/.test(maxConnectionsText.trim()) ? Number(maxConnectionsText.trim()) : NaN;
    if (!(maxConnections >= 1)) throw new UsageError(`--max-connections must be a whole number above 0, not '${maxConnectionsText}'`);
  }
  return { path, ...address, logLevel, drainTimeoutMs, shutdownDelayMs, settleMs, writeBufferBytes, writeStallMs, maxConnections, watchIntervalMs };
}

/** An option holding a number of milliseconds >= 0, or its default when absent. */
function milliseconds(option: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const ms = Number(value);
  if (value.trim() === '' || !Number.isFinite(ms) || ms < 0) {
    throw new UsageError(`${option} must be a number of milliseconds >= 0, not '${value}'`);
  }
  return ms;
}

/**
 * SIGINT/SIGTERM: the shutdown sequence (see startServer), then exit 0 when every request received was
 * answered, 1 when one was cut off; a second signal exits at once with 1.
 */
function handleSignals(server: ForecastdServer, logger: Logger, drainTimeoutMs: number): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    // The server logs each step: ready turning 503, the listen socket closing, the drain, the teardown.
    logger.info({ signal }, `${signal} received`);
    server.shutdown(drainTimeoutMs).then(
      (drained) => {
        logger.info({ drained }, drained ? 'stopped' : 'stopped before every request finished');
        process.exit(drained ? 0 : 1);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // The usual "reread your configuration" signal: a file still being written is read once it settles.
  // Failures are logged by the reload itself.
  process.on('SIGHUP', () => {
    if (stopping) return;
    logger.info({ signal: 'SIGHUP' }, 'reloading the spicepod');
    void server.reload();
  });
}

async function main(argv: readonly string[]): Promise<number> {
  if (argv[0] === 'bench') {
    const { runBenchCommand } = await import('./bench/command.js');
    return runBenchCommand(argv.slice(1));
  }
  if (argv[0] === 'evaluate') {
    const { runEvaluateCommand } = await import('./evaluate-command.js');
    return runEvaluateCommand(argv.slice(1));
  }
  let options: CliOptions | 'help' | 'version';
  try {
    options = parseCommandLine(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`forecastd: ${error.message}\n\n${USAGE}`);
    return 1;
  }
  if (options === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  if (options === 'version') {
    process.stdout.write(`forecastd ${version()}\n`);
    return 0;
  }
  process.title = 'forecastd';
  const logger = createLogger(options.logLevel === undefined ? {} : { level: options.logLevel });
  let server: ForecastdServer;
  try {
    server = await startServer({
      spicepod: options.path,
      host: options.host,
      port: options.port,
      logger,
      drainTimeoutMs: options.drainTimeoutMs,
      shutdownDelayMs: options.shutdownDelayMs,
      settleMs: options.settleMs,
      writeBufferBytes: options.writeBufferBytes,
      writeStallMs: options.writeStallMs,
      ...(options.maxConnections === undefined ? {} : { maxConnections: options.maxConnections }),
      watch: options.watchIntervalMs === null ? false : { intervalMs: options.watchIntervalMs },
    });
  } catch (error) {
    // A pod error names file, line and key; anything else (address in use, no native uWS) says what to fix.
    const message = error instanceof Error ? error.message : String(error);
    const code = error instanceof ForecastdError ? ` [${error.code}]` : '';
    process.stderr.write(`forecastd: cannot start${code}: ${message}\n`);
    return 1;
  }
  handleSignals(server, logger, options.drainTimeoutMs);
  return -1;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (error: unknown) => {
    process.stderr.write(`forecastd: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
