import { describe, expect, it } from 'vitest';
import type { DatasetRowsBody, PredictionBody } from '../../src/http/api-bodies.js';
import { chartData } from '../../src/web/chart-data.js';

/**
 * What the dashboard's chart plots, from the API's shapes: history at the rows' times, each model's forecast
 * at its own timestamps starting from the last row, quantile bands, several models overlaid, and models whose
 * forecast cannot be placed named with the reason. (The browser tests check the drawn chart.)
 */

const t = (day: number): string => new Date(Date.UTC(2024, 0, 1 + day)).toISOString();
const s = (day: number): number => Date.UTC(2024, 0, 1 + day) / 1000;

const rows: DatasetRowsBody = {
  name: 'd',
  columns: ['v'],
  timestamps: [t(0), t(1), t(2), t(4)],
  values: [[1], [2], [null], [4]],
};

function success(model: string, days: number[], values: number[], quantiles?: Record<string, number[]>): PredictionBody {
  return {
    status: 'Success',
    model_name: model,
    prediction: values,
    timestamps: days.map(t),
    ...(quantiles === undefined ? {} : { quantiles }),
    duration_ms: 0,
  };
}

describe('chartData', () => {
  it('places history at its times with gaps, and a forecast on its timestamps from the last row', () => {
    const data = chartData(rows, [success('a', [5, 6], [5.5, 6.5])]);
    expect(data.x).toEqual([s(0), s(1), s(2), s(4), s(5), s(6)]);
    expect(data.series.map((x) => [x.label, x.kind])).toEqual([
      ['v', 'history'],
      ['a', 'forecast'],
    ]);
    expect(data.series[0]!.values).toEqual([1, 2, null, 4, null, null]);
    expect(data.series[1]!.values).toEqual([null, null, null, 4, 5.5, 6.5]);
    expect(data.bands).toEqual([]);
    expect(data.notDrawn.size).toBe(0);
  });

  it('overlays several models, each on its own timestamps, with a band from the lowest to the highest quantile', () => {
    const data = chartData(rows, [
      success('a', [5, 6], [5.5, 6.5], { '0.5': [5.5, 6.5], '0.9': [6, 7.5], '0.1': [5, 5.75] }),
      success('b', [6, 8], [7, 9]),
    ]);
    expect(data.x).toEqual([s(0), s(1), s(2), s(4), s(5), s(6), s(8)]);
    expect(data.series.map((x) => [x.label, x.kind])).toEqual([
      ['v', 'history'],
      ['a', 'forecast'],
      ['a 0.1–0.9 high', 'bound'],
      ['a 0.1–0.9 low', 'bound'],
      ['b', 'forecast'],
    ]);
    expect(data.series[2]!.values).toEqual([null, null, null, 4, 6, 7.5, null]);
    expect(data.series[3]!.values).toEqual([null, null, null, 4, 5, 5.75, null]);
    expect(data.series[4]!.values).toEqual([null, null, null, 4, null, 7, 9]);
    expect(data.bands).toEqual([[2, 3]]);
    expect(data.series[1]!.color).not.toBe(data.series[4]!.color);
  });

  it('splits a multivariate forecast ([H, V] row-major) by column', () => {
    const two: DatasetRowsBody = { name: 'm', columns: ['x', 'y'], timestamps: [t(0)], values: [[1, 10]] };
    const data = chartData(two, [success('m', [1, 2], [2, 20, 3, 30])]);
    expect(data.series.map((x) => x.label)).toEqual(['x', 'y', 'm · x', 'm · y']);
    expect(data.series[2]!.values).toEqual([1, 2, 3]);
    expect(data.series[3]!.values).toEqual([10, 20, 30]);
  });

  it('names the models it cannot draw, and why', () => {
    const noTimes: PredictionBody = { status: 'Success', model_name: 'plain', prediction: [1, 2], duration_ms: 0 };
    const failed: PredictionBody = { status: 'InternalError', error_message: 'dataset d has 4 rows; model f needs 8', model_name: 'f', duration_ms: 0 };
    const data = chartData(rows, [noTimes, failed, success('odd', [5, 6], [1, 2, 3])]);
    expect(data.series.map((x) => x.label)).toEqual(['v']);
    expect([...data.notDrawn]).toEqual([
      ['plain', 'the server gives no forecast timestamps for this model, so its forecast is not placed on the time axis'],
      ['f', 'dataset d has 4 rows; model f needs 8'],
      ['odd', '3 values do not divide into 2 steps'],
    ]);
  });
});
