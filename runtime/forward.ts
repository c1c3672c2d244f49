/**
 * The Qwen3 forward pass, read top to bottom (llama2.c style), over a batch of rows: each row is
 * one token of one sequence. Rows of several sequences decode together so that each step reads
 * the weights once (continuous batching); rows of one sequence prefill a prompt chunk at once.
 * All buffers are allocated once here; a step only calls kernels, with the model's shapes bound
 * once (`prepareMatvecMulti`, {@link AttentionOps}).
 *
 * The specification is `test/reference_forward.ts`: the same model written plainly in f64 (no
 * kernels, no batching), which `test/forward_test.ts` compares this pass against.
 */
import type { Kernels, KTensor } from "../kernels/ffi.ts";
import { AttentionOps } from "../kernels/attention_ops.ts";
import type { Qwen3Config } from "./config.ts";
import type { ModelWeights } from "./weights.ts";
import type { KvCache } from "./kv_cache.ts";

/** One token to run: it goes at position `kv.length` of its sequence's cache. */
export interface BatchRow {
  token: number;
  kv: KvCache;
  /** Compute logits after this token (the last prompt token, or a decode step). */
  wantLogits: boolean;
}

/** Scratch state for running the model; reused across calls. */
export class Forward {
  /** Logits of the rows that asked for them, in row order: `nVocab` floats each. */
  readonly logits: Float32Array;
  readonly maxBatch: number;
  private readonly x: Float32Array;
  private readonly h: Float32Array;
  private readonly q: Float32Array;
  private readonly k: Float32Array;
  private readonly v: Float32Array;
  private readonly attnOut: Float32Array;
  private readonly proj: Float32Array;
  private readonly gate: Float32Array;
  private readonly up: Float32Array;
  private readonly actEmbd: Uint8Array;
  private readonly actQ: Uint8Array;
  private readonly actFf: Uint8Array;
  private readonly actEmbdBytes: number;
  private readonly actQBytes: number;
  private readonly actFfBytes: number;
  private readonly qDim: number;
  private readonly kvDim: number;
  /** q/k norms, RoPE, KV store and attention with this model's shapes. */
  private readonly attn: AttentionOps;
  /** Row `r` of q, k and v (views made once). */
  private readonly qRow: Float32Array[];
  private readonly kRow: Float32Array[];
  private readonly vRow: Float32Array[];
  /** Per layer, single-row q/k/v and gate/up projections as one pool dispatch each (decode path). */
  private readonly qkv: ((act: Uint8Array) => void)[];
  private readonly gateUp: ((act: Uint8Array) => void)[];

  constructor(
    private readonly kernels: Kernels,
    readonly config: Qwen3Config,
    private readonly weights: ModelWeights,
    maxContext: number,
    opts: { maxBatch?: number; maxLogitRows?: number } = {},
  ) {
    const c = config;
    const B = this.maxBatch = opts.maxBatch ?? 1;
    this.qDim = c.nHead * c.headDim;
    this.kvDim = c.nHeadKv * c.headDim;
    this.x = new Float32Array(B * c.nEmbd);
    this.h = new Float32Array(B * c.nEmbd);
    this.q = new Float32Array(B * this.qDim);
    this.k = new Float32Array(B * this.kvDim);
    this.v = new Float32Array(B * this.kvDim);
    this.attnOut = new Float32Array(B * this.qDim);
    this.qRow = Array.from({ length: B }, (_, r) => this.rowOf(this.q, r, this.qDim));
    this.kRow = Array.from({ length: B }, (_, r) => this.rowOf(this.k, r, this.kvDim));
    this.vRow = Array.from({ length: B }, (_, r) => this.rowOf(this.v, r, this.kvDim));
    this.proj = new Float32Array(B * c.nEmbd);
    this.gate = new Float32Array(B * c.nFf);
    this.up = new Float32Array(B * c.nFf);
    this.logits = new Float32Array((opts.maxLogitRows ?? B) * c.nVocab);
    this.actEmbdBytes = kernels.actBytes(c.nEmbd);
    this.actQBytes = kernels.actBytes(this.qDim);
    this.actFfBytes = kernels.actBytes(c.nFf);
    this.actEmbd = new Uint8Array(B * this.actEmbdBytes);
    this.actQ = new Uint8Array(B * this.actQBytes);
    this.actFf = new Uint8Array(B * this.actFfBytes);
    this.attn = new AttentionOps(kernels, {
      nHead: c.nHead,
      nHeadKv: c.nHeadKv,
      headDim: c.headDim,
      rmsEps: c.rmsEps,
      ropeBase: c.ropeBase,
      yarnFactor: c.ropeScaling.type === "yarn" ? c.ropeScaling.factor : 1,
      yarnOrigCtx: c.ropeScaling.originalContextLength,
      maxContext,
    });
    this.qkv = weights.layers.map((L) => kernels.prepareMatvecMulti([L.wq, L.wk, L.wv], [this.q, this.k, this.v]));
    this.gateUp = weights.layers.map((L) => kernels.prepareMatvecMulti([L.wGate, L.wUp], [this.gate, this.up]));
  }

