/**
 * Attention over the KV cache alone, per generated token, on the model's real geometry: one query
 * against `n_kv` cached positions in every layer, each layer with its own f16 K/V cache (so the
 * cache streams from memory as in a real decode step, not from L2).
 *
 * Usage: deno run -A bench/attention.ts [--layers 28] [--heads 16] [--kv-heads 8] [--head-dim 128]
 *        [--positions 64,600,2000] [--threads 1,2]
 */
import { parseArgs } from "node:util";
import { Kernels, KvType } from "../kernels/ffi.ts";

/** Time of one token's attention (all layers) at one context length and thread count. */
export interface AttentionTiming {
  threads: number;
  positions: number;
  msPerToken: number;
}

/** Geometry of the attention being measured. */
export interface AttentionShape {
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
}

/** Measures attention per token for each thread count and context length. */
export function benchAttention(
  k: Kernels,
  shape: AttentionShape,
  positions: number[],
  threads: number[],
): AttentionTiming[] {
  const kvDim = shape.kvHeads * shape.headDim;
  const maxPos = Math.max(...positions);
  const row = new Float32Array(kvDim);
  const caches = Array.from({ length: shape.layers }, (_, l) => {
    const bytes = new Uint8Array(maxPos * kvDim * 2);
    for (let p = 0; p < maxPos; p++) {
      for (let i = 0; i < kvDim; i++) row[i] = Math.sin(0.37 * i + 1.3 * p + l);
      k.storeKv(row, bytes.subarray(p * kvDim * 2, (p + 1) * kvDim * 2), KvType.F16);
    }
    return bytes;
  });
  const q = Float32Array.from({ length: shape.heads * shape.headDim }, (_, i) => Math.cos(i));
  const out = new Float32Array(q.length);
  const scratch = new Float32Array(2 * maxPos);
  const results: AttentionTiming[] = [];
  for (const t of threads) {
    k.setThreads(t);
    for (const nKv of positions) {
      const token = () => {
        for (const kv of caches) {
          k.attention(q, kv, kv, KvType.F16, shape.heads, shape.kvHeads, shape.headDim, nKv, kvDim, out, scratch);
        }
      };
      token();
      const reps = Math.max(3, Math.round(2e8 / (shape.layers * shape.heads * nKv * shape.headDim)));
      const start = performance.now();
      for (let i = 0; i < reps; i++) token();
      results.push({ threads: k.threads(), positions: nKv, msPerToken: (performance.now() - start) / reps });
    }
  }
  return results;
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      layers: { type: "string", default: "28" },
      heads: { type: "string", default: "16" },
      "kv-heads": { type: "string", default: "8" },
      "head-dim": { type: "string", default: "128" },
      positions: { type: "string", default: "64,600,2000" },
      threads: { type: "string", default: "1,2" },
    },
  });
  const list = (s: string) => s.split(",").map(Number);
  const shape = {
    layers: Number(values.layers),
    heads: Number(values.heads),
    kvHeads: Number(values["kv-heads"]),
    headDim: Number(values["head-dim"]),
  };
  const k = Kernels.load();
  for (const r of benchAttention(k, shape, list(values.positions), list(values.threads))) {
    console.log(`threads ${r.threads}  positions ${r.positions}: ${r.msPerToken.toFixed(2)} ms per token`);
  }
}
