/**
 * Electron (a V8 sandbox) forbids external ArrayBuffers: Node-API there is compiled with
 * NODE_API_NO_EXTERNAL_BUFFERS_ALLOWED. This builds the addon once that way and proves every path that would
 * hand JavaScript external memory copies instead: large outputs, allocateTensorData, loads from bytes.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { describeExit, NODE, ROOT, runCase, scratch } from './harness.js';
import { writeModels, type ModelFiles } from './models.js';

let dir: string;
let remove: () => void;
let models: ModelFiles;
let addon: string;

beforeAll(() => {
  ({ dir, remove } = scratch('electron'));
  models = writeModels(dir);
  const output = execFileSync(NODE, [path.join(ROOT, 'scripts', 'build-variant.mjs'), 'electron', 'FORECASTD_NO_EXTERNAL_BUFFERS=ON'], {
    cwd: ROOT,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  addon = output.trim().split('\n').pop() as string;
}, 600_000);
afterAll(() => remove());

describe('built with NODE_API_NO_EXTERNAL_BUFFERS_ALLOWED', () => {
  it('imports no external-buffer function at all', () => {
    const symbols = execFileSync('nm', ['-D', '--undefined-only', addon], { encoding: 'utf8' });
    expect(symbols).toContain('napi_create_reference');
    expect(symbols).not.toContain('napi_create_external_arraybuffer');
    expect(symbols).not.toContain('napi_create_external_buffer');
  });

  it('runs with outputs copied, allocateTensorData as ordinary arrays, and loads from bytes', async () => {
    const result = await runCase(
      dir,
      'electron-copies',
      `
      const { configureRuntime, InferenceSession, allocateTensorData, BatchingForecaster } = forecastd;
      const { loadAddon } = await import(${JSON.stringify(path.join(ROOT, 'dist', 'runtime', 'addon.js'))});
      configureRuntime({ runThreads: 2 });
      const bytes = new Uint8Array(await (await import('node:fs/promises')).readFile(${JSON.stringify(models.sum)}));
      const sum = await InferenceSession.load(bytes);
      // 40,000 rows: a 160 KB output, which a normal build hands over as external memory.
      const rows = 40000;
      const input = allocateTensorData('float32', rows * 4);
      for (let i = 0; i < rows; i++) input.set([i, 1, 1, 1], i * 4);
      const out = await sum.run({ window: { data: input, shape: [rows, 4] } });
      let wrong = 0;
      for (let i = 0; i < rows; i++) if (out[0].data[i] !== i + 3) wrong++;
      const forecaster = new BatchingForecaster(sum, {});
      const predictions = await Promise.all([1, 2, 3].map((k) => forecaster.predict(new Float32Array([k, k, k, k]))));
      await forecaster.close();
      report({
        externalBuffers: loadAddon().externalBuffers,
        bytes: out[0].data.byteLength,
        wrong,
        predictions: predictions.map((p) => Array.from(p.values)),
      });
      `,
      { env: { FORECASTD_ADDON: addon } },
    );
    expect(result.signal, describeExit(result)).toBeNull();
    expect(result.code, describeExit(result)).toBe(0);
    expect(result.reports).toEqual([
      { externalBuffers: false, bytes: 160000, wrong: 0, predictions: [[4], [8], [12]] },
    ]);
  });
});
