import assert from "node:assert/strict";
import { readGguf } from "../runtime/gguf.ts";
import { FORMATS } from "../runtime/ggml_types.ts";
import { dequantizeRow } from "../runtime/quant.ts";
import { Rng } from "../runtime/rng.ts";
import { loadQwen3Vocab } from "./qwen3_vocab.ts";
import { synthCli, synthesize } from "./synth.ts";
import { SHAPES } from "./synth_shapes.ts";

const dir = await Deno.makeTempDir({ prefix: "synth_test_" });
const tinyPath = `${dir}/tiny.gguf`;
await synthesize({ shape: "tiny", out: tinyPath, seed: 1 });
const tiny = await readGguf(tinyPath);
const tinyBytes = await Deno.readFile(tinyPath);

const BASE_KEYS = [
  "general.architecture",
  "general.name",
  "general.size_label",
  "general.file_type",
  "general.quantization_version",
  "general.sampling.top_k",
  "general.sampling.top_p",
  "general.sampling.min_p",
  "general.sampling.temp",
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
  "tokenizer.ggml.model",
  "tokenizer.ggml.pre",
  "tokenizer.ggml.tokens",
  "tokenizer.ggml.token_type",
  "tokenizer.ggml.merges",
  "tokenizer.ggml.eos_token_id",
  "tokenizer.ggml.padding_token_id",
  "tokenizer.ggml.add_bos_token",
  "tokenizer.chat_template",
];
const YARN_KEYS = [
  "qwen3.rope.scaling.type",
  "qwen3.rope.scaling.factor",
  "qwen3.rope.scaling.original_context_length",
];

Deno.test("tiny model carries the real files' metadata keys and values", () => {
  assert.deepEqual([...tiny.metadata.keys()].sort(), [...BASE_KEYS].sort());
  const vocab = loadQwen3Vocab();
  const s = SHAPES.tiny;
  assert.equal(tiny.getString("general.architecture"), "qwen3");
  assert.equal(tiny.getString("general.name"), "Bonsai-tiny-synthetic");
  assert.equal(tiny.getNumber("general.quantization_version"), 2);
  assert.equal(tiny.getNumber("general.sampling.top_k"), 20);
  assert.equal(tiny.getNumber("general.sampling.top_p"), 0.85);
  assert.equal(tiny.getNumber("general.sampling.min_p"), 0);
  assert.equal(tiny.getNumber("general.sampling.temp"), 0.5);
  assert.equal(tiny.getNumber("qwen3.block_count"), s.blockCount);
  assert.equal(tiny.getNumber("qwen3.context_length"), s.contextLength);
  assert.equal(tiny.getNumber("qwen3.embedding_length"), 256);
  assert.equal(tiny.getNumber("qwen3.feed_forward_length"), 512);
  assert.equal(tiny.getNumber("qwen3.attention.head_count"), 8);
  assert.equal(tiny.getNumber("qwen3.attention.head_count_kv"), 2);
  assert.equal(tiny.getNumber("qwen3.attention.key_length"), 64);
  assert.equal(tiny.getNumber("qwen3.attention.value_length"), 64);
  assert.equal(tiny.getNumber("qwen3.attention.layer_norm_rms_epsilon"), 1e-6);
  assert.equal(tiny.getNumber("qwen3.rope.freq_base"), 1e6);
  assert.equal(tiny.getString("tokenizer.ggml.model"), "gpt2");
  assert.equal(tiny.getString("tokenizer.ggml.pre"), "qwen2");
  assert.deepEqual(tiny.getStringArray("tokenizer.ggml.tokens"), vocab.tokens);
  assert.deepEqual(
    tiny.getNumberArray("tokenizer.ggml.token_type"),
    vocab.tokenTypes,
  );
  assert.deepEqual(tiny.getStringArray("tokenizer.ggml.merges"), vocab.merges);
  assert.equal(tiny.valueTypes.get("tokenizer.ggml.token_type"), "array:i32");
  assert.equal(tiny.getNumber("tokenizer.ggml.eos_token_id"), vocab.eosTokenId);
  assert.equal(
    tiny.getNumber("tokenizer.ggml.padding_token_id"),
    vocab.paddingTokenId,
  );
  assert.equal(tiny.metadata.get("tokenizer.ggml.add_bos_token"), false);
  assert.equal(tiny.getString("tokenizer.chat_template"), vocab.chatTemplate);
});

