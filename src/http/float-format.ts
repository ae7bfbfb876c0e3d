import { loadAddon } from '../runtime/addon.js';
import type { FloatArray } from '../runtime/types.js';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/**
 * The other p-digit decimal next to `v`, on the far side from `near` (which is v.toPrecision(p)). Only needed
 * where the float32 rounding interval is lopsided (see formatFloat32).
 */
function otherNeighbour(v: number, p: number, near: number): number {
  const exp = v.toExponential(p - 1); // "d.ddde±x": the same digits as toPrecision(p)
  const e = exp.indexOf('e');
  const digits = BigInt(exp.slice(0, e).replace('.', '').replace('-', ''));
  const power = Number(exp.slice(e + 1)) - (p - 1);
  const away = Math.abs(near) < Math.abs(v) ? digits + 1n : digits - 1n;
  return Number(`${v < 0 ? '-' : ''}${away}e${power}`);
}

/** JSON text of a double, keeping the sign of -0 (String(-0) is "0"). */
function jsonNumber(d: number): string {
  return d === 0 && Object.is(d, -0) ? '-0' : String(d);
}

/**
 * The shortest decimal that reads back as the same float32: `0.45` for Math.fround(0.45), not
 * `0.44999998807907104`, as Rust's float32 formatting (and so Spice's responses) print it.
 *
 * For p significant digits, v.toPrecision(p) is the p-digit decimal nearest to v. The rounding interval of a
 * float32 is symmetric unless its significand is a power of two, so the nearest p-digit decimal is the one to
 * test, and "p digits round-trip" is monotone in p: a search over p in 1..9 finds the least. Where the
 * interval is lopsided (significand bits all zero: the gap below is half the gap above) the far neighbour can
 * round-trip when the nearest one does not, so those few values scan p upwards testing both.
 *
 * The chosen decimal d (as a double) prints through String(d), which yields exactly its p digits in the
 * JSON-compatible form JavaScript uses (`1e-7`, `3.4028235e+38`).
 */
