/**
 * The `forecastd evaluate` subcommand (SPEC "Evaluation"): loads a pod without serving it, backtests each
 * model on its dataset exactly as the server does, and prints one table per model (the model against the
 * naive and seasonal-naive baselines, by step) or, with --json, the objects GET /v1/models/:name/evaluation
 * answers. Exit 0, or 1 when a model failed to load.
 */
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { EvaluationReport } from './evaluation/backtest.js';
import type { EntryEvaluation, VariantsEvaluationReport } from './http/types.js';
import { parseTimestamp } from './forecast/timestamps.js';
import { createLogger } from './log.js';
import { ServerMetrics } from './metrics.js';
import { ModelRegistry } from './server/registry.js';
import { findSpicepodFile, loadSpicepod } from './spicepod/load.js';
import type { ModelConfig, Spicepod } from './spicepod/types.js';

export const EVALUATE_USAGE = `Usage: forecastd evaluate [PATH] [options]

Backtests every model of a spicepod on its own dataset by rolling origin (the newest origins first) and
prints, per model, its errors against the naive and seasonal-naive baselines, overall and by step.

  PATH                    a spicepod.yaml, or a folder holding one (default: ./spicepod.yaml)

Options:
  --model NAMES           only these models (comma-separated)
  --origins N             scored origins per model (default: params.evaluation.origins, else 200)
  --since TIME            only origins at or after this ISO 8601 date or time (default: params.evaluation.since)
  --json                  print the evaluations as JSON, as GET /v1/models/NAME/evaluation answers them
  -h, --help              show this help
`;

class EvaluateUsageError extends Error {}

interface EvaluateOptions {
  readonly path: string;
  readonly models: readonly string[] | null;
  readonly origins: number | null;
  readonly since: number | null;
  readonly json: boolean;
}

function parse(argv: readonly string[]): EvaluateOptions | 'help' {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        model: { type: 'string' },
        origins: { type: 'string' },
        since: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    throw new EvaluateUsageError(error instanceof Error ? error.message : String(error));
  }
  const { values, positionals } = parsed;
  if (values.help === true) return 'help';
  if (positionals.length > 1) throw new EvaluateUsageError(`expected at most one PATH, got ${positionals.length}: ${positionals.join(' ')}`);
  let path = positionals[0];
  if (path === undefined) {
    if (!existsSync('spicepod.yaml')) throw new EvaluateUsageError('no PATH given and there is no ./spicepod.yaml');
    path = 'spicepod.yaml';
  }
  let models: string[] | null = null;
  if (values.model !== undefined) {
    models = values.model.split(',').map((s) => s.trim());
    if (models.some((m) => m === '')) throw new EvaluateUsageError(`--model must be a comma-separated list of model names, not '${values.model}'`);
  }
  let origins: number | null = null;
  if (values.origins !== undefined) {
    origins = Number(values.origins);
    if (!/^\d+$/.test(values.origins.trim()) || !Number.isSafeInteger(origins) || origins < 1) {
      throw new EvaluateUsageError(`--origins must be a positive integer, not '${values.origins}'`);
    }
  }
  let since: number | null = null;
  if (values.since !== undefined) {
    const t = parseTimestamp(values.since);
    if (t === null) throw new EvaluateUsageError(`--since must be an ISO 8601 date or time (e.g. 1993-04-03), not '${values.since}'`);
    since = t.ms;
  }
  return { path, models, origins, since, json: values.json === true };
}

/** The pod with only the chosen models (and the datasets they read), their evaluation settings overridden. */
function chosen(pod: Spicepod, options: EvaluateOptions): Spicepod {
  let models = pod.models;
  if (options.models !== null) {
    const known = new Set(pod.models.map((m) => m.name));
    const unknown = options.models.filter((name) => !known.has(name));
    if (unknown.length > 0) {
      throw new EvaluateUsageError(`--model names ${unknown.join(', ')}, which the pod does not have (its models: ${[...known].join(', ')})`);
    }
    // An ensemble or variants entry needs its members (evaluated as well, printed only when asked for).
    const byName = new Map(pod.models.map((m) => [m.name, m]));
    const wanted = new Set<string>();
    const want = (name: string): void => {
      if (wanted.has(name)) return;
      wanted.add(name);
      const source = byName.get(name)?.source;
      if (source?.kind === 'ensemble' || source?.kind === 'variants') for (const member of source.members) want(member.name);
    };
    for (const name of options.models) want(name);
    models = models.filter((m) => wanted.has(m.name));
  }
  models = models.map((m): ModelConfig => {
    const evaluation = m.params.evaluation;
    return {
      ...m,
      params: {
        ...m.params,
        evaluation: {
          ...evaluation,
          ...(options.origins === null ? {} : { origins: options.origins }),
          ...(options.since === null ? {} : { since: options.since }),
        },
      },
    };
  });
  const datasets = new Set(models.flatMap((m) => m.datasets.slice(0, 1)));
  return { ...pod, models, datasets: pod.datasets.filter((d) => datasets.has(d.name)) };
}

