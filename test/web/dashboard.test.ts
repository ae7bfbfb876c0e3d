import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { startServer, type ForecastdServer } from '../../src/server/start.js';
import { linearModel, seededRandom, uniformWeights } from '../../tools/onnx-builder.js';
import { artifactPath, chromiumAvailable, launchChromium } from '../helpers/browser.js';
import { PodDir, REPO, replaceFile, until } from '../server/fixtures.js';

/**
 * The dashboard in headless Chromium against real servers: what a person sees (tables equal to the API,
 * the chart drawn with its points at the right times, a model in Error shown with its reason, the key
 * prompt), live refresh after the data changes, and no console errors, at desktop and phone widths.
 * Screenshots go to test-artifacts/.
 */

const available = chromiumAvailable();
const KEY = 'dashboard-key-9f2c';

interface Opened {
  readonly page: Page;
  /** Console errors and uncaught exceptions, as the browser reported them. */
  readonly errors: string[];
  /** Every URL path the page requested, with its X-API-Key header. */
  readonly requests: { path: string; key: string | undefined }[];
}

async function open(browser: Browser, url: string, viewport = { width: 1280, height: 800 }): Promise<Opened> {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const errors: string[] = [];
  const requests: { path: string; key: string | undefined }[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('request', (r) => {
    const u = new URL(r.url());
    requests.push({ path: u.pathname + u.search, key: r.headers()['x-api-key'] });
  });
  await page.goto(url);
  return { page, errors, requests };
}

async function api<T>(server: ForecastdServer, path: string, postBody?: string): Promise<T> {
  const res = await fetch(server.url + path, { headers: { 'x-api-key': KEY }, ...(postBody === undefined ? {} : { method: 'POST', body: postBody }) });
  expect(res.status, path).toBe(200);
  return (await res.json()) as T;
}

/** The text of a cell, by the row's key and the column's header, as a person reads the table. */
async function cell(page: Page, table: 'models' | 'datasets', row: string, column: string): Promise<string> {
  return page.evaluate(
    ([table, row, column]) => {
      const t = document.getElementById(table!)!;
      const headers = [...t.querySelectorAll('thead th')].map((th) => th.textContent);
      const index = headers.indexOf(column!);
      if (index < 0) throw new Error(`no column ${column}`);
      const tr = [...t.querySelectorAll('tbody tr')].find((r) => r.querySelector('th')?.textContent === row);
      if (tr === undefined) throw new Error(`no row ${row}`);
      return tr.children[index]!.textContent ?? '';
    },
    [table, row, column] as const,
  );
}

/** `2001-12-29T00:00:00.000Z` as the page prints it. */
function shown(iso: string): string {
  return `${iso.slice(0, 10)} ${iso.slice(11, 16)}`;
}

/**
 * Pixels of the chart's canvas close to each colour (r, g, b): what was drawn in that colour, opaque (a line)
 * or, where `faint` says so, translucent (a band's fill).
 */
async function pixelsOf(
  page: Page,
  dataset: string,
  colors: readonly (readonly [number, number, number])[],
  faint: readonly boolean[] = colors.map(() => false),
): Promise<number[]> {
  return page.evaluate(
    ([dataset, colors, faint]) => {
      const canvas = document.querySelector<HTMLCanvasElement>(`.chart-card[data-dataset="${dataset}"] canvas`)!;
      const { data } = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height);
      const counts = colors.map(() => 0);
      for (let i = 0; i < data.length; i += 4) {
        const alpha = data[i + 3]!;
        colors.forEach(([r, g, b], k) => {
          const wanted = faint[k] ? alpha >= 20 && alpha <= 80 : alpha >= 200;
          if (wanted && Math.abs(data[i]! - r) + Math.abs(data[i + 1]! - g) + Math.abs(data[i + 2]! - b) < 40) counts[k]!++;
        });
      }
      return counts;
    },
    [dataset, colors, faint] as const,
  );
}

/** Hovers the chart at a fraction of its plot width and reads the legend: time, then each series' value. */
async function legendAt(page: Page, dataset: string, fraction: number): Promise<string[]> {
  return legendIn(page, `.chart-card[data-dataset="${dataset}"]`, fraction);
}

