import assert from "node:assert/strict";
import { Rng } from "./rng.ts";

Deno.test("xoshiro128** matches the reference outputs for state {1,2,3,4}", () => {
  // Known answers of the reference C implementation (Blackman & Vigna) from that state.
  const r = Rng.fromState(1, 2, 3, 4);
  assert.deepEqual([r.nextU32(), r.nextU32(), r.nextU32()], [
    11520,
    0,
    5927040,
  ]);
});

Deno.test("same seed gives the same stream, other seeds differ", () => {
  const a = new Rng(42),
    b = new Rng(42),
    c = new Rng(43),
    d = new Rng(42 + 2 ** 32);
  const sa = Array.from({ length: 64 }, () => a.nextU32());
  assert.deepEqual(sa, Array.from({ length: 64 }, () => b.nextU32()));
  assert.notDeepEqual(sa, Array.from({ length: 64 }, () => c.nextU32()));
  assert.notDeepEqual(sa, Array.from({ length: 64 }, () => d.nextU32()));
});

Deno.test("nextFloat is in [0, 1) with mean near 1/2", () => {
  const r = new Rng(7);
  let sum = 0;
  for (let i = 0; i < 100000; i++) {
    const x = r.nextFloat();
    assert.ok(x >= 0 && x < 1, `out of range: ${x}`);
    sum += x;
  }
  assert.ok(Math.abs(sum / 100000 - 0.5) < 0.01);
});

Deno.test("fillBytes is the little-endian bytes of nextU32, any length, roughly uniform", () => {
  const a = new Rng(9), b = new Rng(9);
  const bytes = new Uint8Array(4003);
  a.fillBytes(bytes);
  for (let i = 0; i < 4000; i += 4) {
    const w = b.nextU32();
    assert.deepEqual([...bytes.subarray(i, i + 4)], [
      w & 255,
      (w >>> 8) & 255,
      (w >>> 16) & 255,
      w >>> 24,
    ]);
  }
  const last = b.nextU32();
  assert.deepEqual([...bytes.subarray(4000)], [
    last & 255,
    (last >>> 8) & 255,
    (last >>> 16) & 255,
  ]);

  const big = new Uint8Array(256 * 400);
  new Rng(1).fillBytes(big);
  const hist = new Array(256).fill(0);
  for (const x of big) hist[x]++;
  assert.ok(
    Math.min(...hist) > 300 && Math.max(...hist) < 500,
    "byte histogram is far from uniform",
  );
});

Deno.test("fillU32 continues the same stream as nextU32", () => {
  const a = new Rng(5), b = new Rng(5);
  const w = new Uint32Array(10);
  a.fillU32(w);
  assert.deepEqual([...w], Array.from({ length: 10 }, () => b.nextU32()));
});

Deno.test("bad seeds and states are rejected", () => {
  assert.throws(() => new Rng(NaN), /seed/);
  assert.throws(() => Rng.fromState(0, 0, 0, 0), /all zero/);
});
