import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ForecastdError } from '../../src/errors.js';
import { loadSpicepod, MODEL_PARAM_DEFAULTS } from '../../src/spicepod/load.js';
import type { DatasetFrom, Spicepod } from '../../src/spicepod/types.js';
import { CSV_DEFAULTS, TSV_DEFAULTS, type FileFormat } from '../../src/datasets/file-format.js';

let root: string;
let counter = 0;

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'forecastd-pod-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Writes `text` as spicepod.yaml in a fresh folder; returns the folder. */
async function podDir(text: string, fileName = 'spicepod.yaml'): Promise<string> {
  const dir = path.join(root, `pod${++counter}`);
  await mkdir(dir);
  await writeFile(path.join(dir, fileName), text);
  return dir;
}

async function load(text: string, env: NodeJS.ProcessEnv = {}): Promise<Spicepod> {
  return loadSpicepod(await podDir(text), env);
}

async function fatal(text: string, env: NodeJS.ProcessEnv = {}): Promise<string> {
  const dir = await podDir(text);
  try {
    await loadSpicepod(dir, env);
  } catch (err) {
    expect(err).toBeInstanceOf(ForecastdError);
    expect((err as ForecastdError).code).toBe('ERR_SPICEPOD');
    const message = (err as Error).message;
    // Every fatal error names the file.
    expect(message.startsWith(path.join(dir, 'spicepod.yaml'))).toBe(true);
    return message.slice(path.join(dir, 'spicepod.yaml').length);
  }
  throw new Error('expected loadSpicepod to fail');
}

const HEAD = 'version: v1beta1\nkind: Spicepod\nname: t\n';

/** A file source as the loader gives it: the format's defaults unless `extra` says otherwise. */
function fileSource(file: string, format: FileFormat, extra: Partial<Extract<DatasetFrom, { kind: 'file' }>> = {}): DatasetFrom {
  return {
    kind: 'file',
    path: file,
    format,
    compression: 'UNCOMPRESSED',
    delimited: format === 'csv' ? CSV_DEFAULTS : format === 'tsv' ? TSV_DEFAULTS : null,
    json: format === 'json' ? { layout: null, flatten: false } : null,
    ...extra,
  };
}
const DATASET = `datasets:
  - from: file:data/co2_weekly.csv
    name: co2
`;

const SPEC_EXAMPLE = `version: v1beta1
kind: Spicepod
name: co2

runtime:
  auth:
    api-key:
      enabled: true
      keys: [ "\${env:FORECASTD_API_KEY}" ]

datasets:
  - from: file:data/co2_weekly.csv
    name: co2_weekly
    time_column: ts
    time_format: iso8601
    params:
      columns: [co2]
    acceleration:
      refresh_check_interval: 30s
      refresh_mode: full
      retention_period: 365d

models:
  - from: file:models/co2_linear.onnx
    name: co2_linear
    datasets: [co2_weekly]
    params:
      version: "1.0"
      lookback: 52
      fill_missing: none
      intra_op_threads: 1
      max_batch_size: 64
      max_concurrent_runs: 0
      max_queue_delay_ms: 0
      max_queue_size: 1024
      timeout_ms: 30000
      cache_predictions: true
      quantiles: [0.1, 0.5, 0.9]
      quantile_output: q
`;