  /** Runs one token of one sequence; returns its logits (unless `computeLogits` is false). */
  step(token: number, kv: KvCache, computeLogits = true): Float32Array {
    this.run([{ token, kv, wantLogits: computeLogits }]);
    return this.logits.subarray(0, this.config.nVocab);
  }

  /**
   * Runs a batch of rows; appends each row's keys and values to its cache. Rows of one sequence
   * must be in position order. Logits of the rows with `wantLogits` land in {@link logits}.
   */
  run(rows: readonly BatchRow[]): void {
    const { kernels: K, config: c, weights: w } = this;
    const n = rows.length;
    if (n === 0) return;
    if (n > this.maxBatch) throw new RangeError(`batch of ${n} rows exceeds maxBatch ${this.maxBatch}`);
    const positions = this.placeRows(rows);
    for (let r = 0; r < n; r++) K.dequantRow(w.tokenEmbd, rows[r].token, this.rowOf(this.x, r, c.nEmbd));

    for (let l = 0; l < c.nLayer; l++) {
      const L = w.layers[l];
      // Attention block: every row's K and V are stored before any row attends, so a prompt
      // chunk sees its own earlier tokens (causal by position).
      this.normAndQuantize(n, L.attnNorm, this.actEmbd, this.actEmbdBytes, c.nEmbd);
      if (n === 1) this.qkv[l](this.actEmbd);
      else {
        this.matmul(L.wq, this.actEmbd, this.actEmbdBytes, n, this.q, this.qDim);
        this.matmul(L.wk, this.actEmbd, this.actEmbdBytes, n, this.k, this.kvDim);
        this.matmul(L.wv, this.actEmbd, this.actEmbdBytes, n, this.v, this.kvDim);
      }
      for (let r = 0; r < n; r++) {
        // Per-head norms of q and k, RoPE at the row's position, k and v into the cache.
        this.attn.qkRopeStore(this.qRow[r], this.kRow[r], this.vRow[r], L, rows[r].kv, l, positions[r]);
      }
      // A run of rows of one sequence at consecutive positions (a prompt chunk) attends in one
      // call that reads each block of the cache once; lone rows (decode) one at a time.
      for (let r = 0; r < n;) {
        const kv = rows[r].kv;
        let end = r + 1;
        while (end < n && rows[end].kv === kv && positions[end] === positions[end - 1] + 1) end++;
        const q = this.q.subarray(r * this.qDim, end * this.qDim);
        const out = this.attnOut.subarray(r * this.qDim, end * this.qDim);
        this.attn.attend(q, kv, l, end - r, positions[end - 1] + 1, out);
        r = end;
      }
      for (let r = 0; r < n; r++) {
        K.quantizeAct(this.rowOf(this.attnOut, r, this.qDim), this.rowBytes(this.actQ, r, this.actQBytes));
      }
      this.matmul(L.wo, this.actQ, this.actQBytes, n, this.proj, c.nEmbd);
      K.add(this.x.subarray(0, n * c.nEmbd), this.proj.subarray(0, n * c.nEmbd));

      // Feed-forward block (SwiGLU).
      this.normAndQuantize(n, L.ffnNorm, this.actEmbd, this.actEmbdBytes, c.nEmbd);
      if (n === 1) this.gateUp[l](this.actEmbd);
      else {
        this.matmul(L.wGate, this.actEmbd, this.actEmbdBytes, n, this.gate, c.nFf);
        this.matmul(L.wUp, this.actEmbd, this.actEmbdBytes, n, this.up, c.nFf);
      }
      const gate = this.gate.subarray(0, n * c.nFf);
      K.siluMul(gate, this.up.subarray(0, n * c.nFf), gate);
      for (let r = 0; r < n; r++) {
        K.quantizeAct(this.rowOf(this.gate, r, c.nFf), this.rowBytes(this.actFf, r, this.actFfBytes));
      }
      this.matmul(L.wDown, this.actFf, this.actFfBytes, n, this.proj, c.nEmbd);
      K.add(this.x.subarray(0, n * c.nEmbd), this.proj.subarray(0, n * c.nEmbd));
    }
    for (let r = 0; r < n; r++) {
      rows[r].kv.tokens[positions[r]] = rows[r].token;
      rows[r].kv.length++;
    }

    // LM head, only for the rows that need logits (packed to the front of the act buffer).
    let m = 0;
    for (let r = 0; r < n; r++) {
      if (!rows[r].wantLogits) continue;
      K.rmsnormQuantize(
        this.rowOf(this.x, r, c.nEmbd),
        w.outputNorm,
        this.rowOf(this.h, m, c.nEmbd),
        c.rmsEps,
        this.rowBytes(this.actEmbd, m, this.actEmbdBytes),
      );
      m++;
    }
    if (m * c.nVocab > this.logits.length) {
      throw new RangeError(`${m} rows want logits; room for ${this.logits.length / c.nVocab}`);
    }
    this.matmul(w.output, this.actEmbd, this.actEmbdBytes, m, this.logits, c.nVocab);
  }

