import assert from "node:assert/strict";
import { resolveSampling, Sampler } from "./sampler.ts";

const logits = Float32Array.from([1, 5, 3, 5, -2, 4]);

Deno.test("greedy picks the largest logit, lowest id on a tie", () => {
  assert.equal(new Sampler({ temperature: 0 }).sample(logits), 1);
});

Deno.test("greedy respects the allowed mask", () => {
  assert.equal(new Sampler({ temperature: 0 }).sample(logits, [], (id) => id !== 1 && id !== 3), 5);
});

Deno.test("same seed gives the same draws; another seed differs", () => {
  const wide = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i) * 2);
  const draws = (seed: number) => {
    const s = new Sampler({ temperature: 1, topK: 0, topP: 1, seed });
    return Array.from({ length: 50 }, () => s.sample(wide));
  };
  assert.deepEqual(draws(42), draws(42));
  assert.notDeepEqual(draws(42), draws(43));
});

Deno.test("top-k 1 is greedy whatever the temperature", () => {
  const s = new Sampler({ temperature: 5, topK: 1, seed: 3 });
  for (let i = 0; i < 20; i++) assert.equal(s.sample(logits), 1);
});

Deno.test("top-k only ever draws among the k best", () => {
  const s = new Sampler({ temperature: 10, topK: 3, topP: 1, seed: 1 });
  const seen = new Set<number>();
  for (let i = 0; i < 300; i++) seen.add(s.sample(logits));
  assert.deepEqual([...seen].sort(), [1, 3, 5]);
});

Deno.test("top-p keeps the smallest set reaching p", () => {
  // Probabilities at temperature 1 of logits [0, ln 6, ln 3] = [0.1, 0.6, 0.3].
  const l = Float32Array.from([0, Math.log(6), Math.log(3)]);
  const s = new Sampler({ temperature: 1, topK: 0, topP: 0.85, seed: 7 });
  const seen = new Set<number>();
  for (let i = 0; i < 300; i++) seen.add(s.sample(l));
  assert.deepEqual([...seen].sort(), [1, 2]);
});

Deno.test("min-p drops tokens far below the best", () => {
  const l = Float32Array.from([0, Math.log(6), Math.log(3)]);
  const s = new Sampler({ temperature: 1, topK: 0, topP: 1, minP: 0.4, seed: 7 });
  for (let i = 0; i < 200; i++) assert.notEqual(s.sample(l), 0);
});

Deno.test("draw frequencies follow the softmax", () => {
  const l = Float32Array.from([0, Math.log(3)]); // 0.25 / 0.75
  const s = new Sampler({ temperature: 1, topK: 0, topP: 1, seed: 11 });
  let ones = 0;
  const n = 4000;
  for (let i = 0; i < n; i++) ones += s.sample(l);
  assert.ok(Math.abs(ones / n - 0.75) < 0.03, `frequency ${ones / n}`);
});

Deno.test("repeat and presence penalties push recent tokens down", () => {
  const l = Float32Array.from([2, 2.5]);
  assert.equal(new Sampler({ temperature: 0 }).sample(l, [1]), 1);
  assert.equal(new Sampler({ temperature: 0, repeatPenalty: 1.5 }).sample(l, [1]), 0);
  assert.equal(new Sampler({ temperature: 0, presencePenalty: 1 }).sample(l, [1]), 0);
  // Outside the look-back window the penalty does not apply.
  assert.equal(new Sampler({ temperature: 0, repeatPenalty: 1.5, repeatLastN: 1 }).sample(l, [1, 0]), 1);
});

Deno.test("bad settings name the field", () => {
  assert.throws(() => resolveSampling({ temperature: -1 }), /temperature/);
  assert.throws(() => resolveSampling({ topP: 0 }), /top_p/);
  assert.throws(() => resolveSampling({ topK: 1.5 }), /top_k/);
  assert.throws(() => resolveSampling({ seed: -3 }), /seed/);
  assert.throws(() => resolveSampling({ temperature: NaN }), /temperature/);
});

Deno.test("ids past the vocabulary (padding rows of the logits) are never picked", () => {
  // 6 real tokens, then 4 padding rows with the largest logits.
  const padded = Float32Array.from([1, 5, 3, 5, -2, 4, 50, 60, 70, 80]);
  assert.equal(new Sampler({ temperature: 0 }, undefined, 6).sample(padded), 1);
  assert.equal(new Sampler({ temperature: 0 }, undefined, 6).sample(padded, [], undefined, [9, 7, 5]), 5);
  for (const topK of [0, 3, 20]) {
    const s = new Sampler({ temperature: 5, topK, topP: 1, seed: 3 }, undefined, 6);
    for (let i = 0; i < 200; i++) {
      assert.ok(s.sample(padded) < 6, `top_k ${topK}`);
      assert.ok(s.sample(padded, [], (id) => id !== 1, [8, 1, 2, 9]) === 2, `top_k ${topK}, only`);
    }
  }
});