describe('loadSpicepod: valid pods', () => {
  test('reads the SPEC example with every value in place', async () => {
    const dir = await podDir(SPEC_EXAMPLE);
    const pod = await loadSpicepod(dir, { FORECASTD_API_KEY: 'k-123' });
    expect(pod.file).toBe(path.join(dir, 'spicepod.yaml'));
    expect(pod.dir).toBe(dir);
    expect(pod.name).toBe('co2');
    expect(pod.version).toBe('v1beta1');
    expect(pod.warnings).toEqual([]);
    expect(pod.runtime).toEqual({ auth: { apiKeys: ['k-123'] } });
    expect(pod.datasets).toEqual([
      {
        name: 'co2_weekly',
        from: 'file:data/co2_weekly.csv',
        source: fileSource(path.join(dir, 'data/co2_weekly.csv'), 'csv'),
        timeColumn: 'ts',
        timeFormat: 'iso8601',
        columns: ['co2'],
        params: {},
        limits: { maxCells: 200_000_000, maxRecordBytes: 1_048_576 },
        acceleration: { refreshCheckIntervalMs: 30_000, refreshMode: 'full', refreshAppendOverlapMs: null, retentionPeriodMs: 365 * 86_400_000 },
      },
    ]);
    expect(pod.models).toEqual([
      {
        name: 'co2_linear',
        from: 'file:models/co2_linear.onnx',
        source: { kind: 'onnx', path: path.join(dir, 'models/co2_linear.onnx') },
        datasets: ['co2_weekly'],
        params: {
          version: '1.0',
          lookback: 52,
          fillMissing: 'none',
          intraOpThreads: 1,
          maxBatchSize: 64,
          maxConcurrentRuns: 0,
          maxQueueDelayMs: 0,
          maxQueueSize: 1024,
          timeoutMs: 30_000,
          cachePredictions: true,
          quantiles: [0.1, 0.5, 0.9],
          quantileOutput: 'q',
          evaluation: { origins: 200, since: null, seasonLength: null },
        },
      },
    ]);
  });

  test('defaults: no runtime, no acceleration, no params', async () => {
    const pod = await load(`${HEAD}${DATASET}models:\n  - from: file:m.onnx\n    name: m\n    datasets: [co2]\n`);
    expect(pod.runtime).toEqual({ auth: null });
    expect(pod.datasets[0]).toMatchObject({
      timeColumn: 'ts',
      timeFormat: null,
      columns: null,
      acceleration: { refreshCheckIntervalMs: null, refreshMode: 'full', refreshAppendOverlapMs: null, retentionPeriodMs: null },
    });
    expect(pod.models[0]?.params).toEqual(MODEL_PARAM_DEFAULTS);
    expect(MODEL_PARAM_DEFAULTS).toEqual({
      version: null,
      lookback: null,
      fillMissing: 'none',
      intraOpThreads: 'auto',
      maxBatchSize: 64,
      maxConcurrentRuns: 0,
      maxQueueDelayMs: 0,
      maxQueueSize: 1024,
      timeoutMs: 30_000,
      cachePredictions: true,
      quantiles: null,
      quantileOutput: null,
      evaluation: { origins: 200, since: null, seasonLength: null },
    });
  });

  test('params.evaluation: origins, since (an ISO 8601 date or time, UTC without a zone), season_length', async () => {
    const model = (evaluation: string) =>
      `${HEAD}${DATASET}models:\n  - from: file:m.onnx\n    name: m\n    datasets: [co2]\n    params:\n      evaluation:\n${evaluation}`;
    const pod = await load(model('        origins: 50\n        since: 1993-04-03\n        season_length: 13\n'));
    expect(pod.models[0]?.params.evaluation).toEqual({ origins: 50, since: Date.UTC(1993, 3, 3), seasonLength: 13 });
    const timed = await load(model('        since: "2001-06-01T12:00:00+02:00"\n        origins: 0\n'));
    expect(timed.models[0]?.params.evaluation).toEqual({ origins: 0, since: Date.UTC(2001, 5, 1, 10), seasonLength: null });
  });

  test('intra_op_threads: auto (the default) or a number that pins it', async () => {
    const params = async (line: string) =>
      (await load(`${HEAD}${DATASET}models:\n  - from: file:m.onnx\n    name: m\n    datasets: [co2]\n    params:\n      ${line}\n`)).models[0]?.params;
    expect((await params('intra_op_threads: auto'))?.intraOpThreads).toBe('auto');
    expect((await params('intra_op_threads: " auto "'))?.intraOpThreads).toBe('auto');
    expect((await params('intra_op_threads: 3'))?.intraOpThreads).toBe(3);
    expect((await params('intra_op_threads: "2"'))?.intraOpThreads).toBe(2);
    expect((await params('max_batch_size: 8'))?.intraOpThreads).toBe('auto');
  });

  test('a model without datasets serves only client-sent series', async () => {
    const pod = await load(`${HEAD}models:\n  - from: file:m.onnx\n    name: m\n`);
    expect(pod.models[0]).toMatchObject({ name: 'm', datasets: [] });
    expect(pod.warnings).toEqual([]);
  });

  test('quantile params: levels strictly increasing in (0, 1), with the output holding them', async () => {
    const model = (params: string) => `${HEAD}${DATASET}models:\n  - from: file:m.onnx\n    name: m\n    datasets: [co2]\n    params:\n${params}`;
    const pod = await load(model('      quantiles: [0.05, "0.5", 0.95]\n      quantile_output: q\n'));
    expect(pod.models[0]?.params).toMatchObject({ quantiles: [0.05, 0.5, 0.95], quantileOutput: 'q' });
    expect(await fatal(model('      quantiles: [0.5, 0.1]\n      quantile_output: q\n'))).toBe(
      ':12:24: models[0].params.quantiles[1]: quantile levels must be strictly increasing: 0.1 follows 0.5',
    );
    expect(await fatal(model('      quantiles: [0.5, 0.5]\n      quantile_output: q\n'))).toMatch(/strictly increasing: 0\.5 follows 0\.5$/);
    expect(await fatal(model('      quantiles: [0, 0.5]\n      quantile_output: q\n'))).toBe(
      ':12:19: models[0].params.quantiles[0]: expected a quantile level between 0 and 1 (exclusive), got 0',
    );
    expect(await fatal(model('      quantiles: [0.5, 1]\n      quantile_output: q\n'))).toMatch(/quantiles\[1\]: expected a quantile level between 0 and 1 \(exclusive\), got 1$/);
    expect(await fatal(model('      quantiles: [0.5, high]\n      quantile_output: q\n'))).toMatch(/quantiles\[1\]: expected a quantile level .* got "high"$/);
    expect(await fatal(model('      quantiles: []\n      quantile_output: q\n'))).toMatch(/quantiles: expected at least one quantile level$/);
    expect(await fatal(model('      quantiles: 0.5\n      quantile_output: q\n'))).toMatch(/quantiles: expected a list of quantile levels/);
    expect(await fatal(model('      quantiles: [0.1, 0.9]\n'))).toMatch(/params\.quantiles needs params\.quantile_output/);
    expect(await fatal(model('      quantile_output: q\n'))).toMatch(/params\.quantile_output needs params\.quantiles/);
  });

  test('a pod with no datasets or models is valid', async () => {
    const pod = await load(HEAD);
    expect(pod.datasets).toEqual([]);
    expect(pod.models).toEqual([]);
  });

  test('PATH may be the file itself, or a folder holding spicepod.yml', async () => {
    const dir = await podDir(HEAD, 'spicepod.yml');
    expect((await loadSpicepod(dir, {})).file).toBe(path.join(dir, 'spicepod.yml'));
    expect((await loadSpicepod(path.join(dir, 'spicepod.yml'), {})).name).toBe('t');
  });

  test('version v1 is accepted as well as v1beta1', async () => {
    const pod = await load('version: v1\nkind: Spicepod\nname: t\n');
    expect(pod.version).toBe('v1');
  });

  test('a plain YAML number as version keeps its source text ("1.0" stays "1.0")', async () => {
    const model = (version: string): string =>
      `${HEAD}${DATASET}models:\n  - from: file:m.onnx\n    name: m\n    datasets: [co2]\n    params:\n      version: ${version}\n`;
    expect((await load(model('1.0'))).models[0]?.params.version).toBe('1.0');
    expect((await load(model('2'))).models[0]?.params.version).toBe('2');
    expect((await load(model('"2.10"'))).models[0]?.params.version).toBe('2.10');
    expect((await load(model('~'))).models[0]?.params.version).toBe(null);
  });

  test('${env:NAME} is substituted in every string, and numbers or booleans given as strings are accepted', async () => {
    const pod = await load(
      `${HEAD}datasets:
  - from: file:\${env:DATA_DIR}/co2.csv
    name: co2
    time_column: \${env:TIME_COL}
    acceleration:
      refresh_check_interval: \${env:EVERY}
models:
  - from: file:m.onnx
    name: m
    datasets: [co2]
    params:
      max_batch_size: \${env:BATCH}
      cache_predictions: "\${env:CACHE}"
      lookback: "12"
`,
      { DATA_DIR: '/srv/data', TIME_COL: 'time', EVERY: '5m', BATCH: '16', CACHE: 'false' },
    );
    expect(pod.datasets[0]?.source).toEqual(fileSource('/srv/data/co2.csv', 'csv'));
    expect(pod.datasets[0]?.from).toBe('file:/srv/data/co2.csv');
    expect(pod.datasets[0]?.timeColumn).toBe('time');
    expect(pod.datasets[0]?.acceleration.refreshCheckIntervalMs).toBe(300_000);
    expect(pod.models[0]?.params).toMatchObject({ maxBatchSize: 16, cachePredictions: false, lookback: 12 });
  });

  test('unknown keys are warnings naming file, line and key; the pod still loads', async () => {
    const dir = await podDir(`${HEAD}colour: blue
datasets:
  - from: file:a.csv
    name: a
    refresh: often
    params:
      columns: [x]
      tsv_quote: "'"
    acceleration:
      engine: duckdb
models:
  - from: file:m.onnx
    name: m
    datasets: [a]
    params:
      temperature: 0.2
`);
    const pod = await loadSpicepod(dir, {});
    const file = path.join(dir, 'spicepod.yaml');
    expect(pod.warnings).toEqual([
      `${file}:4:1: colour: unknown key "colour" is ignored`,
      `${file}:8:5: datasets[0].refresh: unknown key "refresh" is ignored`,
      `${file}:11:7: datasets[0].params.tsv_quote: unknown key "tsv_quote" is ignored for a csv file dataset`,
      `${file}:13:7: datasets[0].acceleration.engine: unknown key "engine" is ignored`,
      `${file}:19:7: models[0].params.temperature: unknown key "temperature" is ignored`,
    ]);
    // Unknown params are still passed on as strings.
    expect(pod.datasets[0]?.params).toEqual({ tsv_quote: "'" });
  });

  test('a model with more than one dataset gets a warning that only the first is used', async () => {
    const dir = await podDir(`${HEAD}datasets:
  - from: file:a.csv
    name: a
  - from: file:b.csv
    name: b
models:
  - from: file:m.onnx
    name: m
    datasets: [b, a]
`);
    const pod = await loadSpicepod(dir, {});
    expect(pod.models[0]?.datasets).toEqual(['b', 'a']);
    expect(pod.warnings).toEqual([
      `${path.join(dir, 'spicepod.yaml')}:12:15: models[0].datasets: the model lists 2 datasets; only the first ("b") is used`,
    ]);
  });

  test('model sources: file:, file://, absolute paths are ONNX; anything else is unsupported, not fatal', async () => {
    const dir = await podDir(`${HEAD}${DATASET}models:
  - { name: a, from: "file:models/a.onnx", datasets: [co2] }
  - { name: b, from: "file://models/b.ONNX", datasets: [co2] }
  - { name: c, from: "/opt/models/c.onnx", datasets: [co2] }
  - { name: d, from: "file:models/d.pt", datasets: [co2] }
  - { name: e, from: "openai/gpt-4o" }
  - { name: f, from: "huggingface:huggingface.co/org/model", datasets: [co2] }
  - { name: g, from: "hf:org/model" }
`);
    const pod = await loadSpicepod(dir, {});
    const sources = Object.fromEntries(pod.models.map((m) => [m.name, m.source]));
    expect(sources['a']).toEqual({ kind: 'onnx', path: path.join(dir, 'models/a.onnx') });
    expect(sources['b']).toEqual({ kind: 'onnx', path: path.join(dir, 'models/b.ONNX') });
    expect(sources['c']).toEqual({ kind: 'onnx', path: '/opt/models/c.onnx' });
    expect(sources['d']).toEqual({ kind: 'unsupported', reason: '"file:models/d.pt" is not an ONNX model: forecastd serves .onnx files' });
    expect(sources['e']?.kind).toBe('unsupported');
    expect(sources['e']?.kind === 'unsupported' && sources['e'].reason).toContain('model source "openai/gpt-4o" (openai) is not supported');
    expect(sources['f']?.kind === 'unsupported' && sources['f'].reason).toContain('(huggingface) is not supported');
    expect(sources['g']?.kind === 'unsupported' && sources['g'].reason).toContain('(hf) is not supported');
    expect(pod.models.find((m) => m.name === 'e')?.datasets).toEqual([]);
  });

  test('dataset sources: formats by extension or file_format, postgres tables with their params', async () => {
    const dir = await podDir(`${HEAD}datasets:
  - { name: a, from: "file:a.csv" }
  - { name: b, from: "file://sub/b.parquet" }
  - { name: c, from: "file:/data/c.jsonl" }
  - { name: d, from: "file:d.NDJSON" }
  - { name: e, from: "file:e.txt", params: { file_format: csv } }
  - name: f
    from: postgres:public.readings
    params:
      pg_host: \${env:PGHOST}
      pg_port: 5432
      pg_sslmode: disable
      columns: temp, humidity
  - { name: g, from: "postgres:readings" }
`);
    const pod = await loadSpicepod(dir, { PGHOST: 'db.local' });
    const sources = pod.datasets.map((d) => d.source);
    expect(sources).toEqual([
      fileSource(path.join(dir, 'a.csv'), 'csv'),
      fileSource(path.join(dir, 'sub/b.parquet'), 'parquet'),
      fileSource('/data/c.jsonl', 'jsonl'),
      fileSource(path.join(dir, 'd.NDJSON'), 'jsonl'),
      fileSource(path.join(dir, 'e.txt'), 'csv'),
      { kind: 'postgres', database: null, schema: 'public', table: 'readings' },
      { kind: 'postgres', database: null, schema: null, table: 'readings' },
    ]);
    expect(pod.datasets[5]?.params).toEqual({ pg_host: 'db.local', pg_port: '5432', pg_sslmode: 'disable' });
    expect(pod.datasets[5]?.columns).toEqual(['temp', 'humidity']);
    expect(pod.datasets[4]?.params).toEqual({ file_format: 'csv' });
    expect(pod.warnings).toEqual([]);
  });

  test('postgres:DATABASE.SCHEMA.TABLE names the database, which wins over pg_db (with a warning when they differ)', async () => {
    const dir = await podDir(`${HEAD}datasets:
  - name: a
    from: "postgres: sales.public.readings "
    params:
      pg_db: other
  - name: b
    from: postgres:sales.public.readings
    params: { pg_db: sales }
  - { name: c, from: "postgres:Sales.Public.Readings" }
`);
    const pod = await loadSpicepod(dir, {});
    expect(pod.datasets.map((d) => d.source)).toEqual([
      { kind: 'postgres', database: 'sales', schema: 'public', table: 'readings' },
      { kind: 'postgres', database: 'sales', schema: 'public', table: 'readings' },
      // Case is kept as written; the source folds it the way PostgreSQL folds unquoted names.
      { kind: 'postgres', database: 'Sales', schema: 'Public', table: 'Readings' },
    ]);
    // params stay as written; the source applies the database from `from`.
    expect(pod.datasets[0]?.params).toEqual({ pg_db: 'other' });
    expect(pod.warnings).toEqual([
      `${path.join(dir, 'spicepod.yaml')}:8:14: datasets[0].params.pg_db: ignored: "postgres: sales.public.readings" names the database "sales"`,
    ]);
  });

  test('postgres params of any scalar type arrive as strings, as written', async () => {
    const dir = await podDir(`${HEAD}datasets:
  - name: a
    from: postgres:readings
    params:
      pg_host: 10.0.0.7
      pg_port: 5432
      pg_db: 2024
      pg_user: \${env:PGUSER}
      pg_pass: true
      pg_sslmode: "disable"
      pg_sslrootcert: /etc/ssl/ca.pem
      pg_application_name: forecastd_co2
  - name: b
    from: postgres:readings
    params:
      pg_port: \${env:PGPORT}
      pg_pass: 0x1F
      pg_connection_string: host=db port=6432
`);
    const pod = await loadSpicepod(dir, { PGUSER: 'reader', PGPORT: '6543' });
    expect(pod.datasets[0]?.params).toEqual({
      pg_host: '10.0.0.7',
      pg_port: '5432',
      pg_db: '2024',
      pg_user: 'reader',
      pg_pass: 'true',
      pg_sslmode: 'disable',
      pg_sslrootcert: '/etc/ssl/ca.pem',
      pg_application_name: 'forecastd_co2',
    });
    // A number is kept as written (0x1F is a password here, not 31).
    expect(pod.datasets[1]?.params).toEqual({ pg_port: '6543', pg_pass: '0x1F', pg_connection_string: 'host=db port=6432' });
    expect(pod.warnings).toEqual([]);
    expect(await fatal(`${HEAD}datasets:\n  - name: a\n    from: postgres:t\n    params: { pg_port: [5432] }\n`)).toBe(
      ':7:24: datasets[0].params.pg_port: expected a string, number or boolean, got a list',
    );
  });

  test('time formats, refresh modes and durations', async () => {
    const pod = await load(`${HEAD}datasets:
  - name: a
    from: file:a.csv
    time_format: unix_millis
    acceleration: { refresh_check_interval: 500ms, refresh_mode: append, retention_period: 1h30m, enabled: true }
  - { name: b, from: "file:b.csv", time_format: ISO8601 }
  - { name: c, from: "file:c.csv", time_format: unix_seconds }
  - { name: d, from: "file:d.csv", time_format: timestamp }
`);
    expect(pod.datasets.map((d) => d.timeFormat)).toEqual(['unix_millis', 'iso8601', 'unix_seconds', null]);
    expect(pod.datasets[0]?.acceleration).toEqual({
      refreshCheckIntervalMs: 500,
      refreshMode: 'append',
      // Not given: the overlap is the refresh interval.
      refreshAppendOverlapMs: 500,
      retentionPeriodMs: 5_400_000,
    });
  });

  test('refresh_append_overlap: a duration, zero allowed; only for refresh_mode append', async () => {
    const pod = await load(`${HEAD}datasets:
  - name: a
    from: file:a.csv
    acceleration: { refresh_check_interval: 1m, refresh_mode: append, refresh_append_overlap: 10m }
  - name: b
    from: file:b.csv
    acceleration: { refresh_mode: append, refresh_append_overlap: 0s }
  - name: c
    from: file:c.csv
    acceleration: { refresh_mode: append }
  - name: d
    from: file:d.csv
    acceleration: { refresh_check_interval: 1m, refresh_append_overlap: 10m }
`);
    expect(pod.datasets.map((d) => d.acceleration.refreshAppendOverlapMs)).toEqual([600_000, 0, 0, null]);
    expect(pod.warnings).toEqual([
      `${pod.file}:16:73: datasets[3].acceleration.refresh_append_overlap: ignored: it applies only to refresh_mode: append`,
    ]);
  });

  test('api-key auth: keys from the environment; enabled: false turns it off; enabled defaults to true', async () => {
    const auth = (body: string): string => `${HEAD}runtime:\n  auth:\n    api-key:\n${body}`;
    expect((await load(auth('      enabled: false\n      keys: [a]\n'))).runtime.auth).toBe(null);
    expect((await load(auth('      keys: [a, "${env:K2}"]\n'), { K2: 'b' })).runtime.auth).toEqual({ apiKeys: ['a', 'b'] });
  });
});