Deno.test("tiny model has every tensor with ggml-order dims and the right types", () => {
  const nVocab = 151669, e = 256, q = 8 * 64, kv = 2 * 64, ff = 512, hd = 64;
  const want: [string, number[], string][] = [[
    "token_embd.weight",
    [e, nVocab],
    "Q1_0",
  ]];
  for (let i = 0; i < 2; i++) {
    want.push(
      [`blk.${i}.attn_norm.weight`, [e], "F32"],
      [`blk.${i}.attn_q.weight`, [e, q], "Q1_0"],
      [`blk.${i}.attn_k.weight`, [e, kv], "Q1_0"],
      [`blk.${i}.attn_v.weight`, [e, kv], "Q1_0"],
      [`blk.${i}.attn_q_norm.weight`, [hd], "F32"],
      [`blk.${i}.attn_k_norm.weight`, [hd], "F32"],
      [`blk.${i}.attn_output.weight`, [q, e], "Q1_0"],
      [`blk.${i}.ffn_norm.weight`, [e], "F32"],
      [`blk.${i}.ffn_gate.weight`, [e, ff], "Q1_0"],
      [`blk.${i}.ffn_up.weight`, [e, ff], "Q1_0"],
      [`blk.${i}.ffn_down.weight`, [ff, e], "Q1_0"],
    );
  }
  want.push(["output_norm.weight", [e], "F32"]);
  assert.deepEqual(
    [...tiny.tensors.values()].map((t) => [t.name, t.dims, t.format.name])
      .sort(),
    want.sort(),
  );
  assert.ok(
    !tiny.tensors.has("output.weight"),
    "the LM head is tied to token_embd",
  );
  const last = [...tiny.tensors.values()].reduce((
    a,
    b,
  ) => (a.offset > b.offset ? a : b));
  assert.ok(
    tiny.fileSize - (last.offset + last.byteSize) < 32,
    "no stray bytes after the data",
  );
});

Deno.test("weights: signs random, block scales ~1/sqrt(row), norms near 1", () => {
  const scaleRange = (name: string, rows: number[], base: number) => {
    const t = tiny.tensor(name);
    let plus = 0, total = 0;
    for (const r of rows) {
      const off = t.offset + (r * t.dims[0] / 128) * 18;
      const y = dequantizeRow(t.format, tinyBytes, off, t.dims[0]);
      for (const v of y) {
        const a = Math.abs(v) / base;
        assert.ok(
          a >= 0.749 && a <= 1.251,
          `${name} row ${r}: |w| = ${Math.abs(v)}, base ${base}`,
        );
        if (v > 0) plus++;
        total++;
      }
    }
    assert.ok(
      Math.abs(plus / total - 0.5) < 0.05,
      `${name}: ${plus}/${total} positive`,
    );
  };
  scaleRange("blk.0.attn_q.weight", [0, 7, 511], 1 / 16);
  scaleRange("blk.1.attn_output.weight", [0, 255], 1 / Math.sqrt(512));
  scaleRange("blk.1.ffn_down.weight", [3], 1 / Math.sqrt(512));
  scaleRange("token_embd.weight", [0, 151668], 4 / 16);
  const n = tiny.tensor("blk.0.attn_q_norm.weight");
  const w = dequantizeRow(FORMATS.F32, tinyBytes, n.offset, 64);
  assert.ok(w.every((x) => x >= 0.95 && x <= 1.05));
  assert.ok(new Set(w).size > 32, "norm weights vary");
});

