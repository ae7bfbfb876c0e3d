import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type ForecastdServer } from '../../src/server/start.js';
import { PodDir, dailyCsv, linearFixture, predictionText, runDirect } from './fixtures.js';

/**
 * GET /v1/datasets and GET /metrics of a real server over a real pod: the values the text says, not only
 * that a line exists.
 */

const SERIES = [12.5, 13.25, 11.75, 14.5, 15.125, 13.875, 16.25, 17.5, 16.75, 18.125];
const EXTRA = [3.5, 2.25, 4.75, 5.125, 3.875, 6.5, 7.25];
const LIN = linearFixture({ lookback: 4, horizon: 3, seed: 41 });

const BASE = `version: v1beta1
kind: Spicepod
name: metrics
`;

/** The SPEC's fields in order. */
const DATASET_FIELDS = ['name', 'from', 'rows', 'first_ts', 'last_ts', 'status', 'error', 'refreshed_at', 'frequency', 'off_grid_rows'];

interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** Parses Prometheus text exposition into samples (comments skipped). */
function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match === null) throw new Error(`not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const m of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[m[1]!] = m[2]!;
    const raw = match[3]!;
    samples.push({ name: match[1]!, labels, value: raw === '+Inf' ? Infinity : Number(raw) });
  }
  return samples;
}

function matches(sample: Sample, labels: Readonly<Record<string, string>>): boolean {
  return Object.entries(labels).every(([k, v]) => sample.labels[k] === v);
}

/** The value of the one sample of `name` with these labels; undefined when there is none. */
function valueOf(samples: readonly Sample[], name: string, labels: Readonly<Record<string, string>> = {}): number | undefined {
  const found = samples.filter((s) => s.name === name && matches(s, labels));
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} ${JSON.stringify(labels)}`);
  return found[0]?.value;
}

async function get(server: ForecastdServer, path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(server.url + path);
  return { status: res.status, body: await res.text() };
}

async function scrape(server: ForecastdServer): Promise<Sample[]> {
  const res = await get(server, '/metrics');
  expect(res.status).toBe(200);
  return parseMetrics(res.body);
}

type Listing = Record<string, unknown>;

async function datasets(server: ForecastdServer): Promise<Map<string, Listing>> {
  const res = await get(server, '/v1/datasets');
  expect(res.status).toBe(200);
  const list = JSON.parse(res.body) as Listing[];
  return new Map(list.map((d) => [d['name'] as string, d]));
}

/**
 * A histogram's series for these labels, checked for what the format promises: cumulative buckets in
 * ascending `le`, the +Inf bucket equal to _count. Returns count and sum.
 */
function histogram(samples: readonly Sample[], name: string, labels: Readonly<Record<string, string>>): { count: number; sum: number; buckets: Map<string, number> } {
  const buckets = samples.filter((s) => s.name === `${name}_bucket` && matches(s, labels));
  expect(buckets.length).toBeGreaterThan(1);
  const bounds = buckets.map((b) => (b.labels['le'] === '+Inf' ? Infinity : Number(b.labels['le'])));
  expect(bounds).toEqual([...bounds].sort((a, b) => a - b));
  expect(bounds[bounds.length - 1]).toBe(Infinity);
  for (let i = 1; i < buckets.length; i++) expect(buckets[i]!.value).toBeGreaterThanOrEqual(buckets[i - 1]!.value);
  const count = valueOf(samples, `${name}_count`, labels);
  const sum = valueOf(samples, `${name}_sum`, labels);
  expect(count).toBeDefined();
  expect(sum).toBeDefined();
  expect(buckets[buckets.length - 1]!.value).toBe(count);
  return { count: count!, sum: sum!, buckets: new Map(buckets.map((b) => [b.labels['le']!, b.value])) };
}

