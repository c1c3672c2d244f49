/**
 * Context sliding: drop `discard` positions after the first `keep` ones and move the rest down,
 * re-rotating the cached keys by -discard positions so that RoPE sees them where they now are.
 * (RoPE is a rotation by pos * freq_i; rotating again by delta * freq_i moves a key from pos to
 * pos + delta. YaRN's magnitude factor is already in the cached keys, so only the angle moves.)
 */
import type { Qwen3Config } from "./config.ts";
import type { KvCache, KvType } from "./kv_cache.ts";
import { f16ToF32, f32ToF16 } from "./f16.ts";

/** Per-pair rotation frequencies of the file's RoPE (YaRN-interpolated when declared). */
export function ropeFrequencies(c: Qwen3Config): Float64Array {
  const nDims = c.headDim;
  const half = nDims / 2;
  const freqs = new Float64Array(half);
  const yarn = c.ropeScaling.type === "yarn";
  const factor = c.ropeScaling.factor;
  const corrDim = (beta: number) =>
    (nDims * Math.log(c.ropeScaling.originalContextLength / (beta * 2 * Math.PI))) / (2 * Math.log(c.ropeBase));
  const low = Math.max(0, Math.floor(corrDim(32)));
  const high = Math.min(nDims - 1, Math.ceil(corrDim(1)));
  for (let i = 0; i < half; i++) {
    const extrap = Math.pow(c.ropeBase, (-2 * i) / nDims);
    if (!yarn) {
      freqs[i] = extrap;
      continue;
    }
    const ramp = 1 - Math.min(1, Math.max(0, (i - low) / Math.max(0.001, high - low)));
    freqs[i] = (extrap / factor) * (1 - ramp) + extrap * ramp;
  }
  return freqs;
}

/** Slides the cache in place; returns the number of positions dropped. */
export function slideKv(kv: KvCache, config: Qwen3Config, keep: number, discard: number): number {
  discard = Math.min(discard, kv.length - keep);
  if (keep < 0 || discard <= 0) return 0;
  const row = kv.rowBytes;
  const moved = kv.length - keep - discard;
  const freqs = ropeFrequencies(config);
  const cos = Float64Array.from(freqs, (f) => Math.cos(-discard * f));
  const sin = Float64Array.from(freqs, (f) => Math.sin(-discard * f));
  const half = config.headDim / 2;
  const x = new Float32Array(kv.kvDim);
  for (let l = 0; l < kv.keys.length; l++) {
    kv.values[l].copyWithin(keep * row, (keep + discard) * row, kv.length * row);
    const keys = kv.keys[l];
    keys.copyWithin(keep * row, (keep + discard) * row, kv.length * row);
    for (let p = keep; p < keep + moved; p++) {
      const slot = keys.subarray(p * row, (p + 1) * row);
      decodeRow(kv.type, slot, x);
      for (let base = 0; base < x.length; base += config.headDim) {
        for (let i = 0; i < half; i++) {
          const a = x[base + i];
          const b = x[base + i + half];
          x[base + i] = a * cos[i] - b * sin[i];
          x[base + i + half] = a * sin[i] + b * cos[i];
        }
      }
      encodeRow(kv.type, x, slot);
    }
  }
  // The moved positions are close to, not bit-identical with, a fresh computation: hide them
  // from the prefix cache so that reuse never changes an answer.
  kv.tokens.fill(-1, keep, kv.length);
  kv.length -= discard;
  return discard;
}

/** One cached row to f32 (q8: blocks of an f16 scale and 32 int8). */
function decodeRow(type: KvType, bytes: Uint8Array, out: Float32Array): void {
  if (type === "f32") out.set(new Float32Array(bytes.buffer, bytes.byteOffset, out.length));
  else if (type === "f16") out.set(new Float16Array(bytes.buffer, bytes.byteOffset, out.length));
  else {
    for (let b = 0; b < out.length / 32; b++) {
      const d = f16ToF32(bytes[b * 34] | (bytes[b * 34 + 1] << 8));
      for (let i = 0; i < 32; i++) out[b * 32 + i] = d * ((bytes[b * 34 + 2 + i] << 24) >> 24);
    }
  }
}

/** f32 back into a cached row, quantizing as the kernels' `bk_store_kv` does. */
function encodeRow(type: KvType, x: Float32Array, bytes: Uint8Array): void {
  if (type === "f32") new Float32Array(bytes.buffer, bytes.byteOffset, x.length).set(x);
  else if (type === "f16") new Float16Array(bytes.buffer, bytes.byteOffset, x.length).set(x);
  else {
    for (let b = 0; b < x.length / 32; b++) {
      let amax = 0;
      for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(x[b * 32 + i]));
      const h = f32ToF16(amax / 127);
      const d = f16ToF32(h);
      bytes[b * 34] = h & 0xff;
      bytes[b * 34 + 1] = h >> 8;
      for (let i = 0; i < 32; i++) {
        const q = d === 0 ? 0 : Math.max(-127, Math.min(127, Math.round(x[b * 32 + i] / d)));
        bytes[b * 34 + 2 + i] = q & 0xff;
      }
    }
  }
}
