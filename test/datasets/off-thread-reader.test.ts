import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test, vi } from 'vitest';
import { ForecastdError } from '../../src/errors.js';
import { FileSource } from '../../src/datasets/file-source.js';
import { RowCollector } from '../../src/datasets/row-collector.js';
import { CO2_CSV, NILE_CSV, csvPairs, never, tempDir } from './helpers.js';

/**
 * A file's rows are parsed and collected on the file reader thread, not on the thread that serves requests:
 * a large file must not stall serving while it loads.
 */

let dir: string;
let cleanup: () => Promise<void>;
beforeAll(async () => {
  ({ dir, cleanup } = await tempDir());
});
afterAll(() => cleanup());
afterEach(() => vi.restoreAllMocks());

describe('file datasets load off the JavaScript thread', () => {
  test('no row of a CSV or JSON-lines file is collected on the calling thread', async () => {
    const add = vi.spyOn(RowCollector.prototype, 'add');
    const rows = await new FileSource({ path: CO2_CSV, format: 'csv' }).loadAll(never);
    expect(rows.rows).toBe(2284);
    expect(rows.values.length).toBe(2284);
    const jsonl = path.join(dir, 'rows.jsonl');
    await writeFile(jsonl, '{"ts": 1700000000, "v": 1.5}\n{"ts": 1700000060, "v": 2.5}\n');
    const fromJsonl = await new FileSource({ path: jsonl, format: 'jsonl' }).loadAll(never);
    expect(Array.from(fromJsonl.times)).toEqual([1700000000000, 1700000060000]);
    expect(Array.from(fromJsonl.values)).toEqual([1.5, 2.5]);
    expect(add).not.toHaveBeenCalled();
  });

  test('loads running at once each get their own rows', async () => {
    const [co2, nile] = await Promise.all([
      new FileSource({ path: CO2_CSV, format: 'csv' }).loadAll(never),
      new FileSource({ path: NILE_CSV, format: 'csv' }).loadAll(never),
    ]);
    const nilePairs = await csvPairs(NILE_CSV);
    expect(co2.columns).toEqual(['co2']);
    expect(co2.rows).toBe(2284);
    expect(nile.columns).toEqual(['volume']);
    expect(Array.from(nile.values)).toEqual(nilePairs.map(([, v]) => Number(v)));
  });

  test('a load waiting on a file is cancelled there; the reader thread serves the next load', async () => {
    const fifo = path.join(dir, 'pipe.csv');
    execFileSync('mkfifo', [fifo]);
    const controller = new AbortController();
    const load = new FileSource({ path: fifo, format: 'csv' }).loadAll(controller.signal);
    setTimeout(() => controller.abort(), 50);
    const error = await load.then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ForecastdError);
    expect((error as ForecastdError).code).toBe('ERR_DATASET');
    expect((error as Error).message).toBe(`${fifo}: loading was cancelled`);
    const next = await new FileSource({ path: NILE_CSV, format: 'csv' }).loadAll(never);
    expect(next.rows).toBe(100);
  });

  test('a reader error arrives with its code and message', async () => {
    const bad = path.join(dir, 'bad.csv');
    await writeFile(bad, 'ts,v\n2024-01-01,1\n2024-01-02,x\n');
    await expect(new FileSource({ path: bad, format: 'csv' }).loadAll(never)).rejects.toMatchObject({
      code: 'ERR_DATASET',
      message: `${bad}: line 3: column "v": "x" is not a number`,
    });
  });
});
