import * as api from './api.js';
import type { CompositeDetails, DatasetListing, DatasetRowsBody, Evaluation, ModelListing, PastForecast, PredictionBody } from './api.js';
import { DatasetChart } from './chart.js';
import { chartData } from './chart-data.js';
import { formatAge, formatIso, formatRatio, formatSeconds, formatMetric } from './format.js';
import { modelStats } from './metrics.js';
import type { ModelStats } from './metrics.js';

/**
 * The dashboard: with auth on and no key for this tab, only the key prompt; otherwise the overview of every
 * model and dataset and a chart per dataset, polled every few seconds. Rows are fetched again only when a
 * dataset or model changed (rows, times, refresh, status, error); forecasts on every poll.
 *
 * Page parameters: `?refresh=SECONDS` (default 5) and `?last=N` rows per chart (default 200).
 */

const params = new URLSearchParams(location.search);

function numberParam(name: string, fallback: number, min: number, max: number): number {
  const value = Number(params.get(name) ?? fallback);
  return Number.isFinite(value) ? Math.min(max, Math.max(min, value)) : fallback;
}

const REFRESH_MS = numberParam('refresh', 5, 1, 3600) * 1000;
const LAST_ROWS = Math.round(numberParam('last', 200, 10, 100_000));
const NEEDS_KEY = document.querySelector<HTMLMetaElement>('meta[name="forecastd-auth"]')?.content === 'on';

const main = document.getElementById('main')!;
const state = document.getElementById('state')!;

type Child = Node | string;

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Record<string, string> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

// ---- the key prompt ----

let timer: number | undefined;

function stop(): void {
  if (timer !== undefined) clearInterval(timer);
  timer = undefined;
}

function showKeyPrompt(message: string | null): void {
  stop();
  for (const chart of charts.values()) chart.chart.destroy();
  charts.clear();
  view = null;
  lastSignature = '';
  lastForecastSignature = '';
  state.textContent = 'This server needs an API key.';
  const input = el('input', { id: 'api-key', type: 'password', name: 'api-key', autocomplete: 'off', required: '' });
  const note = el('p', { id: 'key-message', role: 'alert' }, message ?? '');
  const button = el('button', { type: 'submit' }, 'Connect');
  const form = el(
    'form',
    { id: 'key-form' },
    el('label', { for: 'api-key' }, 'API key'),
    input,
    button,
    note,
    el('p', { class: 'hint' }, 'Kept in this tab only (sessionStorage) and sent as the X-API-Key header.'),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const key = input.value.trim();
    if (key === '') return;
    button.disabled = true;
    api
      .models(key)
      .then(() => {
        api.apiKey.set(key);
        start();
      })
      .catch((error: unknown) => {
        button.disabled = false;
        note.textContent = error instanceof api.Unauthorized ? 'The server refused this key.' : String((error as Error).message);
        input.select();
      });
  });
  main.replaceChildren(form);
  input.focus();
}

// ---- the overview ----

interface View {
  readonly evaluation: HTMLElement;
  readonly problems: HTMLElement;
  readonly models: HTMLTableSectionElement;
  readonly datasets: HTMLTableSectionElement;
  readonly charts: HTMLElement;
}

let view: View | null = null;
const charts = new Map<string, { card: HTMLElement; chart: DatasetChart }>();
let lastSignature = '';
let forecasts = new Map<string, PredictionBody>();
let busy = false;

function table(id: string, caption: string, headers: readonly string[]): [HTMLElement, HTMLTableSectionElement] {
  const body = el('tbody');
  const t = el(
    'table',
    { id },
    el('caption', {}, caption),
    el('thead', {}, el('tr', {}, ...headers.map((h) => el('th', { scope: 'col' }, h)))),
    body,
  );
  return [el('div', { class: 'table-wrap' }, t), body];
}

const MODEL_COLUMNS = ['Model', 'Status', 'Version', 'Lookback', 'Horizon', 'Members', 'Dataset', 'Last data', 'Data age', 'Cache hits', 'Inference p50', 'Inference p99', 'MAE', 'Skill', 'Error'];
const DATASET_COLUMNS = ['Dataset', 'Status', 'Rows', 'First', 'Last', 'Frequency', 'Refreshed', 'Error'];