async function legendIn(page: Page, card: string, fraction: number): Promise<string[]> {
  const over = page.locator(`${card} .u-over`);
  await over.scrollIntoViewIfNeeded();
  const box = (await over.boundingBox())!;
  await page.mouse.move(box.x + Math.min(box.width - 1, Math.max(0, fraction * box.width)), box.y + box.height / 2);
  return page.locator(`${card} .u-legend .u-series .u-value`).allTextContents();
}

const HISTORY_INK = [31, 41, 55] as const;
const ORANGE = [217, 119, 6] as const;
const GREEN = [5, 150, 105] as const;

interface Forecast {
  prediction: number[];
  timestamps: string[];
  quantiles?: Record<string, number[]>;
}

/** A value as the chart's legend prints it (six significant digits, shortest form). */
function printed(v: number): string {
  return String(Number(v.toPrecision(6)));
}

describe.skipIf(!available)('the dashboard', () => {
  let browser: Browser;
  let example: ForecastdServer;

  beforeAll(async () => {
    browser = await launchChromium();
    example = await startServer({ spicepod: `${REPO}/examples/co2`, port: 0 });
    await example.loaded();
  });

  afterAll(async () => {
    await browser?.close();
    await example?.close();
  });

  it("shows the example's models, dataset and chart, equal to the API, without console errors", async () => {
    const { page, errors } = await open(browser, example.url + '/');
    await page.locator('.chart-card[data-dataset="co2_weekly"] canvas').waitFor();
    await page.locator('#models tbody tr').first().waitFor();

    const datasets = await api<{ name: string; rows: number; first_ts: string; last_ts: string; status: string; frequency: string }[]>(example, '/v1/datasets');
    const models = await api<{ name: string; status: string; datasets: string[] }[]>(example, '/v1/models?status=true');
    const d = datasets[0]!;
    expect(await cell(page, 'datasets', 'co2_weekly', 'Rows')).toBe(String(d.rows));
    expect(await cell(page, 'datasets', 'co2_weekly', 'Status')).toBe(d.status);
    expect(await cell(page, 'datasets', 'co2_weekly', 'First')).toBe(shown(d.first_ts));
    expect(await cell(page, 'datasets', 'co2_weekly', 'Last')).toBe(shown(d.last_ts));
    expect(await cell(page, 'datasets', 'co2_weekly', 'Frequency')).toBe(d.frequency);
    expect(await page.locator('#models tbody th').allTextContents()).toEqual(models.map((m) => m.name));
    const forecasts = new Map<string, Forecast>();
    for (const m of models) {
      const details = await api<{ version: string; lookback: number; horizon: number }>(example, `/v1/models/${m.name}`);
      forecasts.set(m.name, await api<Forecast>(example, `/v1/models/${m.name}/predict?include=timestamps,quantiles`));
      expect(await cell(page, 'models', m.name, 'Status')).toBe(m.status);
      expect(await cell(page, 'models', m.name, 'Version')).toBe(details.version);
      expect(await cell(page, 'models', m.name, 'Lookback')).toBe(String(details.lookback));
      expect(await cell(page, 'models', m.name, 'Horizon')).toBe(String(details.horizon));
      expect(await cell(page, 'models', m.name, 'Dataset')).toBe(m.datasets[0]);
      expect(await cell(page, 'models', m.name, 'Last data')).toBe(shown(d.last_ts));
      // An ensemble shows its combine rule and members with their weights; a model, a dash.
      expect(await cell(page, 'models', m.name, 'Members')).toBe(m.name === 'co2_blend' ? 'mean: co2_linear 0.50, co2_seasonal_naive 0.50' : '—');
    }
    // Each model's evaluation, as the listing gives it once it is Ready (the page polls, so wait for it).
    for (const m of models) {
      const evaluation = await until(`evaluation of ${m.name}`, async () => {
        const e = await api<{ status: string; mae: number; skill: number }>(example, `/v1/models/${m.name}/evaluation`);
        return e.status === 'Ready' ? e : undefined;
      });
      const mae = String(Number(evaluation.mae.toPrecision(4)));
      await expect.poll(() => cell(page, 'models', m.name, 'MAE'), { timeout: 30_000 }).toBe(mae);
      expect(await cell(page, 'models', m.name, 'Skill')).toBe(String(Number(evaluation.skill.toPrecision(4))));
    }

    // The selected model's MAE by step against both baselines, as its evaluation gives them.
    type Steps = { mae: number; by_step: { mae: number[] }; baselines: Record<'naive' | 'seasonal_naive', { mae: number; by_step: { mae: number[] } }> };
    const fmt = (x: number): string => String(Number(x.toPrecision(4)));
    const stepRows = async (): Promise<string[][]> =>
      page.evaluate(() => [...document.querySelectorAll('#evaluation-steps tbody tr')].map((tr) => [...tr.children].map((c) => c.textContent ?? '')));
    for (const name of ['co2_seasonal_naive', 'co2_linear']) {
      await page.locator('#evaluation-model').selectOption(name);
      const e = await api<Steps>(example, `/v1/models/${name}/evaluation`);
      const expected = [
        ['model', ...e.by_step.mae.map(fmt), fmt(e.mae)],
        ['naive', ...e.baselines.naive.by_step.mae.map(fmt), fmt(e.baselines.naive.mae)],
        ['seasonal naive', ...e.baselines.seasonal_naive.by_step.mae.map(fmt), fmt(e.baselines.seasonal_naive.mae)],
      ];
      await expect.poll(stepRows, { timeout: 30_000 }).toEqual(expected);
    }
    expect(await page.locator('#evaluation-steps thead th').allTextContents()).toEqual(['MAE by step', ...Array.from({ length: 12 }, (_, s) => String(s + 1)), 'all']);

    // Past forecasts against what happened: the selected model's recent origins drawn over the history, each
    // forecast's values at its own times as the route gives them, the history's as the rows route does.
    type Past = { origin: string; variable: string; timestamps: string[]; forecast: number[]; actual: (number | null)[] };
    const { past_forecasts: past } = await api<{ past_forecasts: Past[] }>(example, '/v1/models/co2_linear/evaluation');
    expect(past).toHaveLength(5);
    await page.locator('#evaluation-past canvas').waitFor();
    expect(await page.locator('#evaluation-past .u-legend .u-series .u-label').allTextContents()).toEqual([
      'time (UTC)',
      'co2',
      ...past.map((p) => `from ${shown(p.origin)}`),
    ]);
    const history = await api<{ timestamps: string[]; values: (number | null)[][] }>(example, '/v1/datasets/co2_weekly/rows?last=200');
    const start = history.timestamps.findIndex((t) => t === past[0]!.origin) - 12;
    expect(start).toBeGreaterThanOrEqual(0);
    const [min, max] = [Date.parse(history.timestamps[start]!), Date.parse(history.timestamps.at(-1)!)];
    expect(past.at(-1)!.timestamps.at(-1)).toBe(history.timestamps.at(-1));
    for (const [i, p] of past.entries()) {
      for (const step of [0, 6, 11]) {
        const t = p.timestamps[step]!;
        const legend = await legendIn(page, '#evaluation-past', (Date.parse(t) - min) / (max - min));
        const row = history.timestamps.indexOf(t);
        expect(legend[0]).toBe(shown(t));
        expect(legend[1]).toBe(String(history.values[row]![0]));
        expect(p.actual[step]).toBe(history.values[row]![0]);
        // Only this origin's forecast has a value at a step of its own: the origins lie a horizon apart.
        expect(legend.slice(2)).toEqual(past.map((_, k) => (k === i ? printed(p.forecast[step]!) : '—')));
      }
    }
    expect(await legendIn(page, '#evaluation-past', 0)).toEqual([shown(history.timestamps[start]!), String(history.values[start]![0]), ...past.map(() => '—')]);
    expect(await page.locator('#evaluation-past .caption').textContent()).toBe(
      `Past forecasts against what happened: co2_linear from 5 origins (${past.map((p) => shown(p.origin)).join(', ')} UTC), 12 steps each, over the rows from ${shown(history.timestamps[start]!)} UTC.`,
    );

    // The history and the forecasts are drawn: the history's ink, each visible model's colour, the band's fill.
    const [ink, naive, quantile, band] = await pixelsOf(page, 'co2_weekly', [HISTORY_INK, ORANGE, GREEN, GREEN], [false, false, false, true]);
    expect(ink).toBeGreaterThan(500);
    expect(naive).toBeGreaterThan(50);
    expect(quantile).toBeGreaterThan(50);
    expect(band).toBeGreaterThan(100);

    // Points sit at the times the API gives: the first row on the left; on the right, the last forecast
    // step, where every model's value and the quantile band's bounds are the API's.
    const rows = await api<{ timestamps: string[]; values: (number | null)[][] }>(example, '/v1/datasets/co2_weekly/rows?last=200');
    const left = await legendAt(page, 'co2_weekly', 0);
    expect(left[0]).toBe(shown(rows.timestamps[0]!));
    expect(left[1]).toBe(String(rows.values[0]![0]));
    const linear = forecasts.get('co2_linear')!;
    const naiveForecast = forecasts.get('co2_seasonal_naive')!;
    const quantileForecast = forecasts.get('co2_quantile')!;
    expect(naiveForecast.timestamps).toEqual(linear.timestamps);
    const right = await legendAt(page, 'co2_weekly', 1);
    expect(right).toEqual([
      shown(linear.timestamps.at(-1)!),
      '—',
      printed(linear.prediction.at(-1)!),
      printed(naiveForecast.prediction.at(-1)!),
      printed(quantileForecast.prediction.at(-1)!),
      printed(quantileForecast.quantiles!['0.9']!.at(-1)!),
      printed(quantileForecast.quantiles!['0.1']!.at(-1)!),
      printed(forecasts.get('co2_blend')!.prediction.at(-1)!),
    ]);
    const caption = await page.locator('.chart-card[data-dataset="co2_weekly"] .caption').textContent();
    expect(caption).toContain(`co2_linear: 12 steps, ${shown(linear.timestamps[0]!)} to ${shown(linear.timestamps.at(-1)!)}`);
    expect(caption).toContain('quantiles 0.1, 0.5, 0.9');

    await page.mouse.move(0, 0);
    await page.screenshot({ path: artifactPath('dashboard-example-1280.png'), fullPage: true });
    expect(errors).toEqual([]);
    await page.context().close();
  });

  it('fits a phone-width screen', async () => {
    const { page, errors } = await open(browser, example.url + '/', { width: 390, height: 844 });
    await page.locator('#charts .chart-card canvas').first().waitFor();
    await page.locator('#models tbody tr').first().waitFor();
    const widths = await page.evaluate(() => ({
      page: document.documentElement.scrollWidth,
      chart: document.querySelector('#charts .chart-card canvas')!.getBoundingClientRect().right,
    }));
    expect(widths.page).toBeLessThanOrEqual(390);
    expect(widths.chart).toBeLessThanOrEqual(390);
    const [ink] = await pixelsOf(page, 'co2_weekly', [HISTORY_INK]);
    expect(ink).toBeGreaterThan(200);
    await page.screenshot({ path: artifactPath('dashboard-example-390.png'), fullPage: true });
    expect(errors).toEqual([]);
    await page.context().close();
  });
});

