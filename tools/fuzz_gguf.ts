/**
 * Mutated model files for the fuzz harness: the micro model (tools/micro_model.ts) with its
 * bytes truncated or flipped in the header, counts and offsets made huge, dims, types and
 * offsets of tensors broken, hyperparameters and tokenizer data made wrong. The loader must
 * refuse each broken file at load with a GgufError or ModelConfigError naming the file, or
 * load a model that serves a request.
 *
 * @module
 */
import { type GgufValue, type GgufValueTypeName, parseGguf } from "../runtime/gguf.ts";
import { FORMATS } from "../runtime/ggml_types.ts";
import { microGguf, type MicroOptions, microVocab, patchTensorOffset } from "./micro_model.ts";
import type { FuzzRng } from "./fuzz_rng.ts";

const NUMERIC_KEYS = [
  "qwen3.block_count",
  "qwen3.context_length",
  "qwen3.embedding_length",
  "qwen3.feed_forward_length",
  "qwen3.attention.head_count",
  "qwen3.attention.head_count_kv",
  "qwen3.attention.key_length",
  "qwen3.attention.value_length",
  "qwen3.attention.layer_norm_rms_epsilon",
  "qwen3.rope.freq_base",
  "qwen3.rope.scaling.factor",
  "qwen3.rope.scaling.original_context_length",
  "general.sampling.top_k",
  "general.sampling.top_p",
  "general.sampling.temp",
  "general.sampling.min_p",
  "tokenizer.ggml.eos_token_id",
  "tokenizer.ggml.bos_token_id",
  "general.alignment",
];
const BAD_NUMBERS = [NaN, Infinity, -Infinity, -1, 0, 1, 3, 2 ** 31, 2 ** 32 + 5, 2 ** 40, 1e30, 1e-30, 0.5, 4e9];
const TYPES: GgufValueTypeName[] = ["u32", "i32", "f32", "u64", "f64", "string", "bool"];

type Meta = NonNullable<MicroOptions["meta"]>;

/** A value of the declared type when it fits one, else of another type (a wrong-type key). */
function numberEntry(rng: FuzzRng, v: number): { value: GgufValue; type: GgufValueTypeName } {
  const type = rng.pick(TYPES);
  if (type === "string") return { value: String(v), type };
  if (type === "bool") return { value: v > 0, type };
  if (type === "f32" || type === "f64") return { value: v, type };
  if (!Number.isSafeInteger(v) && Number.isFinite(v) && v > 0) return { value: v, type: "f64" };
  if (!Number.isInteger(v) || v < 0) return { value: Number.isFinite(v) ? Math.trunc(v) : -7, type: "i32" };
  if (type === "u32" || type === "i32") return v < 2 ** 31 ? { value: v, type } : { value: BigInt(v), type: "u64" };
  return { value: BigInt(v), type: "u64" };
}