  /** Checks rows and returns each row's position (rows of one sequence take consecutive ones). */
  private placeRows(rows: readonly BatchRow[]): number[] {
    const next = new Map<KvCache, number>();
    return rows.map((row) => {
      const { token, kv } = row;
      if (!Number.isInteger(token) || token < 0 || token >= this.config.nVocab) {
        throw new RangeError(`token id ${token} outside the vocabulary (0..${this.config.nVocab - 1})`);
      }
      const pos = next.get(kv) ?? kv.length;
      kv.ensureRoom(pos - kv.length + 1);
      next.set(kv, pos + 1);
      return pos;
    });
  }

  private normAndQuantize(n: number, weight: Float32Array, act: Uint8Array, actBytes: number, dim: number): void {
    for (let r = 0; r < n; r++) {
      this.kernels.rmsnormQuantize(
        this.rowOf(this.x, r, dim),
        weight,
        this.rowOf(this.h, r, dim),
        this.config.rmsEps,
        this.rowBytes(act, r, actBytes),
      );
    }
  }

  private matmul(t: KTensor, act: Uint8Array, actBytes: number, n: number, out: Float32Array, outDim: number): void {
    if (n === 0) return;
    if (n === 1) this.kernels.matvec(t, act, out);
    else this.kernels.matmul(t, act, n, actBytes, out, outDim);
  }

  private rowOf(buf: Float32Array, r: number, dim: number): Float32Array {
    return buf.subarray(r * dim, (r + 1) * dim);
  }

  private rowBytes(buf: Uint8Array, r: number, size: number): Uint8Array {
    return buf.subarray(r * size, (r + 1) * size);
  }
}
