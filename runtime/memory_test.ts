import assert from "node:assert/strict";
import { readGguf } from "./gguf.ts";
import { qwen3ConfigFromGguf } from "./config.ts";
import { checkMemoryBudget, estimateMemory, MemoryBudgetError, parseByteSize } from "./memory.ts";
import { tinyModel } from "../test/fixtures.ts";

Deno.test("sizes parse with binary units", () => {
  assert.equal(parseByteSize("512M"), 512 * 2 ** 20);
  assert.equal(parseByteSize("1.5G"), 1.5 * 2 ** 30);
  assert.equal(parseByteSize("2GiB"), 2 * 2 ** 30);
  assert.equal(parseByteSize("4096"), 4096);
  assert.throws(() => parseByteSize("lots"), /not a size/);
});

Deno.test("the estimate adds weights, KV, scratch and runtime; KV scales with ctx and slots", async () => {
  const file = await readGguf(await tinyModel());
  const c = qwen3ConfigFromGguf(file);
  const a = estimateMemory(file, c, { contextSize: 1024 });
  // The tiny model peaks while loading the tokenizer; a 2048-slot f32 plan peaks decoding.
  assert.ok(a.totalBytes >= a.weightsBytes + a.kvBytes + a.scratchBytes + a.runtimeBytes);
  const big = estimateMemory(file, c, { contextSize: 2048, parallel: 64, kvType: "f32" });
  assert.equal(big.totalBytes, big.weightsBytes + big.kvBytes + big.scratchBytes + big.runtimeBytes);
  assert.equal(a.kvBytesPerToken, 2 * c.nLayer * c.nHeadKv * c.headDim * 2);
  assert.equal(a.kvBytes, 1024 * a.kvBytesPerToken);
  const b = estimateMemory(file, c, { contextSize: 2048, parallel: 3, kvType: "f32" });
  assert.equal(b.kvBytes, 3 * 2048 * 2 * a.kvBytesPerToken);
  const tensorBytes = [...file.tensors.values()].reduce((s, t) => s + t.byteSize, 0);
  assert.equal(a.weightsBytes, tensorBytes);
});

Deno.test("a plan over budget is refused with a context that fits, and that context does fit", async () => {
  const file = await readGguf(await tinyModel());
  const c = qwen3ConfigFromGguf(file);
  // 32 slots of f32 keys and values: the KV cache, not the tokenizer, decides what fits.
  const plan = (contextSize: number) => ({ contextSize, parallel: 32, kvType: "f32" as const });
  const small = estimateMemory(file, c, plan(512));
  const budget = small.totalBytes + 200 * 32 * small.kvBytesPerToken;
  let err: MemoryBudgetError | undefined;
  try {
    checkMemoryBudget(file, c, plan(2048), budget);
  } catch (e) {
    err = e as MemoryBudgetError;
  }
  assert.ok(err instanceof MemoryBudgetError);
  assert.match(err.message, /memory budget is \d+ MiB; a context of \d+ tokens would fit \(--ctx \d+/);
  assert.ok(err.fittingContext >= 512 && err.fittingContext < 2048, String(err.fittingContext));
  checkMemoryBudget(file, c, plan(err.fittingContext), budget);
  assert.throws(() => checkMemoryBudget(file, c, plan(err!.fittingContext + 256), budget), MemoryBudgetError);
  assert.throws(() => checkMemoryBudget(file, c, { contextSize: 256 }, 1000), /even a 256-token context does not fit/);
});