function buildView(): View {
  const [modelsTable, models] = table('models', 'Models', MODEL_COLUMNS);
  const [datasetsTable, datasets] = table('datasets', 'Datasets', DATASET_COLUMNS);
  const problems = el('section', { id: 'problems', role: 'alert' });
  const chartsSection = el('section', { id: 'charts' });
  const evaluation = el('section', { id: 'evaluation' });
  main.replaceChildren(problems, el('section', { id: 'overview' }, modelsTable, datasetsTable), evaluation, chartsSection);
  return { problems, models, datasets, charts: chartsSection, evaluation };
}

function cell(text: string | number, className = ''): HTMLTableCellElement {
  return el('td', className === '' ? {} : { class: className }, String(text));
}

function statusCell(status: string): HTMLTableCellElement {
  return el('td', {}, el('span', { class: `status status-${status}` }, status));
}

function horizonOf(p: PredictionBody | undefined, columns: number | undefined): string {
  if (p?.timestamps !== undefined) return String(p.timestamps.length);
  // Without timestamps the horizon is the prediction's length only for a one-column dataset.
  if (p?.prediction !== undefined && columns === 1) return String(p.prediction.length);
  return '—';
}

/** Ensembles' and variants entries' details (members and weights), as last fetched. */
let composites = new Map<string, CompositeDetails>();

function isComposite(m: ModelListing): boolean {
  return m.from.startsWith('ensemble:') || m.from.startsWith('variants:');
}

/** "mean: a 0.5, b 0.5" for an ensemble, "sticky none: a 90, b 10" for a variants entry; a dash for a model. */
function membersText(details: CompositeDetails | undefined): string {
  if (details?.members === undefined) return '—';
  const weights = details.members.map((m) => `${m.name} ${Number.isInteger(m.weight) ? m.weight : m.weight.toFixed(2)}`).join(', ');
  return details.combine !== undefined ? `${details.combine}: ${weights}` : `sticky ${details.sticky ?? 'none'}: ${weights}`;
}

function renderTables(v: View, models: readonly ModelListing[], datasets: readonly DatasetListing[], stats: Map<string, ModelStats> | null, columns: Map<string, number>): void {
  const now = Date.now();
  const byName = new Map(datasets.map((d) => [d.name, d]));
  v.models.replaceChildren(
    ...models.map((m) => {
      const p = forecasts.get(m.name);
      const datasetName = m.datasets[0] ?? '';
      const d = byName.get(datasetName);
      const s = stats?.get(m.name);
      return el(
        'tr',
        { 'data-model': m.name, class: m.status === 'Error' ? 'row-error' : '' },
        el('th', { scope: 'row' }, m.name),
        statusCell(m.status),
        cell(p?.model_version ?? '—'),
        cell(p?.lookback ?? '—'),
        cell(horizonOf(p, columns.get(datasetName))),
        cell(membersText(composites.get(m.name))),
        cell(datasetName),
        cell(formatIso(d?.last_ts)),
        cell(formatAge(d?.last_ts, now)),
        cell(s === undefined ? '—' : formatRatio(s.cacheHits, s.cacheMisses)),
        cell(formatSeconds(s?.inferenceP50 ?? null)),
        cell(formatSeconds(s?.inferenceP99 ?? null)),
        cell(formatMetric(m.mae)),
        cell(formatMetric(m.skill)),
        cell(m.error ?? '', 'error'),
      );
    }),
  );
  v.datasets.replaceChildren(
    ...datasets.map((d) =>
      el(
        'tr',
        { 'data-dataset': d.name, class: d.status === 'Error' ? 'row-error' : '' },
        el('th', { scope: 'row' }, d.name),
        statusCell(d.status),
        cell(d.rows),
        cell(formatIso(d.first_ts)),
        cell(formatIso(d.last_ts)),
        cell(d.frequency ?? '—'),
        cell(d.refreshed_at === undefined ? '—' : formatAge(d.refreshed_at, now)),
        cell(d.error ?? '', 'error'),
      ),
    ),
  );
  const problems: string[] = [];
  for (const m of models) if (m.error !== null) problems.push(`Model ${m.name} is ${m.status === 'Error' ? 'in Error' : m.status}: ${m.error}`);
  for (const d of datasets) if (d.error !== null) problems.push(`Dataset ${d.name} is ${d.status === 'Error' ? 'in Error' : d.status}: ${d.error}`);
  v.problems.replaceChildren(...(problems.length === 0 ? [] : [el('ul', {}, ...problems.map((p) => el('li', {}, p)))]));
}

