/**
 * Context sliding: drop `discard` positions after the first `keep` ones and move the rest down.
 * The moved keys are re-roped by -discard positions in the kernel library (`Kernels.kvShift`),
 * with the same RoPE frequencies (YaRN included) and KV codec as freshly computed keys, so the
 * numerics have one owner. Values carry no position and are only moved.
 */
import type { Kernels } from "../kernels/ffi.ts";
import type { Qwen3Config } from "./config.ts";
import type { KvCache } from "./kv_cache.ts";

/** Slides the cache in place; returns the number of positions dropped. */
export function slideKv(kernels: Kernels, kv: KvCache, config: Qwen3Config, keep: number, discard: number): number {
  discard = Math.min(discard, kv.length - keep);
  if (keep < 0 || discard <= 0) return 0;
  const row = kv.rowBytes;
  const moved = kv.length - keep - discard;
  const yarnFactor = config.ropeScaling.type === "yarn" ? config.ropeScaling.factor : 1;
  for (let l = 0; l < kv.keys.length; l++) {
    kv.values[l].copyWithin(keep * row, (keep + discard) * row, kv.length * row);
    const keys = kv.keys[l];
    keys.copyWithin(keep * row, (keep + discard) * row, kv.length * row);
    kernels.kvShift(
      keys.subarray(keep * row, (keep + moved) * row),
      kv.typeCode,
      config.nHeadKv,
      config.headDim,
      moved,
      -discard,
      config.ropeBase,
      yarnFactor,
      config.ropeScaling.originalContextLength,
    );
  }
  // The moved positions are close to, not bit-identical with, a fresh computation: hide them
  // from the prefix cache so that reuse never changes an answer.
  kv.tokens.fill(-1, keep, kv.length);
  kv.length -= discard;
  return discard;
}
