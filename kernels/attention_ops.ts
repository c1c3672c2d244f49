/**
 * The attention half of a transformer layer with the model's shapes bound once: q/k head norms,
 * RoPE and the KV store of one token, and causal attention over the cache. The forward pass then
 * says what happens (which rows, which layer, which position) and not, on every call, the dozen
 * numbers that never change; the checked positional calls of {@link Kernels} do the work.
 * @module
 */

import { KernelError, type Kernels, kvRowBytes } from "./ffi.ts";

/** A model's attention shapes and RoPE (YaRN when `yarnFactor` > 1). */
export interface AttentionShape {
  nHead: number;
  nHeadKv: number;
  headDim: number;
  /** Epsilon of the per-head q/k RMS norms. */
  rmsEps: number;
  ropeBase: number;
  yarnFactor: number;
  /** Context the model was trained with (YaRN only; 0 otherwise). */
  yarnOrigCtx: number;
  /** Most positions one query row may see (sizes the scores scratch). */
  maxContext: number;
}

/**
 * One sequence's KV storage, layer by layer: position-major rows of `nHeadKv * headDim` elements
 * of KV type `typeCode`. A runtime `KvCache` is one.
 */
export interface KvLayers {
  readonly keys: readonly Uint8Array[];
  readonly values: readonly Uint8Array[];
  readonly typeCode: number;
}

/** The per-head norm weights of one layer. */
export interface QkNorms {
  readonly qNorm: Float32Array;
  readonly kNorm: Float32Array;
}

/** Attention steps of one model (see the module docs). */
export class AttentionOps {
  /** Floats of one row of query heads. */
  readonly qDim: number;
  /** Elements of one row of KV heads (the cache's stride between positions). */
  readonly kvDim: number;
  #k: Kernels;
  #s: AttentionShape;
  /** Scores of the two query heads sharing a KV head (single-row attention). */
  #scores: Float32Array;

  constructor(kernels: Kernels, shape: AttentionShape) {
    const { nHead, nHeadKv, headDim, maxContext } = shape;
    for (const [name, v] of Object.entries({ nHead, nHeadKv, headDim, maxContext })) {
      if (!(Number.isInteger(v) && v > 0)) {
        throw new KernelError(`attention shape: ${name} must be a positive integer, got ${v}`);
      }
    }
    this.#k = kernels;
    this.#s = { ...shape };
    this.qDim = nHead * headDim;
    this.kvDim = nHeadKv * headDim;
    this.#scores = new Float32Array(2 * maxContext);
  }

  /**
   * One token's q and k head norms, RoPE of both at `pos`, then k and v stored at position `pos`
   * of layer `layer` of `kv` (q and k change in place).
   */
  qkRopeStore(
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    norms: QkNorms,
    kv: KvLayers,
    layer: number,
    pos: number,
  ): void {
    const s = this.#s;
    const row = kvRowBytes(kv.typeCode, this.kvDim);
    this.#k.qkRopeStore(
      q,
      k,
      v,
      norms.qNorm,
      norms.kNorm,
      s.nHead,
      s.nHeadKv,
      s.headDim,
      s.rmsEps,
      pos,
      s.ropeBase,
      s.yarnFactor,
      s.yarnOrigCtx,
      kv.keys[layer].subarray(pos * row, (pos + 1) * row),
      kv.values[layer].subarray(pos * row, (pos + 1) * row),
      kv.typeCode,
    );
  }

  /**
   * Causal attention of `nRows` consecutive query rows of one sequence (`q` and `out` hold
   * `nRows * qDim` floats) over layer `layer` of `kv`: the last row sees positions 0..seen-1, each
   * earlier row one fewer. One row is a decode step; more are a prompt chunk, which reads each
   * block of the cache once for all its rows (same bits as row by row).
   */
  attend(q: Float32Array, kv: KvLayers, layer: number, nRows: number, seen: number, out: Float32Array): void {
    const s = this.#s;
    const keys = kv.keys[layer];
    const values = kv.values[layer];
    if (nRows === 1) {
      if (!(seen <= s.maxContext)) {
        throw new KernelError(`attention over ${seen} positions; bound for at most ${s.maxContext}`);
      }
      this.#k.attention(
        q,
        keys,
        values,
        kv.typeCode,
        s.nHead,
        s.nHeadKv,
        s.headDim,
        seen,
        this.kvDim,
        out,
        this.#scores,
      );
    } else {
      this.#k.attentionRows(
        q,
        keys,
        values,
        kv.typeCode,
        s.nHead,
        s.nHeadKv,
        s.headDim,
        nRows,
        seen,
        this.kvDim,
        out,
      );
    }
  }
}
