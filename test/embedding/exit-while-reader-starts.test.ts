/**
 * A short-lived process with a file dataset exits while the dataset reader thread may still be loading
 * DuckDB's binary in the background (it starts loading as soon as the thread starts). Exiting then must not
 * crash the process: a crash there showed as `terminate called after throwing an instance of 'Napi::Error'`
 * and exit code 134 after complete, correct output.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { describeExit, ROOT, runCase, scratch } from './harness.js';

let dir: string;
let remove: () => void;
beforeAll(() => {
  ({ dir, remove } = scratch('exit-reader'));
});
afterAll(() => remove());

const CO2_CSV = path.join(ROOT, 'test', 'data', 'co2_weekly.csv');
// ISO 8601 times: read with csv-parse, so DuckDB's background load runs on after the read.
const CO2_ISO_CSV = path.join(ROOT, 'examples', 'co2', 'data', 'co2_weekly.csv');
const expected = 2284; // data rows of that file

describe('exiting while the dataset reader thread starts', () => {
  // DuckDB's binary takes from a few hundred milliseconds to over a second to load here: exits spread over
  // that span, from at once to well after it, land inside the load in many of the runs.
  const delays = Array.from({ length: 16 }, (_, i) => i * 80);

  it('process.exit() at any moment after a file is read exits with the code given, nothing on stderr', async () => {
    for (const delay of delays) {
      const result = await runCase(
        dir,
        `exit-after-${delay}`,
        `
        const source = new forecastd.FileSource({ path: ${JSON.stringify(CO2_ISO_CSV)}, format: 'csv', timeFormat: 'iso8601' });
        const rows = await source.loadAll(new AbortController().signal);
        report({ rows: rows.rows });
        await sleep(${delay});
        process.exit(3);
        `,
      );
      expect(result.signal, `exit after ${delay} ms: ${describeExit(result)}`).toBeNull();
      expect(result.code, `exit after ${delay} ms: ${describeExit(result)}`).toBe(3);
      expect(result.stderr, `exit after ${delay} ms: ${describeExit(result)}`).toBe('');
      expect(result.reports).toEqual([{ rows: expected }]);
    }
  }, 300_000);

  // Before its first read, the reader thread kept the process alive for ever: its 'message' listener,
  // added after unref(), referenced it again.
  it('a process that simply runs out of work after a FileSource is made exits 0, nothing on stderr', async () => {
    for (const delay of delays.filter((_, i) => i % 3 === 0)) {
      const result = await runCase(
        dir,
        `natural-after-${delay}`,
        `
        new forecastd.FileSource({ path: ${JSON.stringify(CO2_CSV)}, format: 'csv' });
        await sleep(${delay});
        report({ done: true });
        `,
      );
      expect(result.signal, `after ${delay} ms: ${describeExit(result)}`).toBeNull();
      expect(result.code, `after ${delay} ms: ${describeExit(result)}`).toBe(0);
      expect(result.stderr, `after ${delay} ms: ${describeExit(result)}`).toBe('');
      expect(result.reports).toEqual([{ done: true }]);
    }
  }, 300_000);
});