const random = seededRandom(21);
const LINEAR = linearModel({ lookback: 8, horizon: 4, weights: uniformWeights(random, 32, 0.2) });
/** The same model's next version: other weights, model_version 2. */
const LINEAR_V2 = linearModel({ lookback: 8, horizon: 4, weights: uniformWeights(random, 32, 0.2), modelVersion: 2 });

function weeklyCsv(count: number): string {
  const lines = ['ts,value'];
  for (let i = 0; i < count; i++) lines.push(`${new Date(Date.UTC(2020, 0, 4 + 7 * i)).toISOString()},${(100 + 5 * Math.sin(i / 4) + i / 10).toFixed(2)}`);
  return lines.join('\n') + '\n';
}

describe.skipIf(!available)('the dashboard with a model in Error, and live data', () => {
  let browser: Browser;
  let server: ForecastdServer;
  const pod = new PodDir('forecastd-dashboard-');

  beforeAll(async () => {
    pod.write('data/weekly.csv', weeklyCsv(60));
    pod.write('models/lin.onnx', LINEAR);
    pod.write(
      'spicepod.yaml',
      `
version: v1beta1
kind: Spicepod
name: live
datasets:
  - from: file:data/weekly.csv
    name: weekly
    acceleration:
      refresh_check_interval: 100ms
models:
  - from: file:models/lin.onnx
    name: lin
    datasets: [weekly]
  - from: file:models/broken.onnx
    name: broken
    datasets: [weekly]
`,
    );
    browser = await launchChromium();
    server = await startServer({ spicepod: pod.dir, port: 0 });
    await server.loaded();
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    pod.remove();
  });

  it('shows a model in Error with its reason, and follows the data as it changes', async () => {
    const { page, errors } = await open(browser, server.url + '/?refresh=1');
    await page.locator('.chart-card[data-dataset="weekly"] canvas').waitFor();
    await page.locator('#models tbody tr').first().waitFor();

    const models = await api<{ name: string; status: string; error: string | null }[]>(server, '/v1/models?status=true');
    const broken = models.find((m) => m.name === 'broken')!;
    expect(broken.status).toBe('Error');
    expect(await cell(page, 'models', 'broken', 'Status')).toBe('Error');
    expect(await cell(page, 'models', 'broken', 'Error')).toBe(broken.error);
    expect(await page.locator('#problems li').allTextContents()).toEqual([`Model broken is in Error: ${broken.error}`]);
    expect(await cell(page, 'models', 'lin', 'Status')).toBe('Ready');
    expect(await cell(page, 'datasets', 'weekly', 'Rows')).toBe('60');
    const week = (i: number): string => new Date(Date.UTC(2020, 0, 4 + 7 * i)).toISOString();
    const caption = page.locator('.chart-card[data-dataset="weekly"] .caption');
    expect(await caption.textContent()).toBe(`Last 60 rows, ${shown(week(0))} to ${shown(week(59))} UTC. lin: 4 steps, ${shown(week(60))} to ${shown(week(63))}.`);
    const before = await api<Forecast>(server, '/v1/models/lin/predict?include=timestamps');
    expect(before.timestamps).toEqual([week(60), week(61), week(62), week(63)]);
    expect((await legendAt(page, 'weekly', 1)).slice(0, 3)).toEqual([shown(week(63)), '—', printed(before.prediction.at(-1)!)]);
    const brokenAnswer = await api<{ predictions: { error_message: string }[] }>(server, '/v1/predict', '{"predictions":[{"model_name":"broken"}]}');
    expect(await page.locator('.chart-card[data-dataset="weekly"] .not-drawn li').allTextContents()).toEqual([
      `broken: forecast not drawn: ${brokenAnswer.predictions[0]!.error_message}`,
    ]);

    // Four more weeks arrive: the table, the history and the forecast move on without a reload.
    replaceFile(pod.path('data/weekly.csv'), weeklyCsv(64));
    await page.waitForFunction(() => {
      const row = [...document.querySelectorAll('#datasets tbody tr')].find((r) => r.querySelector('th')?.textContent === 'weekly');
      return row?.children[2]?.textContent === '64';
    }, undefined, { timeout: 30_000 });
    expect(await cell(page, 'datasets', 'weekly', 'Last')).toBe(shown(week(63)));
    await expect.poll(() => caption.textContent()).toBe(`Last 64 rows, ${shown(week(0))} to ${shown(week(63))} UTC. lin: 4 steps, ${shown(week(64))} to ${shown(week(67))}.`);
    const after = await api<Forecast>(server, '/v1/models/lin/predict?include=timestamps');
    expect(after.timestamps.at(-1)).toBe(week(67));
    expect((await legendAt(page, 'weekly', 1)).slice(0, 3)).toEqual([shown(week(67)), '—', printed(after.prediction.at(-1)!)]);

    // A new version of the model replaces the file: the page shows it, and its forecast, without a reload.
    expect(await cell(page, 'models', 'lin', 'Version')).toBe('—');
    replaceFile(pod.path('models/lin.onnx'), LINEAR_V2);
    await server.reload();
    await expect.poll(() => cell(page, 'models', 'lin', 'Version')).toBe('2');
    expect(await cell(page, 'models', 'lin', 'Status')).toBe('Ready');
    const reloaded = await api<Forecast>(server, '/v1/models/lin/predict?include=timestamps');
    expect(reloaded.prediction).not.toEqual(after.prediction);
    await expect.poll(async () => (await legendAt(page, 'weekly', 1)).slice(0, 3)).toEqual([shown(week(67)), '—', printed(reloaded.prediction.at(-1)!)]);

    await page.mouse.move(0, 0);
    await page.screenshot({ path: artifactPath('dashboard-error-and-refresh.png'), fullPage: true });
    expect(errors).toEqual([]);
    await page.context().close();
  });
});

