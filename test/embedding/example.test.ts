/** The Library page's worked embedding example (docs/library.md): the file it shows is the file that runs, and it runs as shown. */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { describeExit, NODE, ROOT } from './harness.js';

const EXAMPLE = path.join(ROOT, 'examples', 'embedding', 'forecast-in-worker.mjs');

describe('docs/library.md embedding example', () => {
  it('is shown in docs/library.md verbatim', () => {
    const page = readFileSync(path.join(ROOT, 'docs', 'library.md'), 'utf8');
    expect(page).toContain('```js\n' + readFileSync(EXAMPLE, 'utf8') + '```');
  });

  it('runs: a forecast from the worker, a clear error for a bad window, a clean exit', () => {
    const result = spawnSync(NODE, [EXAMPLE], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    const summary = describeExit({ code: result.status, signal: result.signal, stdout: result.stdout, stderr: result.stderr, reports: [] });
    expect(result.signal, summary).toBeNull();
    expect(result.status, summary).toBe(0);
    const [forecast, bad] = result.stdout.trim().split('\n');
    expect(forecast).toMatch(/^next weeks:( \d+\.\d\d){12}$/);
    expect(bad).toBe('bad window: ERR_INVALID_ARGUMENT: the window has 3 values but the model takes 52 (lookback 52 x 1 variable)');
  });
});
