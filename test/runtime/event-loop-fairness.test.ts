import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { afterAll, describe, expect, it } from 'vitest';
import { configureRuntime, runtimeInfo } from '../../src/runtime/runtime.js';
import { InferenceSession } from '../../src/runtime/session.js';
import { linearModel, linearReference, seededRandom, uniformWeights } from '../../tools/onnx-builder.js';

/**
 * Completions reach JavaScript once per event-loop turn: runs that finish while a turn's completions are being
 * delivered (the callers' next runs, started from those completions' promise reactions) wait for the next turn,
 * so timers and I/O get theirs in between. Callers that keep a fast model busy must not hold the loop.
 */
const LOOKBACK = 8;
const HORIZON = 2;
const weights = uniformWeights(seededRandom(41), LOOKBACK * HORIZON, 0.5);
const params = { horizon: HORIZON, weights };
const sessions: InferenceSession[] = [];
afterAll(() => {
  for (const s of sessions) s.dispose();
});

describe('completions and the event loop', () => {
  it('delivers at most one completion per caller between two turns of the loop', async () => {
    const session = await InferenceSession.load(linearModel({ lookback: LOOKBACK, horizon: HORIZON, weights, rank: 2 }));
    sessions.push(session);
    const window = uniformWeights(seededRandom(42), LOOKBACK, 1);
    const expected = linearReference(params, window);
    const CALLERS = 32;
    const RUNS = 6000;
    let completed = 0;
    let wrong = 0;
    // Completions counted at each turn of the loop (setImmediate runs once per turn, after the poll phase).
    const perTurn: number[] = [];
    let lastCount = 0;
    let turning = true;
    const turn = (): void => {
      perTurn.push(completed - lastCount);
      lastCount = completed;
      if (turning) setImmediate(turn);
    };
    setImmediate(turn);
    const caller = async (): Promise<void> => {
      while (completed < RUNS) {
        const [out] = await session.run({ window: { data: window, shape: [1, LOOKBACK] } });
        const values = out?.data as Float32Array;
        if (values.some((v, i) => Math.abs(v - (expected[i] as number)) > 1e-4)) wrong++;
        completed++;
      }
    };
    await Promise.all(Array.from({ length: CALLERS }, caller));
    turning = false;
    expect(wrong).toBe(0);
    expect(completed).toBeGreaterThanOrEqual(RUNS);
    // Each caller has one run in flight at a time, so a turn can deliver at most one run per caller.
    expect(perTurn.reduce((a, b) => Math.max(a, b), 0)).toBeLessThanOrEqual(CALLERS);
    // And the loop did turn while the callers kept it busy.
    expect(perTurn.length).toBeGreaterThan(RUNS / CALLERS / 2);
  });
});

