import { describe, expect, it } from 'vitest';
import { servePod, linearFixture, predictionText, runDirect } from './fixtures.js';

/**
 * With a dataset frequency, a model's window is the latest L steps ending at the newest row: a row missing
 * from the file is a gap, never a silent shift of the window onto older rows.
 */

const model = linearFixture({ lookback: 4, horizon: 2, seed: 21 });

/** Daily rows from 2024-01-01 with 2024-01-05 left out of the file (not an empty cell: no line at all). */
function dailyWithoutJan5(): string {
  const lines = ['ts,value'];
  for (let day = 1; day <= 8; day++) {
    if (day === 5) continue;
    lines.push(`${new Date(Date.UTC(2024, 0, day)).toISOString()},${day * 1.5}`);
  }
  return lines.join('\n') + '\n';
}

const POD = `
version: v1beta1
kind: Spicepod
name: steps
datasets:
  - from: file:data/daily.csv
    name: daily
models:
  - from: file:models/m.onnx
    name: strict
    datasets: [daily]
  - from: file:models/m.onnx
    name: linear
    datasets: [daily]
    params:
      fill_missing: linear
  - from: file:models/m.onnx
    name: previous
    datasets: [daily]
    params:
      fill_missing: previous
`;

describe('windows of the latest L steps', () => {
  const served = servePod((pod) => {
    pod.write('data/daily.csv', dailyWithoutJan5());
    pod.write('models/m.onnx', model.bytes);
    pod.write('spicepod.yaml', POD);
  });

  it('a missing row inside the window is a gap naming its time, not a shifted window', async () => {
    const res = await fetch(`${served.server.url}/v1/models/strict/predict`);
    const body = (await res.json()) as Record<string, unknown>;
    expect(res.status).toBe(500);
    expect(body).toMatchObject({
      status: 'InternalError',
      error_message:
        'gap in dataset daily at 2024-01-05T00:00:00.000Z: no row for this step of P1D (fill_missing is none; set it to previous or linear to fill gaps)',
      model_name: 'strict',
      lookback: 4,
    });
  });

  it('fill_missing fills the missing step: linear interpolates in time, previous carries forward', async () => {
    // Jan 5..8: Jan 5 is missing between Jan 4 (6) and Jan 6 (9).
    const linear = await fetch(`${served.server.url}/v1/models/linear/predict`);
    expect(linear.status).toBe(200);
    expect(predictionText(await linear.text())).toBe(await runDirect(model.bytes, [7.5, 9, 10.5, 12], [1, 4, 1]));
    const previous = await fetch(`${served.server.url}/v1/models/previous/predict`);
    expect(previous.status).toBe(200);
    expect(predictionText(await previous.text())).toBe(await runDirect(model.bytes, [6, 9, 10.5, 12], [1, 4, 1]));
  });
});
