import { pino } from 'pino';
import type { Logger, Level } from 'pino';
import pretty from 'pino-pretty';

export type { Logger } from 'pino';

export type LogFormat = 'json' | 'pretty';

const LEVELS: readonly string[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export interface LoggerOptions {
  /** Default: $FORECASTD_LOG_LEVEL, else info. */
  readonly level?: string;
  /** Default: $FORECASTD_LOG_FORMAT, else pretty when stdout is a terminal, else JSON lines. */
  readonly format?: LogFormat;
  /** Where lines go. Default: stdout. */
  readonly destination?: NodeJS.WritableStream;
}

/** Throws a message a user can act on for a level pino does not know. */
export function parseLogLevel(value: string): Level | 'silent' {
  const level = value.trim().toLowerCase();
  if (!LEVELS.includes(level)) {
    throw new Error(`unknown log level '${value}'; use one of ${LEVELS.join(', ')}`);
  }
  return level as Level | 'silent';
}

function parseFormat(value: string): LogFormat {
  const format = value.trim().toLowerCase();
  if (format !== 'json' && format !== 'pretty') {
    throw new Error(`unknown FORECASTD_LOG_FORMAT '${value}'; use json or pretty`);
  }
  return format;
}

/**
 * The server's logger: JSON lines by default, readable lines on a terminal. Pretty output is written by a
 * synchronous stream in this thread, not a worker transport, so the last lines before an exit are never lost.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = parseLogLevel(options.level ?? process.env['FORECASTD_LOG_LEVEL'] ?? 'info');
  const envFormat = process.env['FORECASTD_LOG_FORMAT'];
  const format =
    options.format ?? (envFormat ? parseFormat(envFormat) : process.stdout.isTTY ? 'pretty' : 'json');
  const destination = options.destination ?? process.stdout;
  const base = { level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime };
  if (format === 'pretty') {
    reportBrokenDestination(destination);
    const stream = pretty({
      sync: true,
      colorize: destination === process.stdout && process.stdout.isTTY === true,
      destination,
      ignore: 'pid,hostname',
      translateTime: 'SYS:HH:MM:ss.l',
    });
    return pino(base, stream);
  }
  // Synchronous fd writes: log lines are rare (requests log at debug), and none is lost at exit.
  const sink = options.destination ?? pino.destination({ dest: 1, sync: true });
  reportBrokenDestination(sink);
  return pino(base, sink);
}

/**
 * A log destination that breaks (stdout closed by the reader: EPIPE; a full disk) must not take the server
 * down: the failure is said once on stderr and later lines are dropped.
 */
function reportBrokenDestination(sink: { on(event: 'error', listener: (error: NodeJS.ErrnoException) => void): unknown }): void {
  let reported = false;
  sink.on('error', (error: NodeJS.ErrnoException) => {
    if (reported) return;
    reported = true;
    try {
      process.stderr.write(`forecastd: the log destination failed (${error.code ?? error.message}); further log lines are dropped\n`);
    } catch {
      // stderr is gone too: nothing is left to tell.
    }
  });
}

/** A logger that drops everything (library use without a logger). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
