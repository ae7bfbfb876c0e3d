/**
 * The ensemble case of `npm run bench:http` (SPEC "Ensembles and variants", cost goal): one forecastd with the
 * cache off serving three bench models on one dataset and `ensemble:heavy,medium,small`; each member's GET
 * alone and the ensemble's GET are measured at the same connection count in the same run, alternating, and the
 * ensemble's throughput is compared with 0.9 × 1/Σ(1/T_i), where T_i is member i measured alone. Writes
 * ensemble-DATE.{json,md} beside the other results.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import type { BenchModel } from './models.js';
import { fetchText, type ServerProcess } from './servers.js';
import { runWrk } from './wrk.js';

export interface EnsembleCaseOptions {
  readonly models: readonly BenchModel[];
  readonly csvPath: string;
  readonly timeColumn: string;
  readonly workDir: string;
  readonly cli: string;
  readonly connections: number;
  readonly repeats: number;
  readonly seconds: number;
  readonly warmupSeconds: number;
  readonly start: (name: string, logName: string, args: (port: number) => string[]) => Promise<ServerProcess>;
  readonly log: (message: string) => void;
}

export interface EnsembleCaseResult {
  readonly connections: number;
  readonly members: readonly string[];
  /** Median req/s of each member alone, and of the ensemble; every run's req/s too. */
  readonly memberRps: Readonly<Record<string, number>>;
  readonly ensembleRps: number;
  readonly runs: Readonly<Record<string, readonly number[]>>;
  /** 1/Σ(1/T_i): what the members' runs alone allow one ensemble answer. */
  readonly harmonicRps: number;
  /** ensembleRps / harmonicRps; the goal is ≥ 0.9. */
  readonly ratio: number;
  readonly goalMet: boolean;
  readonly errors: number;
}

const ENSEMBLE = 'ensemble3';

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export async function runEnsembleCase(o: EnsembleCaseOptions): Promise<EnsembleCaseResult> {
  const members = o.models.map((m) => m.name);
  const dir = join(o.workDir, 'forecastd-ensemble');
  mkdirSync(dir, { recursive: true });
  const pod = {
    version: 'v1beta1',
    kind: 'Spicepod',
    name: 'bench-ensemble',
    datasets: [{ from: `file:${o.csvPath}`, name: 'bench_co2', time_column: o.timeColumn, params: { columns: ['co2'] } }],
    models: [
      ...o.models.map((m) => ({ from: `file:${m.path}`, name: m.name, datasets: ['bench_co2'], params: { cache_predictions: false } })),
      { from: `ensemble:${members.join(',')}`, name: ENSEMBLE, params: { cache_predictions: false } },
    ],
  };
  const podPath = join(dir, 'spicepod.yaml');
  writeFileSync(podPath, YAML.stringify(pod));
  const server = await o.start('forecastd ensemble (cache off)', 'forecastd-ensemble', (port) => [o.cli, podPath, '--http', `127.0.0.1:${port}`]);
  await server.waitReady('/v1/ready');
  for (const name of [...members, ENSEMBLE]) {
    const { status, text } = await fetchText(`${server.base}/v1/models/${name}/predict`);
    if (status !== 200) throw new Error(`GET /v1/models/${name}/predict answered ${status}: ${text}`);
  }
  const targets = [...members, ENSEMBLE];
  const runs: Record<string, number[]> = Object.fromEntries(targets.map((t) => [t, []]));
  let errors = 0;
  for (let r = 0; r < o.repeats; r++) {
    const order = r % 2 === 0 ? targets : [...targets].reverse();
    for (const name of order) {
      server.assertAlive();
      const run = { url: `${server.base}/v1/models/${name}/predict`, connections: o.connections };
      await runWrk({ ...run, seconds: o.warmupSeconds });
      const result = await runWrk({ ...run, seconds: o.seconds });
      errors += result.errors.connect + result.errors.read + result.errors.write + result.errors.timeout + result.errors.status;
      runs[name]!.push(result.rps);
      o.log(`  ensemble case c=${o.connections} ${name} run ${r + 1}/${o.repeats}: ${Math.round(result.rps)} req/s`);
    }
  }
  const memberRps = Object.fromEntries(members.map((m) => [m, median(runs[m]!)]));
  const harmonicRps = 1 / members.reduce((sum, m) => sum + 1 / memberRps[m]!, 0);
  const ensembleRps = median(runs[ENSEMBLE]!);
  const ratio = ensembleRps / harmonicRps;
  return { connections: o.connections, members, memberRps, ensembleRps, runs, harmonicRps, ratio, goalMet: ratio >= 0.9, errors };
}

export function ensembleMarkdown(result: EnsembleCaseResult, environment: { date: string; command: string; cpuModel: string; cores: number; loadAverageAtStart: readonly number[] }): string {
  const spread = (values: readonly number[]): string => `${Math.round(Math.min(...values))}–${Math.round(Math.max(...values))}`;
  const rows = [
    ...result.members.map((m) => `| ${m} alone | ${Math.round(result.memberRps[m]!)} | ${spread(result.runs[m]!)} |`),
    `| ensemble:${result.members.join(',')} | ${Math.round(result.ensembleRps)} | ${spread(result.runs[ENSEMBLE]!)} |`,
  ];
  return [
    `# bench:http ensemble case, ${environment.date}`,
    '',
    `\`${environment.command}\` on ${environment.cpuModel} (${environment.cores} cores), load average at start ${environment.loadAverageAtStart.map((l) => l.toFixed(2)).join(' ')}.`,
    `One forecastd, cache off, GET /v1/models/NAME/predict with wrk at ${result.connections} connections; medians of ${result.runs[ENSEMBLE]!.length} alternating runs.`,
    '',
    '| target | req/s (median) | spread |',
    '| --- | --- | --- |',
    ...rows,
    '',
    `1/Σ(1/T_i) = ${Math.round(result.harmonicRps)} req/s; the ensemble reaches ${result.ratio.toFixed(2)} of it ` +
      `(goal ≥ 0.90: ${result.goalMet ? 'met' : 'not met'}); ${result.errors} errors.`,
    '',
  ].join('\n');
}
