/**
 * What the Spice routes (GET /v1/models/:name/predict, POST /v1/predict) add to Spice's API: `?include=`
 * (SPEC "Forecast timestamps and quantiles on the Spice routes").
 */
import type { IncludeOptions } from '../types.js';

export const INCLUDE_NOTHING: IncludeOptions = Object.freeze({ timestamps: false, quantiles: false });

/**
 * `?include=timestamps,quantiles` (either or both, comma-separated, in any order; an empty value means
 * nothing). An unknown value is a message for a 400.
 */
export function parseInclude(query: string | undefined): IncludeOptions | string {
  if (query === undefined || query === '') return INCLUDE_NOTHING;
  let timestamps = false;
  let quantiles = false;
  for (const raw of query.split(',')) {
    const part = raw.trim();
    if (part === 'timestamps') timestamps = true;
    else if (part === 'quantiles') quantiles = true;
    else if (part !== '') {
      return `Query parameter include takes timestamps and quantiles (comma-separated), not '${part}'`;
    }
  }
  return timestamps || quantiles ? { timestamps, quantiles } : INCLUDE_NOTHING;
}
