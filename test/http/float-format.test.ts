import { describe, expect, it } from 'vitest';
import { formatFloat32, formatFloat64, formatFloatArray } from '../../src/http/float-format.js';
import fc from 'fast-check';
import { loadAddon } from '../../src/runtime/addon.js';

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

describe("the addon's formatFloat32Json", () => {
  const addon = loadAddon();
  /** The addon's text; where it declines (null), the text formatFloatArray then writes, which must also match. */
  const native = (values: Float32Array): string => {
    if (addon.formatFloat32Json === undefined) throw new Error('this addon build has no formatFloat32Json');
    return addon.formatFloat32Json(values) ?? formatFloatArray(values);
  };
  /** formatFloat32 per value: the reference the native text must equal, character for character. */
  const reference = (values: Float32Array): string => '[' + Array.from(values, (v) => formatFloat32(v)).join(',') + ']';

  /** Every float32 next to v: the one below and the one above (by bit pattern, same sign). */
  const adjacent = (v: number): number[] => {
    const bits = new Uint32Array(1);
    const f = new Float32Array(bits.buffer);
    f[0] = v;
    const b = bits[0]!;
    const out: number[] = [];
    for (const step of [b - 1, b + 1]) {
      if (step < 0 || step > 0xffffffff || (step & 0x7fffffff) === 0x7fffffff) continue;
      bits[0] = step;
      if (Number.isFinite(f[0]!)) out.push(f[0]!);
    }
    return out;
  };

  it('is what formatFloatArray uses for float32 values', () => {
    expect(addon.formatFloat32Json).toBeTypeOf('function');
    const values = new Float32Array([0.45, -371.25, 1e-7, 3.4028235e38, 0, -0, 2 ** -149, 16777216]);
    expect(formatFloatArray(values)).toBe('[0.45,-371.25,1e-7,3.4028235e+38,0,-0,1e-45,16777216]');
    expect(native(values)).toBe(reference(values));
    expect(native(new Float32Array(0))).toBe('[]');
    // A batch's output is answered as one view per window: only the view's own values are written.
    const batch = Float32Array.from([1.5, 2.25, 3.125, 4.0625, 5.5, 6.75]);
    expect(native(batch.subarray(2, 4))).toBe('[3.125,4.0625]');
    expect(formatFloatArray(batch.subarray(4))).toBe('[5.5,6.75]');
  });

  it('writes what formatFloat32 writes for random bit patterns (fast-check prints the seed of a failure)', () => {
    fc.assert(
      fc.property(fc.array(fc.float({ noNaN: true, noDefaultInfinity: true }), { minLength: 1, maxLength: 64 }), (list) => {
        const values = Float32Array.from(list);
        expect(native(values)).toBe(reference(values));
      }),
      { numRuns: 2_000 },
    );
    const next = xorshift(Date.now() >>> 0);
    const values = new Float32Array(200_000);
    for (let i = 0; i < values.length; i++) values[i] = randomFloat32(next);
    expect(native(values)).toBe(reference(values));
  });

  it('writes what formatFloat32 writes where the layout or the digit count changes', () => {
    const list: number[] = [];
    // Powers of two (lopsided rounding intervals), subnormals, the largest finite values, and their neighbours.
    for (let e = -149; e <= 127; e++) list.push(2 ** e);
    list.push(3.4028234663852886e38, 1.1754942106924411e-38, 2 ** -149 * 3);
    // Powers of ten: where JavaScript switches between fixed and exponential layout (1e21, 1e-7) and where
    // the number of digits changes.
    for (let e = -45; e <= 38; e++) list.push(Math.fround(Number(`1e${e}`)), Math.fround(Number(`9.999999e${e}`)));
    const withNeighbours = list.filter((v) => v !== 0 && Number.isFinite(v)).flatMap((v) => [v, ...adjacent(v)]);
    const values = Float32Array.from([...withNeighbours, ...withNeighbours.map((v) => -v), 0, -0]);
    expect(native(values)).toBe(reference(values));
  });

  it('declines the values whose rounding boundary a short decimal reads as exactly, where JavaScript reads twice', () => {
    // 7.038531e-26 is, as its nearest double, exactly the boundary between the float32 values 0x15ae43fd and
    // 0x15ae43fe: Number() lands on it and Math.fround breaks the tie to the even one, 0x15ae43fe, while the exact
    // decimal lies on 0x15ae43fd's side. formatFloat32 so writes 7.0385307e-26 and 7.038531e-26.
    const bits = Uint32Array.from([0x15ae43fd, 0x15ae43fe, 0x95ae43fd, 0x95ae43fe]);
    const values = new Float32Array(bits.buffer);
    for (const v of values) expect(addon.formatFloat32Json?.(Float32Array.of(v))).toBeNull();
    expect(formatFloatArray(values)).toBe('[7.0385307e-26,7.038531e-26,-7.0385307e-26,-7.038531e-26]');
    expect(formatFloatArray(values)).toBe(reference(values));
    // One such value in a batch's answer sends the whole array to the JavaScript formatter.
    expect(formatFloatArray(Float32Array.of(0.5, values[0]!, 2))).toBe('[0.5,7.0385307e-26,2]');
  });

  it('declines few values: none of the random ones of everyday magnitudes', () => {
    const next = xorshift(Date.now() >>> 0);
    const values = new Float32Array(100_000);
    for (let i = 0; i < values.length; i++) values[i] = Math.fround(((next() / 2 ** 32) - 0.5) * 2 ** ((next() % 40) - 20));
    // Each value on its own: a decline is rare enough that a hundred thousand draws should see none or a handful.
    let declined = 0;
    for (const v of values) if (addon.formatFloat32Json?.(Float32Array.of(v)) === null) declined++;
    expect(declined).toBeLessThan(10);
  });

  it('breaks a tie between two shortest decimals as formatFloat32 does: towards the larger magnitude', () => {
    // Each value lies exactly half-way between two shortest decimals that both read back as it.
    const ties = [2097152.25, 134457.125, 387490.625, -1160751.25, 0.000244140625];
    expect(native(Float32Array.from(ties))).toBe('[2097152.3,134457.13,387490.63,-1160751.3,0.00024414063]');
    expect(native(Float32Array.from(ties))).toBe(reference(Float32Array.from(ties)));
  });

  it('rejects non-finite values as formatFloat32 does, naming the first', () => {
    for (const [values, name] of [
      [[1, NaN, Infinity], 'NaN'],
      [[-Infinity], '-Infinity'],
      [[0.5, Infinity], 'Infinity'],
    ] as const) {
      const thrown = (() => {
        try {
          native(Float32Array.from(values));
        } catch (error) {
          return error;
        }
        return null;
      })();
      expect(thrown).toBeInstanceOf(RangeError);
      expect((thrown as RangeError).message).toBe(`cannot format the non-finite value ${name} as JSON`);
    }
    expect(() => formatFloatArray(new Float32Array([2, Infinity]))).toThrow(RangeError);
    expect(() => (addon.formatFloat32Json as (v: unknown) => string)(new Float64Array(1))).toThrow(TypeError);
    expect(() => (addon.formatFloat32Json as (v: unknown) => string)('1,2')).toThrow(TypeError);
  });
});
