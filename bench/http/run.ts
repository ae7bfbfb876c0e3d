/**
 * The HTTP benchmark (`npm run bench:http`): forecastd against the peer (Fastify + onnxruntime-node, the same
 * endpoint written by hand, in two settings: onnxruntime-node's default session options and intraOpNumThreads 1),
 * against a baseline build of forecastd when one is given, and against two ceilings, all measured in the same
 * run with the same load generator (wrk). Writes bench/results/http-DATE.{json,md} and one SVG throughput–latency
 * curve per workload, and refreshes the summary in bench/README.md. See bench/README.md for what is measured and
 * how.
 *
 * Usage: npm run bench:http [-- --baseline-ref GIT_REF]
 *   --baseline-ref REF       also measure forecastd as built from commit REF (cache off), e.g. 21a3013: the commit
 *                            is extracted with git archive into bench/.work/baselines/SHA and built there once
 *                            (npm ci --prefer-offline, npm run build); later runs reuse that build
 *
 * Environment:
 *   BENCH_QUICK=1            smoke run: 2 s points, a short inference sweep, results under bench/.work/results
 *   BENCH_SECONDS, BENCH_WARMUP_SECONDS   seconds per measured point and per warm-up (whole numbers; 4 and 1)
 *   BENCH_CONNECTIONS=1,8,64              connection counts
 *   BENCH_WORKLOADS=heavy,gru,conv,small,example,post4,ensemble   a subset of the workloads (ensemble: the
 *                            ensemble case, each member alone and ensemble:heavy,medium,small, cache off; see
 *                            ensemble.ts)
 *   BENCH_ENSEMBLE_CONNECTIONS=64         connections of the ensemble case
 *   BENCH_FORECASTD_CLI=PATH the forecastd build to measure (default: dist/cli.js), e.g. to compare two builds
 *   BENCH_BASELINE_REF=REF   the same as --baseline-ref REF
 *   BENCH_BASELINE_CLI=PATH  also measure this forecastd build (cache off) as "forecastd baseline", side by side
 *   BENCH_BASELINE_ENV=K=V,… environment of the baseline (e.g. FORECASTD_RUN_SPIN_US=0: the same build, no spin);
 *                            with only this, the baseline is the measured build itself
 *   BENCH_REPEATS=N          measure each point of BENCH_REPEAT_WORKLOADS at BENCH_REPEAT_CONNECTIONS N times, the
 *                            targets alternating, and report the medians (default 5: the noise of one connection
 *                            is about ±15%); the repetitions after the first measure forecastd, the baseline and
 *                            the peers (the cache-on server and the HTTP ceiling once)
 *   BENCH_REPEAT_CONNECTIONS=1,8,64       the connection counts measured BENCH_REPEATS times
 *   BENCH_REPEAT_WORKLOADS=heavy,gru,conv the workloads measured BENCH_REPEATS times (the heavy models)
 *   BENCH_OUT=DIR            where results go
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import type { CeilingConfig, InferenceCeilingReport } from './inference-ceiling.js';
import { HEAVY_MODELS, writeBenchModels } from './models.js';
import { renderSummary, writeReport } from './report.js';
import type { Environment, HttpBenchResults, Point, ServerKey, Workload } from './results.js';
import { PEER_SHORT_LABELS, serverLabel } from './results.js';
import { batchSizeTotals, fetchText, freePort, ServerProcess } from './servers.js';
import { runWrk, wrkVersion } from './wrk.js';
import { ensembleMarkdown, runEnsembleCase } from './ensemble.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const WORK = join(ROOT, 'bench/.work/http');
const EXAMPLE_DIR = join(ROOT, 'examples/co2');
const CLI = resolve(process.env.BENCH_FORECASTD_CLI ?? join(ROOT, 'dist/cli.js'));
const README = join(ROOT, 'bench/README.md');
const README_BEGIN = '<!-- http-results:begin -->';
const README_END = '<!-- http-results:end -->';

const QUICK = process.env.BENCH_QUICK === '1';

function wholeSeconds(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a whole number of seconds ≥ 1, got ${raw}`);
  return value;
}

const SECONDS = wholeSeconds('BENCH_SECONDS', QUICK ? 2 : 4);
const WARMUP_SECONDS = wholeSeconds('BENCH_WARMUP_SECONDS', 1);
function connectionList(name: string, fallback: string): number[] {
  const raw = process.env[name];
  return (raw === undefined || raw === '' ? fallback : raw).split(',').map((c) => {
    const n = Number(c);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${name}: "${c}" is not a connection count`);
    return n;
  });
}
function nameList(name: string): string[] | undefined {
  const raw = process.env[name];
  return raw === undefined || raw === '' ? undefined : raw.split(',').filter((w) => w !== '');
}
const CONNECTIONS = connectionList('BENCH_CONNECTIONS', '1,8,64');
const REPEATS = wholeSeconds('BENCH_REPEATS', QUICK ? 1 : 5);
const REPEAT_CONNECTIONS = connectionList('BENCH_REPEAT_CONNECTIONS', '1,8,64');
const REPEAT_WORKLOADS = nameList('BENCH_REPEAT_WORKLOADS') ?? [...HEAVY_MODELS];

/** `--baseline-ref REF` (or `--baseline-ref=REF`) from the command line, else BENCH_BASELINE_REF. */
function baselineRefArgument(argv: readonly string[]): string | undefined {
  let ref: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--baseline-ref') {
      ref = argv[++i];
      if (ref === undefined || ref === '') throw new Error('--baseline-ref needs a git ref, e.g. --baseline-ref 21a3013');
    } else if (arg.startsWith('--baseline-ref=')) {
      ref = arg.slice('--baseline-ref='.length);
    } else {
      throw new Error(`unknown argument ${arg}; usage: npm run bench:http [-- --baseline-ref GIT_REF]`);
    }
  }
  return ref ?? (process.env.BENCH_BASELINE_REF || undefined);
}
const BASELINE_REF = baselineRefArgument(process.argv.slice(2));
if (BASELINE_REF !== undefined && process.env.BENCH_BASELINE_CLI) {
  throw new Error('give either --baseline-ref (BENCH_BASELINE_REF) or BENCH_BASELINE_CLI, not both');
}
const BASELINE_ENV: Record<string, string> = Object.fromEntries(
  (process.env.BENCH_BASELINE_ENV ?? '')
    .split(',')
    .filter((kv) => kv !== '')
    .map((kv) => {
      const eq = kv.indexOf('=');
      if (eq <= 0) throw new Error(`BENCH_BASELINE_ENV: "${kv}" is not NAME=VALUE`);
      return [kv.slice(0, eq), kv.slice(eq + 1)];
    }),
);
const ONLY = nameList('BENCH_WORKLOADS');
const OUT = resolve(process.env.BENCH_OUT ?? join(ROOT, QUICK ? 'bench/.work/results' : 'bench/results'));
if (process.env.BENCH_PEER_INTRA_OP_THREADS) {
  throw new Error(
    'BENCH_PEER_INTRA_OP_THREADS is gone: every run measures the peer both with onnxruntime-node\'s default ' +
      'session options and with intraOpNumThreads 1',
  );
}
const INFERENCE_SECONDS = QUICK ? 0.5 : 1.5;
const ENSEMBLE_CONNECTIONS = connectionList('BENCH_ENSEMBLE_CONNECTIONS', '64')[0] as number;
const BATCH_SIZES = [1, 8, 32, 64, 128, 256];

