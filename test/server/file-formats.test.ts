import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type ForecastdServer } from '../../src/server/start.js';
import { COMPRESSION_TOOLS, DuckDb, compressWith, sqlString } from '../datasets/foreign-writers.js';
import { csvPairs } from '../datasets/helpers.js';
import { PodDir, REPO, linearFixture, predictionText, runDirect } from './fixtures.js';

/**
 * A pod of Spice-style file datasets, each the real weekly CO2 series written by another tool (DuckDB's
 * Parquet, CSV and JSON writers; gzip, bzip2, xz, zstd) in another layout, served by the real server:
 * every model must answer what ONNX Runtime gives for the newest window of the series, and a
 * misconfigured dataset must report the parameter to set.
 */

const CO2 = `${REPO}/test/data/co2_weekly.csv`;
const model = linearFixture({ lookback: 8, horizon: 3, seed: 23 });

/** name → [file under data/, params (YAML flow mapping), how DuckDB writes it, compression tool]. */
const DATASETS: Record<string, { file: string; params: string; copy: string; tool?: (typeof COMPRESSION_TOOLS)[number]['tool'] }> = {
  pq_zstd_v2: { file: 'co2-zstd.parquet', params: '{}', copy: 'FORMAT parquet, COMPRESSION zstd, PARQUET_VERSION V2' },
  pq_brotli: { file: 'co2-brotli.parquet', params: '{}', copy: 'FORMAT parquet, COMPRESSION brotli' },
  pq_gzip: { file: 'co2-gzip.pq', params: '{}', copy: 'FORMAT parquet, COMPRESSION gzip' },
  pq_lz4: { file: 'co2-lz4.parquet', params: '{}', copy: 'FORMAT parquet, COMPRESSION lz4_raw' },
  csv_semicolon_gz: { file: 'co2-semi.csv', params: '{ csv_delimiter: ";" }', copy: "FORMAT csv, DELIMITER ';'", tool: 'gzip' },
  csv_pipe_quote: { file: 'co2-pipe.txt', params: `{ file_format: csv, csv_delimiter: "|", csv_quote: "'" }`, copy: "FORMAT csv, DELIMITER '|', QUOTE '''', ESCAPE ''''" },
  csv_escape_zst: { file: 'co2-escape.csv', params: '{ csv_escape: "\\\\", file_compression_type: ZSTD }', copy: "FORMAT csv, ESCAPE '\\'", tool: 'zstd' },
  csv_headerless_bz2: {
    file: 'co2-noheader.csv',
    params: '{ csv_has_header: false, columns: [column_2] }',
    copy: 'FORMAT csv, HEADER false',
    tool: 'bzip2',
  },
  tsv_xz: { file: 'co2.tsv', params: '{}', copy: "FORMAT csv, DELIMITER '\t'", tool: 'xz' },
  json_array_zst: { file: 'co2-array.json', params: '{ json_format: array }', copy: 'FORMAT json, ARRAY true', tool: 'zstd' },
  json_detected: { file: 'co2-any.json', params: '{}', copy: 'FORMAT json, ARRAY true' },
  jsonl_gz: { file: 'co2.jsonl', params: '{}', copy: 'FORMAT json', tool: 'gzip' },
};

describe('file datasets written by other tools, served', () => {
  const pod = new PodDir();
  let server: ForecastdServer;
  let expected: string;

  beforeAll(async () => {
    const duck = await DuckDb.open();
    try {
      await duck.run(`CREATE TABLE co2 AS SELECT ts, co2,
          CASE WHEN co2 > 370 THEN 'note; with | delimiters, "quotes" and ''apostrophes''' ELSE 'plain' END AS note
        FROM read_csv(${sqlString(CO2)}, header = true, columns = {'ts': 'TIMESTAMP', 'co2': 'DOUBLE'}) ORDER BY ts`);
      for (const { file, copy, tool } of Object.values(DATASETS)) {
        const target = pod.path(`data/${file}`);
        await duck.run(`COPY (SELECT ts, co2, note FROM co2) TO ${sqlString(target)} (${copy})`);
        if (tool !== undefined) compressWith(tool, target);
      }
    } finally {
      duck.close();
    }
    const datasets = Object.entries(DATASETS).map(([name, { file, params, tool }]) => {
      const suffix = tool === undefined ? '' : `.${COMPRESSION_TOOLS.find((t) => t.tool === tool)?.suffix}`;
      const timeColumn = name === 'csv_headerless_bz2' ? 'column_1' : 'ts';
      // Value column co2 only: note is text.
      const withColumns = params.includes('columns') ? params : params === '{}' ? '{ columns: [co2] }' : params.replace(/ }$/, ', columns: [co2] }');
      return `  - { name: ${name}, from: "file:data/${file}${suffix}", time_column: ${timeColumn}, params: ${withColumns} }`;
    });
    pod.write('models/lin.onnx', model.bytes);
    pod.write('data/semi-plain.csv', 'ts;co2\n2024-01-01;1\n');
    pod.write(
      'spicepod.yaml',
      [
        'version: v1beta1',
        'kind: Spicepod',
        'name: formats',
        'datasets:',
        ...datasets,
        '  - { name: semi_default, from: "file:data/semi-plain.csv" }',
        'models:',
        ...Object.keys(DATASETS).map((name) => `  - { name: m_${name}, from: "file:models/lin.onnx", datasets: [${name}] }`),
        '  - { name: m_semi_default, from: "file:models/lin.onnx", datasets: [semi_default] }',
        '',
      ].join('\n'),
    );
    server = await startServer({ spicepod: pod.dir, port: 0 });
    await server.loaded();
    // The newest window of the series, straight from the CSV: the last 8 weeks (none of them a gap).
    const window = (await csvPairs(CO2)).slice(-model.lookback).map(([, v]) => Number(v));
    expect(window.every((v) => Number.isFinite(v))).toBe(true);
    expected = await runDirect(model.bytes, window, [1, model.lookback, 1]);
  }, 120_000);

  afterAll(async () => {
    await server?.close();
    pod.remove();
  });

  it.each(Object.keys(DATASETS))('%s: the prediction equals ONNX Runtime on the newest window', async (name) => {
    const res = await fetch(`${server.url}/v1/models/m_${name}/predict`);
    const body = await res.text();
    expect(res.status, body).toBe(200);
    expect(JSON.parse(body)).toMatchObject({ status: 'Success', model_name: `m_${name}`, lookback: 8 });
    expect(predictionText(body)).toBe(expected);
  });

  it('every dataset holds the whole series; the misconfigured one names csv_delimiter', async () => {
    const res = await fetch(`${server.url}/v1/datasets`);
    expect(res.status).toBe(200);
    const datasets = (await res.json()) as { name: string; rows: number; status: string; error: string | null; last_ts: string | null }[];
    const byName = new Map(datasets.map((d) => [d.name, d]));
    for (const name of Object.keys(DATASETS)) {
      expect(byName.get(name), name).toMatchObject({ rows: 2284, status: 'Ready', error: null, last_ts: '2001-12-29T00:00:00.000Z' });
    }
    const semi = byName.get('semi_default');
    expect(semi?.status).toBe('Error');
    expect(semi?.error).toContain('time column "ts" not found (columns found: ts;co2): the header looks ";"-separated: set csv_delimiter: ";"');
    const predict = await fetch(`${server.url}/v1/models/m_semi_default/predict`);
    expect(predict.status).toBe(500);
    expect(await predict.json()).toMatchObject({ status: 'InternalError', model_name: 'm_semi_default' });
  });
});