describe('runSpinMicros', () => {
  it('is reported, can change at any time, and is checked', () => {
    const before = runtimeInfo().runSpinMicros;
    expect(Number.isInteger(before)).toBe(true);
    expect(configureRuntime({ runSpinMicros: 0 }).runSpinMicros).toBe(0);
    expect(configureRuntime({ runSpinMicros: 250 }).runSpinMicros).toBe(250);
    // Without the option, the current budget stays.
    expect(configureRuntime().runSpinMicros).toBe(250);
    for (const bad of [-1, 1.5, 100_001, Number.NaN]) {
      expect(() => configureRuntime({ runSpinMicros: bad })).toThrow(/runSpinMicros must be an integer from 0 to 100000/);
    }
    expect(runtimeInfo().runSpinMicros).toBe(250);
    // $FORECASTD_RUN_SPIN_US is the default when the option is absent.
    process.env['FORECASTD_RUN_SPIN_US'] = '77';
    try {
      expect(configureRuntime().runSpinMicros).toBe(77);
      process.env['FORECASTD_RUN_SPIN_US'] = 'fast';
      expect(() => configureRuntime()).toThrow('FORECASTD_RUN_SPIN_US must be an integer from 0 to 100000, got "fast"');
      expect(configureRuntime({ runSpinMicros: 5 }).runSpinMicros).toBe(5);
    } finally {
      delete process.env['FORECASTD_RUN_SPIN_US'];
    }
    configureRuntime({ runSpinMicros: before });
  });

  it('runs give the same answers with and without spinning', async () => {
    const session = await InferenceSession.load(linearModel({ lookback: LOOKBACK, horizon: HORIZON, weights, rank: 2 }));
    sessions.push(session);
    const windows = Array.from({ length: 40 }, (_, i) => uniformWeights(seededRandom(100 + i), LOOKBACK, 2));
    const before = runtimeInfo().runSpinMicros;
    for (const spin of [0, 50, 1000]) {
      configureRuntime({ runSpinMicros: spin });
      // One at a time (the case spinning serves) and all at once.
      for (const w of windows.slice(0, 10)) {
        const [out] = await session.run({ window: { data: w, shape: [1, LOOKBACK] } });
        const want = linearReference(params, w);
        (out?.data as Float32Array).forEach((v, j) => expect(v).toBeCloseTo(want[j] as number, 4));
      }
      const all = await Promise.all(windows.map((w) => session.run({ window: { data: w, shape: [1, LOOKBACK] } })));
      all.forEach(([out], i) => {
        const want = linearReference(params, windows[i] as Float32Array);
        (out?.data as Float32Array).forEach((v, j) => expect(v).toBeCloseTo(want[j] as number, 4));
      });
    }
    configureRuntime({ runSpinMicros: before });
  });

  // A spin takes a second CPU: on one, the test below measures nothing.
  const oneCpu = availableParallelism() < 2;
  it.skipIf(oneCpu)('a run thread does not spin for the next run of a JavaScript thread too busy to wait for it', async () => {
    const { wallMs, cpuMs } = await runThreadsCpuBesideBusyCaller();
    // The runs themselves take a few milliseconds in all; a run thread spinning beside this one for each next
    // run would have been on a CPU the whole time.
    expect(cpuMs).toBeLessThan(wallMs / 4);
  });
});

describe('ioPollMicros', () => {
  it('is reported, can change at any time, and is checked', () => {
    const saved = process.env['FORECASTD_IO_POLL_US'];
    delete process.env['FORECASTD_IO_POLL_US'];
    const before = runtimeInfo().ioPollMicros;
    expect(Number.isInteger(before)).toBe(true);
    expect(configureRuntime({ ioPollMicros: 0 }).ioPollMicros).toBe(0);
    expect(configureRuntime({ ioPollMicros: 120 }).ioPollMicros).toBe(120);
    // Without the option, the current budget stays.
    expect(configureRuntime().ioPollMicros).toBe(120);
    for (const bad of [-1, 2.5, 100_001, Number.NaN]) {
      expect(() => configureRuntime({ ioPollMicros: bad })).toThrow(/ioPollMicros must be an integer from 0 to 100000/);
    }
    expect(runtimeInfo().ioPollMicros).toBe(120);
    process.env['FORECASTD_IO_POLL_US'] = '33';
    try {
      expect(configureRuntime().ioPollMicros).toBe(33);
      process.env['FORECASTD_IO_POLL_US'] = '-4';
      expect(() => configureRuntime()).toThrow('FORECASTD_IO_POLL_US must be an integer from 0 to 100000, got "-4"');
      expect(configureRuntime({ ioPollMicros: 7 }).ioPollMicros).toBe(7);
    } finally {
      if (saved === undefined) delete process.env['FORECASTD_IO_POLL_US'];
      else process.env['FORECASTD_IO_POLL_US'] = saved;
    }
    configureRuntime({ ioPollMicros: before });
  });

  it('pauses by itself on an idle loop, and every timer still fires', async () => {
    const before = runtimeInfo().ioPollMicros;
    // The longest poll allowed, on a loop that wakes only for a timer every 2 ms: polling each time the loop
    // would sleep would keep this thread busy the whole time (it stops at each timer, which is due before the
    // poll ends).
    configureRuntime({ ioPollMicros: 100_000 });
    try {
      const ticks: number[] = [];
      const cpuBefore = process.cpuUsage();
      const wallBefore = performance.now();
      await new Promise<void>((resolve) => {
        const timer = setInterval(() => {
          ticks.push(performance.now());
          if (ticks.length === 250) {
            clearInterval(timer);
            resolve();
          }
        }, 2);
      });
      const wallMs = performance.now() - wallBefore;
      const cpu = process.cpuUsage(cpuBefore);
      const cpuMs = (cpu.user + cpu.system) / 1000;
      // Every tick came (the poll ends at the loop's next timer), and after a few polls that found nothing
      // the thread slept: well under half of the wall time on the CPU (polling every time would be all of it).
      expect(ticks).toHaveLength(250);
      expect(cpuMs).toBeLessThan(wallMs / 2);
    } finally {
      configureRuntime({ ioPollMicros: before });
    }
  });

  it('runs give the same answers while the loop polls for I/O and for long runs', async () => {
    const session = await InferenceSession.load(linearModel({ lookback: LOOKBACK, horizon: HORIZON, weights, rank: 2 }));
    sessions.push(session);
    const windows = Array.from({ length: 20 }, (_, i) => uniformWeights(seededRandom(300 + i), LOOKBACK, 2));
    const before = runtimeInfo().ioPollMicros;
    try {
      for (const poll of [0, 100, 5000]) {
        configureRuntime({ ioPollMicros: poll });
        for (const w of windows) {
          const [out] = await session.run({ window: { data: w, shape: [1, LOOKBACK] } });
          const want = linearReference(params, w);
          (out?.data as Float32Array).forEach((v, j) => expect(v).toBeCloseTo(want[j] as number, 4));
          // A timer between runs: the loop sleeps and polls again each time.
          await new Promise((resolve) => setTimeout(resolve, 1));
        }
      }
    } finally {
      configureRuntime({ ioPollMicros: before });
    }
  });
});