function log(message: string): void {
  process.stderr.write(`${message}\n`);
}

// ---------------------------------------------------------------------------------------------------------------
// Preparation
// ---------------------------------------------------------------------------------------------------------------

function preflight(): string {
  const wrk = wrkVersion();
  if (!existsSync(CLI)) throw new Error(`${relative(ROOT, CLI)} is missing: build forecastd first (npm run build)`);
  return wrk;
}

// ---------------------------------------------------------------------------------------------------------------
// The baseline build
// ---------------------------------------------------------------------------------------------------------------

/** What the "forecastd baseline" target runs. */
interface Baseline {
  /** Its dist/cli.js. */
  readonly cli: string;
  readonly env: Readonly<Record<string, string>>;
  /** For the report, e.g. "forecastd 21a3013 (commit 21a3013…, built in bench/.work/baselines/…), cache off". */
  readonly description: string;
  /** Its name in tables, e.g. "forecastd 21a3013"; undefined: "forecastd baseline". */
  readonly label: string | undefined;
  /** The measured build itself (only its environment differs): its answers must be identical. */
  readonly sameBuild: boolean;
}

function git(args: readonly string[]): string {
  const result = spawnSync('git', args, { cwd: ROOT, encoding: 'utf8' });
  if (result.error) throw new Error(`cannot run git: ${result.error.message}`);
  if (result.status !== 0) throw new Error(`git ${args.join(' ')} failed (exit ${result.status}): ${result.stderr.trim()}`);
  return result.stdout.trim();
}

/** The environment for npm in the baseline's folder: without the variables npm set for this script's package. */
function npmEnvironment(): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(process.env).filter(
      ([k]) => !k.startsWith('npm_package_') && !k.startsWith('npm_lifecycle_') && k !== 'INIT_CWD',
    ),
  );
}

