import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RunCostModel } from '../../src/runtime/run-cost.js';

// Independent oracle: ordinary least squares over the same points, computed directly.
function leastSquares(points: readonly (readonly [number, number])[]): { fixed: number; perWindow: number } {
  const n = points.length;
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (const [x, y] of points) {
    sxy += (x - mx) * (y - my);
    sxx += (x - mx) * (x - mx);
  }
  const perWindow = sxy / sxx;
  return { fixed: my - perWindow * mx, perWindow };
}

describe('RunCostModel', () => {
  it('knows nothing at first: efficientBatch is 1, the batching of an unmeasured model', () => {
    const model = new RunCostModel();
    expect(model.known).toBe(false);
    expect(model.efficientBatch(64)).toBe(1);
    // Runs all of one size say nothing about the per-window cost, nor do a few runs of two sizes.
    for (let i = 0; i < 20; i++) model.observe(1, 0.05);
    expect(model.known).toBe(false);
    const few = new RunCostModel();
    for (const b of [1, 30, 1, 30]) few.observe(b, 0.05 + b * 0.01);
    expect(few.known).toBe(false);
  });

  it('recovers the fixed and per-window cost of runs that follow a line, whatever their sizes', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0.001, max: 20, noNaN: true }),
        fc.double({ min: 0.0001, max: 2, noNaN: true }),
        fc.array(fc.integer({ min: 1, max: 256 }), { minLength: 8, maxLength: 200 }),
        (fixed, perWindow, sizes) => {
          // The model fits a slope only from sizes that vary (variance above a quarter window) over 8 or more runs.
          const mean = sizes.reduce((a, b) => a + b, 0) / sizes.length;
          fc.pre(sizes.reduce((a, b) => a + (b - mean) ** 2, 0) / sizes.length > 0.3);
          const model = new RunCostModel(1e9); // no forgetting: the plain least-squares fit
          const points = sizes.map((b) => [b, fixed + perWindow * b] as const);
          for (const [b, t] of points) model.observe(b, t);
          const oracle = leastSquares(points);
          expect(model.known).toBe(true);
          expect(model.perWindowMs).toBeCloseTo(oracle.perWindow, 6);
          expect(model.fixedMs).toBeCloseTo(oracle.fixed, 5);
          expect(model.perWindowMs).toBeCloseTo(perWindow, 6);
          const expected = Math.min(64, Math.max(1, Math.ceil(model.fixedMs / model.perWindowMs)));
          expect(model.efficientBatch(64)).toBe(expected);
        },
      ),
    );
  });

  it('efficientBatch: the batch whose windows cost at least the run, within 1..maxBatchSize', () => {
    const model = new RunCostModel();
    model.calibrate(1, 0.05 + 0.006, 16, 0.05 + 16 * 0.006); // 50 µs per run, 6 µs per window
    expect(model.fixedMs).toBeCloseTo(0.05, 9);
    expect(model.perWindowMs).toBeCloseTo(0.006, 9);
    expect(model.efficientBatch(64)).toBe(9); // ceil(50 / 6)
    expect(model.efficientBatch(4)).toBe(4);
    expect(model.expectedMs(10)).toBeCloseTo(0.11, 9);
    const flat = new RunCostModel();
    flat.calibrate(1, 2, 16, 1.9); // bigger batches no dearer (noise): all fixed cost
    expect(flat.perWindowMs).toBe(0);
    expect(flat.efficientBatch(64)).toBe(64);
    const linear = new RunCostModel();
    linear.calibrate(1, 0.1, 16, 1.6); // no fixed part: every split pays
    expect(linear.efficientBatch(64)).toBe(1);
  });

  it('follows the machine: runs of one size after a calibration move the level, not the slope', () => {
    const model = new RunCostModel(8);
    model.calibrate(1, 0.06, 16, 0.15); // 6 µs per window
    const slope = model.perWindowMs;
    for (let i = 0; i < 200; i++) model.observe(4, 0.3); // a busier machine: each run of 4 now takes 300 µs
    expect(model.perWindowMs).toBeCloseTo(slope, 9);
    expect(model.expectedMs(4)).toBeCloseTo(0.3, 3);
  });

  it('ignores observations that are not runs', () => {
    const model = new RunCostModel();
    model.calibrate(1, 0.05, 8, 0.12);
    const before = [model.fixedMs, model.perWindowMs];
    model.observe(0, 1);
    model.observe(3, Number.NaN);
    model.observe(3, -1);
    expect([model.fixedMs, model.perWindowMs]).toEqual(before);
  });
});
