import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI } from '../helpers/cli.js';
import { PodDir, writeLinearPod } from '../server/fixtures.js';

/**
 * The log format the CLI picks by itself: readable lines when stdout is a terminal (as `npm start` in a
 * shell), JSON lines otherwise (a pipe, a file, a container's log), and FORECASTD_LOG_FORMAT over both. The
 * terminal is a real pseudo-terminal, opened by util-linux's `script`.
 */

const HAS_SCRIPT = spawnSync('script', ['--version'], { stdio: 'ignore' }).status === 0;

interface Started {
  /** Everything written until the server said it listens (and the little after it, until it stopped). */
  readonly output: string;
}

/** Starts the CLI (on a terminal through `script`, or into a pipe), waits for its listen line, stops it. */
function startAndStop(pod: PodDir, terminal: boolean, format: string | undefined): Promise<Started> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env['FORECASTD_LOG_FORMAT'];
  if (format !== undefined) env['FORECASTD_LOG_FORMAT'] = format;
  const argv = [process.execPath, CLI, pod.dir, '--http', '127.0.0.1:0', '--no-watch'];
  const quoted = argv.map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(' ');
  // `script` runs the command on a new pseudo-terminal and copies what it prints to its own stdout; it
  // passes SIGTERM on to the command.
  const child = terminal
    ? spawn('script', ['--quiet', '--flush', '--return', '--command', `exec ${quoted}`, '/dev/null'], { env, stdio: ['pipe', 'pipe', 'pipe'] })
    : spawn(argv[0]!, argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let stopped = false;
  return new Promise((resolve) => {
    const onData = (d: Buffer): void => {
      output += d.toString();
      if (!stopped && output.includes('forecastd listening on')) {
        stopped = true;
        child.kill('SIGTERM');
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('exit', () => resolve({ output }));
  });
}

const lines = (text: string): string[] => text.split(/\r?\n/).filter((l) => l.trim() !== '');

describe.skipIf(!HAS_SCRIPT)('the log format the CLI picks', () => {
  const pod = new PodDir('forecastd-log-format-');
  beforeAll(() => {
    expect(existsSync(CLI), 'dist/cli.js is missing: run npm run build:ts (npm test does)').toBe(true);
    writeLinearPod(pod, 'logs');
  });
  afterAll(() => pod.remove());

  it('on a terminal: readable lines, a level word and the message, no JSON', async () => {
    const { output } = await startAndStop(pod, true, undefined);
    const listen = lines(output).find((l) => l.includes('forecastd listening on'));
    expect(listen, output).toBeDefined();
    expect(listen).toMatch(/INFO.*forecastd listening on http:\/\/127\.0\.0\.1:\d+/);
    expect(lines(output).filter((l) => l.trimStart().startsWith('{'))).toEqual([]);
  });

  it('into a pipe: one JSON object a line', async () => {
    const { output } = await startAndStop(pod, false, undefined);
    const parsed = lines(output).map((l) => JSON.parse(l) as { level: number; msg: string });
    expect(parsed.find((p) => p.msg.startsWith('forecastd listening on'))).toMatchObject({ level: 30 });
  });

  it('FORECASTD_LOG_FORMAT wins: JSON on a terminal, readable lines into a pipe', async () => {
    const onTerminal = await startAndStop(pod, true, 'json');
    const listen = lines(onTerminal.output).find((l) => l.includes('forecastd listening on'));
    expect(JSON.parse(listen!)).toMatchObject({ level: 30, msg: expect.stringMatching(/^forecastd listening on/) });

    const intoPipe = await startAndStop(pod, false, 'pretty');
    expect(lines(intoPipe.output).find((l) => l.includes('forecastd listening on'))).toMatch(/INFO.*forecastd listening on/);
    expect(lines(intoPipe.output).filter((l) => l.startsWith('{'))).toEqual([]);
  });
});