/** Runs a build step in `cwd` with its output appended to `logFile`; on failure throws with the log's tail. */
function buildStep(cwd: string, logFile: string, program: string, args: readonly string[]): void {
  const started = Date.now();
  log(`  ${program} ${args.join(' ')}  (in ${relative(ROOT, cwd)}; output in ${relative(ROOT, logFile)})`);
  const result = spawnSync(program, args, { cwd, env: npmEnvironment(), encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  writeFileSync(logFile, `$ ${program} ${args.join(' ')}\n${result.stdout ?? ''}${result.stderr ?? ''}\n`, { flag: 'a' });
  if (result.error) throw new Error(`cannot run ${program}: ${result.error.message}`);
  if (result.status !== 0) {
    const tail = `${result.stdout ?? ''}${result.stderr ?? ''}`.trimEnd().split('\n').slice(-30).join('\n');
    throw new Error(`${program} ${args.join(' ')} failed in ${cwd} (exit ${result.status}):\n${tail}`);
  }
  log(`  done in ${Math.round((Date.now() - started) / 1000)} s`);
}

const BUILT_MARKER = '.bench-baseline-built';

/**
 * forecastd as built from commit `ref`: the commit's tree (git archive) in bench/.work/baselines/SHA, where
 * `npm ci --prefer-offline` (packages from npm's cache where it has them) and `npm run build` run once; later runs
 * find dist/cli.js and the marker written after a complete build, and reuse it. The build stays where it was
 * made: the native addon may find ONNX Runtime by an absolute path into that folder's node_modules.
 */
function buildBaselineRef(ref: string): { cli: string; sha: string; short: string; dir: string } {
  const resolved = spawnSync('git', ['rev-parse', '--verify', '--quiet', `${ref}^{commit}`], { cwd: ROOT, encoding: 'utf8' });
  if (resolved.status !== 0) throw new Error(`--baseline-ref ${ref}: no such commit in this repository (git rev-parse)`);
  const sha = resolved.stdout.trim();
  const short = git(['rev-parse', '--short=7', sha]);
  const dir = join(ROOT, 'bench/.work/baselines', sha);
  const cli = join(dir, 'dist/cli.js');
  const marker = join(dir, BUILT_MARKER);
  if (existsSync(cli) && existsSync(marker)) {
    log(`baseline ${ref} = ${sha}: reusing the build in ${relative(ROOT, dir)}`);
    return { cli, sha, short, dir };
  }
  log(`baseline ${ref} = ${sha}: building it in ${relative(ROOT, dir)} (once; later runs reuse it)`);
  if (existsSync(dir)) {
    log(`  removing an unfinished build there`);
    rmSync(dir, { recursive: true, force: true });
  }
  mkdirSync(dir, { recursive: true });
  const logFile = `${dir}.log`;
  writeFileSync(logFile, `baseline build of ${sha} (${ref})\n`);
  const tar = `${dir}.tar`;
  log(`  git archive ${short} | tar -x`);
  git(['archive', '--format=tar', `--output=${tar}`, sha]);
  try {
    buildStep(dir, logFile, 'tar', ['-xf', tar]);
  } finally {
    rmSync(tar, { force: true });
  }
  buildStep(dir, logFile, 'npm', ['ci', '--prefer-offline', '--no-audit', '--no-fund']);
  buildStep(dir, logFile, 'npm', ['run', 'build']);
  if (!existsSync(cli)) throw new Error(`the build of ${sha} wrote no dist/cli.js (log: ${relative(ROOT, logFile)})`);
  writeFileSync(marker, `${sha}\n${new Date().toISOString()}\n`);
  return { cli, sha, short, dir };
}

function resolveBaseline(): Baseline | undefined {
  const envText =
    Object.keys(BASELINE_ENV).length > 0 ? ` with ${Object.entries(BASELINE_ENV).map(([k, v]) => `${k}=${v}`).join(' ')}` : '';
  if (BASELINE_REF !== undefined) {
    const built = buildBaselineRef(BASELINE_REF);
    const subject = git(['log', '-1', '--format=%s', built.sha]);
    return {
      cli: built.cli,
      env: BASELINE_ENV,
      label: `forecastd ${built.short}`,
      description:
        `forecastd ${built.short} ("${subject}"), built from commit ${built.sha} in ${relative(ROOT, built.dir)} ` +
        `(--baseline-ref ${BASELINE_REF})${envText}, cache off`,
      sameBuild: false,
    };
  }
  const cliPath = process.env.BENCH_BASELINE_CLI ? resolve(process.env.BENCH_BASELINE_CLI) : undefined;
  if (cliPath === undefined && Object.keys(BASELINE_ENV).length === 0) return undefined;
  if (cliPath !== undefined && !existsSync(cliPath)) throw new Error(`BENCH_BASELINE_CLI: ${cliPath} does not exist`);
  return {
    cli: cliPath ?? CLI,
    env: BASELINE_ENV,
    label: undefined,
    description: `${cliPath ? `node ${relative(ROOT, cliPath)}` : 'the same build'}${envText}, cache off`,
    sameBuild: cliPath === undefined,
  };
}

interface ExampleModel {
  readonly name: string;
  readonly modelPath: string;
  /** The example's dataset and model entries with their paths made absolute. */
  readonly datasetEntry: Record<string, unknown>;
  readonly modelEntry: Record<string, unknown>;
  readonly csvPath: string;
  readonly timeColumn: string;
  readonly columns: readonly string[] | undefined;
  readonly lookback: number | undefined;
}

function absoluteFileSource(from: string, dir: string): string {
  const path = from.startsWith('file://') ? from.slice('file://'.length) : from.startsWith('file:') ? from.slice('file:'.length) : from;
  return `file:${resolve(dir, path)}`;
}

/** The bundled example's first model and its dataset, as the example's spicepod.yaml declares them. */
function readExample(): ExampleModel {
  const podPath = join(EXAMPLE_DIR, 'spicepod.yaml');
  const pod = YAML.parse(readFileSync(podPath, 'utf8')) as {
    datasets?: Record<string, unknown>[];
    models?: Record<string, unknown>[];
  };
  const model = pod.models?.[0];
  const datasetName = (model?.datasets as string[] | undefined)?.[0];
  const dataset = pod.datasets?.find((d) => d.name === datasetName);
  if (!model || !dataset || typeof model.from !== 'string' || typeof dataset.from !== 'string') {
    throw new Error(`${podPath}: expected a model with a file: dataset`);
  }
  const modelFrom = absoluteFileSource(model.from, EXAMPLE_DIR);
  const modelPath = modelFrom.slice('file:'.length);
  if (!existsSync(modelPath)) {
    throw new Error(`${relative(ROOT, modelPath)} is missing: train the example first (npm run train:example)`);
  }
  const datasetFrom = absoluteFileSource(dataset.from, EXAMPLE_DIR);
  if (!datasetFrom.endsWith('.csv')) throw new Error(`${podPath}: the benchmark's peer reads CSV; ${dataset.from} is not`);
  const params = (dataset.params ?? {}) as { columns?: string[] };
  const modelParams = (model.params ?? {}) as { lookback?: number };
  return {
    name: String(model.name),
    modelPath,
    datasetEntry: { ...dataset, from: datasetFrom },
    modelEntry: { ...model, from: modelFrom },
    csvPath: datasetFrom.slice('file:'.length),
    timeColumn: typeof dataset.time_column === 'string' ? dataset.time_column : 'ts',
    columns: params.columns,
    lookback: modelParams.lookback,
  };
}

const BENCH_DATASET = 'bench_co2';

/** A pod with the bench models on the example's CO2 series, plus the example's own model and dataset. */
function writePod(name: string, cache: boolean, models: ReturnType<typeof writeBenchModels>, example: ExampleModel): string {
  const dir = join(WORK, name);
  mkdirSync(dir, { recursive: true });
  const exampleParams = (example.modelEntry.params ?? {}) as Record<string, unknown>;
  const pod = {
    version: 'v1beta1',
    kind: 'Spicepod',
    name,
    datasets: [
      {
        from: `file:${example.csvPath}`,
        name: BENCH_DATASET,
        time_column: example.timeColumn,
        params: { columns: ['co2'] },
      },
      example.datasetEntry,
    ],
    models: [
      ...models.map((m) => ({
        from: `file:${m.path}`,
        name: m.name,
        datasets: [BENCH_DATASET],
        params: { cache_predictions: cache },
      })),
      { ...example.modelEntry, params: { ...exampleParams, cache_predictions: cache } },
    ],
  };
  const path = join(dir, 'spicepod.yaml');
  writeFileSync(path, YAML.stringify(pod));
  return path;
}

function runInferenceCeiling(config: CeilingConfig): Promise<InferenceCeilingReport> {
  const configPath = join(WORK, 'inference-ceiling.json');
  writeFileSync(configPath, JSON.stringify(config));
  const script = join(ROOT, 'bench/http/inference-ceiling.ts');
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script, configPath], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    child.on('close', (code) => {
      const line = out.trim().split('\n').pop();
      if (code !== 0 || !line) {
        reject(new Error(`the inference ceiling failed (exit ${code}):\n${err}${out}`));
        return;
      }
      resolvePromise(JSON.parse(line) as InferenceCeilingReport);
    });
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------------------------

interface PredictBody {
  readonly status: string;
  readonly model_name?: string;
  readonly model_version?: string;
  readonly lookback?: number;
  readonly prediction?: number[];
  readonly error_message?: string;
}

async function getPrediction(base: string, model: string): Promise<{ body: PredictBody; text: string }> {
  const { status, text } = await fetchText(`${base}/v1/models/${model}/predict`);
  const body = JSON.parse(text) as PredictBody;
  if (status !== 200 || body.status !== 'Success' || !body.prediction) {
    throw new Error(`GET ${base}/v1/models/${model}/predict answered ${status}: ${text}`);
  }
  return { body, text };
}

/** Largest difference between two predictions relative to max(1, |value|); Infinity when lengths differ. */
function predictionDifference(a: readonly number[], b: readonly number[]): number {
  if (a.length !== b.length) return Number.POSITIVE_INFINITY;
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as number;
    const y = b[i] as number;
    worst = Math.max(worst, Math.abs(x - y) / Math.max(1, Math.abs(x)));
  }
  return worst;
}

// Different thread counts sum a MatMul in different orders: float32 results agree to about 1e-6 relative.
const AGREEMENT = 1e-4;

// ---------------------------------------------------------------------------------------------------------------
// Measuring
// ---------------------------------------------------------------------------------------------------------------

interface Target {
  readonly key: ServerKey;
  readonly process: ServerProcess;
  readonly forecastd: boolean;
}

async function scrapeBatches(target: Target, models: readonly string[]): Promise<{ sum: number; count: number } | undefined> {
  if (!target.forecastd) return undefined;
  const { status, text } = await fetchText(`${target.process.base}/metrics`);
  if (status !== 200) throw new Error(`${target.process.name}: GET /metrics answered ${status}`);
  return batchSizeTotals(text, models);
}

async function measure(target: Target, workload: Workload, connections: number, postBodyFile: string | undefined): Promise<Point> {
  target.process.assertAlive();
  const url = `${target.process.base}${workload.path}`;
  const run = { url, connections, ...(postBodyFile ? { postBodyFile } : {}) };
  await runWrk({ ...run, seconds: WARMUP_SECONDS });
  const batches0 = await scrapeBatches(target, workload.models);
  const cpu0 = target.process.cpuSeconds();
  const stat0 = machineTicks();
  const r = await runWrk({ ...run, seconds: SECONDS });
  const stat1 = machineTicks();
  const cpu1 = target.process.cpuSeconds();
  const batches1 = await scrapeBatches(target, workload.models);
  target.process.assertAlive();
  const batchCount = batches0 && batches1 ? batches1.count - batches0.count : 0;
  const meanBatchSize = batches0 && batches1 && batchCount > 0 ? (batches1.sum - batches0.sum) / batchCount : null;
  const ms = (us: number): number => us / 1000;
  return {
    workload: workload.id,
    server: target.key,
    connections,
    requests: r.requests,
    rps: r.rps,
    p50Ms: ms(r.latency_us.p50),
    p90Ms: ms(r.latency_us.p90),
    p99Ms: ms(r.latency_us.p99),
    meanMs: ms(r.latency_us.mean),
    maxMs: ms(r.latency_us.max),
    socketErrors: r.errors.connect + r.errors.read + r.errors.write + r.errors.timeout,
    non2xx: r.errors.status,
    cpuSecondsPer1k: r.requests > 0 ? ((cpu1 - cpu0) / r.requests) * 1000 : Number.NaN,
    meanBatchSize,
    stealPercent: stat0 && stat1 && stat1.total > stat0.total ? (100 * (stat1.steal - stat0.steal)) / (stat1.total - stat0.total) : null,
  };
}

/**
 * The machine's CPU time so far, all CPUs, and the part of it the hypervisor gave to others (steal), in ticks
 * from /proc/stat's first line; null where it cannot be read. A virtual machine whose host is busy runs slower
 * during those ticks, whatever server is being measured.
 */
function machineTicks(): { total: number; steal: number } | null {
  try {
    const fields = (readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal [guest guest_nice, already counted in user and nice]
    if (fields.length < 8 || fields.some((n) => !Number.isFinite(n))) return null;
    const total = fields.slice(0, 8).reduce((a, b) => a + b, 0);
    return { total, steal: fields[7] as number };
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Environment
// ---------------------------------------------------------------------------------------------------------------

function packageVersion(name: string): string {
  const manifest = JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string };
  return manifest.version;
}

function cpuModel(): string {
  const lscpu = spawnSync('lscpu', { encoding: 'utf8' });
  const line = lscpu.stdout?.split('\n').find((l) => l.startsWith('Model name:'));
  return line ? line.slice('Model name:'.length).trim() : (cpus()[0]?.model ?? 'unknown CPU');
}

function osName(): string {
  try {
    const text = readFileSync('/etc/os-release', 'utf8');
    return /^PRETTY_NAME="?([^"\n]*)"?/m.exec(text)?.[1] ?? 'Linux';
  } catch {
    return 'Linux';
  }
}

function command(): string {
  const overrides = Object.entries(process.env)
    .filter(([k]) => k.startsWith('BENCH_'))
    .map(([k, v]) => `${k}=${v}`)
    .sort();
  const args = process.argv.slice(2);
  return [...overrides, 'npm run bench:http', ...(args.length > 0 ? ['--', ...args] : [])].join(' ');
}

// ---------------------------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const wrk = preflight();
  const loadAtStart = loadavg();
  mkdirSync(join(WORK, 'logs'), { recursive: true });
  mkdirSync(join(WORK, 'bodies'), { recursive: true });
  mkdirSync(OUT, { recursive: true });

  log('building the benchmark models');
  const models = writeBenchModels(join(WORK, 'models'));
  const example = readExample();
  const podOff = writePod('forecastd-cache-off', false, models, example);
  const podOn = writePod('forecastd-cache-on', true, models, example);

  // BENCH_WORKLOADS=ensemble measures only the ensemble case (no peer, no ceilings).
  const matrix = ONLY === undefined || ONLY.some((w) => w !== 'ensemble');
  const ensembleCase = ONLY === undefined || ONLY.includes('ensemble');
  const servers: ServerProcess[] = [];
  const start = async (
    name: string,
    logName: string,
    args: (port: number) => string[],
    env?: Readonly<Record<string, string>>,
  ): Promise<ServerProcess> => {
    const port = await freePort();
    const server = new ServerProcess({ name, args: args(port), port, logFile: join(WORK, 'logs', `${logName}.log`), ...(env ? { env } : {}) });
    servers.push(server);
    return server;
  };
  try {
    if (matrix) {
      const baseline = resolveBaseline();
      if (baseline) log(`baseline: ${baseline.description}`);
      const inference = await inferenceCeiling(models, example);
      const results = await runMatrix(start, { models, example, podOff, podOn, inference, wrk, loadAtStart, baseline });
      await stopServers(servers.splice(0));
      writeResults(results);
    }
    if (ensembleCase) {
      log('measuring the ensemble case: each member alone and ensemble:heavy,medium,small, cache off');
      const result = await runEnsembleCase({
        models: ENSEMBLE_MEMBERS.map((name) => {
          const model = models.find((m) => m.name === name);
          if (!model) throw new Error(`the ensemble case needs the bench model ${name}`);
          return model;
        }),
        csvPath: example.csvPath,
        timeColumn: example.timeColumn,
        workDir: WORK,
        cli: CLI,
        connections: ENSEMBLE_CONNECTIONS,
        repeats: REPEATS,
        seconds: SECONDS,
        warmupSeconds: WARMUP_SECONDS,
        start,
        log,
      });
      await stopServers(servers.splice(0));
      const date = new Date().toISOString().slice(0, 10);
      const stem = join(OUT, `ensemble-${date}`);
      writeFileSync(`${stem}.json`, `${JSON.stringify({ command: command(), cpuModel: cpuModel(), cores: cpus().length, loadAverageAtStart: loadAtStart, ...result }, null, 2)}\n`);
      writeFileSync(`${stem}.md`, ensembleMarkdown(result, { date, command: command(), cpuModel: cpuModel(), cores: cpus().length, loadAverageAtStart: loadAtStart }));
      log(
        `ensemble case: ${Math.round(result.ensembleRps)} req/s against 1/Σ(1/T_i) = ${Math.round(result.harmonicRps)} req/s: ` +
          `ratio ${result.ratio.toFixed(2)} (goal ≥ 0.90 ${result.goalMet ? 'met' : 'not met'}); results: ${relative(ROOT, stem)}.md`,
      );
    }
  } finally {
    // After a failure: stop whatever still runs, without masking the failure.
    await Promise.allSettled(servers.map((s) => s.stop()));
  }
}

