/**
 * IEEE 754 half-precision conversion (reference numerics: exact, not fast).
 */

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** Converts the 16 bits of a half (0..0xffff) to the float it denotes. */
export function f16ToF32(h: number): number {
  const sign = (h & 0x8000) ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24; // zero and subnormals
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/**
 * Converts a number to the bits of the nearest half, rounding to nearest even (as the hardware
 * F16C conversion and ggml do). Overflow gives infinity; NaN gives a quiet NaN (0x7e00).
 * The input is first rounded to float32, as C code converting a float would see it.
 */
export function f32ToF16(x: number): number {
  f32Scratch[0] = x;
  const bits = u32Scratch[0];
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) return mant === 0 ? sign | 0x7c00 : sign | 0x7e00;
  // Unbiased exponent of the float32, rebiased for half.
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow
  if (e <= 0) {
    // Subnormal half (or zero): the value is mant24 * 2^(exp-150), the result counts 2^-24 units.
    if (e < -10) return sign; // below half the smallest subnormal: rounds to zero
    const m = mant | 0x800000; // implicit leading 1
    const shift = 14 - e; // 24-bit mantissa down to the subnormal grid
    return sign | roundShift(m, shift);
  }
  // Normal: keep 10 mantissa bits, round the 13 dropped ones; a carry bumps the exponent correctly.
  return sign | ((e << 10) + roundShift(mant, 13));
}

/** m >> shift rounded to nearest, ties to even. */
function roundShift(m: number, shift: number): number {
  const q = Math.floor(m / 2 ** shift);
  const rem = m - q * 2 ** shift;
  const half = 2 ** (shift - 1);
  if (rem > half || (rem === half && (q & 1) === 1)) return q + 1;
  return q;
}
