import assert from "node:assert/strict";
import { Model } from "./model.ts";
import { Forward } from "./forward.ts";
import { KvCache } from "./kv_cache.ts";
import { slideKv } from "./kv_shift.ts";
import { synthModel, tinyModel } from "../test/fixtures.ts";

/** Layer 0's keys depend only on token and position, so a slid cache must match a fresh one there. */
async function checkSlide(path: string, type: "f32" | "f16", tolerance: number) {
  const model = await Model.load(path, { threads: 1 });
  try {
    const c = model.config;
    const fwd = new Forward(model.kernels, c, model.weights, 32);
    const tokens = [9707, 11, 1879, 13, 358, 1079, 264, 12305, 30, 151645];
    const slid = new KvCache(c, 32, type);
    for (const t of tokens) fwd.step(t, slid, false);
    assert.equal(slideKv(slid, c, 2, 3), 3);
    const kept = [...tokens.slice(0, 2), ...tokens.slice(5)];
    const fresh = new KvCache(c, 32, type);
    for (const t of kept) fwd.step(t, fresh, false);
    assert.equal(slid.length, kept.length);
    const view = (b: Uint8Array) =>
      type === "f16" ? new Float16Array(b.buffer, b.byteOffset, slid.length * slid.kvDim) : new Float32Array(b.buffer, b.byteOffset, slid.length * slid.kvDim);
    const a = view(slid.keys[0]);
    const b = view(fresh.keys[0]);
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
    assert.ok(worst < tolerance, `layer-0 keys differ by ${worst}`);
    assert.deepEqual(view(slid.values[0]), view(fresh.values[0]));
    // The slid region is hidden from the prefix cache.
    assert.equal(slid.commonPrefix(kept), 2);
  } finally {
    model.close();
  }
}

Deno.test("sliding re-rotates keys to their new positions (f32 cache)", async () => {
  await checkSlide(await tinyModel(), "f32", 1e-4);
});

Deno.test("sliding re-rotates keys to their new positions (f16 cache, YaRN model)", async () => {
  await checkSlide(await synthModel({ shape: "tiny", seed: 4, yarn: 4 }), "f16", 1e-2);
});
