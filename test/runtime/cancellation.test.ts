import { afterAll, describe, expect, it } from 'vitest';
import { Cancellation, type AbortSignalLike } from '../../src/runtime/cancellation.js';
import { BatchingForecaster, type BatchInfo } from '../../src/runtime/forecaster.js';
import { InferenceSession } from '../../src/runtime/session.js';
import { linearModel, linearReference, seededRandom, uniformWeights } from '../../tools/onnx-builder.js';

/** A Cancellation that records how many listeners it holds, to see the forecaster remove its own. */
class CountingCancellation extends Cancellation {
  listeners = 0;
  override addEventListener(type: 'abort', listener: () => void): void {
    if (!this.aborted) this.listeners++;
    super.addEventListener(type, listener);
  }
  override removeEventListener(type: 'abort', listener: () => void): void {
    this.listeners--;
    super.removeEventListener(type, listener);
  }
}

describe('Cancellation', () => {
  it('starts not aborted, with no reason', () => {
    const c = new Cancellation();
    expect([c.aborted, c.reason]).toEqual([false, undefined]);
  });

  it('aborts once: the first reason stays and listeners run once', () => {
    const c = new Cancellation();
    const calls: string[] = [];
    c.addEventListener('abort', () => calls.push('a'));
    const first = new Error('client went away');
    c.abort(first);
    c.abort(new Error('later'));
    expect(c.aborted).toBe(true);
    expect(c.reason).toBe(first);
    expect(calls).toEqual(['a']);
  });

  it('without a reason, aborts with an AbortError as AbortController does', () => {
    const c = new Cancellation();
    c.abort();
    const controller = new AbortController();
    controller.abort();
    expect(c.reason).toBeInstanceOf(DOMException);
    const reason = c.reason as DOMException;
    const native = controller.signal.reason as DOMException;
    expect([reason.name, reason.message]).toEqual([native.name, native.message]);
  });

  it('calls listeners in the order added; removed ones and ones added after the abort never run', () => {
    const c = new Cancellation();
    const calls: string[] = [];
    const a = (): void => void calls.push('a');
    const b = (): void => void calls.push('b');
    const d = (): void => void calls.push('d');
    const e = (): void => void calls.push('e');
    c.addEventListener('abort', a);
    c.addEventListener('abort', b);
    c.addEventListener('abort', d, { once: true });
    c.addEventListener('abort', e);
    // The first slot and one from the rest, so both places a listener can live are covered.
    c.removeEventListener('abort', a);
    c.removeEventListener('abort', d);
    c.removeEventListener('abort', () => undefined);
    c.abort();
    c.addEventListener('abort', () => calls.push('late'));
    expect(calls).toEqual(['b', 'e']);
  });

  it('a listener added again after removal of the first runs once', () => {
    const c = new Cancellation();
    let runs = 0;
    const listener = (): void => void runs++;
    c.addEventListener('abort', listener);
    c.removeEventListener('abort', listener);
    c.addEventListener('abort', listener);
    c.abort();
    expect(runs).toBe(1);
  });

  it('a listener that throws does not stop the rest; the error is reported as uncaught', async () => {
    const c = new Cancellation();
    const calls: string[] = [];
    const boom = new Error('listener failed');
    c.addEventListener('abort', () => {
      throw boom;
    });
    c.addEventListener('abort', () => calls.push('after'));
    // Take over uncaught exceptions for one tick, then give them back.
    const saved = process.listeners('uncaughtException');
    process.removeAllListeners('uncaughtException');
    const reported = new Promise<unknown>((resolve) => process.once('uncaughtException', resolve));
    try {
      c.abort();
      expect(calls).toEqual(['after']);
      expect(await reported).toBe(boom);
    } finally {
      process.removeAllListeners('uncaughtException');
      for (const listener of saved) process.on('uncaughtException', listener);
    }
  });

  it('an AbortSignal fits where an AbortSignalLike is asked for', () => {
    const controller = new AbortController();
    const signal: AbortSignalLike = controller.signal;
    let called = 0;
    signal.addEventListener('abort', () => void called++, { once: true });
    controller.abort('why');
    expect([signal.aborted, signal.reason, called]).toEqual([true, 'why', 1]);
  });
});

describe('Cancellation as the forecaster signal', () => {
  const LOOKBACK = 4;
  const HORIZON = 2;
  const random = seededRandom(17);
  const weights = uniformWeights(random, LOOKBACK * HORIZON, 0.5);
  const bias = uniformWeights(random, HORIZON, 1);
  const params = { lookback: LOOKBACK, variables: 1, horizon: HORIZON, weights, bias };
  const sessions: InferenceSession[] = [];

  afterAll(() => {
    for (const s of sessions) s.dispose();
  });

  async function forecaster(): Promise<{ f: BatchingForecaster; batches: BatchInfo[] }> {
    const session = await InferenceSession.load(linearModel(params), { intraOpThreads: 1 });
    sessions.push(session);
    const batches: BatchInfo[] = [];
    const f = new BatchingForecaster(session, { maxBatchSize: 1, maxConcurrentRuns: 1, onBatch: (b) => batches.push(b) });
    return { f, batches };
  }

  function expectValues(actual: ArrayLike<number>, window: readonly number[]): void {
    const expected = linearReference(params, window);
    expect(actual.length).toBe(expected.length);
    for (let i = 0; i < expected.length; i++) expect(actual[i]).toBeCloseTo(expected[i]!, 4);
  }

  it('removes a queued window when aborted; the others run, and each removes its listener when done', async () => {
    const { f, batches } = await forecaster();
    const windows = [
      [1, 2, 3, 4],
      [5, 6, 7, 8],
      [9.5, 8.25, 7.75, 6.5],
    ];
    const kept = new CountingCancellation();
    const dropped = new CountingCancellation();
    const first = f.predict(Float32Array.from(windows[0]!), { signal: kept });
    const second = f.predict(Float32Array.from(windows[1]!), { signal: dropped });
    const third = f.predict(Float32Array.from(windows[2]!));
    expect([kept.listeners, dropped.listeners]).toEqual([1, 1]);
    const why = new Error('the client went away');
    dropped.abort(why);

    await expect(second).rejects.toBe(why);
    expectValues((await first).values, windows[0]!);
    expectValues((await third).values, windows[2]!);
    // The aborted window never ran: two runs of one window each.
    expect(batches.map((b) => [b.size, b.ok])).toEqual([
      [1, true],
      [1, true],
    ]);
    expect(kept.listeners).toBe(0);
    // Aborting after the result arrived changes nothing.
    kept.abort();
    expect(kept.aborted).toBe(true);
    await f.close();
  });

  it('one already aborted never queues: the call rejects with its reason', async () => {
    const { f, batches } = await forecaster();
    const c = new Cancellation();
    c.abort();
    const rejected = f.predict(Float32Array.from([1, 2, 3, 4]), { signal: c });
    await expect(rejected).rejects.toMatchObject({ name: 'AbortError' });
    expect(f.queueDepth).toBe(0);
    await f.close();
    expect(batches).toEqual([]);
  });
});