async function inferenceCeiling(models: ReturnType<typeof writeBenchModels>, example: ExampleModel): Promise<InferenceCeilingReport> {
  log(`measuring the inference ceiling (${INFERENCE_SECONDS} s per batch size)`);
  const inference = await runInferenceCeiling({
    seconds: INFERENCE_SECONDS,
    batchSizes: BATCH_SIZES,
    models: [
      ...models.map((m) => ({ name: m.name, path: m.path, lookback: m.lookback })),
      { name: example.name, path: example.modelPath, ...(example.lookback ? { lookback: example.lookback } : {}) },
    ],
  });
  for (const m of inference.models) {
    log(`  ${m.name}: ${Math.round(m.best.predictionsPerSecond)} predictions/s at batch ${m.best.batchSize}`);
  }
  return inference;
}

type Start = (
  name: string,
  logName: string,
  args: (port: number) => string[],
  env?: Readonly<Record<string, string>>,
) => Promise<ServerProcess>;

interface Prepared {
  readonly models: ReturnType<typeof writeBenchModels>;
  readonly example: ExampleModel;
  readonly podOff: string;
  readonly podOn: string;
  readonly inference: InferenceCeilingReport;
  readonly wrk: string;
  readonly loadAtStart: readonly number[];
  readonly baseline: Baseline | undefined;
}