/** Edits of hyperparameters and tokenizer data. */
function metaEdits(rng: FuzzRng): MicroOptions {
  const meta: Meta = {};
  const v = microVocab();
  const n = 1 + rng.int(3);
  for (let i = 0; i < n; i++) {
    switch (rng.int(8)) {
      case 0:
      case 1:
      case 2:
        meta[rng.pick(NUMERIC_KEYS)] = numberEntry(rng, rng.pick(BAD_NUMBERS));
        break;
      case 3: {
        // Token types: shuffled, all one type, or out of range.
        const t = rng.int(3);
        const value = v.types.map((x, j) =>
          t === 0 ? rng.pick([0, 1, 2, 3, 4, 5, 6, 7, -1]) : t === 1 ? 2 : j % 7 === 0 ? 3 : x
        );
        meta["tokenizer.ggml.token_type"] = { value, type: "array:i32" };
        break;
      }
      case 4: {
        // Tokens dropped, duplicated or renamed (ChatML, bytes).
        const tokens = v.tokens.slice();
        const k = rng.int(4);
        if (k === 0) tokens.splice(rng.int(tokens.length), 1);
        else if (k === 1) tokens[rng.int(tokens.length)] = tokens[rng.int(tokens.length)];
        else if (k === 2) tokens[tokens.indexOf(rng.pick(["<|im_start|>", "<|im_end|>"]))] = "<|x|>";
        else tokens.length = rng.int(tokens.length);
        meta["tokenizer.ggml.tokens"] = { value: tokens, type: "array:string" };
        break;
      }
      case 5: {
        const merges = v.merges.slice();
        const bad = rng.pick(["h h", "he", "", " ", "zz top", "a a a", "hello world", "Ġ Ġ"]);
        merges.splice(rng.int(merges.length + 1), 0, bad);
        meta["tokenizer.ggml.merges"] = { value: merges, type: "array:string" };
        break;
      }
      case 6:
        meta[
          rng.pick(["general.architecture", "tokenizer.ggml.model", "tokenizer.ggml.pre", "qwen3.rope.scaling.type"])
        ] = { value: rng.pick(["llama", "", "qwen3", "yarn", "linear", "gpt2", "qwen2"]), type: "string" };
        break;
      default:
        meta[rng.pick(NUMERIC_KEYS.concat(["tokenizer.ggml.tokens", "tokenizer.ggml.merges"]))] = undefined;
    }
  }
  return { meta };
}

/** Edits of the tensor list: dims, formats, names, presence. */
function tensorEdits(rng: FuzzRng): MicroOptions {
  return {
    tensors: (list) => {
      const out = list.map((t) => ({ ...t, dims: [...t.dims] }));
      const t = out[rng.int(out.length)];
      switch (rng.int(5)) {
        case 0:
          t.dims[rng.int(t.dims.length)] *= rng.pick([2, 3]);
          break;
        case 1:
          t.dims.push(rng.pick([1, 2]));
          break;
        case 2:
          t.format = rng.pick([FORMATS.F32, FORMATS.F16, FORMATS.Q8_0, FORMATS.Q1_0, FORMATS.Q2_0]);
          if (t.dims[0] % t.format.blockSize !== 0) t.format = FORMATS.F32;
          break;
        case 3:
          out.splice(out.indexOf(t), 1);
          break;
        default:
          t.name = t.name.replace(/\d/, "7");
      }
      return out;
    },
  };
}

/** Where the header ends (the data section starts) in the unmutated file. */
function headerLength(bytes: Uint8Array): number {
  return parseGguf(bytes, bytes.length).dataOffset;
}

/** A mutated micro model file. */
export async function mutatedGguf(rng: FuzzRng, base: Uint8Array): Promise<Uint8Array> {
  const k = rng.int(7);
  if (k === 0) return base.slice(0, rng.int(base.length));
  if (k === 1 || k === 2) {
    // Bit flips in the header (metadata and tensor infos), never in the weights.
    const out = base.slice();
    const flips = 1 + rng.int(8);
    const end = headerLength(base);
    for (let i = 0; i < flips; i++) out[rng.int(end)] ^= 1 << rng.int(8);
    return out;
  }
  if (k === 3) {
    // A length, count or offset made huge: 8 bytes of 0xff (or a large value) at a random place.
    const out = base.slice();
    const at = 8 + rng.int(headerLength(base) - 16);
    const view = new DataView(out.buffer);
    view.setBigUint64(at, rng.pick([0xffffffffffffffffn, 0x7fffffffn, 1n << 40n, 1n << 33n]), true);
    return out;
  }
  if (k === 4) {
    const name = rng.pick(["blk.0.attn_q.weight", "blk.0.ffn_down.weight", "output_norm.weight", "token_embd.weight"]);
    return patchTensorOffset(base, name, rng.pick([0, 32, 64, 2 ** 20, 2 ** 40]));
  }
  try {
    return await microGguf(k === 5 ? tensorEdits(rng) : metaEdits(rng));
  } catch {
    // An edit the writer itself refuses (a value out of its type's range): cut the file instead.
    return base.slice(0, rng.int(base.length));
  }
}
