/**
 * A slow, obviously-correct Qwen3 forward pass in plain TypeScript (f64 arithmetic on dequantized
 * weights), used only by tests to check the kernel forward pass. It follows BONSAI.md line by line
 * and is the specification of `runtime/forward.ts`: its math (RoPE/YaRN included) is deliberately
 * written independently of the kernel library, so that the two check each other.
 *
 * With `quantizeActivations` (the default) every matrix input is rounded through Q8_0 first, exactly
 * as the Bonsai dot-product reference defines it, so the kernels can be held to a tight tolerance.
 */
import { readGguf } from "../runtime/gguf.ts";
import { dequantizeRow } from "../runtime/quant.ts";
import { type Qwen3Config, qwen3ConfigFromGguf } from "../runtime/config.ts";

interface DenseMatrix {
  rows: number;
  cols: number;
  data: Float32Array;
}

interface RefLayer {
  attnNorm: Float32Array;
  wq: DenseMatrix;
  wk: DenseMatrix;
  wv: DenseMatrix;
  wo: DenseMatrix;
  qNorm: Float32Array;
  kNorm: Float32Array;
  ffnNorm: Float32Array;
  wGate: DenseMatrix;
  wUp: DenseMatrix;
  wDown: DenseMatrix;
}

/** Options of the reference model. */
export interface ReferenceOptions {
  quantizeActivations?: boolean;
}

/** The reference model: dense f32 weights and an f64 KV cache. */
export class ReferenceModel {
  private keys: Float64Array[][] = [];
  private values: Float64Array[][] = [];

  private constructor(
    readonly config: Qwen3Config,
    private readonly embd: DenseMatrix,
    private readonly output: DenseMatrix,
    private readonly outputNorm: Float32Array,
    private readonly layers: RefLayer[],
    private readonly quantize: boolean,
  ) {
    this.reset();
  }

  /** Loads and dequantizes every tensor of a (small) model file. */
  static async load(path: string, opts: ReferenceOptions = {}): Promise<ReferenceModel> {
    const file = await readGguf(path);
    const bytes = await Deno.readFile(path);
    const config = qwen3ConfigFromGguf(file);
    const dense = (name: string): DenseMatrix => {
      const info = file.tensor(name);
      const cols = info.dims[0];
      const rows = info.nElements / cols;
      return { rows, cols, data: dequantizeRow(info.format, bytes, info.offset, info.nElements) };
    };
    const vec = (name: string) => dense(name).data;
    const layers: RefLayer[] = [];
    for (let i = 0; i < config.nLayer; i++) {
      const b = `blk.${i}.`;
      layers.push({
        attnNorm: vec(b + "attn_norm.weight"),
        wq: dense(b + "attn_q.weight"),
        wk: dense(b + "attn_k.weight"),
        wv: dense(b + "attn_v.weight"),
        wo: dense(b + "attn_output.weight"),
        qNorm: vec(b + "attn_q_norm.weight"),
        kNorm: vec(b + "attn_k_norm.weight"),
        ffnNorm: vec(b + "ffn_norm.weight"),
        wGate: dense(b + "ffn_gate.weight"),
        wUp: dense(b + "ffn_up.weight"),
        wDown: dense(b + "ffn_down.weight"),
      });
    }
    const embd = dense("token_embd.weight");
    const output = config.tiedEmbeddings ? embd : dense("output.weight");
    return new ReferenceModel(
      config,
      embd,
      output,
      vec("output_norm.weight"),
      layers,
      opts.quantizeActivations ?? true,
    );
  }

  /** Forgets the sequence. */
  reset(): void {
    this.keys = this.layers.map(() => []);
    this.values = this.layers.map(() => []);
  }

  /** Runs one token at the next position and returns the logits. */
  step(token: number): Float64Array {
    const c = this.config;
    const pos = this.keys[0].length;
    let x: Float64Array = Float64Array.from(this.embd.data.subarray(token * c.nEmbd, (token + 1) * c.nEmbd));
    for (let l = 0; l < c.nLayer; l++) {
      const L = this.layers[l];
      let h = rmsnorm(x, L.attnNorm, c.rmsEps);
      const q = this.matvec(L.wq, h);
      const k = this.matvec(L.wk, h);
      const v = this.matvec(L.wv, h);
      for (let hd = 0; hd < c.nHead; hd++) normHead(q, hd * c.headDim, c.headDim, L.qNorm, c.rmsEps);
      for (let hd = 0; hd < c.nHeadKv; hd++) normHead(k, hd * c.headDim, c.headDim, L.kNorm, c.rmsEps);
      for (let hd = 0; hd < c.nHead; hd++) ropeNeox(q, hd * c.headDim, c, pos);
      for (let hd = 0; hd < c.nHeadKv; hd++) ropeNeox(k, hd * c.headDim, c, pos);
      this.keys[l].push(k);
      this.values[l].push(v);
      const attn = this.attention(l, q);
      x = add(x, this.matvec(L.wo, attn));

      h = rmsnorm(x, L.ffnNorm, c.rmsEps);
      const gate = this.matvec(L.wGate, h);
      const up = this.matvec(L.wUp, h);
      const act = gate.map((g, i) => (g / (1 + Math.exp(-g))) * up[i]);
      x = add(x, this.matvec(L.wDown, act));
    }
    return this.matvec(this.output, rmsnorm(x, this.outputNorm, c.rmsEps));
  }