/** forecastd exits 0 once drained: anything else after a run is a failure worth reporting. */
async function stopServers(servers: readonly ServerProcess[]): Promise<void> {
  const exits = await Promise.all(servers.map(async (s) => ({ name: s.name, exit: await s.stop() })));
  for (const { name, exit } of exits) {
    if (exit.code !== 0 && exit.signal === null) log(`warning: ${name} exited with code ${exit.code} on SIGTERM`);
  }
}

/** The members of the ensemble case (SPEC "Ensembles and variants"). */
const ENSEMBLE_MEMBERS = ['heavy', 'medium', 'small'];

/** The models of the POST workload: the same four as before the GRU and convolution models were added. */
const POST_MODELS = ['heavy', 'medium', 'small'];

/** The peer's two settings: onnxruntime-node's default session options, and one intra-op thread. */
const PEERS: readonly { key: ServerKey; logName: string; intraOpThreads: number | undefined }[] = [
  { key: 'peer', logName: 'peer-default-threads', intraOpThreads: undefined },
  { key: 'peer-one-thread', logName: 'peer-one-thread', intraOpThreads: 1 },
];

async function runMatrix(start: Start, prepared: Prepared): Promise<HttpBenchResults> {
  const { models, example, podOff, podOn, inference, baseline: baselineBuild } = prepared;
  const checks: string[] = [];
  const modelNames = [...models.map((m) => m.name), example.name];
  const label = (key: ServerKey): string => serverLabel(key, { baselineLabel: baselineBuild?.label });

  log('starting forecastd (cache off and cache on)');
  const forecastdArgs = (pod: string) => (port: number) => [CLI, pod, '--http', `127.0.0.1:${port}`];
  const forecastdOff = await start('forecastd (cache off)', 'forecastd-cache-off', forecastdArgs(podOff));
  const forecastdOn = await start('forecastd (cache on)', 'forecastd-cache-on', forecastdArgs(podOn));
  const baseline = baselineBuild
    ? await start(
        `${baselineBuild.label ?? 'forecastd baseline'} (cache off)`,
        'forecastd-baseline',
        (port) => [baselineBuild.cli, podOff, '--http', `127.0.0.1:${port}`],
        baselineBuild.env,
      )
    : undefined;
  await Promise.all([forecastdOff, forecastdOn, ...(baseline ? [baseline] : [])].map((s) => s.waitReady('/v1/ready')));

  // forecastd's own answers: the reference for the baseline and the peers, and the bodies the HTTP ceiling returns.
  const reference = new Map<string, { body: PredictBody; text: string }>();
  for (const name of modelNames) {
    const off = await getPrediction(forecastdOff.base, name);
    const on = await getPrediction(forecastdOn.base, name);
    const difference = predictionDifference(off.body.prediction ?? [], on.body.prediction ?? []);
    if (difference !== 0) throw new Error(`${name}: forecastd with and without the cache disagree: ${off.text} vs ${on.text}`);
    reference.set(name, off);
  }
  if (baseline && baselineBuild) {
    for (const name of modelNames) {
      const mine = reference.get(name)!;
      const theirs = await getPrediction(baseline.base, name);
      const difference = predictionDifference(mine.body.prediction ?? [], theirs.body.prediction ?? []);
      // The same build must answer identically; another build may sum in another order (float32 rounding).
      const allowed = baselineBuild.sameBuild ? 0 : AGREEMENT;
      if (!(difference <= allowed)) {
        throw new Error(`${name}: forecastd and ${label('forecastd-baseline')} disagree (relative difference ${difference}):\n${mine.text}\n${theirs.text}`);
      }
      checks.push(`${name}: forecastd and ${label('forecastd-baseline')} return the same prediction (largest relative difference ${difference.toExponential(1)})`);
    }
  }
  const postModels = [...POST_MODELS.filter((n) => models.some((m) => m.name === n)), example.name];
  const postBodyFile = join(WORK, 'bodies', 'post-request.json');
  writeFileSync(postBodyFile, JSON.stringify({ predictions: postModels.map((model_name) => ({ model_name })) }));
  const post = await fetchText(`${forecastdOff.base}/v1/predict`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: readFileSync(postBodyFile),
  });
  if (post.status !== 200) throw new Error(`POST /v1/predict answered ${post.status}: ${post.text}`);

  log('starting the peer twice: default session options, and intraOpNumThreads 1');
  const peerModels = modelNames.map((name) => {
    const body = reference.get(name)!.body;
    const isExample = name === example.name;
    return {
      name,
      path: isExample ? example.modelPath : models.find((m) => m.name === name)!.path,
      csv: example.csvPath,
      timeColumn: example.timeColumn,
      columns: isExample ? (example.columns ?? ['co2']) : ['co2'],
      lookback: body.lookback,
      ...(body.model_version === undefined ? {} : { version: body.model_version }),
    };
  });
  const peers: { key: ServerKey; process: ServerProcess }[] = [];
  for (const setting of PEERS) {
    const configPath = join(WORK, `${setting.logName}.json`);
    const peer = await start(label(setting.key), setting.logName, (port) => {
      writeFileSync(
        configPath,
        JSON.stringify({
          host: '127.0.0.1',
          port,
          ...(setting.intraOpThreads === undefined ? {} : { intraOpThreads: setting.intraOpThreads }),
          models: peerModels,
        }),
      );
      return [join(ROOT, 'bench/peers/node-ort-server.mjs'), configPath];
    });
    peers.push({ key: setting.key, process: peer });
  }
  await Promise.all(peers.map((p) => p.process.waitReady('/v1/ready')));
  for (const name of modelNames) {
    const mine = reference.get(name)!;
    for (const peer of peers) {
      const theirs = await getPrediction(peer.process.base, name);
      const difference = predictionDifference(mine.body.prediction ?? [], theirs.body.prediction ?? []);
      if (!(difference <= AGREEMENT)) {
        throw new Error(
          `${name}: forecastd and the ${label(peer.key)} disagree (relative difference ${difference}):\n${mine.text}\n${theirs.text}`,
        );
      }
      checks.push(
        `${name}: forecastd and the ${PEER_SHORT_LABELS[peer.key] ?? peer.key} return the same prediction (largest relative difference ` +
          `${difference.toExponential(1)}); response ${Buffer.byteLength(mine.text)} bytes (forecastd) and ` +
          `${Buffer.byteLength(theirs.text)} bytes (peer)`,
      );
    }
  }

  log('starting the HTTP ceiling');
  const routes: { method: 'GET' | 'POST'; path: string; bodyFile: string }[] = [];
  for (const name of modelNames) {
    const bodyFile = join(WORK, 'bodies', `${name}.json`);
    writeFileSync(bodyFile, reference.get(name)!.text);
    routes.push({ method: 'GET', path: `/v1/models/${name}/predict`, bodyFile });
  }
  const postResponseFile = join(WORK, 'bodies', 'post-response.json');
  writeFileSync(postResponseFile, post.text);
  routes.push({ method: 'POST', path: '/v1/predict', bodyFile: postResponseFile });
  const ceilingConfigPath = join(WORK, 'uws-fixed.json');
  const ceiling = await start('HTTP ceiling', 'http-ceiling', (port) => {
    writeFileSync(ceilingConfigPath, JSON.stringify({ host: '127.0.0.1', port, routes }));
    return [join(ROOT, 'bench/peers/uws-fixed.mjs'), ceilingConfigPath];
  });
  await ceiling.waitReady('/v1/ready');

  const ceilingRps = (names: readonly string[]): number => {
    let secondsPerRequest = 0;
    for (const name of names) {
      const m = inference.models.find((x) => x.name === name);
      if (!m) throw new Error(`no inference ceiling for ${name}`);
      secondsPerRequest += 1 / m.best.predictionsPerSecond;
    }
    return 1 / secondsPerRequest;
  };
  const describe = (name: string): string =>
    name === example.name ? `${name} from examples/co2` : (models.find((m) => m.name === name)?.description ?? name);
  const titles: Readonly<Record<string, string>> = {
    heavy: 'Heavy model',
    gru: 'Heavy recurrent model',
    conv: 'Heavy convolutional model',
    small: 'Small model',
    example: 'Bundled example',
  };
  const allWorkloads: (Workload & { postBodyFile?: string })[] = [
    ...['heavy', 'gru', 'conv', 'small'].filter((name) => modelNames.includes(name)).map((name) => ({ id: name, model: name })),
    { id: 'example', model: example.name },
  ].map(({ id, model }) => ({
    id,
    title: `${titles[id] ?? id}: ${describe(model)}`,
    method: 'GET' as const,
    path: `/v1/models/${model}/predict`,
    models: [model],
    responseBytes: Buffer.byteLength(reference.get(model)!.text),
    inferenceCeilingRps: ceilingRps([model]),
  }));
  allWorkloads.push({
    id: 'post4',
    title: `POST with ${postModels.length} models (${postModels.join(', ')})`,
    method: 'POST',
    path: '/v1/predict',
    models: postModels,
    responseBytes: Buffer.byteLength(post.text),
    inferenceCeilingRps: ceilingRps(postModels),
    postBodyFile,
  });
  const workloads = ONLY ? allWorkloads.filter((w) => ONLY.includes(w.id)) : allWorkloads;
  if (workloads.length === 0) throw new Error(`BENCH_WORKLOADS matches none of ${allWorkloads.map((w) => w.id).join(', ')}`);

  const targets: Target[] = [
    { key: 'forecastd-cache-off', process: forecastdOff, forecastd: true },
    ...(baseline ? [{ key: 'forecastd-baseline' as const, process: baseline, forecastd: true }] : []),
    { key: 'forecastd-cache-on', process: forecastdOn, forecastd: true },
    ...peers.map((p) => ({ key: p.key, process: p.process, forecastd: false })),
    { key: 'http-ceiling', process: ceiling, forecastd: false },
  ];
  // Repetitions after the first measure what the ratios compare: forecastd, the baseline and the peers.
  const compared = targets.filter((t) => t.key !== 'forecastd-cache-on' && t.key !== 'http-ceiling');
  const repeatsOf = (workload: Workload, connections: number): number =>
    REPEAT_WORKLOADS.includes(workload.id) && REPEAT_CONNECTIONS.includes(connections) ? REPEATS : 1;
  let measurements = 0;
  for (const workload of workloads) {
    for (const connections of CONNECTIONS) measurements += targets.length + (repeatsOf(workload, connections) - 1) * compared.length;
  }
  const points: Point[] = [];
  const total = workloads.length * CONNECTIONS.length * targets.length;
  log(
    `measuring ${total} points in ${measurements} measurements of ${WARMUP_SECONDS} s warm-up + ${SECONDS} s ` +
      `(about ${Math.ceil((measurements * (WARMUP_SECONDS + SECONDS + 0.2)) / 60)} min)`,
  );
  for (const workload of workloads) {
    for (const connections of CONNECTIONS) {
      const repeats = repeatsOf(workload, connections);
      const samples = new Map<ServerKey, Point[]>();
      for (let r = 0; r < repeats; r++) {
        // Alternate the order, so that no target always runs right after the same one.
        const round = r === 0 ? targets : compared;
        const order = r % 2 === 0 ? round : [...round].reverse();
        for (const target of order) {
          const sample = await measure(target, workload, connections, workload.postBodyFile);
          samples.set(target.key, [...(samples.get(target.key) ?? []), sample]);
          if (repeats > 1) {
            log(
              `  ${workload.id} c=${connections} ${label(target.key)} run ${r + 1}/${repeats}: ` +
                `${Math.round(sample.rps)} req/s, p99 ${sample.p99Ms.toFixed(2)} ms`,
            );
          }
        }
      }
      for (const target of targets) {
        const point = combineRepeats(samples.get(target.key) ?? []);
        points.push(point);
        log(
          `[${points.length}/${total}] ${workload.id} c=${connections} ${label(target.key)}: ` +
            `${Math.round(point.rps)} req/s, p50 ${point.p50Ms.toFixed(2)} ms, p99 ${point.p99Ms.toFixed(2)} ms` +
            `${point.meanBatchSize === null ? '' : `, batch ${point.meanBatchSize.toFixed(1)}`}` +
            `${point.socketErrors + point.non2xx > 0 ? `, ${point.socketErrors + point.non2xx} errors` : ''}`,
        );
      }
    }
  }

  const peerText = (setting: string): string =>
    `Fastify ${packageVersion('fastify')} + onnxruntime-node ${packageVersion('onnxruntime-node')} ` +
    `(bench/peers/node-ort-server.mjs, ${setting}, one session.run per request, no cache)`;
  const environment: Environment = {
    date: new Date().toISOString().slice(0, 10),
    command: command(),
    quick: QUICK,
    cpuModel: cpuModel(),
    cores: cpus().length,
    node: process.version,
    kernel: release(),
    os: osName(),
    wrk: prepared.wrk,
    forecastd:
      `forecastd ${ownVersion()} (node dist/cli.js; model params at their defaults except cache_predictions), ` +
      `ONNX Runtime ${inference.ortVersion}, uWebSockets.js ${packageVersion('uWebSockets.js')}`,
    peer: peerText('default session options'),
    peerOneThread: peerText('intraOpNumThreads 1'),
    ...(baselineBuild
      ? { baseline: baselineBuild.description, ...(baselineBuild.label ? { baselineLabel: baselineBuild.label } : {}) }
      : {}),
    repeats: REPEATS,
    repeatConnections: REPEAT_CONNECTIONS.filter((c) => CONNECTIONS.includes(c)),
    repeatWorkloads: REPEAT_WORKLOADS.filter((id) => workloads.some((w) => w.id === id)),
    warmupSeconds: WARMUP_SECONDS,
    seconds: SECONDS,
    loadAverageAtStart: prepared.loadAtStart,
  };
  return {
    environment,
    workloads: workloads.map(({ postBodyFile: _ignored, ...w }) => w),
    connections: CONNECTIONS,
    inference,
    points,
    checks,
  };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** One point from its repetitions: medians of the rates and latencies, sums of the counts. */
