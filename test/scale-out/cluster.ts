/**
 * Three forecastd replicas reading one PostgreSQL table: the pod (two linear models over an hourly series),
 * the table, and the reference answers a correct replica must give, computed by running the model files
 * directly on the newest rows of the table.
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { TestDatabase, testPgParams } from '../helpers/postgres.js';
import { freePort } from '../helpers/sockets.js';
import { linearFixture, runDirect } from '../server/fixtures.js';
import { answerKey } from './load.js';
import { Replica, waitFor, httpGet } from './harness.js';

export const LOOKBACK = 24;
const HORIZON = 6;
const START = Date.UTC(2026, 0, 1);
const HOUR = 3_600_000;

/** A model of the pod: its file bytes and the model_version it reports. */
export interface ModelFile {
  readonly bytes: Uint8Array;
  readonly version: string;
}

export function modelFile(seed: number, version: number): ModelFile {
  return { bytes: linearFixture({ lookback: LOOKBACK, horizon: HORIZON, seed, modelVersion: version }).bytes, version: String(version) };
}

/** The series value of hour `i`: a daily cycle on a slow trend, with a deterministic wobble. */
export function seriesValue(i: number): number {
  return Math.round((50 + 10 * Math.sin((2 * Math.PI * i) / 24) + 0.05 * i + 0.7 * Math.sin(i * 1.7)) * 1000) / 1000;
}

export function spicepodYaml(schema: string, models: readonly string[]): string {
  const params = Object.entries(testPgParams())
    .map(([k, v]) => `      ${k}: ${JSON.stringify(v)}`)
    .join('\n');
  return [
    'version: v1beta1',
    'kind: Spicepod',
    'name: scale-out',
    'datasets:',
    `  - from: postgres:${schema}.series`,
    '    name: series',
    '    params:',
    params,
    '    acceleration:',
    '      refresh_check_interval: 1s',
    '      refresh_mode: full',
    'models:',
    ...models.flatMap((name) => [
      `  - from: file:models/${name}.onnx`,
      `    name: ${name}`,
      '    datasets: [series]',
      '    params:',
      `      lookback: ${LOOKBACK}`,
    ]),
    '',
  ].join('\n');
}

export class Cluster {
  readonly replicas: Replica[];
  rows: number;

  private constructor(
    readonly db: TestDatabase,
    replicas: Replica[],
    rows: number,
  ) {
    this.replicas = replicas;
    this.rows = rows;
  }

  /**
   * Creates the table with `rows` hourly rows, writes the pod (one file per entry of `models`) and starts
   * three replicas, each on its own copy of the pod folder; resolves once all three are ready.
   */
  static async start(root: string, models: Record<string, ModelFile>, options: { rows?: number; args?: readonly string[] } = {}): Promise<Cluster> {
    const rows = options.rows ?? 200;
    const db = await TestDatabase.open();
    await db.query(`CREATE TABLE ${db.table('series')} (ts timestamptz PRIMARY KEY, value double precision NOT NULL)`);
    const cluster = new Cluster(db, [], 0);
    await cluster.appendRows(rows);
    const pod = path.join(root, 'pod');
    mkdirSync(path.join(pod, 'models'), { recursive: true });
    for (const [name, model] of Object.entries(models)) writeFileSync(path.join(pod, 'models', `${name}.onnx`), model.bytes);
    writeFileSync(path.join(pod, 'spicepod.yaml'), spicepodYaml(db.schema, Object.keys(models)));
    for (let i = 1; i <= 3; i++) cluster.replicas.push(new Replica(`forecastd${i}`, await freePort(), pod, root, options.args));
    for (const replica of cluster.replicas) replica.start();
    await Promise.all(cluster.replicas.map((r) => r.ready()));
    return cluster;
  }

  /** Appends `count` hourly rows after the newest. */
  async appendRows(count: number): Promise<void> {
    const ts: string[] = [];
    const values: number[] = [];
    for (let i = this.rows; i < this.rows + count; i++) {
      ts.push(new Date(START + i * HOUR).toISOString());
      values.push(seriesValue(i));
    }
    await this.db.query(`INSERT INTO ${this.db.table('series')} (ts, value) SELECT * FROM unnest($1::timestamptz[], $2::float8[])`, [ts, values]);
    this.rows += count;
  }

  /**
   * The answer `model` must give over the table holding its first `rows` rows (default: as it is now), from
   * the values written: a reference can be computed before the rows are inserted.
   */
  async reference(model: ModelFile, rows = this.rows): Promise<string> {
    const window: number[] = [];
    for (let i = rows - LOOKBACK; i < rows; i++) window.push(seriesValue(i));
    const text = await runDirect(model.bytes, window, [1, LOOKBACK, 1]);
    return answerKey(model.version, text.split(',').map(Number));
  }

  /** What `replica` answers for `model` right now, asked directly (not through the balancer). */
  async answerOf(replica: Replica, model: string): Promise<string | null> {
    const { status, body } = await httpGet(`${replica.url}/v1/models/${model}/predict`);
    if (status !== 200) return null;
    const parsed = JSON.parse(body) as { model_version?: string; prediction: number[] };
    return answerKey(parsed.model_version, parsed.prediction);
  }

  /** Waits until every replica answers `expected` for `model`; resolves with the ms it took. */
  async converged(model: string, expected: string, timeoutMs = 60_000): Promise<number> {
    const started = Date.now();
    await waitFor(
      `every replica answering ${expected} for ${model}`,
      async () => {
        const answers = await Promise.all(this.replicas.map((r) => this.answerOf(r, model)));
        return answers.every((a) => a === expected) ? true : undefined;
      },
      timeoutMs,
      25,
    );
    return Date.now() - started;
  }

  async stop(): Promise<void> {
    await Promise.all(this.replicas.map((r) => r.stop('SIGKILL')));
    await this.db.dispose();
  }
}
