/**
 * Every broken model fails at load, naming the key and the file (issue 15, item 3), rather than
 * loading and then failing every request; and a padded embedding's extra rows are never
 * sampled (item 4). Uses the micro model of tools/micro_model.ts.
 */
import assert from "node:assert/strict";
import { microGguf, type MicroOptions, microVocab, patchTensorOffset } from "../tools/micro_model.ts";
import { Model } from "../runtime/model.ts";
import { Scheduler } from "../runtime/scheduler.ts";
import { TokenType } from "../runtime/tokenizer_spec.ts";

async function withFile<T>(bytes: Uint8Array, f: (path: string) => Promise<T>): Promise<T> {
  const path = await Deno.makeTempFile({ prefix: "bonsai-bad-", suffix: ".gguf" });
  try {
    await Deno.writeFile(path, bytes);
    return await f(path);
  } finally {
    await Deno.remove(path);
  }
}

/** Loading fails with an error naming `key` and the file. */
async function refused(opts: MicroOptions | Uint8Array, key: RegExp): Promise<void> {
  const bytes = opts instanceof Uint8Array ? opts : await microGguf(opts);
  await withFile(bytes, async (path) => {
    await assert.rejects(Model.load(path), (e: Error) => {
      assert.match(e.message, key);
      assert.ok(e.message.includes(path), `message does not name the file: ${e.message}`);
      assert.ok(e.name === "ModelConfigError" || e.name === "GgufError", `${e.name}: ${e.message}`);
      return true;
    });
  });
}

const f32 = (value: number) => ({ value, type: "f32" as const });
const u32 = (value: number) => ({ value, type: "u32" as const });

Deno.test("micro model: the unedited file loads", async () => {
  await withFile(await microGguf(), async (path) => {
    const m = await Model.load(path);
    m.close();
  });
});

Deno.test("load: bad rope.freq_base, rms epsilon and rope scaling are refused, naming the key", async () => {
  for (const v of [NaN, 0, -5, 1, Infinity]) {
    await refused({ meta: { "qwen3.rope.freq_base": f32(v) } }, /qwen3\.rope\.freq_base/);
  }
  for (const v of [NaN, -1e-6, 0, 2]) {
    await refused({ meta: { "qwen3.attention.layer_norm_rms_epsilon": f32(v) } }, /layer_norm_rms_epsilon/);
  }
  await refused({
    meta: { "qwen3.rope.scaling.type": { value: "yarn", type: "string" }, "qwen3.rope.scaling.factor": f32(NaN) },
  }, /rope\.scaling\.factor/);
});

Deno.test("load: a context length beyond 32 bits is refused", async () => {
  await refused({ meta: { "qwen3.context_length": { value: 2 ** 40, type: "u64" } } }, /qwen3\.context_length/);
  await refused({ meta: { "qwen3.context_length": u32(0) } }, /qwen3\.context_length/);
});

Deno.test("load: bad general.sampling.* values fail at load, not as the client's BAD_REQUEST", async () => {
  await refused({ meta: { "general.sampling.top_p": f32(7) } }, /general\.sampling\.top_p/);
  await refused({ meta: { "general.sampling.temp": f32(-1) } }, /general\.sampling\.temp/);
  await refused({ meta: { "general.sampling.top_k": { value: -3, type: "i32" } } }, /general\.sampling\.top_k/);
  await refused({ meta: { "general.sampling.min_p": f32(NaN) } }, /general\.sampling\.min_p/);
});

Deno.test("load: broken tokenizer data is refused (ChatML tokens, merges, token types)", async () => {
  const v = microVocab();
  const renamed = v.tokens.map((t) => t === "<|im_start|>" ? "<|im_begin|>" : t);
  await refused({ meta: { "tokenizer.ggml.tokens": { value: renamed, type: "array:string" } } }, /<\|im_start\|>/);
  const plain = v.types.map((t, i) => v.tokens[i] === "<|im_end|>" ? TokenType.NORMAL : t);
  await refused({ meta: { "tokenizer.ggml.token_type": { value: plain, type: "array:i32" } } }, /<\|im_end\|>/);
  await refused(
    { meta: { "tokenizer.ggml.merges": { value: [...v.merges, "h h"], type: "array:string" } } },
    /tokenizer\.ggml\.merges\[\d+\]/,
  );
  const unknown = v.types.map(() => TokenType.UNKNOWN);
  await refused(
    { meta: { "tokenizer.ggml.token_type": { value: unknown, type: "array:i32" } } },
    /tokenizer\.ggml\.token_type/,
  );
  const weird = v.types.map((t, i) => i === 5 ? 99 : t);
  await refused({ meta: { "tokenizer.ggml.token_type": { value: weird, type: "array:i32" } } }, /token_type\[5\]/);
});

Deno.test("load: overlapping tensor data is refused", async () => {
  await refused(patchTensorOffset(await microGguf(), "blk.0.attn_q.weight", 0), /overlap/);
});

Deno.test("load: a huge block_count fails at once, before any per-block table is built", async () => {
  for (const n of [2, 4_000_000_000]) await refused({ meta: { "qwen3.block_count": u32(n) } }, /qwen3\.block_count/);
});

Deno.test({
  name: "sampling: the padding rows of the embedding are never picked (300 random tokens)",
  sanitizeResources: false,
  async fn() {
    await withFile(await microGguf(), async (path) => {
      const m = await Model.load(path);
      assert.ok(m.config.nVocab > m.tokenizer.vocabSize);
      const s = new Scheduler(m, { contextSize: 128, parallel: 1 });
      for (let seed = 0; seed < 5; seed++) {
        let done = false;
        for await (
          const ev of s.submit({
            prompt: "hello",
            raw: true,
            maxTokens: 60,
            sampling: { temperature: 3, topK: 0, topP: 1, seed },
          })
        ) {
          if (ev.type === "token") assert.ok(ev.token < m.tokenizer.vocabSize);
          else done = true;
        }
        assert.ok(done);
      }
      m.close();
    });
  },
});
