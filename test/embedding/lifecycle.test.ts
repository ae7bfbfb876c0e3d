/**
 * An embedder ends things when it likes: worker threads terminated in the middle of runs, process.exit() and
 * uncaught exceptions with runs and loads in flight. The process must end the way the embedder asked (its exit
 * code, no signal), and a worker's teardown must not wait for other threads' queued work.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { describeExit, runCase, scratch } from './harness.js';
import { preamble, writeModels, type ModelFiles } from './models.js';

let dir: string;
let remove: () => void;
let models: ModelFiles;

beforeAll(() => {
  ({ dir, remove } = scratch('lifecycle'));
  models = writeModels(dir);
});
afterAll(() => remove());

describe('worker threads', () => {
  it('workers terminated while their runs execute, in a loop: the process survives and keeps serving', async () => {
    const result = await runCase(
      dir,
      'terminate-workers',
      `${preamble(models, 2)}
      const { Worker } = await import('node:worker_threads');
      const workerBody = \`
        const { parentPort } = require('node:worker_threads');
        import(process.env.FORECASTD_DIST_INDEX).then(async (forecastd) => {
          const slow = await forecastd.InferenceSession.load(${JSON.stringify(models.slow)});
          const sum = await forecastd.InferenceSession.load(${JSON.stringify(models.sum)});
          const input = { window: { data: new Float32Array(${64 * 128}).fill(0.25), shape: [64, 128] } };
          const quick = { window: { data: new Float32Array(4), shape: [1, 4] } };
          for (let i = 0; i < 4; i++) slow.run(input).catch(() => {});
          parentPort.postMessage('running');
          // Slow runs and bursts of quick ones: completions arrive all the time, also while the worker ends.
          for (;;) await Promise.all([slow.run(input), ...Array.from({ length: 8 }, () => sum.run(quick))]);
        });
      \`;
      let terminated = 0;
      for (let i = 0; i < 10; i++) {
        const worker = new Worker(workerBody, { eval: true });
        await new Promise((resolve, reject) => { worker.once('message', resolve); worker.once('error', reject); });
        await sleep(i % 3 === 0 ? 0 : 5 * i);
        await worker.terminate();
        terminated++;
      }
      const out = await sum.run({ window: { data: new Float32Array([1, 2, 3, 4]), shape: [1, 4] } });
      report({ terminated, value: out[0].data[0] });
      `,
      // Ten workers started and stopped: slow under a sanitizer on a busy machine, and still a hang if it never ends.
      { killAfterMs: 240_000 },
    );
    expect(result.signal, describeExit(result)).toBeNull();
    expect(result.code, describeExit(result)).toBe(0);
    expect(result.reports).toEqual([{ terminated: 10, value: 10 }]);
  }, 300_000);

  it("a worker's teardown waits only for its own running job, not for other threads' queued work", async () => {
    const result = await runCase(
      dir,
      'worker-teardown-backlog',
      `${preamble(models, 1)}
      const { Worker } = await import('node:worker_threads');
      const workerBody = \`
        const { parentPort } = require('node:worker_threads');
        import(process.env.FORECASTD_DIST_INDEX).then(async (forecastd) => {
          const sum = await forecastd.InferenceSession.load(${JSON.stringify(models.sum)});
          parentPort.postMessage('loaded');
          parentPort.once('message', () => {
            for (let i = 0; i < 5; i++) sum.run({ window: { data: new Float32Array(4), shape: [1, 4] } }).catch(() => {});
            parentPort.postMessage('queued');
          });
        });
      \`;
      const worker = new Worker(workerBody, { eval: true });
      await new Promise((resolve) => worker.once('message', resolve));
      // One run thread: the main thread's backlog of slow runs queues first, the worker's runs behind it.
      let finished = 0;
      const backlog = [];
      for (let i = 0; i < 12; i++) backlog.push(busy().then(() => finished++));
      worker.postMessage('go');
      await new Promise((resolve) => worker.once('message', resolve));
      await worker.terminate();
      const finishedAtTeardown = finished;
      await Promise.all(backlog);
      report({ teardownBeforeBacklog: finishedAtTeardown < 12, finished });
      `,
    );
    expect(result.signal, describeExit(result)).toBeNull();
    expect(result.code, describeExit(result)).toBe(0);
    expect(result.reports).toEqual([{ teardownBeforeBacklog: true, finished: 12 }]);
  });
});

describe('process exit with work in flight', () => {
  it.each([0, 1, 2])('process.exit(7) with runs and a load in flight exits with 7 and no signal (try %i)', async (attempt) => {
    const result = await runCase(
      dir,
      `exit-in-flight-${attempt}`,
      `${preamble(models, 2)}
      for (let i = 0; i < 6; i++) busy().catch(() => {});
      InferenceSession.load(${JSON.stringify(models.slow)}).catch(() => {});
      await sleep(20);
      report({ exiting: true });
      process.exit(7);
      `,
    );
    expect(result.signal, describeExit(result)).toBeNull();
    expect(result.code, describeExit(result)).toBe(7);
    expect(result.reports).toEqual([{ exiting: true }]);
  });

  it('an uncaught exception with runs in flight ends the process with code 1 and the error, no signal', async () => {
    const result = await runCase(
      dir,
      'uncaught-in-flight',
      `${preamble(models, 2)}
      for (let i = 0; i < 6; i++) busy().catch(() => {});
      setTimeout(() => { throw new Error('embedder bug'); }, 10);
      `,
    );
    expect(result.signal, describeExit(result)).toBeNull();
    expect(result.code, describeExit(result)).toBe(1);
    expect(result.stderr).toContain('embedder bug');
  });
});

describe('the addon used only from a worker thread', () => {
  it('the worker ends, the process goes on and exits cleanly: the run threads never lose their code', async () => {
    const result = await runCase(
      dir,
      'worker-only',
      `
      const { Worker } = await import('node:worker_threads');
      for (let i = 0; i < 2; i++) {
        const worker = new Worker(\`
          const { parentPort } = require('node:worker_threads');
          import(process.env.FORECASTD_DIST_INDEX).then(async ({ InferenceSession }) => {
            const sum = await InferenceSession.load(${JSON.stringify('SUM')});
            const out = await sum.run({ window: { data: new Float32Array([1, 2, 3, 4]), shape: [1, 4] } });
            parentPort.postMessage(out[0].data[0]);
          });
        \`.replace('"SUM"', JSON.stringify(process.env.SUM_MODEL)), { eval: true });
        const value = await new Promise((resolve) => worker.once('message', resolve));
        await worker.terminate();
        report({ value });
      }
      await sleep(200);
      report({ alive: true });
      `,
      { env: { SUM_MODEL: models.sum } },
    );
    expect(result.signal, describeExit(result)).toBeNull();
    expect(result.code, describeExit(result)).toBe(0);
    expect(result.reports).toEqual([{ value: 10 }, { value: 10 }, { alive: true }]);
  });
});
