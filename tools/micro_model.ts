/**
 * A micro Qwen3 GGUF for the fuzz harness and the load-validation tests: a byte-level vocabulary
 * of a few hundred tokens (the 256 byte tokens, a few merges, the ChatML specials), one block,
 * 128-wide Q1_0 matrices and an embedding padded past the vocabulary as real models pad theirs.
 * A few kilobytes, so that hundreds of mutated copies load in seconds. Same seed, same bytes.
 *
 * @module
 */
import { GgufWriter } from "../runtime/gguf_writer.ts";
import type { GgufValue, GgufValueTypeName } from "../runtime/gguf.ts";
import { FORMATS, type WeightFormat } from "../runtime/ggml_types.ts";
import { f32ToF16 } from "../runtime/f16.ts";
import { Rng } from "../runtime/rng.ts";
import { bytesToUnicode } from "../runtime/pretokenize.ts";
import { TokenType } from "../runtime/tokenizer_spec.ts";

/** Extra embedding rows past the vocabulary (no token decodes from them). */
export const MICRO_PADDING = 13;

/** Merges of the micro vocabulary (each makes the next token: "he", "hel", ...). */
const MERGES = ["h e", "he l", "hel l", "hell o", "Ġ w", "Ġw o", "Ġwo r", "Ġwor l", "Ġworl d", "a a"];
/** Special tokens and their types. */
const SPECIALS: [string, number][] = [
  ["<|endoftext|>", TokenType.CONTROL],
  ["<|im_start|>", TokenType.CONTROL],
  ["<|im_end|>", TokenType.CONTROL],
  ["<think>", TokenType.USER_DEFINED],
  ["</think>", TokenType.USER_DEFINED],
  ["<tool_call>", TokenType.USER_DEFINED],
  ["</tool_call>", TokenType.USER_DEFINED],
];

/** One metadata entry of the micro model; edits replace or drop them by key. */
export interface MetaEntry {
  key: string;
  value: GgufValue;
  type: GgufValueTypeName;
}

/** The micro vocabulary: tokens, types, merges and the id of `<|im_end|>` (its eos). */
export function microVocab(): { tokens: string[]; types: number[]; merges: string[]; eos: number } {
  const tokens = bytesToUnicode().slice();
  const types = tokens.map(() => TokenType.NORMAL as number);
  for (const m of MERGES) {
    tokens.push(m.replace(" ", ""));
    types.push(TokenType.NORMAL);
  }
  for (const [text, type] of SPECIALS) {
    tokens.push(text);
    types.push(type);
  }
  return { tokens, types, merges: [...MERGES], eos: tokens.indexOf("<|im_end|>") };
}

/** The micro model's metadata, in file order. */
export function microMetadata(): MetaEntry[] {
  const v = microVocab();
  const e = (key: string, value: GgufValue, type: GgufValueTypeName): MetaEntry => ({ key, value, type });
  return [
    e("general.architecture", "qwen3", "string"),
    e("general.name", "micro", "string"),
    e("general.sampling.top_k", 20, "i32"),
    e("general.sampling.top_p", 0.85, "f32"),
    e("general.sampling.temp", 0.5, "f32"),
    e("qwen3.block_count", 1, "u32"),
    e("qwen3.context_length", 256, "u32"),
    e("qwen3.embedding_length", 128, "u32"),
    e("qwen3.feed_forward_length", 128, "u32"),
    e("qwen3.attention.head_count", 2, "u32"),
    e("qwen3.attention.head_count_kv", 1, "u32"),
    e("qwen3.attention.key_length", 64, "u32"),
    e("qwen3.attention.value_length", 64, "u32"),
    e("qwen3.attention.layer_norm_rms_epsilon", 1e-6, "f32"),
    e("qwen3.rope.freq_base", 1e6, "f32"),
    e("tokenizer.ggml.model", "gpt2", "string"),
    e("tokenizer.ggml.pre", "qwen2", "string"),
    e("tokenizer.ggml.tokens", v.tokens, "array:string"),
    e("tokenizer.ggml.token_type", v.types, "array:i32"),
    e("tokenizer.ggml.merges", v.merges, "array:string"),
    e("tokenizer.ggml.eos_token_id", v.eos, "u32"),
  ];
}

/** A tensor of the micro model: name, ggml dims and format. */
export interface MicroTensor {
  name: string;
  dims: number[];
  format: WeightFormat;
}

