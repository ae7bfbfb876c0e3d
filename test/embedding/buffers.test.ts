/**
 * Input memory an embedder owns can change under a run or a load: resizable ArrayBuffers shrink, buffers are
 * transferred away and collected, SharedArrayBuffers are written by other threads. None of it may crash the
 * process or change what the run computes: the addon copies what it reads on the JavaScript thread.
 */
import { readFileSync } from 'node:fs';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { describeExit, runCase, scratch } from './harness.js';
import { preamble, writeModels, type ModelFiles } from './models.js';

let dir: string;
let remove: () => void;
let models: ModelFiles;

beforeAll(() => {
  ({ dir, remove } = scratch('buffers'));
  models = writeModels(dir);
});
afterAll(() => remove());

describe('input buffers that change under a run', () => {
  it('a resizable ArrayBuffer shrunk while the run is queued: the run sees the values it was given', async () => {
    const result = await runCase(
      dir,
      'resize-run',
      `${preamble(models)}
      const first = busy();
      const rab = new ArrayBuffer(1 << 24, { maxByteLength: 1 << 24 });
      const input = new Float32Array(rab, 0, 4);
      input.set([1, 2, 3, 4]);
      const run = sum.run({ window: { data: input, shape: [1, 4] } });
      rab.resize(0);
      const out = await run;
      await first;
      report({ value: out[0].data[0], length: input.length });
      `,
    );
    expect(result.signal, describeExit(result)).toBeNull();
    expect(result.code, describeExit(result)).toBe(0);
    expect(result.reports).toEqual([{ value: 10, length: 0 }]);
  });

  it('an input buffer transferred away and collected while the run is queued: the run still reads its values', async () => {
    const result = await runCase(
      dir,
      'transfer-run',
      `${preamble(models)}
      const first = busy();
      const input = new Float32Array(1 << 24);
      input.set([1, 2, 3, 4]);
      const run = sum.run({ window: { data: input.subarray(0, 4), shape: [1, 4] } });
      let moved = structuredClone(input.buffer, { transfer: [input.buffer] });
      moved = null;
      globalThis.gc();
      const filler = new Float32Array(1 << 24).fill(-7);
      const out = await run;
      await first;
      report({ value: out[0].data[0], detached: input.length === 0, filler: filler[0] });
      `,
      { args: ['--expose-gc'] },
    );
    expect(result.signal, describeExit(result)).toBeNull();
    expect(result.code, describeExit(result)).toBe(0);
    expect(result.reports).toEqual([{ value: 10, detached: true, filler: -7 }]);
  });

  it('a SharedArrayBuffer input works, and writes after run() returns do not reach the run', async () => {
    const result = await runCase(
      dir,
      'shared-run',
      `${preamble(models)}
      const first = busy();
      const input = new Float32Array(new SharedArrayBuffer(16));
      input.set([1, 2, 3, 4]);
      const run = sum.run({ window: { data: input, shape: [1, 4] } });
      input.fill(100);
      const out = await run;
      await first;
      const again = await sum.run({ window: { data: input, shape: [1, 4] } });
      report({ value: out[0].data[0], again: again[0].data[0] });
      `,
    );
    expect(result.signal, describeExit(result)).toBeNull();
    expect(result.code, describeExit(result)).toBe(0);
    expect(result.reports).toEqual([{ value: 10, again: 400 }]);
  });

  it('model bytes on a resizable ArrayBuffer shrunk while the load is queued: the model loads and runs', async () => {
    const bytes = readFileSync(models.sum);
    const result = await runCase(
      dir,
      'resize-load',
      `${preamble(models)}
      const first = busy();
      const source = ${JSON.stringify(Array.from(bytes))};
      const rab = new ArrayBuffer(1 << 24, { maxByteLength: 1 << 24 });
      const view = new Uint8Array(rab, 0, source.length);
      view.set(source);
      const loading = InferenceSession.load(view);
      rab.resize(0);
      const loaded = await loading;
      await first;
      const out = await loaded.run({ window: { data: new Float32Array([1, 2, 3, 4]), shape: [1, 4] } });
      report({ value: out[0].data[0] });
      `,
    );
    expect(result.signal, describeExit(result)).toBeNull();
    expect(result.code, describeExit(result)).toBe(0);
    expect(result.reports).toEqual([{ value: 10 }]);
  });
});
