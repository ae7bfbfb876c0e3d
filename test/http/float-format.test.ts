import { describe, expect, it } from 'vitest';
import { formatFloat32, formatFloat64, formatFloatArray } from '../../src/http/float-format.js';

/** Significant digits of a JSON number string. */
function significantDigits(s: string): string {
  const mantissa = s.replace(/^-/, '').split(/e/i)[0]!;
  return mantissa.replace('.', '').replace(/^0+/, '');
}

/** Every decimal with `digits` significant digits next to v: the one below and the one above. */
function neighbours(v: number, digits: number): number[] {
  const exp = Math.floor(Math.log10(Math.abs(v)));
  const out: number[] = [];
  for (let e = exp - 1; e <= exp + 1; e++) {
    const power = e - (digits - 1);
    const scaled = Math.abs(v) / 10 ** power;
    for (const m of [Math.floor(scaled) - 1, Math.floor(scaled), Math.ceil(scaled), Math.ceil(scaled) + 1]) {
      if (m <= 0 || String(m).length !== digits) continue;
      out.push(Number(`${v < 0 ? '-' : ''}${m}e${power}`));
    }
  }
  return out;
}

function randomFloat32(next: () => number): number {
  const bits = new Uint32Array(1);
  const f = new Float32Array(bits.buffer);
  for (;;) {
    bits[0] = next();
    if (Number.isFinite(f[0]!)) return f[0]!;
  }
}

function xorshift(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

describe('formatFloat32', () => {
  it('prints the documented examples the way Spice did', () => {
    expect(formatFloat32(Math.fround(0.45))).toBe('0.45');
    expect(formatFloat32(Math.fround(0.5))).toBe('0.5');
    expect(formatFloat32(Math.fround(0.55))).toBe('0.55');
    expect(formatFloat32(Math.fround(1e-7))).toBe('1e-7');
    expect(formatFloat32(Math.fround(3.4028235e38))).toBe('3.4028235e+38');
    expect(formatFloat32(371)).toBe('371');
    expect(formatFloat32(-371.25)).toBe('-371.25');
    expect(formatFloat32(0)).toBe('0');
    expect(formatFloat32(-0)).toBe('-0');
    expect(formatFloat32(Math.fround(1 / 3))).toBe('0.33333334');
    expect(formatFloat32(Math.fround(16777216))).toBe('16777216');
    // Smallest subnormal and normal float32.
    expect(formatFloat32(2 ** -149)).toBe('1e-45');
    expect(formatFloat32(2 ** -126)).toBe('1.1754944e-38');
  });

  it('rejects non-finite values instead of writing invalid JSON', () => {
    expect(() => formatFloat32(NaN)).toThrow(RangeError);
    expect(() => formatFloat32(Infinity)).toThrow(RangeError);
  });

  it('reads back exactly and is minimal for random float32 bit patterns', () => {
    const next = xorshift(0x9e3779b9);
    for (let i = 0; i < 20_000; i++) {
      const v = randomFloat32(next);
      const s = formatFloat32(v);
      expect(Math.fround(JSON.parse(s) as number)).toBe(v);
      const digits = significantDigits(s).replace(/0+$/, '').length;
      if (digits > 1) {
        for (const shorter of neighbours(v, digits - 1)) {
          expect(Math.fround(shorter), `${s} is not minimal: ${shorter} also reads back`).not.toBe(v);
        }
      }
    }
  });

  it('handles powers of two, whose rounding interval is lopsided', () => {
    for (let e = -149; e <= 127; e++) {
      for (const v of [2 ** e, -(2 ** e)]) {
        const s = formatFloat32(v);
        expect(Math.fround(JSON.parse(s) as number)).toBe(v);
        const digits = significantDigits(s).replace(/0+$/, '').length;
        if (digits > 1) {
          for (const shorter of neighbours(v, digits - 1)) expect(Math.fround(shorter)).not.toBe(v);
        }
      }
    }
  });

  it('round-trips float32 values of everyday magnitudes', () => {
    const next = xorshift(12345);
    for (let i = 0; i < 20_000; i++) {
      const v = Math.fround(((next() / 2 ** 32) - 0.5) * 1000);
      const s = formatFloat32(v);
      expect(Math.fround(Number(s))).toBe(v);
      expect(s.length).toBeLessThanOrEqual(String(v).length);
    }
  });
});

describe('formatFloat64 and formatFloatArray', () => {
  it('uses the shortest float64 form for float64 outputs', () => {
    expect(formatFloat64(0.1 + 0.2)).toBe('0.30000000000000004');
    expect(formatFloat64(-0)).toBe('-0');
  });

  it('writes JSON arrays per element type', () => {
    expect(formatFloatArray(new Float32Array([0.45, 0.5, 0.55]))).toBe('[0.45,0.5,0.55]');
    expect(formatFloatArray(new Float64Array([0.45, 0.5]))).toBe('[0.45,0.5]');
    expect(formatFloatArray(new Float64Array([Math.fround(0.45)]))).toBe('[0.44999998807907104]');
    expect(formatFloatArray(new Float32Array(0))).toBe('[]');
  });
});
