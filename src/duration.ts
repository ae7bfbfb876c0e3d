import { ForecastdError } from './errors.js';

const UNIT_MS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

// One or more "<number><unit>" parts, e.g. "30s", "1.5h", "1h30m" (as Spice's humantime-style durations).
const PART = /(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h|d)/y;

/**
 * Parses a duration into milliseconds: a number followed by ms, s, m, h or d ("500ms", "30s", "5m", "1h",
 * "365d"; parts may be combined: "1h30m"). A number is taken as milliseconds already. This is the one place
 * durations are parsed.
 */
export function parseDuration(input: string | number): number {
  if (typeof input === 'number') {
    if (!Number.isFinite(input) || input < 0) {
      throw new ForecastdError('ERR_INVALID_ARGUMENT', `invalid duration ${input}: expected a non-negative number of milliseconds`);
    }
    return input;
  }
  const text = input.trim();
  if (text === '') {
    throw new ForecastdError('ERR_INVALID_ARGUMENT', 'invalid duration "": expected a number with a unit (ms, s, m, h or d), e.g. "30s"');
  }
  if (/^\d+(\.\d+)?$/.test(text)) {
    throw new ForecastdError(
      'ERR_INVALID_ARGUMENT',
      `invalid duration "${input}": it has no unit; write e.g. "${text}s" or "${text}ms" (units: ms, s, m, h, d)`,
    );
  }
  let total = 0;
  let pos = 0;
  while (pos < text.length) {
    PART.lastIndex = pos;
    const match = PART.exec(text);
    if (match === null) {
      throw new ForecastdError(
        'ERR_INVALID_ARGUMENT',
        `invalid duration "${input}": expected a number with a unit (ms, s, m, h or d), e.g. "30s", "5m" or "1h30m"`,
      );
    }
    total += Number(match[1]) * (UNIT_MS[match[2] ?? ''] ?? Number.NaN);
    pos = PART.lastIndex;
    while (text[pos] === ' ') pos++;
  }
  return Math.round(total);
}

/** Formats milliseconds the way parseDuration reads them back, for messages. */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1_000]] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
