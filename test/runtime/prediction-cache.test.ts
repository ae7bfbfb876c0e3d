import { describe, expect, it } from 'vitest';
import { PredictionCache } from '../../src/runtime/prediction-cache.js';

/** A computation the test finishes by hand, counting how often it was started. */
function deferred<V>() {
  let resolve!: (v: V) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<V>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('PredictionCache', () => {
  it('runs one computation for 10 concurrent gets of one key (single flight)', async () => {
    const cache = new PredictionCache<number[]>();
    const d = deferred<number[]>();
    let computed = 0;
    const compute = () => {
      computed++;
      return d.promise;
    };
    const gets = Array.from({ length: 10 }, () => cache.get('m@1', compute));
    expect(computed).toBe(1);
    d.resolve([1, 2, 3]);
    const results = await Promise.all(gets);
    for (const r of results) expect(r).toEqual([1, 2, 3]);
    expect(results.every((r) => r === results[0])).toBe(true);
    expect(cache.misses).toBe(1);
    expect(cache.hits).toBe(9);
  });

  it('serves a finished value again without computing', async () => {
    const cache = new PredictionCache<string>();
    let computed = 0;
    const compute = async () => `value ${++computed}`;
    expect(await cache.get('k', compute)).toBe('value 1');
    expect(await cache.get('k', compute)).toBe('value 1');
    expect(computed).toBe(1);
    expect({ hits: cache.hits, misses: cache.misses }).toEqual({ hits: 1, misses: 1 });
  });

  it('keeps different keys separate', async () => {
    const cache = new PredictionCache<string>();
    const a = cache.get('model@v1', async () => 'a');
    const b = cache.get('model@v2', async () => 'b');
    expect(await a).toBe('a');
    expect(await b).toBe('b');
    expect(cache.misses).toBe(2);
    expect(cache.hits).toBe(0);
  });

  it('does not cache a failure: every waiter sees it and the next get computes again', async () => {
    const cache = new PredictionCache<string>();
    const d = deferred<string>();
    const first = cache.get('k', () => d.promise);
    const second = cache.get('k', async () => 'unused');
    d.reject(new Error('inference failed'));
    await expect(first).rejects.toThrow('inference failed');
    await expect(second).rejects.toThrow('inference failed');
    expect(await cache.get('k', async () => 'recovered')).toBe('recovered');
    expect(cache.misses).toBe(2);
    expect(cache.size).toBe(1);
  });

  it('treats a compute that throws synchronously as a failure', async () => {
    const cache = new PredictionCache<string>();
    await expect(
      cache.get('k', () => {
        throw new Error('bad window');
      }),
    ).rejects.toThrow('bad window');
    expect(await cache.get('k', async () => 'ok')).toBe('ok');
  });

  it('clear() makes the next get compute, even while an old computation is still running', async () => {
    const cache = new PredictionCache<string>();
    const old = deferred<string>();
    const before = cache.get('k', () => old.promise);
    cache.clear();
    const after = cache.get('k', async () => 'fresh');
    old.resolve('stale');
    expect(await before).toBe('stale');
    expect(await after).toBe('fresh');
    // The old computation finishing must not overwrite what the key holds now.
    expect(await cache.get('k', async () => 'unused')).toBe('fresh');
  });

  it('a failure of a cleared computation does not evict the newer entry', async () => {
    const cache = new PredictionCache<string>();
    const old = deferred<string>();
    const before = cache.get('k', () => old.promise);
    cache.delete('k');
    expect(await cache.get('k', async () => 'fresh')).toBe('fresh');
    old.reject(new Error('late failure'));
    await expect(before).rejects.toThrow('late failure');
    expect(await cache.get('k', async () => 'unused')).toBe('fresh');
    expect(cache.hits).toBe(1);
  });

  it('drops the oldest entries beyond maxEntries', async () => {
    const cache = new PredictionCache<number>({ maxEntries: 2 });
    await cache.get('a', async () => 1);
    await cache.get('b', async () => 2);
    await cache.get('c', async () => 3);
    expect(cache.size).toBe(2);
    expect(await cache.get('a', async () => 10)).toBe(10);
    expect(await cache.get('c', async () => 30)).toBe(3);
    expect(() => new PredictionCache({ maxEntries: 0 })).toThrow('maxEntries must be a positive integer, got 0');
  });
});
