/** How the page prints times, ages, durations and values: UTC throughout, as the API speaks. */

/** `2001-12-29 00:00 UTC`-style, seconds shown only when they are not zero. */
export function formatTime(ms: number): string {
  const iso = new Date(ms).toISOString();
  const seconds = iso.slice(16, 19) === ':00' ? '' : iso.slice(16, 19);
  return `${iso.slice(0, 10)} ${iso.slice(11, 16)}${seconds}`;
}

export function formatIso(iso: string | null | undefined): string {
  if (iso === null || iso === undefined) return '—';
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? iso : formatTime(ms);
}

/** `42 s`, `5 min`, `3 h`, `12 d`, `24 y` ago. */
export function formatAge(iso: string | null | undefined, now: number): string {
  if (iso === null || iso === undefined) return '—';
  const seconds = Math.max(0, (now - Date.parse(iso)) / 1000);
  if (seconds < 90) return `${Math.round(seconds)} s ago`;
  if (seconds < 90 * 60) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 36 * 3600) return `${Math.round(seconds / 3600)} h ago`;
  if (seconds < 730 * 86400) return `${Math.round(seconds / 86400)} d ago`;
  return `${Math.round(seconds / (365.25 * 86400))} y ago`;
}

/** Seconds as ms with three significant digits (`0.0412` ms, `1.25` ms, `312` ms). */
export function formatSeconds(seconds: number | null): string {
  if (seconds === null) return '—';
  const ms = seconds * 1000;
  return `${Number(ms.toPrecision(3))} ms`;
}

export function formatRatio(hits: number, misses: number): string {
  const total = hits + misses;
  if (total === 0) return '—';
  return `${((100 * hits) / total).toFixed(1)}% of ${total}`;
}

/** An evaluation metric: four significant digits, "—" while there is none. */
export function formatMetric(v: number | null | undefined): string {
  return v === null || v === undefined ? '—' : String(Number(v.toPrecision(4)));
}

/** A data value as it would read back: shortest form, at most 6 significant digits. */
export function formatValue(v: number): string {
  return String(Number(v.toPrecision(6)));
}