describe.skipIf(!available)('the dashboard with auth on', () => {
  let browser: Browser;
  let server: ForecastdServer;
  const pod = new PodDir('forecastd-dashboard-auth-');

  beforeAll(async () => {
    pod.write('data/weekly.csv', weeklyCsv(30));
    pod.write('models/lin.onnx', LINEAR);
    pod.write(
      'spicepod.yaml',
      `
version: v1beta1
kind: Spicepod
name: guarded
runtime:
  auth:
    api-key:
      enabled: true
      keys: ["${KEY}"]
datasets:
  - from: file:data/weekly.csv
    name: weekly
models:
  - from: file:models/lin.onnx
    name: lin
    datasets: [weekly]
`,
    );
    browser = await launchChromium();
    server = await startServer({ spicepod: pod.dir, port: 0 });
    await server.loaded();
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    pod.remove();
  });

  it('asks for the key, shows nothing else without it, and keeps it for the tab only', async () => {
    const { page, errors, requests } = await open(browser, server.url + '/');
    await page.locator('#key-form').waitFor();
    expect(await page.locator('#main').innerText()).not.toContain('weekly');
    expect(await page.locator('#models, #datasets, .chart-card').count()).toBe(0);
    // The page asked the API for nothing before it had a key.
    expect(requests.filter((r) => r.path.startsWith('/v1/') || r.path.startsWith('/metrics'))).toEqual([]);
    expect(errors).toEqual([]);
    await page.screenshot({ path: artifactPath('dashboard-key-prompt.png') });

    await page.fill('#api-key', 'not-the-key');
    await page.click('#key-form button');
    await expect.poll(() => page.locator('#key-message').textContent()).toBe('The server refused this key.');
    expect(await page.locator('#models').count()).toBe(0);
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);

    await page.fill('#api-key', KEY);
    await page.click('#key-form button');
    await page.locator('.chart-card[data-dataset="weekly"] canvas').waitFor();
    await page.locator('#models tbody tr').first().waitFor();
    expect(await cell(page, 'models', 'lin', 'Status')).toBe('Ready');
    expect(await cell(page, 'datasets', 'weekly', 'Rows')).toBe('30');
    const dataRequests = requests.filter((r) => r.path.startsWith('/v1/datasets') || r.path.startsWith('/metrics') || r.path.startsWith('/v1/predict'));
    expect(dataRequests.length).toBeGreaterThan(0);
    for (const r of dataRequests) expect(r.key, r.path).toBe(KEY);

    // The same tab keeps the key across a reload; a new tab (its own sessionStorage) asks again.
    await page.reload();
    await page.locator('#models tbody tr').first().waitFor();
    expect(await page.locator('#key-form').count()).toBe(0);
    const other = await open(browser, server.url + '/');
    await other.page.locator('#key-form').waitFor();
    await other.page.context().close();
    await page.context().close();
  });
});
