/**
 * The Qwen3 forward pass, one token at a time, read top to bottom (llama2.c style).
 * All buffers are allocated once here; each step only calls kernels.
 */
import type { Kernels } from "../kernels/ffi.ts";
import type { Qwen3Config } from "./config.ts";
import type { ModelWeights } from "./weights.ts";
import type { KvCache } from "./kv_cache.ts";

/** Scratch state for running the model on one sequence at a time. */
export class Forward {
  readonly logits: Float32Array;
  private readonly x: Float32Array;
  private readonly h: Float32Array;
  private readonly q: Float32Array;
  private readonly k: Float32Array;
  private readonly v: Float32Array;
  private readonly attnOut: Float32Array;
  private readonly proj: Float32Array;
  private readonly gate: Float32Array;
  private readonly up: Float32Array;
  private readonly scores: Float32Array;
  private readonly actEmbd: Uint8Array;
  private readonly actQ: Uint8Array;
  private readonly actFf: Uint8Array;
  private readonly yarnFactor: number;

  constructor(
    private readonly kernels: Kernels,
    readonly config: Qwen3Config,
    private readonly weights: ModelWeights,
    maxContext: number,
  ) {
    const c = config;
    const qDim = c.nHead * c.headDim;
    const kvDim = c.nHeadKv * c.headDim;
    this.x = new Float32Array(c.nEmbd);
    this.h = new Float32Array(c.nEmbd);
    this.q = new Float32Array(qDim);
    this.k = new Float32Array(kvDim);
    this.v = new Float32Array(kvDim);
    this.attnOut = new Float32Array(qDim);
    this.proj = new Float32Array(c.nEmbd);
    this.gate = new Float32Array(c.nFf);
    this.up = new Float32Array(c.nFf);
    this.scores = new Float32Array(maxContext);
    this.logits = new Float32Array(c.nVocab);
    this.actEmbd = new Uint8Array(kernels.actBytes(c.nEmbd));
    this.actQ = new Uint8Array(kernels.actBytes(qDim));
    this.actFf = new Uint8Array(kernels.actBytes(c.nFf));
    this.yarnFactor = c.ropeScaling.type === "yarn" ? c.ropeScaling.factor : 1;
  }

  /**
   * Runs one token at position `kv.length`, appends its keys and values to `kv`, and (unless
   * `computeLogits` is false, as for all but the last prompt token) fills {@link logits}.
   */
  step(token: number, kv: KvCache, computeLogits = true): Float32Array {
    const { kernels: K, config: c, weights: w } = this;
    if (!Number.isInteger(token) || token < 0 || token >= c.nVocab) {
      throw new RangeError(`token id ${token} outside the vocabulary (0..${c.nVocab - 1})`);
    }
    kv.ensureRoom(1);
    const pos = kv.length;
    const { x, h, q, k, v, attnOut, proj, gate, up } = this;
    K.dequantRow(w.tokenEmbd, token, x);

    for (let l = 0; l < c.nLayer; l++) {
      const L = w.layers[l];
      // Attention block.
      K.rmsnorm(x, L.attnNorm, h, c.rmsEps);
      K.quantizeAct(h, this.actEmbd);
      K.matvec(L.wq, this.actEmbd, q);
      K.matvec(L.wk, this.actEmbd, k);
      K.matvec(L.wv, this.actEmbd, v);
      K.rmsnormHeads(q, L.qNorm, c.nHead, c.headDim, c.rmsEps);
      K.rmsnormHeads(k, L.kNorm, c.nHeadKv, c.headDim, c.rmsEps);
      this.rope(q, c.nHead, pos);
      this.rope(k, c.nHeadKv, pos);
      K.storeKv(k, kv.slot(kv.keys[l], pos), kv.typeCode);
      K.storeKv(v, kv.slot(kv.values[l], pos), kv.typeCode);
      K.attention(
        q, kv.keys[l], kv.values[l], kv.typeCode,
        c.nHead, c.nHeadKv, c.headDim, pos + 1, kv.kvDim,
        attnOut, this.scores,
      );
      K.quantizeAct(attnOut, this.actQ);
      K.matvec(L.wo, this.actQ, proj);
      K.add(x, proj);

      // Feed-forward block (SwiGLU).
      K.rmsnorm(x, L.ffnNorm, h, c.rmsEps);
      K.quantizeAct(h, this.actEmbd);
      K.matvec(L.wGate, this.actEmbd, gate);
      K.matvec(L.wUp, this.actEmbd, up);
      K.siluMul(gate, up, gate);
      K.quantizeAct(gate, this.actFf);
      K.matvec(L.wDown, this.actFf, proj);
      K.add(x, proj);
    }
    kv.length = pos + 1;

    if (computeLogits) {
      K.rmsnorm(x, w.outputNorm, h, c.rmsEps);
      K.quantizeAct(h, this.actEmbd);
      K.matvec(w.output, this.actEmbd, this.logits);
    }
    return this.logits;
  }

  private rope(vec: Float32Array, nHeads: number, pos: number): void {
    const c = this.config;
    this.kernels.ropeNeox(
      vec, nHeads, c.headDim, c.headDim, pos, c.ropeBase,
      this.yarnFactor, c.ropeScaling.originalContextLength,
    );
  }
}
