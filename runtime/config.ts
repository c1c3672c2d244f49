/**
 * Qwen3 hyper-parameters, read from a GGUF file's metadata and checked against its tensor shapes.
 * Every dimension comes from the file: nothing here assumes a model size.
 */
import type { GgufFile } from "./gguf.ts";

/** RoPE frequency scaling declared by the file (`qwen3.rope.scaling.*`). */
export interface RopeScaling {
  type: "none" | "yarn";
  factor: number;
  originalContextLength: number;
}

/** The numbers a Qwen3 forward pass needs. */
export interface Qwen3Config {
  architecture: string;
  name: string;
  nLayer: number;
  nEmbd: number;
  nFf: number;
  nHead: number;
  nHeadKv: number;
  headDim: number;
  nVocab: number;
  contextLength: number;
  rmsEps: number;
  ropeBase: number;
  ropeScaling: RopeScaling;
  /** True when the file has no `output.weight` and the LM head reuses `token_embd`. */
  tiedEmbeddings: boolean;
}

/** Model files whose contents do not describe a model this runtime can run. */
export class ModelConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ModelConfigError";
  }
}

/** Largest context length accepted from a file: positions and cache indexes are 32-bit. */
export const MAX_CONTEXT_LENGTH = 2 ** 31 - 1;
/** Tensors of one transformer block (`blk.N.*`) that the forward pass reads. */
const TENSORS_PER_BLOCK = 11;

/**
 * Reads and validates the Qwen3 configuration of a parsed GGUF file: every value the forward
 * pass uses is checked here (errors name the key and the file), and the hyperparameters are
 * checked against the tensor list before anything is sized from them.
 */
export function qwen3ConfigFromGguf(file: GgufFile): Qwen3Config {
  const where = file.path ?? "model file";
  const arch = file.getString("general.architecture");
  if (arch !== "qwen3") {
    throw new ModelConfigError(
      `unsupported architecture '${arch}' in ${file.path ?? "model file"}: this runtime runs qwen3 (Bonsai) models`,
    );
  }
  const key = (k: string) => `${arch}.${k}`;
  checkBlockCount(file, key("block_count"), where);
  const nEmbd = file.getNumber(key("embedding_length"));
  const nHead = file.getNumber(key("attention.head_count"));
  const headDim = file.getNumberOr(key("attention.key_length"), nEmbd / nHead);
  const valueDim = file.getNumberOr(key("attention.value_length"), headDim);
  if (valueDim !== headDim) {
    throw new ModelConfigError(
      `${where}: attention.value_length ${valueDim} differs from key_length ${headDim}; not supported`,
    );
  }
  const scalingType = file.getStringOr(key("rope.scaling.type"), "none");
  if (scalingType !== "none" && scalingType !== "yarn") {
    throw new ModelConfigError(
      `${where}: unsupported rope.scaling.type '${scalingType}' (supported: none, yarn)`,
    );
  }
  const contextLength = file.getNumber(key("context_length"));
  const embd = file.tensor("token_embd.weight");
  const config: Qwen3Config = {
    architecture: arch,
    name: file.getStringOr("general.name", "unnamed"),
    nLayer: file.getNumber(key("block_count")),
    nEmbd,
    nFf: file.getNumber(key("feed_forward_length")),
    nHead,
    nHeadKv: file.getNumberOr(key("attention.head_count_kv"), nHead),
    headDim,
    nVocab: embd.dims[1],
    contextLength,
    rmsEps: file.getNumberOr(key("attention.layer_norm_rms_epsilon"), 1e-6),
    ropeBase: file.getNumberOr(key("rope.freq_base"), 10000),
    ropeScaling: {
      type: scalingType,
      factor: file.getNumberOr(key("rope.scaling.factor"), 1),
      originalContextLength: file.getNumberOr(
        key("rope.scaling.original_context_length"),
        contextLength,
      ),
    },
    tiedEmbeddings: !file.tensors.has("output.weight"),
  };
  checkInteger(config, where);
  checkScalars(config, key, where);
  checkTensorShapes(file, config, where);
  return config;
}

/**
 * `block_count` against the tensors present, before any per-block table is built: a huge count
 * would otherwise cost minutes and gigabytes before failing.
 */
function checkBlockCount(file: GgufFile, k: string, where: string): void {
  const n = file.getNumber(k);
  if (!Number.isInteger(n) || n <= 0) throw new ModelConfigError(`${where}: ${k} must be a positive integer, got ${n}`);
  const blocks = new Set<string>();
  for (const name of file.tensors.keys()) {
    const m = /^blk\.(\d+)\./.exec(name);
    if (m) blocks.add(m[1]);
  }
  if (n > blocks.size || n * TENSORS_PER_BLOCK > file.tensors.size) {
    throw new ModelConfigError(`${where}: ${k} is ${n} but the file has tensors for ${blocks.size} blocks`);
  }
}

