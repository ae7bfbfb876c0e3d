import uPlot from 'uplot';
import type { ChartData } from './chart-data.js';
import { formatTime, formatValue } from './format.js';

/**
 * One uPlot chart per dataset, of the series chart-data.ts lays out. Several models overlay on one chart;
 * clicking a legend entry hides or shows a line; hovering shows every value at that time in the legend.
 */

function withAlpha(hex: string, alpha: number): string {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

function options(data: ChartData, width: number, height: number): uPlot.Options {
  return {
    width,
    height,
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC'),
    cursor: { points: { size: 6 } },
    scales: { x: { time: true } },
    axes: [{}, { size: 60 }],
    legend: { live: true },
    series: [
      { label: 'time (UTC)', value: (_u, v) => (v == null ? '—' : formatTime(v * 1000)) },
      ...data.series.map(
        (s): uPlot.Series => ({
          label: s.label,
          stroke: s.kind === 'bound' ? withAlpha(s.color, 0.5) : s.color,
          width: s.kind === 'history' ? 1.25 : s.kind === 'forecast' ? 2 : 1,
          dash: s.kind === 'bound' ? [4, 4] : undefined,
          spanGaps: s.kind !== 'history',
          points: { show: s.kind === 'forecast' ? true : false, size: 4 },
          value: (_u, v) => (v == null ? '—' : formatValue(v)),
        }),
      ),
    ],
    bands: data.bands.map(([upper, lower]) => ({
      series: [upper + 1, lower + 1] as [number, number],
      fill: withAlpha(data.series[upper]!.color, 0.15),
    })),
  };
}

function shapeOf(data: ChartData): string {
  return JSON.stringify([data.series.map((s) => [s.label, s.kind, s.color]), data.bands]);
}

function chartHeight(width: number): number {
  return width < 600 ? 220 : 320;
}

/** A uPlot chart that follows its container's width and is rebuilt only when its series change. */
export class DatasetChart {
  private plot: uPlot | null = null;
  private shape = '';
  private readonly resize: ResizeObserver;

  constructor(private readonly container: HTMLElement) {
    this.resize = new ResizeObserver(() => {
      const width = this.container.clientWidth;
      if (this.plot !== null && width > 0 && width !== this.plot.width) this.plot.setSize({ width, height: chartHeight(width) });
    });
    this.resize.observe(container);
  }

  update(data: ChartData): void {
    const aligned: uPlot.AlignedData = [data.x, ...data.series.map((s) => s.values)];
    const shape = shapeOf(data);
    if (this.plot !== null && shape === this.shape) {
      this.plot.setData(aligned);
      return;
    }
    this.plot?.destroy();
    this.shape = shape;
    const width = Math.max(this.container.clientWidth, 200);
    this.plot = new uPlot(options(data, width, chartHeight(width)), aligned, this.container);
  }

  destroy(): void {
    this.resize.disconnect();
    this.plot?.destroy();
    this.plot = null;
  }
}