function renderChart(v: View, dataset: DatasetListing, rows: DatasetRowsBody, models: readonly ModelListing[]): void {
  let entry = charts.get(dataset.name);
  if (entry === undefined) {
    const card = el('section', { class: 'chart-card', 'data-dataset': dataset.name });
    const plot = el('div', { class: 'chart' });
    card.append(el('h2', {}, dataset.name), el('p', { class: 'caption' }), plot, el('ul', { class: 'not-drawn' }));
    v.charts.append(card);
    entry = { card, chart: new DatasetChart(plot) };
    charts.set(dataset.name, entry);
  }
  const readers = models.filter((m) => m.datasets[0] === dataset.name);
  const predictions = readers.map((m) => forecasts.get(m.name)).filter((p): p is PredictionBody => p !== undefined);
  const data = chartData(rows, predictions);
  entry.chart.update(data);

  const caption = entry.card.querySelector('.caption')!;
  const first = rows.timestamps[0];
  const last = rows.timestamps.at(-1);
  const drawn = predictions.filter((p) => !data.notDrawn.has(p.model_name));
  let text = first === undefined ? 'No rows yet.' : `Last ${rows.timestamps.length} rows, ${formatIso(first)} to ${formatIso(last)} UTC.`;
  for (const p of drawn) {
    const steps = p.timestamps!;
    const bands = p.quantiles === undefined ? '' : `, quantiles ${Object.keys(p.quantiles).join(', ')}`;
    text += ` ${p.model_name}: ${steps.length} steps, ${formatIso(steps[0])} to ${formatIso(steps.at(-1))}${bands}.`;
  }
  caption.textContent = text;
  entry.card.querySelector('.not-drawn')!.replaceChildren(
    ...[...data.notDrawn].map(([model, why]) => el('li', {}, `${model}: forecast not drawn: ${why}`)),
  );
}

/** The model whose evaluation is shown (chosen in the page's select), null until there is one. */
let evaluatedModel: string | null = null;
/** The chart of past forecasts over the history, kept across renders (rebuilt only when its series change). */
let pastChart: { readonly card: HTMLElement; readonly chart: DatasetChart } | null = null;

/**
 * The evaluated model's past forecasts as the chart draws forecasts: one per origin (its variables
 * interleaved step by step, as a prediction holds them), labelled by origin.
 */
function pastPredictions(e: Evaluation, columns: readonly string[]): PredictionBody[] {
  const byOrigin = new Map<string, PastForecast[]>();
  for (const p of e.past_forecasts ?? []) byOrigin.set(p.origin, [...(byOrigin.get(p.origin) ?? []), p]);
  return [...byOrigin].map(([origin, entries]) => {
    const ordered = entries.length === columns.length ? columns.map((c) => entries.find((p) => p.variable === c) ?? entries[0]!) : entries;
    const timestamps = ordered[0]!.timestamps;
    const prediction = timestamps.flatMap((_, h) => ordered.map((p) => p.forecast[h]!));
    return { status: 'Success', model_name: `from ${formatIso(origin)}`, prediction, timestamps, duration_ms: 0 };
  });
}

/**
 * The history of the evaluated model's dataset, from a horizon before its oldest past forecast's origin, with
 * those forecasts drawn over it.
 */
