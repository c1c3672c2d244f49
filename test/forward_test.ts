/**
 * The kernel forward pass against the slow TypeScript reference (test/reference_forward.ts).
 *
 * Tolerance: the reference computes in f64 with the same Q8_0 rounding of activations; the
 * kernels accumulate in f32. Logits must agree within LOGIT_TOLERANCE of the largest |logit|,
 * and greedy decoding must pick the same 32 tokens.
 *
 * Ternary (Q2_0) weights have zeros, which make activations land exactly on a Q8 half-step
 * more often; f32 and f64 then round such a value to neighbouring integers (both correct), and
 * the random model amplifies that one-step difference about tenfold per layer (measured: 4e-4
 * after attn_output, 1e-2 after ffn_down). Those models get TERNARY_TOLERANCE instead.
 */
import assert from "node:assert/strict";
import { Model } from "../runtime/model.ts";
import { Forward } from "../runtime/forward.ts";
import { KvCache } from "../runtime/kv_cache.ts";
import { encodeChat } from "../runtime/chat.ts";
import { ReferenceModel } from "./reference_forward.ts";
import { synthModel, tinyModel } from "./fixtures.ts";
import type { SynthOptions } from "../tools/synth.ts";

const LOGIT_TOLERANCE = 2e-3;
const TERNARY_TOLERANCE = 3e-2;

function relativeError(got: Float32Array, want: Float64Array): number {
  let maxDiff = 0;
  let maxAbs = 0;
  for (let i = 0; i < want.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(got[i] - want[i]));
    maxAbs = Math.max(maxAbs, Math.abs(want[i]));
  }
  return maxDiff / maxAbs;
}

function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

/** Runs prompt + `steps` greedy tokens through both; returns the worst relative logit error. */
async function compare(
  path: string,
  steps: number,
): Promise<{ worst: number; kernelTokens: number[]; refTokens: number[] }> {
  const model = await Model.load(path, { threads: 2 });
  try {
    const ref = await ReferenceModel.load(path);
    const fwd = new Forward(model.kernels, model.config, model.weights, 256);
    const kv = new KvCache(model.config, 256, "f32");
    const prompt = encodeChat(model.tokenizer, [{ role: "user", content: "Hello, robot. Status?" }]);
    let worst = 0;
    let got = fwd.logits;
    let want: Float64Array = new Float64Array(0);
    for (const t of prompt) {
      got = fwd.step(t, kv);
      want = ref.step(t);
      worst = Math.max(worst, relativeError(got, want));
    }
    const kernelTokens: number[] = [];
    const refTokens: number[] = [];
    for (let i = 0; i < steps; i++) {
      const a = argmax(got);
      const b = argmax(want);
      kernelTokens.push(a);
      refTokens.push(b);
      if (a !== b) break;
      got = fwd.step(a, kv);
      want = ref.step(b);
      worst = Math.max(worst, relativeError(got, want));
    }
    return { worst, kernelTokens, refTokens };
  } finally {
    model.close();
  }
}

Deno.test("tiny Q1_0 model: kernel logits match the reference and 32 greedy tokens agree", async () => {
  const r = await compare(await tinyModel(), 32);
  assert.ok(r.worst < LOGIT_TOLERANCE, `relative logit error ${r.worst}`);
  assert.deepEqual(r.kernelTokens, r.refTokens);
  assert.equal(r.kernelTokens.length, 32);
});

const VARIANTS: [string, Omit<SynthOptions, "out">, number][] = [
  ["Q2_0 (block 128)", { shape: "tiny", seed: 2, type: "q2_0" }, TERNARY_TOLERANCE],
  ["Q2_0 (block 64)", { shape: "tiny", seed: 3, type: "q2_0_g64" }, TERNARY_TOLERANCE],
  ["YaRN rope scaling", { shape: "tiny", seed: 4, yarn: 4 }, LOGIT_TOLERANCE],
];
for (const [name, opts, tolerance] of VARIANTS) {
  Deno.test(`tiny ${name} model: kernel logits match the reference`, async () => {
    const r = await compare(await synthModel(opts), 8);
    assert.ok(r.worst < tolerance, `relative logit error ${r.worst}`);
    assert.deepEqual(r.kernelTokens, r.refTokens);
  });
}

Deno.test("f16 and q8 KV caches stay close to f32", async () => {
  const model = await Model.load(await tinyModel(), { threads: 1 });
  try {
    const run = (type: "f16" | "f32" | "q8") => {
      const fwd = new Forward(model.kernels, model.config, model.weights, 64);
      const kv = new KvCache(model.config, 64, type);
      let logits = fwd.logits;
      for (const t of [9707, 11, 1879, 0, 13, 151645]) logits = fwd.step(t, kv);
      return Float32Array.from(logits);
    };
    const a = run("f32");
    for (const [type, tolerance] of [["f16", 5e-2], ["q8", 1e-1]] as const) {
      const b = run(type);
      const err = relativeError(b, Float64Array.from(a));
      assert.ok(err < tolerance, `${type} vs f32 KV relative logit error ${err}`);
      assert.equal(argmax(a), argmax(b), type);
    }
  } finally {
    model.close();
  }
});

Deno.test("logits are bit-identical across thread counts", async () => {
  const path = await tinyModel();
  const logitsWith = async (threads: number) => {
    const model = await Model.load(path, { threads });
    try {
      const fwd = new Forward(model.kernels, model.config, model.weights, 16);
      const kv = new KvCache(model.config, 16);
      for (const t of [9707, 1879, 13]) fwd.step(t, kv);
      return Float32Array.from(fwd.logits);
    } finally {
      model.close();
    }
  };
  const one = await logitsWith(1);
  assert.deepEqual(await logitsWith(2), one);
  assert.deepEqual(await logitsWith(3), one);
});

Deno.test("a batch (prompt chunk + other sequences) gives bit-identical logits to one token at a time", async () => {
  const model = await Model.load(await tinyModel(), { threads: 2 });
  try {
    const c = model.config;
    const promptA = [9707, 11, 1879, 13, 151645];
    const promptB = [40, 1079, 264];
    // One at a time.
    const single = new Forward(model.kernels, c, model.weights, 32);
    const kvA1 = new KvCache(c, 32);
    const kvB1 = new KvCache(c, 32);
    let lastA = new Float32Array(0);
    for (const t of promptA) lastA = Float32Array.from(single.step(t, kvA1));
    let lastB = new Float32Array(0);
    for (const t of promptB) lastB = Float32Array.from(single.step(t, kvB1));
    const nextA = Float32Array.from(single.step(7, kvA1));
    // Batched: all of A's and B's prompts in one run, then one decode row each.
    const batch = new Forward(model.kernels, c, model.weights, 32, { maxBatch: 8, maxLogitRows: 2 });
    const kvA2 = new KvCache(c, 32);
    const kvB2 = new KvCache(c, 32);
    batch.run([
      ...promptA.map((token, i) => ({ token, kv: kvA2, wantLogits: i === promptA.length - 1 })),
      ...promptB.map((token, i) => ({ token, kv: kvB2, wantLogits: i === promptB.length - 1 })),
    ]);
    assert.deepEqual(batch.logits.slice(0, c.nVocab), lastA);
    assert.deepEqual(batch.logits.slice(c.nVocab, 2 * c.nVocab), lastB);
    batch.run([{ token: 7, kv: kvA2, wantLogits: true }, { token: 7, kv: kvB2, wantLogits: true }]);
    assert.deepEqual(batch.logits.slice(0, c.nVocab), nextA);
    assert.equal(kvA2.length, promptA.length + 1);
  } finally {
    model.close();
  }
});
