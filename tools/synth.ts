/**
 * Synthetic Bonsai model generator: writes a GGUF v3 file with the real Qwen3 tokenizer, the
 * metadata keys the real Bonsai files carry, and random 1-bit (or ternary) weights of a chosen
 * shape. Same seed -> byte-identical file.
 *
 *   deno run --allow-all tools/synth.ts --shape tiny|1.7b|4b -o FILE [--seed N]
 *     [--type q1_0|q2_0|q2_0_g64] [--yarn FACTOR] [--layers N]
 */
import { parseArgs } from "node:util";
import { GgufWriter } from "../runtime/gguf_writer.ts";
import { FORMATS, type WeightFormat } from "../runtime/ggml_types.ts";
import { f32ToF16 } from "../runtime/f16.ts";
import { mix32, Rng } from "../runtime/rng.ts";
import { loadQwen3Vocab } from "./qwen3_vocab.ts";
import { shapeByName, type SynthShape } from "./synth_shapes.ts";

/** Weight types the generator can write. */
export type SynthType = "q1_0" | "q2_0" | "q2_0_g64";

const WEIGHT_FORMATS: Record<SynthType, WeightFormat> = {
  q1_0: FORMATS.Q1_0,
  q2_0: FORMATS.Q2_0,
  q2_0_g64: FORMATS.Q2_0_g64,
};

// llama_ftype values of mainline llama.cpp (LLAMA_FTYPE_MOSTLY_Q1_0 = 40, _Q2_0 = 41).
// Informational only: the runtime reads each tensor's own type.
const FILE_TYPES: Record<SynthType, number> = {
  q1_0: 40,
  q2_0: 41,
  q2_0_g64: 41,
};

/** Options of {@link synthesize}. */
export interface SynthOptions {
  /** A shape name ("tiny", "1.7b", "4b") or a custom shape. */
  shape: string | SynthShape;
  /** Output path. */
  out: string;
  /** PRNG seed (default 1). */
  seed?: number;
  /** Weight type of the matrices (default q1_0). */
  type?: SynthType;
  /** Declare YaRN rope scaling with this factor (original context = context_length / factor). */
  yarn?: number;
  /** Override the number of layers. */
  layers?: number;
}

