/**
 * The few per-model numbers the overview shows, read from the Prometheus text of GET /metrics: cache hits and
 * misses, and the inference-time histogram, whose p50/p99 are estimated the way PromQL's
 * histogram_quantile does (linear inside the bucket holding the rank). The numbers cover the process's life.
 * Only the samples of these metric families are read; the text format's sample line is
 * `name{label="value",...} number`, with `\\`, `\"` and `\n` escaped inside label values.
 */

export interface ModelStats {
  readonly cacheHits: number;
  readonly cacheMisses: number;
  /** Seconds; null before the first inference. */
  readonly inferenceP50: number | null;
  readonly inferenceP99: number | null;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

function unescapeLabel(value: string): string {
  return value.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
}

function labelsOf(text: string | undefined): Map<string, string> {
  const labels = new Map<string, string>();
  if (text === undefined) return labels;
  for (const m of text.matchAll(LABEL)) labels.set(m[1]!, unescapeLabel(m[2]!));
  return labels;
}

function parseValue(text: string): number {
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  return Number(text);
}

/** Rank q of a cumulative histogram (upper bound → count, ascending), as histogram_quantile estimates it. */
export function histogramQuantile(q: number, buckets: readonly (readonly [number, number])[]): number | null {
  const total = buckets.at(-1)?.[1] ?? 0;
  if (total === 0) return null;
  const rank = q * total;
  let lowerBound = 0;
  let lowerCount = 0;
  for (const [upper, count] of buckets) {
    if (count >= rank) {
      // The +Inf bucket has no width: the estimate is the highest finite bound, as in PromQL.
      if (upper === Infinity) return lowerBound;
      const inBucket = count - lowerCount;
      return inBucket === 0 ? upper : lowerBound + (upper - lowerBound) * ((rank - lowerCount) / inBucket);
    }
    lowerBound = upper;
    lowerCount = count;
  }
  return lowerBound;
}

export function modelStats(text: string): Map<string, ModelStats> {
  const hits = new Map<string, number>();
  const misses = new Map<string, number>();
  const buckets = new Map<string, [number, number][]>();
  for (const line of text.split('\n')) {
    if (!line.startsWith('forecastd_')) continue;
    const m = SAMPLE.exec(line);
    if (m === null) continue;
    const [, name, labelText, valueText] = m;
    const labels = labelsOf(labelText);
    const model = labels.get('model');
    if (model === undefined) continue;
    const value = parseValue(valueText!);
    if (name === 'forecastd_prediction_cache_hits_total') hits.set(model, value);
    else if (name === 'forecastd_prediction_cache_misses_total') misses.set(model, value);
    else if (name === 'forecastd_inference_seconds_bucket') {
      const le = labels.get('le');
      if (le === undefined) continue;
      let list = buckets.get(model);
      if (list === undefined) buckets.set(model, (list = []));
      list.push([parseValue(le), value]);
    }
  }
  const stats = new Map<string, ModelStats>();
  const names = new Set([...hits.keys(), ...misses.keys(), ...buckets.keys()]);
  for (const model of names) {
    const list = (buckets.get(model) ?? []).sort((a, b) => a[0] - b[0]);
    stats.set(model, {
      cacheHits: hits.get(model) ?? 0,
      cacheMisses: misses.get(model) ?? 0,
      inferenceP50: histogramQuantile(0.5, list),
      inferenceP99: histogramQuantile(0.99, list),
    });
  }
  return stats;
}