  private attention(layer: number, q: Float64Array): Float64Array {
    const c = this.config;
    const out = new Float64Array(c.nHead * c.headDim);
    const group = c.nHead / c.nHeadKv;
    const keys = this.keys[layer];
    const values = this.values[layer];
    const scale = 1 / Math.sqrt(c.headDim);
    for (let hd = 0; hd < c.nHead; hd++) {
      const qo = hd * c.headDim;
      const ko = Math.floor(hd / group) * c.headDim;
      const scores = keys.map((k) => {
        let s = 0;
        for (let i = 0; i < c.headDim; i++) s += q[qo + i] * k[ko + i];
        return s * scale;
      });
      const max = Math.max(...scores);
      const exps = scores.map((s) => Math.exp(s - max));
      const sum = exps.reduce((a, b) => a + b, 0);
      for (let p = 0; p < keys.length; p++) {
        const wgt = exps[p] / sum;
        for (let i = 0; i < c.headDim; i++) out[qo + i] += wgt * values[p][ko + i];
      }
    }
    return out;
  }

  private matvec(m: DenseMatrix, x: Float64Array): Float64Array {
    const input = this.quantize ? roundThroughQ8(x) : x;
    const out = new Float64Array(m.rows);
    for (let r = 0; r < m.rows; r++) {
      const row = r * m.cols;
      let s = 0;
      for (let i = 0; i < m.cols; i++) s += m.data[row + i] * input[i];
      out[r] = s;
    }
    return out;
  }
}

/** Q8_0 round trip: blocks of 32, d = amax/127, q = round(x/d). */
export function roundThroughQ8(x: Float64Array): Float64Array {
  const out = new Float64Array(x.length);
  for (let b = 0; b < x.length; b += 32) {
    const end = Math.min(b + 32, x.length);
    let amax = 0;
    for (let i = b; i < end; i++) amax = Math.max(amax, Math.abs(x[i]));
    const d = Math.fround(amax / 127);
    for (let i = b; i < end; i++) out[i] = d === 0 ? 0 : roundHalfAway(Math.fround(Math.fround(x[i]) / d)) * d;
  }
  return out;
}

function rmsnorm(x: Float64Array, w: Float32Array, eps: number): Float64Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const inv = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * inv * w[i]);
}

function normHead(x: Float64Array, off: number, n: number, w: Float32Array, eps: number): void {
  let ss = 0;
  for (let i = 0; i < n; i++) ss += x[off + i] * x[off + i];
  const inv = 1 / Math.sqrt(ss / n + eps);
  for (let i = 0; i < n; i++) x[off + i] = x[off + i] * inv * w[i];
}

/** NEOX RoPE with YaRN as in ggml (BONSAI.md). */
function ropeNeox(x: Float64Array, off: number, c: Qwen3Config, pos: number): void {
  const nDims = c.headDim;
  const half = nDims / 2;
  const yarn = c.ropeScaling.type === "yarn";
  const factor = c.ropeScaling.factor;
  const corrDim = (beta: number) =>
    (nDims * Math.log(c.ropeScaling.originalContextLength / (beta * 2 * Math.PI))) /
    (2 * Math.log(c.ropeBase));
  const low = Math.max(0, Math.floor(corrDim(32)));
  const high = Math.min(nDims - 1, Math.ceil(corrDim(1)));
  const mscale = yarn ? 1 + 0.1 * Math.log(factor) : 1;
  for (let i = 0; i < half; i++) {
    const extrap = pos * Math.pow(c.ropeBase, (-2 * i) / nDims);
    let theta = extrap;
    if (yarn) {
      const y = (i - low) / Math.max(0.001, high - low);
      const ramp = 1 - Math.min(1, Math.max(0, y));
      theta = (extrap / factor) * (1 - ramp) + extrap * ramp;
    }
    const cos = Math.cos(theta) * mscale;
    const sin = Math.sin(theta) * mscale;
    const a = x[off + i];
    const b = x[off + i + half];
    x[off + i] = a * cos - b * sin;
    x[off + i + half] = a * sin + b * cos;
  }
}

function add(a: Float64Array, b: Float64Array): Float64Array {
  return a.map((v, i) => v + b[i]);
}

/** Rounds half away from zero, as Rust's `f32::round` (the kernels' quantizer) does. */
function roundHalfAway(v: number): number {
  return Math.sign(v) * Math.round(Math.abs(v));
}