/** Writes a synthetic model file as described by `opts`. */
export async function synthesize(opts: SynthOptions): Promise<void> {
  const base = typeof opts.shape === "string" ? shapeByName(opts.shape) : opts.shape;
  const type = opts.type ?? "q1_0";
  const format = WEIGHT_FORMATS[type];
  if (!format) {
    throw new Error(
      `unknown weight type '${type}'; use one of ${Object.keys(WEIGHT_FORMATS).join(", ")}`,
    );
  }
  const seed = opts.seed ?? 1;
  if (!Number.isSafeInteger(seed)) {
    throw new Error(`seed must be an integer, got ${seed}`);
  }
  if (
    opts.layers !== undefined &&
    !(Number.isInteger(opts.layers) && opts.layers >= 1)
  ) {
    throw new Error(`layers must be a positive integer, got ${opts.layers}`);
  }
  if (
    opts.yarn !== undefined && !(Number.isFinite(opts.yarn) && opts.yarn >= 1)
  ) {
    throw new Error(`yarn factor must be a number >= 1, got ${opts.yarn}`);
  }
  const shape: SynthShape = {
    ...base,
    blockCount: opts.layers ?? base.blockCount,
  };
  const vocab = loadQwen3Vocab();
  const nVocab = vocab.tokens.length;
  const arch = "qwen3";
  const w = new GgufWriter();

  w.set("general.architecture", arch);
  w.set("general.name", `Bonsai-${base.sizeLabel}-synthetic`);
  w.set("general.size_label", base.sizeLabel);
  w.set("general.file_type", FILE_TYPES[type], "u32");
  w.set("general.quantization_version", 2, "u32");
  w.set("general.sampling.top_k", 20, "i32");
  w.set("general.sampling.top_p", 0.85, "f32");
  w.set("general.sampling.min_p", 0, "f32");
  w.set("general.sampling.temp", 0.5, "f32");
  w.set(`${arch}.block_count`, shape.blockCount, "u32");
  w.set(`${arch}.context_length`, shape.contextLength, "u32");
  w.set(`${arch}.embedding_length`, shape.nEmbd, "u32");
  w.set(`${arch}.feed_forward_length`, shape.nFf, "u32");
  w.set(`${arch}.attention.head_count`, shape.nHead, "u32");
  w.set(`${arch}.attention.head_count_kv`, shape.nHeadKv, "u32");
  w.set(`${arch}.attention.key_length`, shape.headDim, "u32");
  w.set(`${arch}.attention.value_length`, shape.headDim, "u32");
  w.set(`${arch}.attention.layer_norm_rms_epsilon`, 1e-6, "f32");
  w.set(`${arch}.rope.freq_base`, 1e6, "f32");
  if (opts.yarn !== undefined) {
    w.set(`${arch}.rope.scaling.type`, "yarn", "string");
    w.set(`${arch}.rope.scaling.factor`, opts.yarn, "f32");
    w.set(
      `${arch}.rope.scaling.original_context_length`,
      Math.round(shape.contextLength / opts.yarn),
      "u32",
    );
  }
  w.set("tokenizer.ggml.model", "gpt2");
  w.set("tokenizer.ggml.pre", "qwen2");
  w.set("tokenizer.ggml.tokens", vocab.tokens, "array:string");
  w.set("tokenizer.ggml.token_type", vocab.tokenTypes, "array:i32");
  w.set("tokenizer.ggml.merges", vocab.merges, "array:string");
  w.set("tokenizer.ggml.eos_token_id", vocab.eosTokenId, "u32");
  w.set("tokenizer.ggml.padding_token_id", vocab.paddingTokenId, "u32");
  w.set("tokenizer.ggml.add_bos_token", false, "bool");
  w.set("tokenizer.chat_template", vocab.chatTemplate, "string");

  const qWidth = shape.nHead * shape.headDim;
  const kvWidth = shape.nHeadKv * shape.headDim;
  // Each tensor gets its own PRNG stream, derived from the seed and its name, so the bytes
  // do not depend on the order the producers run in.
  const rngFor = (name: string) =>
    new Rng(
      mix32(seed >>> 0) ^ hashName(name) ^ mix32(Math.floor(seed / 4294967296)),
    );
  const matrix = (name: string, ne0: number, ne1: number, scale: number) =>
    w.addTensor(
      name,
      [ne0, ne1],
      format,
      () => randomQuantized(format, ne0, ne1, scale, rngFor(name)),
    );
  const norm = (name: string, n: number) => w.addTensor(name, [n], FORMATS.F32, () => randomNorm(n, rngFor(name)));

  // Row-vector weights of scale 1/sqrt(ne0) map unit-RMS inputs to unit-RMS outputs.
  // The embedding is 4x larger: the tied LM head then gives logits of standard deviation ~4,
  // so among 151669 logits the expected top-1/top-2 gap is ~4/sqrt(2 ln 151669) ~ 0.8 and
  // near-ties (gap < 1e-2) happen only ~1% of the time. The residual stream does not care:
  // every layer normalizes its input.
  matrix("token_embd.weight", shape.nEmbd, nVocab, 4 / Math.sqrt(shape.nEmbd));
  for (let i = 0; i < shape.blockCount; i++) {
    const b = `blk.${i}`;
    norm(`${b}.attn_norm.weight`, shape.nEmbd);
    matrix(
      `${b}.attn_q.weight`,
      shape.nEmbd,
      qWidth,
      1 / Math.sqrt(shape.nEmbd),
    );
    matrix(
      `${b}.attn_k.weight`,
      shape.nEmbd,
      kvWidth,
      1 / Math.sqrt(shape.nEmbd),
    );
    matrix(
      `${b}.attn_v.weight`,
      shape.nEmbd,
      kvWidth,
      1 / Math.sqrt(shape.nEmbd),
    );
    norm(`${b}.attn_q_norm.weight`, shape.headDim);
    norm(`${b}.attn_k_norm.weight`, shape.headDim);
    matrix(
      `${b}.attn_output.weight`,
      qWidth,
      shape.nEmbd,
      1 / Math.sqrt(qWidth),
    );
    norm(`${b}.ffn_norm.weight`, shape.nEmbd);
    matrix(
      `${b}.ffn_gate.weight`,
      shape.nEmbd,
      shape.nFf,
      1 / Math.sqrt(shape.nEmbd),
    );
    matrix(
      `${b}.ffn_up.weight`,
      shape.nEmbd,
      shape.nFf,
      1 / Math.sqrt(shape.nEmbd),
    );
    matrix(
      `${b}.ffn_down.weight`,
      shape.nFf,
      shape.nEmbd,
      1 / Math.sqrt(shape.nFf),
    );
  }
  norm("output_norm.weight", shape.nEmbd);
  await w.write(opts.out);
}

/** FNV-1a of a tensor name, mixed. */
function hashName(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  }
  return mix32(h >>> 0);
}

/** Norm weights near 1: 1 + 0.1 * (u - 0.5). */
function randomNorm(n: number, rng: Rng): Uint8Array {
  const f = new Float32Array(n);
  for (let i = 0; i < n; i++) f[i] = 1 + 0.1 * (rng.nextFloat() - 0.5);
  return new Uint8Array(f.buffer);
}

/** The 81 bytes whose four 2-bit codes are all valid ternary codes (0, 1, 2; 3 is unused). */
const TERNARY_BYTES = (() => {
  const out = new Uint8Array(81);
  let k = 0;
  for (let b = 0; b < 256; b++) {
    if (
      ((b & 3) !== 3) && ((b >> 2 & 3) !== 3) && ((b >> 4 & 3) !== 3) &&
      ((b >> 6) !== 3)
    ) out[k++] = b;
  }
  return out;
})();