export async function runEvaluateCommand(argv: readonly string[]): Promise<number> {
  let options: EvaluateOptions | 'help';
  let pod: Spicepod;
  try {
    options = parse(argv);
    if (options === 'help') {
      process.stdout.write(EVALUATE_USAGE);
      return 0;
    }
    pod = chosen(await loadSpicepod(await findSpicepodFile(options.path)), options);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const usage = error instanceof EvaluateUsageError ? `\n\n${EVALUATE_USAGE}` : '\n';
    process.stderr.write(`forecastd evaluate: ${message}${usage}`);
    return 1;
  }
  // Warnings and failures go to stderr; stdout holds only the tables (or the JSON).
  const logger = createLogger({ level: process.env['FORECASTD_LOG_LEVEL'] ?? 'warn', destination: process.stderr });
  for (const warning of pod.warnings) logger.warn(warning);
  const registry = new ModelRegistry(pod, { logger, metrics: new ServerMetrics(), settleMs: 0 });
  try {
    await registry.start();
    await registry.evaluationsSettled();
    const printed = options.models ?? pod.models.map((m) => m.name);
    const reports = printed.map((name) => registry.evaluation(name)).filter((r): r is EntryEvaluation => r !== undefined);
    if (options.json) process.stdout.write(JSON.stringify(reports, null, 2) + '\n');
    else process.stdout.write(reports.map(table).join('\n'));
    const failed = pod.models.some((m) => registry.modelStatus(m.name)?.status === 'Error');
    return failed ? 1 : 0;
  } finally {
    await registry.close();
  }
}

/** A metric for a table: four significant digits, "-" for none. */
function num(x: number | null | undefined): string {
  if (x === null || x === undefined) return '-';
  if (x === 0) return '0';
  const abs = Math.abs(x);
  if (abs >= 1e6 || abs < 1e-4) return x.toExponential(3);
  return Number(x.toPrecision(4)).toString();
}

const STEPS_PER_ROW = 12;

/**
 * One entry's evaluation as text. A model or ensemble: a summary line, then errors by step, the model against
 * the baselines. A variants entry: its members side by side.
 */
export function table(r: EntryEvaluation): string {
  if ('variants' in r) return variantsTable(r);
  return modelTable(r);
}

function variantsTable(r: VariantsEvaluationReport): string {
  const lines = [`${r.model} (variants): ${r.status}`];
  const rows = Object.entries(r.variants).map(([name, v]) => {
    const m = 'variants' in v ? null : v;
    return [name, String(v.weight), v.status, String(m?.origins ?? '-'), num(m?.mae), num(m?.rmse), num(m?.mase), num(m?.skill)];
  });
  const header = ['member', 'weight', 'status', 'origins', 'MAE', 'RMSE', 'MASE', 'skill'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] as string).length)));
  const line = (cells: readonly string[]): string => '  ' + cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart((widths[i] as number) + 2))).join('');
  lines.push('', line(header), ...rows.map(line));
  return lines.join('\n') + '\n';
}

function modelTable(r: EvaluationReport): string {
  const lines: string[] = [];
  lines.push(`${r.model}${r.dataset === null ? '' : ` on ${r.dataset}`}: ${r.status}${r.error === undefined ? '' : ` (${r.error})`}`);
  if (r.origins === undefined || r.baselines === undefined || r.by_step === undefined) return lines.join('\n') + '\n';
  lines.push(
    `  ${r.origins} origins from ${r.first_origin} to ${r.last_origin} (${r.skipped ?? 0} skipped, ${r.skipped_pairs ?? 0} pairs without an actual); ` +
      `horizon ${r.horizon}, season ${r.season_length}; ${r.duration_ms} ms`,
  );
  lines.push(`  MAE ${num(r.mae)}  RMSE ${num(r.rmse)}  bias ${num(r.bias)}  MASE ${num(r.mase)}  skill ${num(r.skill)}`);
  const rows: [string, number | null, readonly (number | null)[]][] = [
    ['model', r.mae ?? null, r.by_step.mae],
    ['naive', r.baselines.naive.mae, r.baselines.naive.by_step.mae],
    ['seasonal naive', r.baselines.seasonal_naive.mae, r.baselines.seasonal_naive.by_step.mae],
  ];
  const horizon = r.by_step.mae.length;
  const labelWidth = Math.max(...rows.map(([label]) => label.length), 'MAE by step'.length);
  for (let from = 0; from < horizon; from += STEPS_PER_ROW) {
    const to = Math.min(horizon, from + STEPS_PER_ROW);
    const last = to === horizon;
    const header = ['MAE by step'.padEnd(labelWidth)];
    for (let s = from; s < to; s++) header.push(String(s + 1).padStart(8));
    if (last) header.push('all'.padStart(9));
    lines.push('', '  ' + header.join(''));
    for (const [label, overall, bySteps] of rows) {
      const cells = [label.padEnd(labelWidth)];
      for (let s = from; s < to; s++) cells.push(num(bySteps[s]).padStart(8));
      if (last) cells.push(num(overall).padStart(9));
      lines.push('  ' + cells.join(''));
    }
  }
  if (r.by_variable !== undefined) {
    lines.push('');
    for (const v of r.by_variable) lines.push(`  ${v.variable}: MAE ${num(v.mae)}  RMSE ${num(v.rmse)}  bias ${num(v.bias)}  MASE ${num(v.mase)}  skill ${num(v.skill)}`);
  }
  if (r.quantiles !== undefined) {
    lines.push('');
    const levels = Object.entries(r.quantiles);
    lines.push('  quantile     ' + levels.map(([q]) => q.padStart(9)).join(''));
    lines.push('  calibration  ' + levels.map(([, m]) => num(m.calibration).padStart(9)).join(''));
    lines.push('  pinball      ' + levels.map(([, m]) => num(m.pinball).padStart(9)).join(''));
    for (const i of r.intervals ?? []) lines.push(`  interval ${i.lower}-${i.upper}: coverage ${num(i.coverage)} (nominal ${i.nominal})`);
  }
  return lines.join('\n') + '\n';
}