function renderPastForecasts(e: Evaluation, rows: DatasetRowsBody | undefined): HTMLElement | null {
  const past = e.past_forecasts ?? [];
  if (rows === undefined || past.length === 0) return null;
  if (pastChart === null) {
    const plot = el('div', { class: 'chart' });
    const card = el('div', { class: 'chart-card', id: 'evaluation-past' }, el('p', { class: 'caption' }), plot);
    pastChart = { card, chart: new DatasetChart(plot) };
  }
  const horizon = past[0]!.timestamps.length;
  const firstOrigin = Date.parse(past[0]!.origin);
  const originRow = rows.timestamps.findIndex((t) => Date.parse(t) >= firstOrigin);
  const from = originRow < 0 ? 0 : Math.max(0, originRow - horizon);
  const shown: DatasetRowsBody = { ...rows, timestamps: rows.timestamps.slice(from), values: rows.values.slice(from) };
  const predictions = pastPredictions(e, rows.columns);
  pastChart.chart.update(chartData(shown, predictions));
  pastChart.card.querySelector('.caption')!.textContent =
    `Past forecasts against what happened: ${e.model} from ${predictions.length} origins (${predictions.map((p) => p.model_name.slice(5)).join(', ')} UTC), ${horizon} steps each, over the rows from ${formatIso(shown.timestamps[0])} UTC.`;
  return pastChart.card;
}

/**
 * The selected model's evaluation: MAE by forecast step of the model against the naive and seasonal-naive
 * baselines (GET /v1/models/:name/evaluation), with the select that picks the model.
 */
function renderEvaluation(v: View, models: readonly ModelListing[], e: Evaluation | null): void {
  const select = el('select', { id: 'evaluation-model', 'aria-label': 'Model' }, ...models.map((m) => el('option', { value: m.name }, m.name)));
  if (evaluatedModel !== null) select.value = evaluatedModel;
  select.addEventListener('change', () => {
    evaluatedModel = select.value;
    // Shown at once; a failure here shows on the next poll, which asks again.
    api.evaluation(select.value, api.apiKey.get()).then(
      (next) => renderEvaluation(v, models, next),
      () => undefined,
    );
  });
  const parts: HTMLElement[] = [el('h2', {}, 'Evaluation ', select)];
  if (e === null) {
    v.evaluation.replaceChildren(...parts);
    return;
  }
  const steps = e.by_step?.mae ?? [];
  const base = e.baselines;
  if (e.origins === undefined || base === undefined) {
    parts.push(el('p', { class: 'caption' }, `${e.model}: ${e.status}${e.error === undefined ? '' : ` (${e.error})`}`));
    v.evaluation.replaceChildren(...parts);
    return;
  }
  parts.push(
    el('p', { class: 'caption' }, `${e.status}: ${e.origins} origins, ${formatIso(e.first_origin)} to ${formatIso(e.last_origin)} UTC. Mean absolute error by step ahead.`),
  );
  const headers = ['MAE by step', ...steps.map((_, s) => String(s + 1)), 'all'];
  const row = (label: string, overall: number | null | undefined, bySteps: readonly (number | null)[]): HTMLTableRowElement =>
    el('tr', {}, el('th', { scope: 'row' }, label), ...bySteps.map((x) => cell(formatMetric(x))), cell(formatMetric(overall)));
  const body = el('tbody', {}, row('model', e.mae, steps), row('naive', base.naive.mae, base.naive.by_step.mae), row('seasonal naive', base.seasonal_naive.mae, base.seasonal_naive.by_step.mae));
  parts.push(el('div', { class: 'table-wrap' }, el('table', { id: 'evaluation-steps' }, el('thead', {}, el('tr', {}, ...headers.map((h) => el('th', { scope: 'col' }, h)))), body)));
  const model = models.find((m) => m.name === e.model);
  const chart = renderPastForecasts(e, model === undefined ? undefined : heldRows.get(model.datasets[0] ?? ''));
  if (chart !== null) parts.push(chart);
  v.evaluation.replaceChildren(...parts);
}

