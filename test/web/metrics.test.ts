import { describe, expect, it } from 'vitest';
import { ServerMetrics } from '../../src/metrics.js';
import { histogramQuantile, modelStats } from '../../src/web/metrics.js';

/**
 * The dashboard's reading of GET /metrics, on the text forecastd's own metrics registry writes: cache hits
 * and misses per model, and p50/p99 inference time estimated from the histogram as PromQL's
 * histogram_quantile does.
 */

describe("the dashboard's metrics reading", () => {
  it('reads cache counts and inference quantiles per model from real metrics text', async () => {
    const metrics = new ServerMetrics();
    const a = metrics.model('a "quoted" \\ model', { queueDepth: () => 0, cacheHits: () => 30, cacheMisses: () => 10 });
    const b = metrics.model('b', { queueDepth: () => 0, cacheHits: () => 0, cacheMisses: () => 0 });
    // 100 runs of model a: 50 of 0.8 ms (bucket 0.5–1 ms), 49 of 3 ms (2.5–5 ms), 1 of 40 ms (25–50 ms).
    for (let i = 0; i < 50; i++) a.batch(1, [0], 0.8);
    for (let i = 0; i < 49; i++) a.batch(1, [0], 3);
    a.batch(1, [0], 40);
    void b;
    const stats = modelStats(await metrics.text());
    const sa = stats.get('a "quoted" \\ model')!;
    expect(sa.cacheHits).toBe(30);
    expect(sa.cacheMisses).toBe(10);
    // Rank 50 of 100 is the last of the 0.5–1 ms bucket: its upper bound.
    expect(sa.inferenceP50).toBeCloseTo(0.001, 9);
    // Rank 99 is the last of the 2.5–5 ms bucket.
    expect(sa.inferenceP99).toBeCloseTo(0.005, 9);
    expect(stats.get('b')).toEqual({ cacheHits: 0, cacheMisses: 0, inferenceP50: null, inferenceP99: null });
  });

  it('interpolates inside the bucket holding the rank, as histogram_quantile does', () => {
    const buckets: [number, number][] = [
      [1, 0],
      [2, 10],
      [4, 20],
      [Infinity, 20],
    ];
    expect(histogramQuantile(0.25, buckets)).toBe(1.5);
    expect(histogramQuantile(0.75, buckets)).toBe(3);
    expect(histogramQuantile(0.5, [[1, 0], [Infinity, 4]])).toBe(1);
    expect(histogramQuantile(0.5, [[1, 0], [Infinity, 0]])).toBeNull();
  });
});
