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
 * test, and "p digits round-trip" is monotone in p: a binary search over p in 1..9 finds the least. Where the
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
  // Nine significant digits always round-trip a float32.
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

/** The shortest decimal that reads back as the same float64 (JavaScript's own Number-to-String). */
export function formatFloat64(v: number): string {
  if (!Number.isFinite(v)) throw new RangeError(`cannot format the non-finite value ${v} as JSON`);
  return jsonNumber(v);
}

/** A JSON array of the values, shortest per their own precision (float32 or float64). */
export function formatFloatArray(values: FloatArray): string {
  const n = values.length;
  if (n === 0) return '[]';
  const format = values instanceof Float32Array ? formatFloat32 : formatFloat64;
  let out = '[' + format(values[0]!);
  for (let i = 1; i < n; i++) out += ',' + format(values[i]!);
  return out + ']';
}