describe('loadSpicepod: fatal errors name file:line:column and the key', () => {
  test('a missing file or a folder without a spicepod', async () => {
    const missing = path.join(root, 'nope', 'spicepod.yaml');
    await expect(loadSpicepod(missing, {})).rejects.toThrow(`${missing}: cannot read the spicepod: ENOENT`);
    const empty = path.join(root, 'emptydir');
    await mkdir(empty);
    await expect(loadSpicepod(empty, {})).rejects.toThrow(`${empty}: the folder holds no spicepod.yaml or spicepod.yml`);
  });

  test('invalid YAML', async () => {
    expect(await fatal(`${HEAD}datasets:\n  - name: [unclosed\n`)).toMatch(/^:6:\d+: invalid YAML: Flow sequence in block collection must be sufficiently indented and end with a \]$/);
    expect(await fatal(`${HEAD}name: again\n`)).toBe(':4:1: invalid YAML: Map keys must be unique');
    expect(await fatal('')).toBe(': the spicepod is empty; it needs at least version, kind and name');
    expect(await fatal('- a\n- b\n')).toBe(':1:1: (top level): expected a mapping with version, kind, name, datasets and models, got a list');
  });

  test('the example from the brief: a non-integer max_batch_size', async () => {
    const text = `${HEAD}${DATASET}models:
  - from: file:m.onnx
    name: m
    datasets: [co2]
    params:
      max_batch_size: abc
`;
    expect(await fatal(text)).toBe(':12:23: models[0].params.max_batch_size: expected a positive integer, got "abc"');
  });

  test.each([
    ['origins: -1', ':13:18: models[0].params.evaluation.origins: expected a non-negative integer (0 turns evaluation off), got -1'],
    ['since: last week', ':13:16: models[0].params.evaluation.since: expected an ISO 8601 date or time, e.g. 1993-04-03, got "last week"'],
    ['season_length: 0', ':13:24: models[0].params.evaluation.season_length: expected a positive integer, got 0'],
  ])('evaluation param %s', async (param, message) => {
    const text = `${HEAD}${DATASET}models:\n  - from: file:m.onnx\n    name: m\n    datasets: [co2]\n    params:\n      evaluation:\n        ${param}\n`;
    expect(await fatal(text)).toBe(message);
  });

  test.each([
    ['max_batch_size: 0', 'models[0].params.max_batch_size: expected a positive integer, got 0'],
    ['max_batch_size: 2.5', 'models[0].params.max_batch_size: expected a positive integer, got 2.5'],
    ['lookback: -3', 'models[0].params.lookback: expected a positive integer, got -3'],
    ['intra_op_threads: 0', 'models[0].params.intra_op_threads: expected auto or a positive integer, got 0'],
    ['intra_op_threads: many', 'models[0].params.intra_op_threads: expected auto or a positive integer, got "many"'],
    ['max_concurrent_runs: -1', 'models[0].params.max_concurrent_runs: expected a non-negative integer (0 = one per CPU available to the process), got -1'],
    ['max_queue_delay_ms: "soon"', 'models[0].params.max_queue_delay_ms: expected a non-negative integer of milliseconds, got "soon"'],
    ['max_queue_size: 0', 'models[0].params.max_queue_size: expected a positive integer, got 0'],
    ['timeout_ms: 0', 'models[0].params.timeout_ms: expected a positive integer of milliseconds, got 0'],
    ['timeout_ms: 99999999999', 'models[0].params.timeout_ms: expected a positive integer of milliseconds, got 99999999999'],
    ['cache_predictions: maybe', 'models[0].params.cache_predictions: expected true or false, got "maybe"'],
    ['fill_missing: zero', 'models[0].params.fill_missing: expected one of none, previous, linear, got "zero"'],
    ['lookback: [1]', 'models[0].params.lookback: expected a positive integer, got a list'],
  ])('model param %s', async (param, message) => {
    const text = `${HEAD}${DATASET}models:\n  - from: file:m.onnx\n    name: m\n    datasets: [co2]\n    params:\n      ${param}\n`;
    const col = param.indexOf(':') + 9;
    expect(await fatal(text)).toBe(`:12:${col}: ${message}`);
  });

  test.each([
    ['time_format: rfc2822', 'datasets[0].time_format: expected one of iso8601, unix_seconds, unix_millis, timestamp, timestamptz, date, got "rfc2822"'],
    ['acceleration: { refresh_check_interval: 30 }', 'datasets[0].acceleration.refresh_check_interval: expected a duration with a unit (ms, s, m, h or d), e.g. "30s", got 30'],
    ['acceleration: { refresh_check_interval: "30" }', 'datasets[0].acceleration.refresh_check_interval: invalid duration "30": it has no unit; write e.g. "30s" or "30ms" (units: ms, s, m, h, d)'],
    ['acceleration: { refresh_check_interval: 3 weeks }', 'datasets[0].acceleration.refresh_check_interval: invalid duration "3 weeks": expected a number with a unit (ms, s, m, h or d), e.g. "30s", "5m" or "1h30m"'],
    ['acceleration: { refresh_check_interval: 0s }', 'datasets[0].acceleration.refresh_check_interval: expected a duration above zero, got "0s"'],
    ['acceleration: { refresh_check_interval: 30d }', 'datasets[0].acceleration.refresh_check_interval: "30d" is too long (at most 2147483647 ms)'],
    ['acceleration: { refresh_mode: merge }', 'datasets[0].acceleration.refresh_mode: expected one of full, append, got "merge"'],
    ['acceleration: { refresh_mode: append, refresh_append_overlap: 10 }', 'datasets[0].acceleration.refresh_append_overlap: expected a duration with a unit (ms, s, m, h or d), e.g. "30s", got 10'],
    ['acceleration: { refresh_mode: append, refresh_append_overlap: -1m }', 'datasets[0].acceleration.refresh_append_overlap: invalid duration "-1m": expected a number with a unit (ms, s, m, h or d), e.g. "30s", "5m" or "1h30m"'],
    ['acceleration: { refresh_mode: append, refresh_append_overlap: [1m] }', 'datasets[0].acceleration.refresh_append_overlap: expected a duration, got a list'],
    ['acceleration: [a]', 'datasets[0].acceleration: expected a mapping, got a list'],
    ['params: { columns: [] }', 'datasets[0].params.columns: expected at least one value column'],
    ['params: { columns: [a, a] }', 'datasets[0].params.columns: column "a" is listed twice'],
    ['params: { columns: [ts, a] }', 'datasets[0].params.columns: "ts" is the time column; list only value columns'],
    ['params: { columns: [{a: 1}] }', 'datasets[0].params.columns[0]: expected a string, got a mapping'],
  ])('dataset key %s', async (line, message) => {
    const text = `${HEAD}datasets:\n  - from: file:a.csv\n    name: a\n    ${line}\n`;
    const result = await fatal(text);
    expect(result).toMatch(/^:7:\d+: /);
    expect(result.replace(/^:7:\d+: /, '')).toBe(message);
  });

  test('dataset sources that cannot work are fatal', async () => {
    const ds = (from: string): string => `${HEAD}datasets:\n  - name: a\n    from: ${from}\n`;
    expect(await fatal(ds('file:data/a.xlsx'))).toBe(
      ':6:11: datasets[0].from: cannot tell the file format of "data/a.xlsx" from its extension: use .csv, .tsv, .parquet, .json, .jsonl or .ndjson (compressed: .gz, .bz2, .xz, .zst), or set params.file_format',
    );
    expect(await fatal(ds('"file:"'))).toBe(':6:11: datasets[0].from: "file:" names no file');
    expect(await fatal(ds('s3://bucket/a.csv'))).toBe(
      ':6:11: datasets[0].from: unsupported dataset source "s3://bucket/a.csv": use file:PATH (.csv, .tsv, .parquet, .json, .jsonl) or postgres:SCHEMA.TABLE',
    );
    expect(await fatal(ds('postgres:a.b.c.d'))).toBe(
      ':6:11: datasets[0].from: expected postgres:TABLE, postgres:SCHEMA.TABLE or postgres:DATABASE.SCHEMA.TABLE, got "postgres:a.b.c.d"',
    );
    expect(await fatal(ds('postgres:a..c'))).toBe(
      ':6:11: datasets[0].from: expected postgres:TABLE, postgres:SCHEMA.TABLE or postgres:DATABASE.SCHEMA.TABLE, got "postgres:a..c"',
    );
    expect(await fatal(`${HEAD}datasets:\n  - name: a\n    from: file:a.txt\n    params: { file_format: xls }\n`)).toBe(
      ':7:28: datasets[0].params.file_format: expected one of csv, tsv, parquet, json, jsonl, ndjson, got "xls"',
    );
  });

  test('missing required keys and wrong kind or version', async () => {
    expect(await fatal('kind: Spicepod\nname: t\n')).toBe(':1:1: (top level): missing required key "version"');
    expect(await fatal('version: v2\nkind: Spicepod\nname: t\n')).toBe(':1:10: version: expected v1beta1 or v1, got "v2"');
    expect(await fatal('version: v1beta1\nkind: Pod\nname: t\n')).toBe(':2:7: kind: expected Spicepod, got "Pod"');
    expect(await fatal('version: v1beta1\nkind: Spicepod\n')).toBe(':1:1: (top level): missing required key "name"');
    expect(await fatal(`${HEAD}datasets:\n  - name: a\n`)).toBe(':5:5: datasets[0]: missing required key "from"');
    expect(await fatal(`${HEAD}datasets:\n  - from: file:a.csv\n`)).toBe(':5:5: datasets[0]: missing required key "name"');
    expect(await fatal(`${HEAD}datasets:\n  - from: file:a.csv\n    name: ""\n`)).toBe(':6:11: datasets[0].name: expected a string, got ""');
    expect(await fatal(`${HEAD}datasets:\n  - from: file:a.csv\n    name: a/b\n`)).toBe(
      ':6:11: datasets[0].name: invalid name "a/b": use letters, digits, "_", "." and "-" (it appears in URLs)',
    );
    expect(await fatal(`${HEAD}models:\n  - name: m\n`)).toBe(':5:5: models[0]: missing required key "from"');
    expect(await fatal(`${HEAD}datasets: {a: 1}\n`)).toBe(':4:11: datasets: expected a list of datasets, got a mapping');
  });

  test('duplicate names', async () => {
    expect(await fatal(`${HEAD}datasets:\n  - { name: a, from: "file:a.csv" }\n  - { name: a, from: "file:b.csv" }\n`)).toMatch(
      /^:6:5: datasets\[1\]\.name: duplicate dataset name "a" \(also datasets\[0\], .*spicepod\.yaml:5:5\)$/,
    );
    expect(
      await fatal(`${HEAD}${DATASET}models:\n  - { name: m, from: "file:a.onnx", datasets: [co2] }\n  - { name: m, from: "file:b.onnx", datasets: [co2] }\n`),
    ).toMatch(/^:9:5: models\[1\]\.name: duplicate model name "m" \(also models\[0\], .*spicepod\.yaml:8:5\)$/);
  });

  test('a model naming an unknown dataset', async () => {
    expect(await fatal(`${HEAD}${DATASET}models:\n  - { name: m, from: "file:a.onnx", datasets: [co2, nile] }\n`)).toBe(
      ':8:53: models[0].datasets[1]: unknown dataset "nile" (known datasets: co2)',
    );
    expect(await fatal(`${HEAD}models:\n  - { name: m, from: "openai/gpt-4o", datasets: [x] }\n`)).toBe(
      ':5:50: models[0].datasets[0]: unknown dataset "x" (the pod declares no datasets)',
    );
  });

  test('a missing ${env:...} variable names the key and the variable', async () => {
    const text = `${HEAD}runtime:\n  auth:\n    api-key:\n      keys: [ "\${env:FORECASTD_API_KEY}" ]\n`;
    expect(await fatal(text)).toBe(
      ':7:15: runtime.auth.api-key.keys[0]: environment variable FORECASTD_API_KEY is not set (referenced as ${env:FORECASTD_API_KEY})',
    );
    expect(await fatal(`${HEAD}datasets:\n  - name: a\n    from: file:\${env:DIR}/a.csv\n`)).toBe(
      ':6:11: datasets[0].from: environment variable DIR is not set (referenced as ${env:DIR})',
    );
  });

  test('api-key auth without usable keys', async () => {
    const auth = (body: string): string => `${HEAD}runtime:\n  auth:\n    api-key:\n${body}`;
    expect(await fatal(auth('      enabled: true\n'))).toBe(':7:7: runtime.auth.api-key: enabled needs at least one key in "keys"');
    expect(await fatal(auth('      keys: []\n'))).toBe(':7:13: runtime.auth.api-key.keys: enabled needs at least one key');
    expect(await fatal(auth('      keys: ["${env:EMPTY}"]\n'), { EMPTY: '' })).toBe(':7:14: runtime.auth.api-key.keys[0]: an API key must not be empty');
    expect(await fatal(auth('      enabled: sure\n'))).toBe(':7:16: runtime.auth.api-key.enabled: expected true or false, got "sure"');
  });
});

