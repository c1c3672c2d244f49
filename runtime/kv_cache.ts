/**
 * A bounded key/value cache for one sequence: allocated once, never grows.
 * Layout per layer: position-major, `[contextSize][nHeadKv * headDim]` elements of `kvType`.
 */
import type { Qwen3Config } from "./config.ts";
import { kvRowBytes, kvTypeCode, type KvTypeName } from "../kernels/ffi.ts";

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
  constructor(config: Qwen3Config, readonly contextSize: number, readonly type: KvTypeName = "f16") {
    if (!Number.isInteger(contextSize) || contextSize <= 0) {
      throw new RangeError(`KV cache context size must be a positive integer, got ${contextSize}`);
    }
    this.kvDim = config.nHeadKv * config.headDim;
    this.typeCode = kvTypeCode(type);
    this.rowBytes = kvRowBytes(this.typeCode, this.kvDim);
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
  static bytesPerToken(config: Qwen3Config, type: KvTypeName = "f16"): number {
    return 2 * config.nLayer * kvRowBytes(kvTypeCode(type), config.nHeadKv * config.headDim);
  }

  /** Throws {@link KvCacheFullError} unless `n` more tokens fit. */
  ensureRoom(n: number): void {
    if (this.length + n > this.contextSize) throw new KvCacheFullError(this.length + n, this.contextSize);
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
