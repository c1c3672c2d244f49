import assert from "node:assert/strict";
import { readGguf } from "./gguf.ts";
import { qwen3ConfigFromGguf } from "./config.ts";
import { estimateMemory } from "./memory.ts";
import { tinyModel } from "../test/fixtures.ts";

Deno.test("the estimate adds weights, KV, scratch and runtime; KV scales with ctx and slots", async () => {
  const file = await readGguf(await tinyModel());
  const c = qwen3ConfigFromGguf(file);
  const a = estimateMemory(file, c, { contextSize: 1024 });
  // The tiny model peaks while loading the tokenizer; a 2048-slot f32 plan peaks decoding.
  assert.ok(
    a.totalBytes >=
      a.weightsBytes + a.kvBytes + a.scratchBytes + a.runtimeBytes,
  );
  const big = estimateMemory(file, c, {
    contextSize: 2048,
    parallel: 64,
    kvType: "f32",
  });
  assert.equal(
    big.totalBytes,
    big.weightsBytes + big.kvBytes + big.scratchBytes + big.runtimeBytes,
  );
  assert.equal(a.kvBytesPerToken, 2 * c.nLayer * c.nHeadKv * c.headDim * 2);
  assert.equal(a.kvBytes, 1024 * a.kvBytesPerToken);
  const b = estimateMemory(file, c, {
    contextSize: 2048,
    parallel: 3,
    kvType: "f32",
  });
  assert.equal(b.kvBytes, 3 * 2048 * 2 * a.kvBytesPerToken);
  const tensorBytes = [...file.tensors.values()].reduce(
    (s, t) => s + t.byteSize,
    0,
  );
  assert.equal(a.weightsBytes, tensorBytes);
});
