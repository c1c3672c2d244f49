/**
 * Reference (de)quantization of the supported weight formats, written to be obviously correct
 * rather than fast. Kernels are tested against these; formulas are those of BONSAI.md.
 */
import { f16ToF32, f32ToF16 } from "./f16.ts";
import { byteSizeOf, FORMATS, type WeightFormat } from "./ggml_types.ts";

/**
 * Decodes `n` consecutive elements of `format` starting at `bytes[byteOffset]` (which must be the
 * start of a block) into `out` (allocated if not given).
 */
export function dequantizeRow(
  format: WeightFormat,
  bytes: Uint8Array,
  byteOffset: number,
  n: number,
  out?: Float32Array,
): Float32Array {
  const size = byteSizeOf(format, n);
  if (byteOffset < 0 || byteOffset + size > bytes.length) {
    throw new RangeError(
      `dequantizeRow: ${n} ${format.name} elements need bytes ${byteOffset}..${byteOffset + size}, ` +
        `buffer has ${bytes.length}`,
    );
  }
  const y = out ?? new Float32Array(n);
  if (y.length < n) {
    throw new RangeError(
      `dequantizeRow: output holds ${y.length} < ${n} elements`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const nb = n / format.blockSize;
  switch (format.name) {
    case "F32":
      for (let i = 0; i < n; i++) {
        y[i] = view.getFloat32(byteOffset + 4 * i, true);
      }
      break;
    case "F16":
      for (let i = 0; i < n; i++) {
        y[i] = f16ToF32(view.getUint16(byteOffset + 2 * i, true));
      }
      break;
    case "Q8_0":
      for (let b = 0; b < nb; b++) {
        const p = byteOffset + b * 34;
        const d = f16ToF32(view.getUint16(p, true));
        for (let j = 0; j < 32; j++) {
          y[b * 32 + j] = d * view.getInt8(p + 2 + j);
        }
      }
      break;
    case "Q1_0":
      for (let b = 0; b < nb; b++) {
        const p = byteOffset + b * 18;
        const d = f16ToF32(view.getUint16(p, true));
        for (let j = 0; j < 128; j++) {
          const bit = (bytes[p + 2 + (j >> 3)] >> (j & 7)) & 1;
          y[b * 128 + j] = bit ? d : -d;
        }
      }
      break;
    case "Q2_0":
    case "Q2_0_g64": {
      const bs = format.blockSize;
      for (let b = 0; b < nb; b++) {
        const p = byteOffset + b * format.blockBytes;
        const d = f16ToF32(view.getUint16(p, true));
        for (let j = 0; j < bs; j++) {
          const code = (bytes[p + 2 + (j >> 2)] >> (2 * (j & 3))) & 3;
          y[b * bs + j] = (code - 1) * d;
        }
      }
      break;
    }
    default:
      throw new Error(
        `dequantizeRow: unsupported format ${(format as WeightFormat).name}`,
      );
  }
  return y;
}

/** roundf() of C: halves round away from zero (Math.round rounds -2.5 to -2). */
function roundAway(v: number): number {
  return v < 0 ? -Math.round(-v) : Math.round(v);
}

function checkWhole(x: Float32Array, blockSize: number, name: string): number {
  if (x.length % blockSize !== 0) {
    throw new RangeError(
      `${name}: ${x.length} elements is not a multiple of ${blockSize}`,
    );
  }
  return x.length / blockSize;
}

/** Reference Q1_0 quantizer: per 128 elements d = mean |x|, bit = x >= 0. */
export function quantizeQ1_0(x: Float32Array): Uint8Array {
  const nb = checkWhole(x, 128, "quantizeQ1_0");
  const out = new Uint8Array(nb * 18);
  const view = new DataView(out.buffer);
  for (let b = 0; b < nb; b++) {
    let sum = 0;
    for (let j = 0; j < 128; j++) sum += Math.abs(x[b * 128 + j]);
    view.setUint16(b * 18, f32ToF16(sum / 128), true);
    for (let j = 0; j < 128; j++) {
      if (x[b * 128 + j] >= 0) out[b * 18 + 2 + (j >> 3)] |= 1 << (j & 7);
    }
  }
  return out;
}

/** Reference Q2_0 quantizer: per block d = max |x|, code = clamp(round(x/d) + 1, 0, 2). */
export function quantizeQ2_0(x: Float32Array, blockSize: 128 | 64): Uint8Array {
  const format = blockSize === 128 ? FORMATS.Q2_0 : FORMATS.Q2_0_g64;
  const nb = checkWhole(x, blockSize, "quantizeQ2_0");
  const out = new Uint8Array(nb * format.blockBytes);
  const view = new DataView(out.buffer);
  for (let b = 0; b < nb; b++) {
    const base = b * blockSize;
    const p = b * format.blockBytes;
    let amax = 0;
    for (let j = 0; j < blockSize; j++) {
      amax = Math.max(amax, Math.abs(x[base + j]));
    }
    view.setUint16(p, f32ToF16(amax), true);
    const inv = amax > 0 ? Math.fround(1 / amax) : 0;
    for (let j = 0; j < blockSize; j++) {
      const code = Math.min(
        2,
        Math.max(0, roundAway(Math.fround(x[base + j] * inv)) + 1),
      );
      out[p + 2 + (j >> 2)] |= code << (2 * (j & 3));
    }
  }
  return out;
}

/** Reference Q8_0 quantizer (as ggml): per 32 elements d = max |x| / 127, q = round(x / d). */
export function quantizeQ8_0(x: Float32Array): Uint8Array {
  const nb = checkWhole(x, 32, "quantizeQ8_0");
  const out = new Uint8Array(nb * 34);
  const view = new DataView(out.buffer);
  for (let b = 0; b < nb; b++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]));
    // float32 arithmetic as in ggml's quantize_row_q8_0_ref, so kernels can match it exactly
    const d = Math.fround(amax / 127);
    const inv = d > 0 ? Math.fround(1 / d) : 0;
    view.setUint16(b * 34, f32ToF16(d), true);
    for (let j = 0; j < 32; j++) {
      view.setInt8(
        b * 34 + 2 + j,
        Math.max(
          -127,
          Math.min(127, roundAway(Math.fround(x[b * 32 + j] * inv))),
        ),
      );
    }
  }
  return out;
}