function signature(models: readonly ModelListing[], datasets: readonly DatasetListing[]): string {
  return JSON.stringify([
    models.map((m) => [m.name, m.status, m.error, m.datasets[0], m.mae, m.skill]),
    datasets.map((d) => [d.name, d.status, d.error, d.rows, d.first_ts, d.last_ts, d.refreshed_at]),
  ]);
}

const rowColumns = new Map<string, number>();
/** The rows each chart shows, as last fetched. */
let heldRows = new Map<string, DatasetRowsBody>();
let lastForecastSignature = '';

/** What a forecast shows (not its duration_ms, which differs on every call). */
function forecastSignature(predictions: readonly PredictionBody[]): string {
  return JSON.stringify(
    predictions.map((p) => [p.model_name, p.status, p.error_message, p.model_version, p.prediction, p.timestamps, p.quantiles]),
  );
}

async function poll(): Promise<void> {
  if (busy) return;
  busy = true;
  const key = api.apiKey.get();
  try {
    const [models, datasets, metrics] = await Promise.all([
      api.models(key),
      api.datasets(key),
      api.metricsText(key).then(modelStats, (error: unknown) => {
        if (error instanceof api.Unauthorized) throw error;
        return null;
      }),
    ]);
    const v = (view ??= buildView());
    // Forecasts are asked for on every poll (the server caches them while model and data are unchanged), so
    // a model reloaded between two polls shows its new forecast; rows only when a dataset changed.
    const sig = signature(models, datasets);
    const [predictions, fresh, details] = await Promise.all([
      api.predictions(models.map((m) => m.name), key),
      sig === lastSignature ? Promise.resolve(null) : Promise.all(datasets.map((d) => api.rows(d.name, LAST_ROWS, key))),
      // Few, and their weights change with a pod edit that the listing does not show: asked for on every poll.
      Promise.all(models.filter(isComposite).map((m) => api.modelDetails(m.name, key))),
    ]);
    composites = new Map(details.map((d) => [d.name, d]));
    const forecastSig = forecastSignature(predictions);
    if (fresh !== null || forecastSig !== lastForecastSignature) {
      forecasts = new Map(predictions.map((p) => [p.model_name, p]));
      if (fresh !== null) {
        heldRows = new Map(datasets.map((d, i) => [d.name, fresh[i]!]));
        for (const [name, entry] of charts) {
          if (!heldRows.has(name)) {
            entry.chart.destroy();
            entry.card.remove();
            charts.delete(name);
          }
        }
      }
      for (const d of datasets) {
        const rows = heldRows.get(d.name);
        if (rows === undefined) continue;
        rowColumns.set(d.name, rows.columns.length);
        renderChart(v, d, rows, models);
      }
      lastSignature = sig;
      lastForecastSignature = forecastSig;
    }
    renderTables(v, models, datasets, metrics, rowColumns);
    if (evaluatedModel === null || !models.some((m) => m.name === evaluatedModel)) evaluatedModel = models[0]?.name ?? null;
    const evaluation = evaluatedModel === null ? null : await api.evaluation(evaluatedModel, key);
    // Not while the select is open or focused: rebuilding it would close it under the user's pointer.
    if (document.activeElement?.id !== 'evaluation-model') renderEvaluation(v, models, evaluation);
    const time = new Date().toISOString().slice(11, 19);
    state.textContent = `Updated ${time} UTC · ${models.length} models, ${datasets.length} datasets · refreshes every ${REFRESH_MS / 1000} s`;
    state.classList.remove('stale');
  } catch (error) {
    if (error instanceof api.Unauthorized) {
      api.apiKey.clear();
      view = null;
      showKeyPrompt(NEEDS_KEY || key !== null ? 'The server refused the API key; enter it again.' : 'This server needs an API key.');
      return;
    }
    state.textContent = `Not updated: ${(error as Error).message}`;
    state.classList.add('stale');
  } finally {
    busy = false;
  }
}

function start(): void {
  stop();
  view = null;
  lastSignature = '';
  lastForecastSignature = '';
  void poll();
  timer = window.setInterval(() => void poll(), REFRESH_MS);
}

if (NEEDS_KEY && api.apiKey.get() === null) showKeyPrompt(null);
else start();
