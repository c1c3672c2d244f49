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

/** Reads and validates the Qwen3 configuration of a parsed GGUF file. */
export function qwen3ConfigFromGguf(file: GgufFile): Qwen3Config {
  const arch = file.getString("general.architecture");
  if (arch !== "qwen3") {
    throw new ModelConfigError(
      `unsupported architecture '${arch}' in ${file.path ?? "model file"}: this runtime runs qwen3 (Bonsai) models`,
    );
  }
  const key = (k: string) => `${arch}.${k}`;
  const nEmbd = file.getNumber(key("embedding_length"));
  const nHead = file.getNumber(key("attention.head_count"));
  const headDim = file.getNumberOr(key("attention.key_length"), nEmbd / nHead);
  const valueDim = file.getNumberOr(key("attention.value_length"), headDim);
  if (valueDim !== headDim) {
    throw new ModelConfigError(
      `attention.value_length ${valueDim} differs from key_length ${headDim}; not supported`,
    );
  }
  const scalingType = file.getStringOr(key("rope.scaling.type"), "none");
  if (scalingType !== "none" && scalingType !== "yarn") {
    throw new ModelConfigError(
      `unsupported rope.scaling.type '${scalingType}' (supported: none, yarn)`,
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
  checkInteger(config);
  checkTensorShapes(file, config);
  return config;
}

function checkInteger(c: Qwen3Config): void {
  for (
    const k of ["nLayer", "nEmbd", "nFf", "nHead", "nHeadKv", "headDim", "nVocab", "contextLength"] as const
  ) {
    if (!Number.isInteger(c[k]) || c[k] <= 0) {
      throw new ModelConfigError(`model ${k} must be a positive integer, got ${c[k]}`);
    }
  }
  if (c.nHead % c.nHeadKv !== 0) {
    throw new ModelConfigError(
      `head_count ${c.nHead} is not a multiple of head_count_kv ${c.nHeadKv}`,
    );
  }
  if (c.headDim % 2 !== 0) throw new ModelConfigError(`head dim ${c.headDim} must be even for RoPE`);
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

function checkTensorShapes(file: GgufFile, c: Qwen3Config): void {
  for (const [name, want] of expectedTensorShapes(c)) {
    const info = file.tensor(name);
    const got = info.dims.filter((d, i) => i < want.length || d !== 1);
    if (got.length !== want.length || got.some((d, i) => d !== want[i])) {
      throw new ModelConfigError(
        `tensor ${name} has shape [${info.dims}], expected [${want}] from the file's metadata`,
      );
    }
  }
}
