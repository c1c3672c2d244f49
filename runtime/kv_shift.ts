/**
 * Context sliding: drop `discard` positions after the first `keep` ones and move the rest down,
 * re-rotating the cached keys by -discard positions so that RoPE sees them where they now are.
 * (RoPE is a rotation by pos * freq_i; rotating again by delta * freq_i moves a key from pos to
 * pos + delta. YaRN's magnitude factor is already in the cached keys, so only the angle moves.)
 */
import type { Qwen3Config } from "./config.ts";
import type { KvCache } from "./kv_cache.ts";

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
  const dim = kv.kvDim;
  const from = (keep + discard) * dim;
  const to = keep * dim;
  const count = (kv.length - keep - discard) * dim;
  const freqs = ropeFrequencies(config);
  const cos = freqs.map((f) => Math.cos(-discard * f));
  const sin = freqs.map((f) => Math.sin(-discard * f));
  const half = config.headDim / 2;
  for (let l = 0; l < kv.keys.length; l++) {
    for (const [buf, isKey] of [[kv.keys[l], true], [kv.values[l], false]] as const) {
      const view = kv.type === "f16"
        ? new Float16Array(buf.buffer, buf.byteOffset, buf.byteLength / 2)
        : new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
      view.copyWithin(to, from, from + count);
      if (!isKey) continue;
      for (let base = to; base < to + count; base += config.headDim) {
        for (let i = 0; i < half; i++) {
          const a = view[base + i];
          const b = view[base + i + half];
          view[base + i] = a * cos[i] - b * sin[i];
          view[base + i + half] = a * sin[i] + b * cos[i];
        }
      }
    }
  }
  // The moved positions are close to, not bit-identical with, a fresh computation: hide them
  // from the prefix cache so that reuse never changes an answer.
  kv.tokens.fill(-1, keep, kv.length);
  kv.length -= discard;
  return discard;
}
