/**
 * The hostile-embedder harness: every case is a script run in its own Node.js process, so a crash (SIGSEGV,
 * SIGABRT, a hang) is a failed test with the child's output, never a dead test runner.
 *
 * The scripts import the built package (dist/, as an embedder would); `npm test` builds it first. The Node.js
 * binary is $FORECASTD_TEST_NODE when set (e.g. a Node 22 or 24 binary), else the one running the tests.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const DIST_INDEX = path.join(ROOT, 'dist', 'index.js');

/** The node executable the cases run under. */
export const NODE = process.env['FORECASTD_TEST_NODE'] !== undefined && process.env['FORECASTD_TEST_NODE'] !== ''
  ? process.env['FORECASTD_TEST_NODE']
  : process.execPath;

export interface CaseResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Every stdout line that parses as JSON, in order. */
  readonly reports: readonly Record<string, unknown>[];
}

export interface CaseOptions {
  readonly env?: Readonly<Record<string, string>>;
  /** Kill the child (and report SIGKILL) after this long; a hang then fails the test. Default 45 s. */
  readonly killAfterMs?: number;
  readonly args?: readonly string[];
}

/** A scratch folder removed by the returned function. */
export function scratch(prefix: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), `forecastd-${prefix}-`));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Runs `body` as an ES module in a fresh process. `body` can use `forecastd` (the package's exports),
 * `report(obj)` (one JSON line on stdout) and `sleep(ms)`; worker threads it starts find the package at
 * `process.env.FORECASTD_DIST_INDEX`.
 */
export function runCase(dir: string, name: string, body: string, options: CaseOptions = {}): Promise<CaseResult> {
  const file = path.join(dir, `${name}.mjs`);
  writeFileSync(
    file,
    [
      `import * as forecastd from ${JSON.stringify(DIST_INDEX)};`,
      `const report = (value) => process.stdout.write(JSON.stringify(value) + '\\n');`,
      `const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));`,
      body,
    ].join('\n'),
  );
  return new Promise((resolve, reject) => {
    const child = spawn(NODE, [...(options.args ?? []), file], {
      cwd: dir,
      // Worker threads started by a case import the package from here.
      env: { ...process.env, FORECASTD_DIST_INDEX: pathToFileURL(DIST_INDEX).href, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.killAfterMs ?? 45_000);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const reports: Record<string, unknown>[] = [];
      for (const line of stdout.split('\n')) {
        if (!line.startsWith('{')) continue;
        try {
          reports.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          // Not a report line.
        }
      }
      resolve({ code, signal, stdout, stderr, reports });
    });
  });
}

/** A readable summary for assertion messages. */
export function describeExit(result: CaseResult): string {
  return `exit ${String(result.code)} signal ${String(result.signal)}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`;
}
