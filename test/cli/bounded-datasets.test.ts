import { createWriteStream, existsSync } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, startCli, type CliProcess } from '../helpers/cli.js';
import { PodDir, dailyCsv, linearFixture, until } from '../server/fixtures.js';

/**
 * SPEC "Bounded and quiet", run as users run it (the built CLI in a child process, since a crash is the
 * failure being guarded against): a dataset file past its limits becomes that dataset's Error while a healthy
 * dataset and its model keep serving, /health answers, and the process stays up.
 */

interface DatasetEntry {
  readonly name: string;
  readonly status: string;
  readonly rows: number;
  readonly error: string | null;
}

/** A gzip CSV of `rows` rows × 15 value columns, one a minute: highly compressible, as exports are. */
async function wideGzipCsv(file: string, rows: number, longLine: number | null = null): Promise<void> {
  const names = Array.from({ length: 15 }, (_, j) => `v${j + 1}`);
  const cells = names.map((_, j) => String(j + 0.5)).join(',');
  const long = 'x'.repeat(3 * 1024 * 1024);
  function* lines(): Generator<string> {
    yield `ts,${names.join(',')},note\n`;
    for (let r = 0; r < rows; r++) yield `${1_600_000_000 + 60 * r},${cells},${r === longLine ? long : 'ok'}\n`;
  }
  await pipeline(Readable.from(lines()), createGzip(), createWriteStream(file));
}

describe('a dataset past its limits is its own failure', () => {
  const pod = new PodDir('forecastd-bounded-');
  let cli: CliProcess;
  let url: string;

  beforeAll(async () => {
    expect(existsSync(CLI), 'dist/cli.js is missing: run npm run build:ts (npm test does)').toBe(true);
    await wideGzipCsv(pod.path('data/wide.csv.gz'), 400_000);
    await wideGzipCsv(pod.path('data/long.csv.gz'), 1_000, 500);
    pod.write('data/series.csv', dailyCsv({ value: [1, 2, 3, 4, 5, 6] }));
    pod.write('models/lin.onnx', linearFixture({ lookback: 4, horizon: 2 }).bytes);
    pod.write(
      'spicepod.yaml',
      [
        'version: v1beta1',
        'kind: Spicepod',
        'name: bounded',
        'datasets:',
        '  - from: file:data/wide.csv.gz',
        '    name: wide',
        '    params:',
        '      max_cells: 1000000',
        '      columns: [v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12, v13, v14, v15]',
        '  - from: file:data/long.csv.gz',
        '    name: long',
        '    params:',
        '      columns: [v1]',
        '  - from: file:data/series.csv',
        '    name: series',
        'models:',
        '  - from: file:models/lin.onnx',
        '    name: lin',
        '    datasets: [series]',
        '',
      ].join('\n'),
    );
    cli = startCli([pod.dir, '--http', '127.0.0.1:0']);
    url = (JSON.parse(await cli.line(/forecastd listening on/)) as { url: string }).url;
  });
  afterAll(async () => {
    cli.child.kill('SIGTERM');
    await cli.exit;
    pod.remove();
  });

  it('the dataset past params.max_cells is Error naming the limit; the others serve', async () => {
    const datasets = await until('every dataset out of Initializing', async () => {
      const listed = JSON.parse(await (await fetch(`${url}/v1/datasets`)).text()) as DatasetEntry[];
      return listed.every((d) => d.status !== 'Initializing') ? listed : undefined;
    }, 4_000);
    const byName = new Map(datasets.map((d) => [d.name, d]));
    const wide = byName.get('wide');
    expect(wide?.status).toBe('Error');
    expect(wide?.rows).toBe(0);
    expect(wide?.error).toMatch(/^file:data\/wide\.csv\.gz: more than 1,000,000 cells \(rows × value columns\)/);
    expect(wide?.error).toContain('params.max_cells');
    const long = byName.get('long');
    expect(long?.status).toBe('Error');
    expect(long?.error).toMatch(/^file:data\/long\.csv\.gz: line 502: a record longer than 1,048,576 bytes/);
    expect(long?.error).toContain('params.max_record_bytes');
    expect(byName.get('series')).toMatchObject({ status: 'Ready', rows: 6, error: null });

    const health = await fetch(`${url}/health`);
    expect(health.status).toBe(200);
    expect(await health.text()).toBe('ok');
    const predict = await fetch(`${url}/v1/models/lin/predict`);
    expect(predict.status).toBe(200);
    const body = JSON.parse(await predict.text()) as { model_name: string; prediction: number[] };
    expect(body.model_name).toBe('lin');
    expect(body.prediction).toHaveLength(2);
    expect(cli.child.exitCode).toBeNull();
  });
});