/**
 * 1,000 runs of a tiny model one after the other, this thread working 0.3 ms while each executes, with the
 * longest spin allowed (100 ms: a run thread spinning for each next run would never stop): the wall time, and
 * the CPU time of the run threads.
 */
async function runThreadsCpuBesideBusyCaller(): Promise<{ wallMs: number; cpuMs: number }> {
  const session = await InferenceSession.load(linearModel({ lookback: LOOKBACK, horizon: HORIZON, weights, rank: 2 }));
  sessions.push(session);
  const window = uniformWeights(seededRandom(77), LOOKBACK, 1);
  const want = linearReference(params, window);
  const before = runtimeInfo().runSpinMicros;
  configureRuntime({ runSpinMicros: 100_000 });
  try {
    // The pool's threads exist once a run has gone through it.
    await session.run({ window: { data: window, shape: [1, LOOKBACK] } });
    const cpuBefore = runThreadsCpuMs();
    const wallBefore = performance.now();
    for (let i = 0; i < 1000; i++) {
      const pending = session.run({ window: { data: window, shape: [1, LOOKBACK] } });
      const until = performance.now() + 0.3;
      while (performance.now() < until);
      const [out] = await pending;
      (out?.data as Float32Array).forEach((v, j) => expect(v).toBeCloseTo(want[j] as number, 4));
    }
    const wallMs = performance.now() - wallBefore;
    return { wallMs, cpuMs: runThreadsCpuMs() - cpuBefore };
  } finally {
    configureRuntime({ runSpinMicros: before });
  }
}

/** CPU milliseconds used so far by the run pool's threads (named forecastd-run), from Linux's /proc. */
function runThreadsCpuMs(): number {
  let ticks = 0;
  let threads = 0;
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      if (readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim() !== 'forecastd-run') continue;
      // Fields after the command name, which ends at the last ')': utime and stime are the 14th and 15th.
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
      threads++;
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  expect(threads).toBeGreaterThan(0);
  // USER_HZ is 100 on every Linux this runs on.
  return ticks * 10;
}
