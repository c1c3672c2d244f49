/**
 * A bounded key/value cache for one sequence: allocated once, never grows.
 * Layout per layer: position-major, `[contextSize][nHeadKv * headDim]` elements of `kvType`.
 */
import type { Qwen3Config } from "./config.ts";

/**
 * Element type of the cache: f16 halves the memory with no visible quality cost; q8 (blocks of
 * 32 with an f16 scale, 34 bytes per 32 elements) nearly halves it again.
 */
export type KvType = "f32" | "f16" | "q8";

/** Kernel code of each {@link KvType} (matches `bk_store_kv` / `bk_attention`). */
export const KV_TYPE_CODE: Record<KvType, number> = { f32: 0, f16: 1, q8: 2 };

/** Bytes of one position's keys (or values) of one layer: `kvDim` elements of `type`. */
export function kvRowBytes(type: KvType, kvDim: number): number {
  if (type === "f32") return 4 * kvDim;
  if (type === "f16") return 2 * kvDim;
  if (kvDim % 32 !== 0) throw new RangeError(`a q8 KV cache needs kv width a multiple of 32, got ${kvDim}`);
  return (kvDim / 32) * 34;
}

/** Raised when a sequence would grow past the cache. */
export class KvCacheFullError extends Error {
  readonly code = "CONTEXT_FULL";
  constructor(readonly needed: number, readonly contextSize: number) {
    super(`context full: ${needed} tokens needed, the KV cache holds ${contextSize}`);
    this.name = "KvCacheFullError";
  }
}

/** Per-sequence KV storage. */
export class KvCache {
  readonly keys: Uint8Array[] = [];
  readonly values: Uint8Array[] = [];
  readonly kvDim: number;
  readonly typeCode: number;
  /** Bytes of one position in one layer's K (or V) buffer. */
  readonly rowBytes: number;
  /** Positions filled so far. */
  length = 0;
  /** The token at each filled position (what the prefix cache matches against). */
  readonly tokens: Int32Array;

  /** `contextSize`: the positions the cache holds (its size in tokens). */
  constructor(config: Qwen3Config, readonly contextSize: number, readonly type: KvType = "f16") {
    if (!Number.isInteger(contextSize) || contextSize <= 0) {
      throw new RangeError(`KV cache context size must be a positive integer, got ${contextSize}`);
    }
    this.kvDim = config.nHeadKv * config.headDim;
    this.typeCode = KV_TYPE_CODE[type];
    if (!(type in KV_TYPE_CODE)) throw new RangeError(`unknown KV cache type '${type}' (f32, f16 or q8)`);
    this.rowBytes = kvRowBytes(type, this.kvDim);
    this.tokens = new Int32Array(contextSize);
    const layerBytes = contextSize * this.rowBytes;
    for (let l = 0; l < config.nLayer; l++) {
      // Written once so the pages are really committed now: a device out of memory fails at
      // start, never in the middle of an answer.
      this.keys.push(new Uint8Array(layerBytes).fill(0));
      this.values.push(new Uint8Array(layerBytes).fill(0));
    }
  }

  /** Bytes of cache one token occupies across all layers (K and V). */
  static bytesPerToken(config: Qwen3Config, type: KvType = "f16"): number {
    return 2 * config.nLayer * kvRowBytes(type, config.nHeadKv * config.headDim);
  }

  /** Total bytes allocated. */
  get bytes(): number {
    return 2 * this.keys.length * this.keys[0].length;
  }

  /** Throws {@link KvCacheFullError} unless `n` more tokens fit. */
  ensureRoom(n: number): void {
    if (this.length + n > this.contextSize) throw new KvCacheFullError(this.length + n, this.contextSize);
  }

  /** The byte slot of position `pos` in one layer's K or V buffer. */
  slot(buffer: Uint8Array, pos: number): Uint8Array {
    return buffer.subarray(pos * this.rowBytes, (pos + 1) * this.rowBytes);
  }

  /** Forgets every position (the memory stays allocated). */
  clear(): void {
    this.length = 0;
  }

  /** How many leading positions hold exactly `prompt`'s first tokens. */
  commonPrefix(prompt: ArrayLike<number>): number {
    const n = Math.min(this.length, prompt.length);
    let i = 0;
    while (i < n && this.tokens[i] === prompt[i]) i++;
    return i;
  }

  /** Keeps only the first `n` positions. */
  truncate(n: number): void {
    this.length = Math.min(this.length, Math.max(0, n));
  }
}