describe('GET /v1/datasets and GET /metrics', () => {
  const pod = new PodDir('forecastd-metrics-');
  let server: ForecastdServer;
  let startedAt: number;
  let loadedAt: number;

  beforeAll(async () => {
    pod.write('data/series.csv', dailyCsv({ value: SERIES }));
    pod.write('models/lin.onnx', LIN.bytes);
    pod.write(
      'spicepod.yaml',
      `${BASE}datasets:
  - from: file:data/series.csv
    name: series
  - from: file:data/series.csv
    name: ticking
    acceleration:
      refresh_check_interval: 40ms
  - from: postgres:public.readings
    name: misconfigured
    params:
      pg_sslmode: sometimes
models:
  - from: file:models/lin.onnx
    name: counted
    datasets: [series]
    params:
      cache_predictions: false
      max_batch_size: 1
      max_concurrent_runs: 1
  - from: file:models/lin.onnx
    name: cached
    datasets: [series]
`,
    );
    startedAt = Date.now();
    server = await startServer({ spicepod: pod.dir, port: 0 });
    await server.loaded();
    loadedAt = Date.now();
  });

  afterAll(async () => {
    await server?.close();
    pod.remove();
  });

  it('lists the SPEC fields in order, then refreshed_at: the last successful check, or null', async () => {
    const res = await get(server, '/v1/datasets');
    expect(res.status).toBe(200);
    const list = JSON.parse(res.body) as Listing[];
    expect(list.map((d) => d['name'])).toEqual(['series', 'ticking', 'misconfigured']);
    for (const d of list) expect(Object.keys(d)).toEqual(DATASET_FIELDS);

    const series = list[0]!;
    expect(series).toMatchObject({
      from: 'file:data/series.csv',
      rows: SERIES.length,
      first_ts: '2024-01-01T00:00:00.000Z',
      last_ts: '2024-01-10T00:00:00.000Z',
      status: 'Ready',
      error: null,
      frequency: 'P1D',
      off_grid_rows: 0,
    });
    // Without a refresh interval the only check is the first load, made while the server started.
    const refreshed = series['refreshed_at'] as string;
    expect(new Date(refreshed).toISOString()).toBe(refreshed);
    expect(Date.parse(refreshed)).toBeGreaterThanOrEqual(startedAt);
    expect(Date.parse(refreshed)).toBeLessThanOrEqual(loadedAt);

    // A source that cannot even be set up: never checked.
    const misconfigured = list[2]!;
    expect(misconfigured).toMatchObject({ from: 'postgres:public.readings', rows: 0, first_ts: null, last_ts: null, status: 'Error', refreshed_at: null, frequency: null });
    expect(misconfigured['error']).toMatch(/pg_sslmode must be one of .*"sometimes"/);
  });

  it('refreshed_at moves with each check even when nothing changed, and the age gauge follows it', async () => {
    const before = Date.parse((await datasets(server)).get('ticking')!['refreshed_at'] as string);
    // Each check of the unchanged file moves refreshed_at on; wait for one well after the first load.
    let refreshed = before;
    for (let i = 0; i < 800 && refreshed < loadedAt + 200; i++) {
      await new Promise((r) => setTimeout(r, 25));
      refreshed = Date.parse((await datasets(server)).get('ticking')!['refreshed_at'] as string);
    }
    expect(refreshed).toBeGreaterThanOrEqual(loadedAt + 200);
    const ticking = (await datasets(server)).get('ticking')!;
    expect(ticking).toMatchObject({ rows: SERIES.length, status: 'Ready', error: null });

    const lastSeen = Date.parse(ticking['refreshed_at'] as string);
    const samples = await scrape(server);
    const scrapedBy = Date.now();
    const age = valueOf(samples, 'forecastd_dataset_age_seconds', { dataset: 'ticking' });
    expect(age).toBeDefined();
    expect(Number.isFinite(age)).toBe(true);
    expect(age!).toBeGreaterThanOrEqual(0);
    // Measured from a check at or after lastSeen (never from the first load, which was 200 ms or more before).
    expect(age!).toBeLessThanOrEqual((scrapedBy - lastSeen) / 1000 + 1e-6);

    const seriesAge = valueOf(samples, 'forecastd_dataset_age_seconds', { dataset: 'series' });
    const seriesRefreshed = Date.parse((await datasets(server)).get('series')!['refreshed_at'] as string);
    expect(seriesAge!).toBeGreaterThanOrEqual(0);
    expect(seriesAge!).toBeLessThanOrEqual((Date.now() - seriesRefreshed) / 1000 + 1e-6);
    // Never checked: no age to give.
    expect(valueOf(samples, 'forecastd_dataset_age_seconds', { dataset: 'misconfigured' })).toBeUndefined();
    expect(valueOf(samples, 'forecastd_dataset_rows', { dataset: 'series' })).toBe(SERIES.length);
  });

  it('exposes the process metrics', async () => {
    const samples = await scrape(server);
    const rss = valueOf(samples, 'process_resident_memory_bytes');
    expect(rss).toBeDefined();
    expect(rss!).toBeGreaterThan(0);
  });

  it('counts predictions, requests and batch runs exactly', async () => {
    const expected = await runDirect(LIN.bytes, SERIES.slice(-4), [1, 4, 1]);
    const predict = async (model: string): Promise<{ status: number; body: string }> => get(server, `/v1/models/${model}/predict`);

    for (let i = 0; i < 5; i++) {
      const res = await predict('counted');
      expect([res.status, predictionText(res.body)]).toEqual([200, expected]);
    }
    for (let i = 0; i < 3; i++) {
      const res = await predict('cached');
      expect([res.status, predictionText(res.body)]).toEqual([200, expected]);
    }
    for (let i = 0; i < 2; i++) {
      const res = await predict('nowhere');
      expect(res.status).toBe(400);
      expect(JSON.parse(res.body)).toMatchObject({ status: 'BadRequest', error_message: 'Model nowhere not found' });
    }
    const post = await fetch(server.url + '/v1/predict', {
      method: 'POST',
      body: JSON.stringify({ predictions: [{ model_name: 'counted' }, { model_name: 'cached' }] }),
    });
    expect(post.status).toBe(200);
    const items = (JSON.parse(await post.text()) as { predictions: { status: string }[] }).predictions;
    expect(items.map((p) => p.status)).toEqual(['Success', 'Success']);

    const samples = await scrape(server);
    // Every successful prediction counts, whether it ran or came from the cache.
    expect(valueOf(samples, 'forecastd_predictions_total', { model: 'counted' })).toBe(6);
    expect(valueOf(samples, 'forecastd_predictions_total', { model: 'cached' })).toBe(4);
    expect(valueOf(samples, 'forecastd_prediction_failures_total', { model: 'counted' })).toBeUndefined();
    expect(valueOf(samples, 'forecastd_prediction_cache_misses_total', { model: 'cached' })).toBe(1);
    expect(valueOf(samples, 'forecastd_prediction_cache_hits_total', { model: 'cached' })).toBe(3);

    expect(valueOf(samples, 'http_requests_total', { route: '/v1/models/:name/predict', status: '200' })).toBe(8);
    expect(valueOf(samples, 'http_requests_total', { route: '/v1/models/:name/predict', status: '400' })).toBe(2);
    expect(valueOf(samples, 'http_requests_total', { route: '/v1/predict', status: '200' })).toBe(1);
    // Requests are counted once answered, so this scrape sees the earlier ones only.
    const scrapes = valueOf(samples, 'http_requests_total', { route: '/metrics', status: '200' })!;
    const again = await scrape(server);
    expect(valueOf(again, 'http_requests_total', { route: '/metrics', status: '200' })).toBe(scrapes + 1);
    const latency = histogram(again, 'http_request_duration_seconds', { route: '/v1/models/:name/predict' });
    expect(latency.count).toBe(10);

    // One run per window at max_batch_size 1, plus the warm-up run made before the model reported Ready.
    const counted = histogram(samples, 'forecastd_batch_size', { model: 'counted' });
    expect(counted.count).toBe(7);
    expect(counted.sum).toBe(7);
    expect(counted.buckets.get('1')).toBe(7);
    const inference = histogram(samples, 'forecastd_inference_seconds', { model: 'counted' });
    expect(inference.count).toBe(7);
    expect(inference.sum).toBeGreaterThan(0);
    // The warm-up plus the one miss; cache hits run nothing.
    const cached = histogram(samples, 'forecastd_batch_size', { model: 'cached' });
    expect([cached.count, cached.sum]).toEqual([2, 2]);
    // One queue wait per window run.
    expect(histogram(samples, 'forecastd_queue_seconds', { model: 'counted' }).count).toBe(7);
  });
});