Deno.test("tied LM head gives spread-out logits without near-ties at the top", () => {
  const t = tiny.tensor("token_embd.weight");
  const nVocab = t.dims[1], e = t.dims[0];
  const rng = new Rng(11);
  const nProbe = 5;
  // Unit-RMS hidden states, as rmsnorm(x) * output_norm (~1) would give.
  const hs = Array.from(
    { length: nProbe },
    () => Float32Array.from({ length: e }, () => (rng.nextFloat() < 0.5 ? -1 : 1)),
  );
  const logits = hs.map(() => new Float32Array(nVocab));
  const row = new Float32Array(e);
  for (let r = 0; r < nVocab; r++) {
    dequantizeRow(t.format, tinyBytes, t.offset + r * (e / 128) * 18, e, row);
    for (let p = 0; p < nProbe; p++) {
      let s = 0;
      for (let i = 0; i < e; i++) s += row[i] * hs[p][i];
      logits[p][r] = s;
    }
  }
  let clearTop = 0;
  for (const l of logits) {
    let sum = 0, sq = 0, best = -Infinity, second = -Infinity;
    for (const x of l) {
      sum += x;
      sq += x * x;
      if (x > best) [second, best] = [best, x];
      else if (x > second) second = x;
    }
    const std = Math.sqrt(sq / nVocab - (sum / nVocab) ** 2);
    assert.ok(std > 2.5 && std < 6, `logit std ${std}`);
    if (best - second > 1e-2) clearTop++;
  }
  assert.ok(
    clearTop >= nProbe - 1,
    `only ${clearTop}/${nProbe} probes have a clear top token`,
  );
});

Deno.test("same seed -> byte-identical file; another seed differs", async () => {
  const a = `${dir}/a.gguf`, b = `${dir}/b.gguf`, c = `${dir}/c.gguf`;
  await synthesize({ shape: "tiny", out: a, seed: 7, layers: 1 });
  await synthesize({ shape: "tiny", out: b, seed: 7, layers: 1 });
  await synthesize({ shape: "tiny", out: c, seed: 8, layers: 1 });
  const [ba, bb, bc] = await Promise.all(
    [a, b, c].map((p) => Deno.readFile(p)),
  );
  assert.equal(ba.length, bb.length);
  assert.ok(ba.every((x, i) => x === bb[i]), "same seed gave different bytes");
  assert.equal(ba.length, bc.length);
  const g = await readGguf(a);
  const q = g.tensor("blk.0.attn_q.weight");
  assert.notDeepEqual(
    ba.subarray(q.offset, q.offset + q.byteSize),
    bc.subarray(q.offset, q.offset + q.byteSize),
  );
  assert.equal(g.getNumber("qwen3.block_count"), 1);
  assert.ok(!g.tensors.has("blk.1.attn_q.weight"));
});

Deno.test("ternary types: Q2_0 with 128- and 64-blocks are read back as such, codes 0..2 only", async () => {
  for (
    const [type, format] of [["q2_0", FORMATS.Q2_0], [
      "q2_0_g64",
      FORMATS.Q2_0_g64,
    ]] as const
  ) {
    const p = `${dir}/${type}.gguf`;
    await synthesize({ shape: "tiny", out: p, seed: 3, type, layers: 1 });
    const g = await readGguf(p);
    assert.equal(g.getNumber("general.file_type"), 41);
    for (const t of g.tensors.values()) {
      assert.equal(
        t.format,
        t.dims.length === 1 ? FORMATS.F32 : format,
        t.name,
      );
    }
    const bytes = await Deno.readFile(p);
    const t = g.tensor("blk.0.ffn_up.weight");
    const counts = [0, 0, 0, 0];
    for (let b = 0; b < t.byteSize / format.blockBytes; b++) {
      for (let k = 2; k < format.blockBytes; k++) {
        const byte = bytes[t.offset + b * format.blockBytes + k];
        for (let s = 0; s < 8; s += 2) counts[(byte >> s) & 3]++;
      }
    }
    assert.equal(counts[3], 0, "code 3 is unused");
    const n = counts[0] + counts[1] + counts[2];
    for (let c = 0; c < 3; c++) {
      assert.ok(
        Math.abs(counts[c] / n - 1 / 3) < 0.02,
        `code ${c}: ${counts[c]}/${n}`,
      );
    }
  }
});

