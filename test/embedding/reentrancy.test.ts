/**
 * An embedder's objects can run code while the addon reads them: getters on feeds, shapes and output lists
 * that dispose the session or throw, and shapes that claim absurd sizes. Each is read once, before anything
 * acts on it; the worst outcome is a rejected promise with a clear error.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { describeExit, ROOT, runCase, scratch } from './harness.js';
import { preamble, writeModels, type ModelFiles } from './models.js';

let dir: string;
let remove: () => void;
let models: ModelFiles;

beforeAll(() => {
  ({ dir, remove } = scratch('reentrancy'));
  models = writeModels(dir);
});
afterAll(() => remove());

const ADDON = `
  const { loadAddon } = await import(${JSON.stringify(`${ROOT}/dist/runtime/addon.js`)});
  const addon = loadAddon();
`;

function expectClean(result: Awaited<ReturnType<typeof runCase>>): void {
  expect(result.signal, describeExit(result)).toBeNull();
  expect(result.code, describeExit(result)).toBe(0);
}

describe('getters that run in the middle of a call', () => {
  it('a shape getter that disposes the session on its second read: each value is read once', async () => {
    const result = await runCase(
      dir,
      'shape-getter-dispose',
      `${preamble(models)}
      let reads = 0;
      const shape = [1, 4];
      Object.defineProperty(shape, 1, { enumerable: true, get() { if (++reads === 2) sum.dispose(); return 4; } });
      const out = await sum.run({ window: { data: new Float32Array([1, 2, 3, 4]), shape } });
      report({ value: out[0].data[0], reads, disposed: sum.disposed });
      `,
    );
    expectClean(result);
    expect(result.reports).toEqual([{ value: 10, reads: 1, disposed: false }]);
  });

  it('an output-name getter that disposes the session on its second read', async () => {
    const result = await runCase(
      dir,
      'outputs-getter-dispose',
      `${preamble(models)}
      let reads = 0;
      const outputs = ['forecast'];
      Object.defineProperty(outputs, 0, { enumerable: true, get() { if (++reads === 2) sum.dispose(); return 'forecast'; } });
      const out = await sum.run({ window: { data: new Float32Array([1, 2, 3, 4]), shape: [1, 4] } }, { outputs });
      report({ value: out[0].data[0], reads });
      `,
    );
    expectClean(result);
    expect(result.reports).toEqual([{ value: 10, reads: 1 }]);
  });

  it('the native run(): getters on every list dispose the session mid-call; the run still completes', async () => {
    const result = await runCase(
      dir,
      'native-getters-dispose',
      `${ADDON}
      forecastd.configureRuntime({ runThreads: 1 });
      const session = await addon.loadSession(${JSON.stringify(models.sum)}, {});
      const trap = (list, value) => {
        Object.defineProperty(list, 0, { enumerable: true, get() { session.dispose(); return value; } });
        return list;
      };
      const shape = [1, 4];
      Object.defineProperty(shape, 1, { enumerable: true, get() { session.dispose(); return 4; } });
      const out = await session.run(trap(['window'], 'window'), [new Float32Array([1, 2, 3, 4])], [shape], trap(['forecast'], 'forecast'));
      let again;
      try { await session.run(['window'], [new Float32Array(4)], [[1, 4]], ['forecast']); } catch (error) { again = error.code; }
      report({ value: out[0].data[0], again });
      `,
    );
    expectClean(result);
    expect(result.reports).toEqual([{ value: 10, again: 'ERR_DISPOSED' }]);
  });

  it('a getter that throws: the run rejects with that error, nothing else happens', async () => {
    const result = await runCase(
      dir,
      'getter-throws',
      `${preamble(models)}
      const outcomes = [];
      const feeds = { get window() { throw new Error('feed getter failed'); } };
      try { await sum.run(feeds); } catch (error) { outcomes.push(error.message); }
      const tensor = { data: new Float32Array(4), get shape() { throw new Error('shape getter failed'); } };
      try { await sum.run({ window: tensor }); } catch (error) { outcomes.push(error.message); }
      const out = await sum.run({ window: { data: new Float32Array([1, 1, 1, 1]), shape: [1, 4] } });
      report({ outcomes, value: out[0].data[0] });
      `,
    );
    expectClean(result);
    expect(result.reports).toEqual([{ outcomes: ['feed getter failed', 'shape getter failed'], value: 4 }]);
  });
});

describe('absurd shapes and lengths', () => {
  it('a shape whose getter swaps in a sparse array of length 2^32-1 after validation: RangeError, no allocation', async () => {
    const result = await runCase(
      dir,
      'sparse-shape',
      `${preamble(models)}
      let reads = 0;
      const huge = [];
      huge.length = 2 ** 32 - 1;
      const tensor = { data: new Float32Array(4), get shape() { return ++reads === 1 ? [1, 4] : huge; } };
      let outcome;
      try { await sum.run({ window: tensor }); outcome = 'resolved'; } catch (error) { outcome = error.name + ': ' + error.message; }
      report({ outcome, reads });
      `,
    );
    expectClean(result);
    expect(result.reports).toEqual([{ outcome: 'resolved', reads: 1 }]);
  });

  it('the native run() with shapes of absurd rank and size: RangeError naming the problem', async () => {
    const result = await runCase(
      dir,
      'native-absurd-shapes',
      `${ADDON}
      forecastd.configureRuntime({ runThreads: 1 });
      const session = await addon.loadSession(${JSON.stringify(models.sum)}, {});
      const huge = [];
      huge.length = 2 ** 32 - 1;
      const outcomes = [];
      for (const shape of [huge, [2 ** 64, 4], [2 ** 63, 4], [2 ** 53 + 2, 4], [1e308, 4], [-0.5, 4], [NaN, 4], [1, 4, 1]]) {
        try {
          await session.run(['window'], [new Float32Array(4)], [shape], ['forecast']);
          outcomes.push('resolved');
        } catch (error) {
          outcomes.push(error.name + (/rank|dimension|integer|elements/.test(error.message) ? '' : ': ' + error.message));
        }
      }
      report({ outcomes });
      `,
    );
    expectClean(result);
    expect(result.reports).toEqual([{ outcomes: Array(8).fill('RangeError') }]);
  });
});

describe('dispose() racing runs', () => {
  it('runs and disposes interleaved on many sessions: every run settles, the process exits cleanly', async () => {
    const result = await runCase(
      dir,
      'dispose-race',
      `${preamble(models, 2)}
      const bytes = new Uint8Array(await (await import('node:fs/promises')).readFile(${JSON.stringify(models.sum)}));
      let resolved = 0;
      let disposedErrors = 0;
      const pending = [];
      for (let i = 0; i < 200; i++) {
        const session = await InferenceSession.load(bytes);
        for (let k = 0; k < 3; k++) {
          pending.push(session.run({ window: { data: new Float32Array([i, 1, 1, 1]), shape: [1, 4] } }).then(
            (out) => { if (out[0].data[0] === i + 3) resolved++; },
            (error) => { if (error.code === 'ERR_DISPOSED') disposedErrors++; },
          ));
          if (k === 1) session.dispose();
        }
      }
      await Promise.all(pending);
      report({ resolved, disposedErrors });
      `,
    );
    expectClean(result);
    expect(result.reports).toEqual([{ resolved: 400, disposedErrors: 200 }]);
  });
});
