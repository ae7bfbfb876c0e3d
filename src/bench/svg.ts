/** Throughput against latency as an SVG chart: one curve per series, p99 solid and p50 dashed, log latency. */

export interface CurvePoint {
  readonly throughput: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Written beside the point, e.g. the batch size or connection count. */
  readonly label: string;
}

export interface CurveSeries {
  readonly name: string;
  readonly points: readonly CurvePoint[];
}

export interface CurveChart {
  readonly title: string;
  /** A line under the title: date, conditions, what the labels mean. */
  readonly note: string;
  readonly throughputUnit: string;
  readonly series: readonly CurveSeries[];
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f'];

/** Text made safe for SVG/XML content and attribute values. */
export function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** A round axis step (1, 2 or 5 × 10^n) giving about `ticks` ticks over `range`. */
export function niceStep(range: number, ticks: number): number {
  const raw = range / ticks;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const residual = raw / magnitude;
  const nice = residual > 5 ? 10 : residual > 2 ? 5 : residual > 1 ? 2 : 1;
  return nice * magnitude;
}

function compact(value: number): string {
  if (value >= 1e6) return `${Number((value / 1e6).toPrecision(3))}M`;
  if (value >= 1000) return `${Number((value / 1000).toPrecision(3))}k`;
  return String(Number(value.toPrecision(3)));
}

export function renderCurves(chart: CurveChart): string {
  const width = 720;
  const legendRows = Math.ceil(chart.series.length / 2);
  const margin = { left: 70, right: 20, top: 50 + legendRows * 15, bottom: 50 };
  const height = 400 + legendRows * 15;
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const all = chart.series.flatMap((s) => s.points);
  const maxX = Math.max(1, ...all.map((p) => p.throughput).filter(Number.isFinite));
  const latencies = all.flatMap((p) => [p.p50Ms, p.p99Ms]).filter((v) => Number.isFinite(v) && v > 0);
  const minLat = 10 ** Math.floor(Math.log10(Math.max(1e-3, Math.min(...latencies, 1))));
  const maxLat = 10 ** Math.ceil(Math.log10(Math.max(...latencies, minLat * 10)));
  const xStep = niceStep(maxX, 6);
  const xMax = Math.ceil((maxX * 1.05) / xStep) * xStep;
  const x = (v: number): number => margin.left + (v / xMax) * plotW;
  const y = (ms: number): number => {
    const clamped = Math.max(Number.isFinite(ms) ? ms : minLat, minLat);
    return margin.top + plotH - ((Math.log10(clamped) - Math.log10(minLat)) / (Math.log10(maxLat) - Math.log10(minLat))) * plotH;
  };
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="18" text-anchor="middle" font-size="13">${escapeXml(chart.title)}</text>`,
    `<text x="${width / 2}" y="34" text-anchor="middle" fill="#555">${escapeXml(chart.note)}</text>`,
  ];
  chart.series.forEach((series, i) => {
    const color = PALETTE[i % PALETTE.length] as string;
    const lx = margin.left + (i % 2) * 320;
    const ly = 50 + Math.floor(i / 2) * 15;
    out.push(`<line x1="${lx}" y1="${ly}" x2="${lx + 20}" y2="${ly}" stroke="${color}" stroke-width="2"/>`);
    out.push(`<text x="${lx + 24}" y="${ly + 4}">${escapeXml(series.name)}</text>`);
  });
  for (let v = 0; v <= xMax + 1e-9; v += xStep) {
    out.push(`<line x1="${x(v)}" y1="${margin.top}" x2="${x(v)}" y2="${margin.top + plotH}" stroke="#eee"/>`);
    out.push(`<text x="${x(v)}" y="${margin.top + plotH + 16}" text-anchor="middle">${compact(v)}</text>`);
  }
  for (let v = minLat; v <= maxLat * 1.0001; v *= 10) {
    out.push(`<line x1="${margin.left}" y1="${y(v)}" x2="${margin.left + plotW}" y2="${y(v)}" stroke="#ddd"/>`);
    out.push(`<text x="${margin.left - 6}" y="${y(v) + 4}" text-anchor="end">${compact(v)}</text>`);
  }
  out.push(`<rect x="${margin.left}" y="${margin.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333"/>`);
  out.push(`<text x="${margin.left + plotW / 2}" y="${height - 10}" text-anchor="middle">${escapeXml(chart.throughputUnit)}</text>`);
  out.push(
    `<text x="16" y="${margin.top + plotH / 2}" text-anchor="middle" transform="rotate(-90 16 ${margin.top + plotH / 2})">latency, ms (log scale; solid p99, dashed p50)</text>`,
  );
  chart.series.forEach((series, i) => {
    const color = PALETTE[i % PALETTE.length] as string;
    const points = [...series.points].sort((a, b) => a.throughput - b.throughput);
    for (const key of ['p99Ms', 'p50Ms'] as const) {
      const d = points.map((p, j) => `${j === 0 ? 'M' : 'L'}${x(p.throughput).toFixed(1)},${y(p[key]).toFixed(1)}`).join(' ');
      const dash = key === 'p50Ms' ? ' stroke-dasharray="5 4"' : '';
      out.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="${key === 'p99Ms' ? 2 : 1.2}"${dash}/>`);
      for (const p of points) {
        out.push(`<circle cx="${x(p.throughput).toFixed(1)}" cy="${y(p[key]).toFixed(1)}" r="${key === 'p99Ms' ? 3 : 2}" fill="${color}"/>`);
        if (key === 'p99Ms') {
          out.push(`<text x="${(x(p.throughput) + 5).toFixed(1)}" y="${(y(p[key]) - 5).toFixed(1)}" fill="${color}">${escapeXml(p.label)}</text>`);
        }
      }
    }
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