describe("file dataset parameters: Spice's names, validated at load", () => {
  test('formats, compression by parameter or suffix, CSV and TSV dialects, JSON layouts', async () => {
    const dir = await podDir(`${HEAD}datasets:
  - name: semi
    from: file:data/semi.csv
    params:
      csv_delimiter: ";"
      csv_has_header: false
      csv_quote: "'"
      csv_escape: "\\\\"
      file_compression_type: gzip
      schema_infer_max_records: 1000
  - { name: tabs, from: "file:data/t.tsv.bz2", params: { tsv_has_header: "false", tsv_quote: "'" } }
  - { name: piped, from: "file:data/p.txt", params: { file_format: csv, csv_delimiter: "|" } }
  - { name: arr, from: "file:data/a.json", params: { json_format: array, flatten_json: true } }
  - { name: lines, from: "file:data/l.json.zst", params: { json_format: ndjson } }
  - { name: auto, from: "file:data/x.JSON" }
  - { name: jl, from: "file:data/j.ndjson.xz" }
  - { name: pq, from: "file:data/p.parquet", params: { file_compression_type: ZSTD } }
  - { name: plain, from: "file:data/c.csv.gz", params: { file_compression_type: UNCOMPRESSED } }
`);
    const pod = await loadSpicepod(dir, {});
    const sources = Object.fromEntries(pod.datasets.map((d) => [d.name, d.source]));
    const data = (name: string): string => path.join(dir, 'data', name);
    expect(sources).toEqual({
      semi: fileSource(data('semi.csv'), 'csv', {
        compression: 'GZIP',
        delimited: { hasHeader: false, delimiter: ';', quote: "'", escape: '\\' },
      }),
      tabs: fileSource(data('t.tsv.bz2'), 'tsv', { compression: 'BZIP2', delimited: { ...TSV_DEFAULTS, hasHeader: false, quote: "'" } }),
      piped: fileSource(data('p.txt'), 'csv', { delimited: { ...CSV_DEFAULTS, delimiter: '|' } }),
      arr: fileSource(data('a.json'), 'json', { json: { layout: 'array', flatten: true } }),
      lines: fileSource(data('l.json.zst'), 'json', { compression: 'ZSTD', json: { layout: 'lines', flatten: false } }),
      auto: fileSource(data('x.JSON'), 'json'),
      jl: fileSource(data('j.ndjson.xz'), 'jsonl', { compression: 'XZ' }),
      pq: fileSource(data('p.parquet'), 'parquet'),
      plain: fileSource(data('c.csv.gz'), 'csv'),
    });
    const file = path.join(dir, 'spicepod.yaml');
    expect(pod.warnings).toEqual([
      `${file}:20:79: datasets[7].params.file_compression_type: ignored for Parquet, whose pages carry their own codec (every codec is read); it applies to csv, tsv and json files`,
    ]);
  });

  test('parameters of another format are ignored with a warning naming the format', async () => {
    const pod = await load(`${HEAD}datasets:
  - { name: t, from: "file:t.tsv", params: { csv_delimiter: ";", json_format: array } }
  - { name: j, from: "file:j.jsonl", params: { json_format: array } }
`);
    expect(pod.warnings.map((w) => w.replace(/^.*?:\d+:\d+: /, ''))).toEqual([
      'datasets[0].params.csv_delimiter: unknown key "csv_delimiter" is ignored for a tsv file dataset',
      'datasets[0].params.json_format: unknown key "json_format" is ignored for a tsv file dataset',
      'datasets[1].params.json_format: unknown key "json_format" is ignored for a jsonl file dataset',
    ]);
  });

  test.each([
    ['csv_delimiter: ";;"', ':8:22: datasets[0].params.csv_delimiter: expected one character, got ";;"'],
    [
      "csv_delimiter: '\\t'",
      ':8:22: datasets[0].params.csv_delimiter: expected one character, got "\\\\t": for a tab write "\\t" in double quotes, or use file_format: tsv',
    ],
    ['csv_delimiter: ""', ':8:22: datasets[0].params.csv_delimiter: expected one character, got ""'],
    ['csv_quote: "\\n"', ':8:18: datasets[0].params.csv_quote: a line break cannot be used here'],
    ['csv_quote: ","', ':8:18: datasets[0].params.csv_quote: "," is also the delimiter; use another character'],
    ['csv_has_header: maybe', ':8:23: datasets[0].params.csv_has_header: expected true or false, got "maybe"'],
    ['file_compression_type: LZMA', ':8:30: datasets[0].params.file_compression_type: expected one of UNCOMPRESSED, GZIP, BZIP2, XZ, ZSTD, got "LZMA"'],
    ['schema_infer_max_records: 0', ':8:33: datasets[0].params.schema_infer_max_records: expected a positive integer, got 0'],
  ])('csv param %s', async (line, message) => {
    expect(await fatal(`${HEAD}datasets:\n  - name: a\n    from: file:a.csv\n    params:\n      ${line}\n`)).toBe(message);
  });

  test('json_format and flatten_json are checked for a json dataset', async () => {
    expect(await fatal(`${HEAD}datasets:\n  - name: a\n    from: file:a.json\n    params:\n      json_format: xml\n`)).toBe(
      ':8:20: datasets[0].params.json_format: expected one of jsonl, ndjson, ldjson, array, got "xml"',
    );
    expect(await fatal(`${HEAD}datasets:\n  - name: a\n    from: file:a.json\n    params:\n      flatten_json: 2\n`)).toBe(
      ':8:21: datasets[0].params.flatten_json: expected true or false, got 2',
    );
  });
});