function combineRepeats(samples: readonly Point[]): Point {
  const first = samples[0];
  if (first === undefined) throw new Error('a point without measurements');
  if (samples.length === 1) return first;
  const batchSizes = samples.map((p) => p.meanBatchSize).filter((b): b is number => b !== null);
  const steals = samples.map((p) => p.stealPercent).filter((s): s is number => typeof s === 'number');
  return {
    ...first,
    requests: samples.reduce((n, p) => n + p.requests, 0),
    rps: median(samples.map((p) => p.rps)),
    p50Ms: median(samples.map((p) => p.p50Ms)),
    p90Ms: median(samples.map((p) => p.p90Ms)),
    p99Ms: median(samples.map((p) => p.p99Ms)),
    meanMs: median(samples.map((p) => p.meanMs)),
    maxMs: Math.max(...samples.map((p) => p.maxMs)),
    socketErrors: samples.reduce((n, p) => n + p.socketErrors, 0),
    non2xx: samples.reduce((n, p) => n + p.non2xx, 0),
    cpuSecondsPer1k: median(samples.map((p) => p.cpuSecondsPer1k)),
    meanBatchSize: batchSizes.length > 0 ? median(batchSizes) : null,
    stealPercent: steals.length > 0 ? median(steals) : null,
    repeats: samples.map((p) => ({ rps: p.rps, p50Ms: p.p50Ms, p99Ms: p.p99Ms, stealPercent: p.stealPercent ?? null })),
  };
}

function ownVersion(): string {
  return (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
}

function writeResults(results: HttpBenchResults): void {
  const stem = `http-${results.environment.date}`;
  writeFileSync(join(OUT, `${stem}.json`), `${JSON.stringify(results, null, 2)}\n`);
  const markdownPath = writeReport(results, OUT, stem);
  log(`results: ${relative(ROOT, markdownPath)} (+ .json and ${results.workloads.length} SVG curves)`);
  if (results.environment.quick || process.env.BENCH_OUT) return;
  // A full run with the default output refreshes the summary block in bench/README.md.
  if (!existsSync(README)) return;
  const readme = readFileSync(README, 'utf8');
  const begin = readme.indexOf(README_BEGIN);
  const end = readme.indexOf(README_END);
  if (begin < 0 || end < begin) {
    log(`bench/README.md has no ${README_BEGIN} … ${README_END} block: summary not written there`);
    return;
  }
  const link = relative(dirname(README), markdownPath);
  const summary = renderSummary(results, link);
  writeFileSync(README, `${readme.slice(0, begin + README_BEGIN.length)}\n${summary}\n${readme.slice(end)}`);
  log('bench/README.md summary refreshed');
}

main().catch((error: unknown) => {
  log(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exitCode = 1;
});