/** Real-valued hyperparameters and the context length: finite and in range. */
function checkScalars(c: Qwen3Config, key: (k: string) => string, where: string): void {
  const bad = (k: string, want: string, got: number) =>
    new ModelConfigError(`${where}: ${key(k)} must be ${want}, got ${got}`);
  if (c.contextLength > MAX_CONTEXT_LENGTH) {
    throw bad("context_length", `at most ${MAX_CONTEXT_LENGTH}`, c.contextLength);
  }
  // `!(x > 0)` also catches NaN.
  if (!(c.rmsEps > 0 && c.rmsEps < 1)) throw bad("attention.layer_norm_rms_epsilon", "in (0, 1)", c.rmsEps);
  if (!(c.ropeBase > 1 && Number.isFinite(c.ropeBase))) throw bad("rope.freq_base", "a finite number > 1", c.ropeBase);
  if (c.ropeScaling.type === "yarn" || c.ropeScaling.factor !== 1) {
    const f = c.ropeScaling.factor;
    if (!(f >= 1 && Number.isFinite(f))) throw bad("rope.scaling.factor", "a finite number >= 1", f);
  }
  const orig = c.ropeScaling.originalContextLength;
  if (!Number.isInteger(orig) || orig <= 0 || orig > MAX_CONTEXT_LENGTH) {
    throw bad("rope.scaling.original_context_length", `an integer in 1..${MAX_CONTEXT_LENGTH}`, orig);
  }
}

/** Where each integer of the config comes from, for error messages. */
const CONFIG_KEYS = {
  nLayer: "qwen3.block_count",
  nEmbd: "qwen3.embedding_length",
  nFf: "qwen3.feed_forward_length",
  nHead: "qwen3.attention.head_count",
  nHeadKv: "qwen3.attention.head_count_kv",
  headDim: "qwen3.attention.key_length (or embedding_length / head_count)",
  nVocab: "the rows of token_embd.weight",
  contextLength: "qwen3.context_length",
} as const;

function checkInteger(c: Qwen3Config, where: string): void {
  for (
    const k of ["nLayer", "nEmbd", "nFf", "nHead", "nHeadKv", "headDim", "nVocab", "contextLength"] as const
  ) {
    if (!Number.isInteger(c[k]) || c[k] <= 0) {
      throw new ModelConfigError(`${where}: ${CONFIG_KEYS[k]} must be a positive integer, got ${c[k]}`);
    }
  }
  if (c.nHead % c.nHeadKv !== 0) {
    throw new ModelConfigError(
      `${where}: head_count ${c.nHead} is not a multiple of head_count_kv ${c.nHeadKv}`,
    );
  }
  if (c.headDim % 2 !== 0) throw new ModelConfigError(`${where}: head dim ${c.headDim} must be even for RoPE`);
}

/** Expected ggml-order dims of every tensor the forward pass reads. */
export function expectedTensorShapes(c: Qwen3Config): Map<string, number[]> {
  const shapes = new Map<string, number[]>();
  const qDim = c.nHead * c.headDim;
  const kvDim = c.nHeadKv * c.headDim;
  shapes.set("token_embd.weight", [c.nEmbd, c.nVocab]);
  shapes.set("output_norm.weight", [c.nEmbd]);
  if (!c.tiedEmbeddings) shapes.set("output.weight", [c.nEmbd, c.nVocab]);
  for (let i = 0; i < c.nLayer; i++) {
    const b = `blk.${i}.`;
    shapes.set(b + "attn_norm.weight", [c.nEmbd]);
    shapes.set(b + "attn_q.weight", [c.nEmbd, qDim]);
    shapes.set(b + "attn_k.weight", [c.nEmbd, kvDim]);
    shapes.set(b + "attn_v.weight", [c.nEmbd, kvDim]);
    shapes.set(b + "attn_output.weight", [qDim, c.nEmbd]);
    shapes.set(b + "attn_q_norm.weight", [c.headDim]);
    shapes.set(b + "attn_k_norm.weight", [c.headDim]);
    shapes.set(b + "ffn_norm.weight", [c.nEmbd]);
    shapes.set(b + "ffn_gate.weight", [c.nEmbd, c.nFf]);
    shapes.set(b + "ffn_up.weight", [c.nEmbd, c.nFf]);
    shapes.set(b + "ffn_down.weight", [c.nFf, c.nEmbd]);
  }
  return shapes;
}

function checkTensorShapes(file: GgufFile, c: Qwen3Config, where: string): void {
  for (const [name, want] of expectedTensorShapes(c)) {
    const info = file.tensor(name);
    const got = info.dims.filter((d, i) => i < want.length || d !== 1);
    if (got.length !== want.length || got.some((d, i) => d !== want[i])) {
      throw new ModelConfigError(
        `${where}: tensor ${name} has shape [${info.dims}], expected [${want}] from the file's metadata`,
      );
    }
  }
}