describe('metrics of models and datasets removed by a reload', () => {
  const pod = new PodDir('forecastd-metrics-reload-');
  let server: ForecastdServer;
  const keep = `  - from: file:models/lin.onnx
    name: keep
    datasets: [series]
`;
  const gone = `  - from: file:models/lin.onnx
    name: gone
    datasets: [extra]
`;
  const series = `  - from: file:data/series.csv
    name: series
`;
  const extra = `  - from: file:data/extra.csv
    name: extra
`;
  const writePod = (datasetsYaml: string, modelsYaml: string): void => {
    pod.write('spicepod.yaml', `${BASE}datasets:\n${datasetsYaml}models:\n${modelsYaml}`);
  };
  const mentions = (samples: readonly Sample[], label: string, value: string): string[] =>
    samples.filter((s) => s.labels[label] === value).map((s) => s.name);

  beforeAll(async () => {
    pod.write('data/series.csv', dailyCsv({ value: SERIES }));
    pod.write('data/extra.csv', dailyCsv({ value: EXTRA }));
    pod.write('models/lin.onnx', LIN.bytes);
    writePod(series + extra, keep + gone);
    server = await startServer({ spicepod: pod.dir, port: 0 });
    await server.loaded();
  });

  afterAll(async () => {
    await server?.close();
    pod.remove();
  });

  it('drops their series, keeps the others, and starts from zero when one comes back', async () => {
    for (const model of ['keep', 'gone', 'gone']) expect((await get(server, `/v1/models/${model}/predict`)).status).toBe(200);
    const before = await scrape(server);
    expect(valueOf(before, 'forecastd_predictions_total', { model: 'gone' })).toBe(2);
    expect(valueOf(before, 'forecastd_batch_size_count', { model: 'gone' })).toBe(2);
    expect(valueOf(before, 'forecastd_queue_depth', { model: 'gone' })).toBe(0);
    expect(valueOf(before, 'forecastd_dataset_rows', { dataset: 'extra' })).toBe(EXTRA.length);
    expect(valueOf(before, 'forecastd_dataset_age_seconds', { dataset: 'extra' })).toBeGreaterThanOrEqual(0);

    writePod(series, keep);
    expect(await server.reload()).toEqual({ applied: true, error: null, reloadedModels: [] });
    const gonePredict = await get(server, '/v1/models/gone/predict');
    expect([gonePredict.status, JSON.parse(gonePredict.body)['error_message']]).toEqual([400, 'Model gone not found']);
    expect([...(await datasets(server)).keys()]).toEqual(['series']);

    const after = await scrape(server);
    expect(mentions(after, 'model', 'gone')).toEqual([]);
    expect(mentions(after, 'dataset', 'extra')).toEqual([]);
    // What stays in the pod keeps its series and counts.
    expect(valueOf(after, 'forecastd_predictions_total', { model: 'keep' })).toBe(1);
    expect(valueOf(after, 'forecastd_batch_size_count', { model: 'keep' })).toBe(2);
    expect(valueOf(after, 'forecastd_queue_depth', { model: 'keep' })).toBe(0);
    expect(valueOf(after, 'forecastd_dataset_rows', { dataset: 'series' })).toBe(SERIES.length);

    writePod(series + extra, keep + gone);
    expect(await server.reload()).toEqual({ applied: true, error: null, reloadedModels: ['gone'] });
    const res = await get(server, '/v1/models/gone/predict');
    expect([res.status, predictionText(res.body)]).toEqual([200, await runDirect(LIN.bytes, EXTRA.slice(-4), [1, 4, 1])]);
    const back = await scrape(server);
    expect(valueOf(back, 'forecastd_predictions_total', { model: 'gone' })).toBe(1);
    expect(valueOf(back, 'forecastd_batch_size_count', { model: 'gone' })).toBe(2);
    expect(valueOf(back, 'forecastd_dataset_rows', { dataset: 'extra' })).toBe(EXTRA.length);
  });
});
