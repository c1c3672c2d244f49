/**
 * The memory a model will take, computed before loading, so that a device never starts a model
 * that would be OOM-killed later: weights (memory-mapped; every page is read per token) + KV cache
 * (allocated and touched at start) + forward-pass scratch + the runtime itself.
 */
import type { GgufFile } from "./gguf.ts";
import type { Qwen3Config } from "./config.ts";
import { KvCache } from "./kv_cache.ts";
import type { KvTypeName } from "../kernels/ffi.ts";

/**
 * Deno and the code, measured on x86_64 Linux with Deno 2.9 (RSS before the first model load:
 * 37-40 MB).
 */
export const RUNTIME_BASE_BYTES = 40 * 2 ** 20;
/**
 * Tokenizer tables per vocabulary entry (token strings, byte arrays, merge ranks, lookup maps,
 * and the header parse's garbage that V8 has not collected yet when decoding starts): measured
 * as peak RSS minus weights, KV and scratch on the 1.7B and 4B shapes (about 160 MB for Qwen3's
 * 151669 tokens).
 */
export const TOKENIZER_BYTES_PER_TOKEN = 1050;
/** The same during loading, before the garbage is collected (measured on the tiny shape). */
export const LOAD_PEAK_BYTES_PER_TOKEN = 1300;

/** What a planned configuration will use. */
export interface MemoryEstimate {
  weightsBytes: number;
  kvBytes: number;
  scratchBytes: number;
  runtimeBytes: number;
  totalBytes: number;
  /** KV bytes of one token in one slot. */
  kvBytesPerToken: number;
}

/** The serving shape an estimate is for (the planner that picks it is devices/budget.ts). */
export interface ServingShape {
  contextSize: number;
  parallel?: number;
  kvType?: KvTypeName;
  maxBatch?: number;
}

/** Computes the memory of serving `file` in `shape`. */
export function estimateMemory(
  file: GgufFile,
  config: Qwen3Config,
  shape: ServingShape,
): MemoryEstimate {
  const parallel = shape.parallel ?? 1;
  const maxBatch = Math.max(shape.maxBatch ?? 64, parallel);
  let weightsBytes = 0;
  for (const t of file.tensors.values()) weightsBytes += t.byteSize;
  const kvBytesPerToken = KvCache.bytesPerToken(config, shape.kvType ?? "f16");
  const kvBytes = parallel * shape.contextSize * kvBytesPerToken;
  const c = config;
  const qDim = c.nHead * c.headDim;
  const kvDim = c.nHeadKv * c.headDim;
  const actBytes = (n: number) => Math.ceil(n / 32) * 80; // d, q, sums and the reordered q, padded
  const perRow = 4 * (3 * c.nEmbd + 2 * qDim + 2 * kvDim + 2 * c.nFf) +
    2 * actBytes(c.nEmbd) + actBytes(qDim) + actBytes(c.nFf);
  const scratchBytes = maxBatch * perRow + parallel * c.nVocab * 4 +
    shape.contextSize * 4;
  const runtimeBytes = RUNTIME_BASE_BYTES +
    c.nVocab * TOKENIZER_BYTES_PER_TOKEN;
  const loadPeakBytes = RUNTIME_BASE_BYTES +
    c.nVocab * LOAD_PEAK_BYTES_PER_TOKEN;
  return {
    weightsBytes,
    kvBytes,
    scratchBytes,
    runtimeBytes,
    // Small models peak while loading (tokenizer construction), large ones while decoding.
    totalBytes: Math.max(
      loadPeakBytes,
      weightsBytes + kvBytes + scratchBytes + runtimeBytes,
    ),
    kvBytesPerToken,
  };
}