Deno.test("--yarn adds the rope scaling keys", async () => {
  const p = `${dir}/yarn.gguf`;
  await synthesize({ shape: "tiny", out: p, yarn: 4, layers: 1 });
  const g = await readGguf(p);
  assert.deepEqual(
    [...g.metadata.keys()].sort(),
    [...BASE_KEYS, ...YARN_KEYS].sort(),
  );
  assert.equal(g.getString("qwen3.rope.scaling.type"), "yarn");
  assert.equal(g.getNumber("qwen3.rope.scaling.factor"), 4);
  assert.equal(g.getNumber("qwen3.rope.scaling.original_context_length"), 512);
});

Deno.test("synthesize rejects bad options with clear messages", async () => {
  await assert.rejects(
    synthesize({ shape: "13b", out: `${dir}/x.gguf` }),
    /unknown shape '13b'; known shapes: tiny, 1.7b, 4b/,
  );
  await assert.rejects(
    synthesize({ shape: "tiny", out: `${dir}/x.gguf`, layers: 0 }),
    /layers must be a positive integer/,
  );
  await assert.rejects(
    synthesize({ shape: "tiny", out: `${dir}/x.gguf`, yarn: 0.5 }),
    /yarn factor/,
  );
  await assert.rejects(
    synthesize({ shape: "tiny", out: `${dir}/x.gguf`, type: "q4_0" as "q1_0" }),
    /unknown weight type 'q4_0'/,
  );
});

Deno.test("CLI: help, usage errors, and a real run", async () => {
  const silence = () => {
    const log = console.log, error = console.error;
    const lines: string[] = [];
    console.log = (...a: unknown[]) => lines.push(a.join(" "));
    console.error = (...a: unknown[]) => lines.push(a.join(" "));
    return {
      lines,
      restore: () => ((console.log = log), (console.error = error)),
    };
  };
  const run = async (args: string[]) => {
    const s = silence();
    try {
      return { code: await synthCli(args), out: s.lines.join("\n") };
    } finally {
      s.restore();
    }
  };
  let r = await run(["--help"]);
  assert.equal(r.code, 0);
  assert.match(r.out, /--shape/);
  r = await run([]);
  assert.equal(r.code, 2);
  assert.match(r.out, /--shape is required/);
  r = await run(["--shape", "tiny"]);
  assert.equal(r.code, 2);
  assert.match(r.out, /--output is required/);
  r = await run(["--shape", "huge", "-o", `${dir}/x.gguf`]);
  assert.equal(r.code, 2);
  assert.match(r.out, /unknown shape 'huge'/);
  r = await run(["--shape", "tiny", "-o", `${dir}/x.gguf`, "--seed", "abc"]);
  assert.equal(r.code, 2);
  assert.match(r.out, /--seed must be an integer/);
  r = await run(["--shape", "tiny", "-o", `${dir}/x.gguf`, "--bogus"]);
  assert.equal(r.code, 2);
  r = await run([
    "--shape",
    "tiny",
    "-o",
    `${dir}/cli.gguf`,
    "--seed",
    "1",
    "--layers",
    "1",
  ]);
  assert.equal(r.code, 0, r.out);
  assert.equal(
    (await readGguf(`${dir}/cli.gguf`)).getNumber("qwen3.block_count"),
    1,
  );
});

Deno.test("cleanup", async () => {
  await Deno.remove(dir, { recursive: true });
});
