/**
 * The memory a model will take, computed before loading, so that a device never starts a model
 * that would be OOM-killed later: weights (memory-mapped; every page is read per token) + KV cache
 * (allocated and touched at start) + forward-pass scratch + the runtime itself.
 */
import type { GgufFile } from "./gguf.ts";
import type { Qwen3Config } from "./config.ts";
import { KvCache, type KvType } from "./kv_cache.ts";

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

/** The serving shape the estimate is for. */
export interface MemoryPlan {
  contextSize: number;
  parallel?: number;
  kvType?: KvType;
  maxBatch?: number;
}

/** A configuration that does not fit its memory budget. */
export class MemoryBudgetError extends Error {
  readonly code = "MEMORY_BUDGET";
  constructor(message: string, readonly estimate: MemoryEstimate, readonly fittingContext: number) {
    super(message);
    this.name = "MemoryBudgetError";
  }
}

/** Computes the memory of serving `file` with `plan`. */
export function estimateMemory(file: GgufFile, config: Qwen3Config, plan: MemoryPlan): MemoryEstimate {
  const parallel = plan.parallel ?? 1;
  const maxBatch = Math.max(plan.maxBatch ?? 64, parallel);
  let weightsBytes = 0;
  for (const t of file.tensors.values()) weightsBytes += t.byteSize;
  const kvBytesPerToken = KvCache.bytesPerToken(config, plan.kvType ?? "f16");
  const kvBytes = parallel * plan.contextSize * kvBytesPerToken;
  const c = config;
  const qDim = c.nHead * c.headDim;
  const kvDim = c.nHeadKv * c.headDim;
  const actBytes = (n: number) => Math.ceil(n / 32) * 80; // d, q, sums and the reordered q, padded
  const perRow = 4 * (3 * c.nEmbd + 2 * qDim + 2 * kvDim + 2 * c.nFf) +
    2 * actBytes(c.nEmbd) + actBytes(qDim) + actBytes(c.nFf);
  const scratchBytes = maxBatch * perRow + parallel * c.nVocab * 4 + plan.contextSize * 4;
  const runtimeBytes = RUNTIME_BASE_BYTES + c.nVocab * TOKENIZER_BYTES_PER_TOKEN;
  const loadPeakBytes = RUNTIME_BASE_BYTES + c.nVocab * LOAD_PEAK_BYTES_PER_TOKEN;
  return {
    weightsBytes,
    kvBytes,
    scratchBytes,
    runtimeBytes,
    // Small models peak while loading (tokenizer construction), large ones while decoding.
    totalBytes: Math.max(loadPeakBytes, weightsBytes + kvBytes + scratchBytes + runtimeBytes),
    kvBytesPerToken,
  };
}

/** Throws {@link MemoryBudgetError} (saying what would fit) when `plan` needs more than `budgetBytes`. */
export function checkMemoryBudget(
  file: GgufFile,
  config: Qwen3Config,
  plan: MemoryPlan,
  budgetBytes: number,
): MemoryEstimate {
  const est = estimateMemory(file, config, plan);
  if (est.totalBytes <= budgetBytes) return est;
  const parallel = plan.parallel ?? 1;
  const loadPeak = RUNTIME_BASE_BYTES + config.nVocab * LOAD_PEAK_BYTES_PER_TOKEN;
  const fixed = est.weightsBytes + est.runtimeBytes + est.scratchBytes - plan.contextSize * 4;
  const perToken = parallel * est.kvBytesPerToken + 4;
  const fitting = loadPeak > budgetBytes ? 0 : Math.floor((budgetBytes - fixed) / perToken / 256) * 256;
  const parts = `weights ${mib(est.weightsBytes)}, KV cache ${mib(est.kvBytes)} for ` +
    `${parallel} x ${plan.contextSize} tokens, scratch ${mib(est.scratchBytes)}, runtime ${mib(est.runtimeBytes)}`;
  const advice = fitting >= 256
    ? `a context of ${fitting} tokens would fit (--ctx ${fitting}${parallel > 1 ? `, or fewer parallel slots` : ""})`
    : `even a 256-token context does not fit: this model needs a device with more memory, or a smaller model`;
  throw new MemoryBudgetError(
    `model needs ${mib(est.totalBytes)} (${parts}) but the memory budget is ${mib(budgetBytes)}; ${advice}`,
    est,
    Math.max(0, fitting),
  );
}

/** Parses a size such as `1.5G`, `800M`, `512MiB` or a plain byte count. */
export function parseByteSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$/i.exec(text);
  if (!m) throw new RangeError(`not a size: '${text}' (use e.g. 512M, 1.5G or a byte count)`);
  const scale = { "": 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 }[m[2].toLowerCase() as "" | "k" | "m" | "g" | "t"];
  return Math.round(Number(m[1]) * scale);
}

function mib(n: number): string {
  return `${(n / 2 ** 20).toFixed(0)} MiB`;
}