/**
 * Random quantized matrix of ne1 rows of ne0: random signs / ternary codes, block scales
 * d = scale * (0.75 + 0.5 u). Ternary values have mean square 2/3 d^2, so their d is
 * sqrt(3/2) larger to keep the same output RMS.
 */
function randomQuantized(
  format: WeightFormat,
  ne0: number,
  ne1: number,
  scale: number,
  rng: Rng,
): Uint8Array {
  const nBlocks = (ne0 * ne1) / format.blockSize;
  const size = nBlocks * format.blockBytes;
  const words = new Uint32Array(Math.ceil(size / 4));
  rng.fillU32(words);
  const bytes = new Uint8Array(words.buffer, 0, size);
  const ternary = format.name !== "Q1_0";
  // 256 possible scales, converted to fp16 once; the random byte in each block's d slot picks one.
  const s = ternary ? scale * Math.sqrt(1.5) : scale;
  const table = new Uint16Array(256);
  for (let k = 0; k < 256; k++) {
    table[k] = f32ToF16(s * (0.75 + 0.5 * (k + 0.5) / 256));
  }
  const bb = format.blockBytes;
  for (let b = 0, p = 0; b < nBlocks; b++, p += bb) {
    const h = table[bytes[p]];
    bytes[p] = h & 0xff;
    bytes[p + 1] = h >>> 8;
    if (ternary) {
      for (let i = p + 2; i < p + bb; i++) {
        bytes[i] = TERNARY_BYTES[(bytes[i] * 81) >>> 8];
      }
    }
  }
  return bytes;
}

function usage(): string {
  return `Usage: bonsai synth --shape tiny|1.7b|4b -o FILE [options]

Writes a synthetic Bonsai (Qwen3, 1-bit) GGUF model with the real Qwen3 tokenizer.

Options:
  --shape NAME      tiny (2 layers, 256 wide), 1.7b, or 4b            (required)
  -o, --output FILE output path                                        (required)
  --seed N          PRNG seed (default 1); same seed -> identical file
  --type T          q1_0 (default), q2_0 (ternary, 128-blocks), q2_0_g64 (ternary, 64-blocks)
  --yarn FACTOR     declare YaRN rope scaling with this factor
  --layers N        override the number of layers
  -h, --help        show this help`;
}

/**
 * The generator's command line (also `bonsai synth`): parses `args`, writes the file, and returns
 * the exit code (0 ok, 1 failure, 2 usage error); messages go to stdout/stderr.
 */
export async function synthCli(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: {
        shape: { type: "string" },
        output: { type: "string", short: "o" },
        seed: { type: "string" },
        type: { type: "string" },
        yarn: { type: "string" },
        layers: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      allowPositionals: false,
    });
  } catch (e) {
    console.error(`synth: ${(e as Error).message}\n\n${usage()}`);
    return 2;
  }
  const v = parsed.values;
  if (v.help) {
    console.log(usage());
    return 0;
  }
  const fail = (msg: string) => {
    console.error(`synth: ${msg}\n\n${usage()}`);
    return 2;
  };
  if (!v.shape) return fail("--shape is required");
  if (!v.output) return fail("-o/--output is required");
  const int = (s: string | undefined, what: string): number | undefined => {
    if (s === undefined) return undefined;
    if (!/^-?\d+$/.test(s)) {
      throw new Error(`${what} must be an integer, got '${s}'`);
    }
    return Number(s);
  };
  let opts: SynthOptions;
  try {
    const type = v.type ?? "q1_0";
    if (!(type in WEIGHT_FORMATS)) {
      throw new Error(
        `--type must be one of ${Object.keys(WEIGHT_FORMATS).join(", ")}, got '${type}'`,
      );
    }
    const yarn = v.yarn === undefined ? undefined : Number(v.yarn);
    if (yarn !== undefined && !(Number.isFinite(yarn) && yarn >= 1)) {
      throw new Error(`--yarn must be a number >= 1, got '${v.yarn}'`);
    }
    shapeByName(v.shape);
    opts = {
      shape: v.shape,
      out: v.output,
      seed: int(v.seed, "--seed"),
      type: type as SynthType,
      yarn,
      layers: int(v.layers, "--layers"),
    };
  } catch (e) {
    return fail((e as Error).message);
  }
  const t0 = performance.now();
  try {
    await synthesize(opts);
  } catch (e) {
    console.error(`synth: ${(e as Error).message}`);
    return 1;
  }
  const size = (await Deno.stat(opts.out)).size;
  console.log(
    `wrote ${opts.out}: ${(size / 1e6).toFixed(1)} MB in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
  return 0;
}

if (import.meta.main) Deno.exit(await synthCli(Deno.args));