/** The micro model's tensors, in file order. */
export function microTensors(nLayer = 1): MicroTensor[] {
  const nVocab = microVocab().tokens.length + MICRO_PADDING;
  const q = FORMATS.Q1_0;
  const f = FORMATS.F32;
  const out: MicroTensor[] = [{ name: "token_embd.weight", dims: [128, nVocab], format: q }];
  for (let i = 0; i < nLayer; i++) {
    const b = `blk.${i}.`;
    out.push(
      { name: b + "attn_norm.weight", dims: [128], format: f },
      { name: b + "attn_q.weight", dims: [128, 128], format: q },
      { name: b + "attn_k.weight", dims: [128, 64], format: q },
      { name: b + "attn_v.weight", dims: [128, 64], format: q },
      { name: b + "attn_q_norm.weight", dims: [64], format: f },
      { name: b + "attn_k_norm.weight", dims: [64], format: f },
      { name: b + "attn_output.weight", dims: [128, 128], format: q },
      { name: b + "ffn_norm.weight", dims: [128], format: f },
      { name: b + "ffn_gate.weight", dims: [128, 128], format: q },
      { name: b + "ffn_up.weight", dims: [128, 128], format: q },
      { name: b + "ffn_down.weight", dims: [128, 128], format: q },
    );
  }
  out.push({ name: "output_norm.weight", dims: [128], format: f });
  return out;
}

/** Random but finite tensor data: Q1_0 blocks with a sane fp16 scale, F32 norms near 1. */
function tensorData(t: MicroTensor, rng: Rng): Uint8Array {
  const n = t.dims.reduce((a, b) => a * b, 1);
  if (t.format.name === "F32") {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = 0.5 + rng.nextFloat();
    return new Uint8Array(out.buffer);
  }
  const bb = t.format.blockBytes;
  const bytes = new Uint8Array((n / t.format.blockSize) * bb);
  const words = new Uint32Array(Math.ceil(bytes.length / 4));
  rng.fillU32(words);
  bytes.set(new Uint8Array(words.buffer, 0, bytes.length));
  const scale = f32ToF16(0.25);
  for (let p = 0; p < bytes.length; p += bb) {
    bytes[p] = scale & 0xff;
    bytes[p + 1] = scale >>> 8;
  }
  return bytes;
}

/** Options of {@link microGguf}: edits of the metadata and tensor list before writing. */
export interface MicroOptions {
  seed?: number;
  /** Replaces (or, with value undefined, removes) metadata entries; new keys are appended. */
  meta?: Record<string, { value: GgufValue; type: GgufValueTypeName } | undefined>;
  /** Edits the tensor list (names, dims, formats) before writing. */
  tensors?: (list: MicroTensor[]) => MicroTensor[];
}

/** The bytes of a micro model file, with `opts` edits applied. */
export async function microGguf(opts: MicroOptions = {}): Promise<Uint8Array> {
  const w = new GgufWriter();
  const edits = opts.meta ?? {};
  for (const e of microMetadata()) {
    if (!(e.key in edits)) w.set(e.key, e.value, e.type);
    else if (edits[e.key] !== undefined) w.set(e.key, edits[e.key]!.value, edits[e.key]!.type);
  }
  const known = new Set(microMetadata().map((e) => e.key));
  for (const [key, edit] of Object.entries(edits)) if (!known.has(key) && edit) w.set(key, edit.value, edit.type);
  const rng = new Rng(opts.seed ?? 1);
  let list = microTensors();
  if (opts.tensors) list = opts.tensors(list);
  for (const t of list) w.addTensor(t.name, t.dims, t.format, tensorData(t, rng));
  const path = await Deno.makeTempFile({ prefix: "bonsai-micro-", suffix: ".gguf" });
  try {
    await w.write(path);
    return await Deno.readFile(path);
  } finally {
    await Deno.remove(path);
  }
}

/**
 * Rewrites the data offset (relative to the data section) of tensor `name` in a GGUF file's
 * header, for files the writer would refuse to make (overlapping tensors).
 */
export function patchTensorOffset(file: Uint8Array, name: string, relOffset: number): Uint8Array {
  const out = file.slice();
  const view = new DataView(out.buffer);
  const needle = new TextEncoder().encode(name);
  for (let p = 8; p + needle.length < out.length; p++) {
    if (view.getBigUint64(p - 8, true) !== BigInt(needle.length)) continue;
    if (!needle.every((b, i) => out[p + i] === b)) continue;
    let at = p + needle.length;
    const nDims = view.getUint32(at, true);
    at += 4 + 8 * nDims + 4; // dims, then the ggml type
    view.setBigUint64(at, BigInt(relOffset), true);
    return out;
  }
  throw new Error(`tensor ${name} not found in the header`);
}