describe('loadSpicepod: params.max_cells and params.max_record_bytes', () => {
  const dataset = (params: string, from = 'file:data/co2_weekly.csv'): string =>
    `${HEAD}datasets:\n  - from: ${from}\n    name: co2\n    params:\n${params}`;

  test('given values are read; unset ones take the defaults', async () => {
    const given = await load(dataset('      max_cells: 5000000\n      max_record_bytes: "65536"\n'));
    expect(given.datasets[0]?.limits).toEqual({ maxCells: 5_000_000, maxRecordBytes: 65_536 });
    expect(given.datasets[0]?.params).toEqual({});
    const unset = await load(dataset('      columns: [co2]\n'));
    expect(unset.datasets[0]?.limits).toEqual({ maxCells: 200_000_000, maxRecordBytes: 1_048_576 });
    const pg = await load(dataset('      max_cells: 1000\n      pg_host: localhost\n', 'postgres:readings'));
    expect(pg.datasets[0]?.limits.maxCells).toBe(1000);
    expect(pg.warnings).toEqual([]);
  });

  test('bad values fail with file, line and key', async () => {
    expect(await fatal(dataset('      max_cells: 0\n'))).toBe(':8:18: datasets[0].params.max_cells: expected a whole number of cells from 1 to 536870912, got 0');
    expect(await fatal(dataset('      max_cells: lots\n'))).toBe(
      ':8:18: datasets[0].params.max_cells: expected a whole number of cells from 1 to 536870912, got "lots"',
    );
    expect(await fatal(dataset('      max_record_bytes: 1.5\n'))).toBe(
      ':8:25: datasets[0].params.max_record_bytes: expected a whole number of bytes from 1 to 268435456, got 1.5',
    );
  });

  test('max_record_bytes is a file setting: a PostgreSQL dataset warns that it is unknown', async () => {
    const pod = await load(dataset('      max_record_bytes: 100\n      pg_host: localhost\n', 'postgres:readings'));
    expect(pod.warnings.join('\n')).toMatch(/max_record_bytes/);
  });
});