export function formatFloat32(v: number): string {
  if (!Number.isFinite(v)) throw new RangeError(`cannot format the non-finite value ${v} as JSON`);
  if (v === 0) return Object.is(v, -0) ? '-0' : '0';
  f32[0] = v;
  if ((u32[0]! & 0x7fffff) === 0) {
    for (let p = 1; p <= 9; p++) {
      const near = Number(v.toPrecision(p));
      if (Math.fround(near) === v) return jsonNumber(near);
      const far = otherNeighbour(v, p, near);
      if (Math.fround(far) === v) return jsonNumber(far);
    }
    return jsonNumber(Number(v.toPrecision(9)));
  }
  // Most values: the search done in double arithmetic, several times faster than toPrecision.
  const fast = shortestByArithmetic(v);
  if (fast !== null) return fast;
  // Rare: near a rounding tie, or outside the exponents the arithmetic handles. Nine significant digits always
  // round-trip a float32: bisect p in 1..9 with toPrecision.
  let lo = 1;
  let hi = 9;
  let best = Number(v.toPrecision(9));
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const d = Number(v.toPrecision(mid));
    if (Math.fround(d) === v) {
      best = d;
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  return jsonNumber(best);
}

/**
 * formatFloat32's search for the least p, probing p = 8 and 7 first (most float32 values a model computes need
 * 7 to 9 digits) and bisecting below, with each probe done in double arithmetic: v·10^k rounded to an integer
 * n gives the nearest p-digit decimal n·10^-k. Both steps round once, so the integer is exact unless v·10^k
 * lies within rounding error of a half-way point; then, and outside the exponents where every power of ten
 * involved is an exact double, it answers null and the caller takes the exact path. The text is built from
 * n's digits as Number.prototype.toString would print the decimal (no double holds two decimals of at most
 * nine digits, so those digits are the shortest form of the double too).
 */
function shortestByArithmetic(v: number): string | null {
  const a = v < 0 ? -v : v;
  let e = Math.floor(Math.log10(a));
  if (e < -13 || e > 13) return null;
  // log10 can be off by one next to a power of ten: fix e so that a·10^(8-e) has exactly 9 integer digits.
  const s9 = scaled(a, 8 - e);
  if (s9 < 1e8) e--;
  else if (s9 >= 1e9) e++;
  const n8 = roundedDigits(a, e, 8);
  if (n8 < 0) return null;
  if (Math.fround(decimal(n8, e, 8, v)) !== v) {
    const n9 = roundedDigits(a, e, 9);
    return n9 < 0 ? null : decimalText(n9, e, 9, v);
  }
  const n7 = roundedDigits(a, e, 7);
  if (n7 < 0) return null;
  if (Math.fround(decimal(n7, e, 7, v)) !== v) return decimalText(n8, e, 8, v);
  let lo = 1;
  let hi = 7;
  let best = n7;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const n = roundedDigits(a, e, mid);
    if (n < 0) return null;
    if (Math.fround(decimal(n, e, mid, v)) === v) {
      best = n;
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  return decimalText(best, e, hi, v);
}

/** a·10^k, rounded once (|k| ≤ 22, so 10^k is exact). */
function scaled(a: number, k: number): number {
  return k >= 0 ? a * POW10[k]! : a / POW10[-k]!;
}

/** The p digits of the p-digit decimal nearest to a (leading digit at 10^e); -1 when too close to a tie to tell. */
function roundedDigits(a: number, e: number, p: number): number {
  const x = scaled(a, p - 1 - e);
  const floor = Math.floor(x);
  const fraction = x - floor;
  // x carries at most about 1e9 · 2^-53 ≈ 1e-7 of rounding error.
  if (fraction > 0.5 - 1e-6 && fraction < 0.5 + 1e-6) return -1;
  return fraction > 0.5 ? floor + 1 : floor;
}

/** n·10^(e-p+1) as the nearest double, with v's sign. */
function decimal(n: number, e: number, p: number, v: number): number {
  const k = p - 1 - e;
  const d = k >= 0 ? n / POW10[k]! : n * POW10[-k]!;
  return v < 0 ? -d : d;
}

/** n·10^(e-p+1), with v's sign, printed as Number.prototype.toString prints that decimal. */
function decimalText(n: number, e: number, p: number, v: number): string {
  // A rounding carry (9.99 -> 10.0) gives p+1 digits: the leading digit moves up a place.
  if (n >= POW10[p]!) e++;
  while (n % 10 === 0) n /= 10;
  const digits = String(n);
  const k = digits.length;
  const point = e + 1; // the decimal point sits after this many digits
  let text: string;
  if (k <= point && point <= 21) text = digits + '0'.repeat(point - k);
  else if (0 < point && point <= 21) text = digits.slice(0, point) + '.' + digits.slice(point);
  else if (-6 < point && point <= 0) text = '0.' + '0'.repeat(-point) + digits;
  else {
    const exp = point - 1;
    text = (k === 1 ? digits : digits[0] + '.' + digits.slice(1)) + 'e' + (exp < 0 ? '-' : '+') + Math.abs(exp);
  }
  return v < 0 ? '-' + text : text;
}

/** Exact powers of ten as doubles (10^22 is the largest one a double holds exactly). */
const POW10 = Array.from({ length: 23 }, (_, k) => Number(`1e${k}`));
/** The shortest decimal that reads back as the same float64 (JavaScript's own Number-to-String). */
export function formatFloat64(v: number): string {
  if (!Number.isFinite(v)) throw new RangeError(`cannot format the non-finite value ${v} as JSON`);
  return jsonNumber(v);
}

type Float32Json = (values: Float32Array) => string | null;

/** The addon's formatFloat32Json, null where the addon cannot be loaded or predates it; looked up once. */
let nativeFloat32Json: Float32Json | null | undefined;

function float32Json(): Float32Json | null {
  if (nativeFloat32Json === undefined) {
    try {
      const addon = loadAddon();
      nativeFloat32Json = addon.formatFloat32Json === undefined ? null : addon.formatFloat32Json.bind(addon);
    } catch {
      // Without the addon (formatting only, no inference) the JavaScript formatter below writes the same text.
      nativeFloat32Json = null;
    }
  }
  return nativeFloat32Json;
}

/**
 * A JSON array of the values, shortest per their own precision (float32 or float64). A Float32Array goes
 * through the addon's formatter, which gives the same text as formatFloat32 for each value or, for the few values
 * where it cannot be sure to, no text (test/http/float-format.test.ts
 * compares them), several times faster: on a small model that formatting was a tenth of the event loop's work per answer.
 */
export function formatFloatArray(values: FloatArray): string {
  const n = values.length;
  if (n === 0) return '[]';
  if (values instanceof Float32Array) {
    const native = float32Json();
    const text = native === null ? null : native(values);
    if (text !== null) return text;
  }
  const format = values instanceof Float32Array ? formatFloat32 : formatFloat64;
  let out = '[' + format(values[0]!);
  for (let i = 1; i < n; i++) out += ',' + format(values[i]!);
  return out + ']';
}
