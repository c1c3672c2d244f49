import assert from "node:assert/strict";
import { Model } from "./model.ts";
import { Forward } from "./forward.ts";
import { KvCache } from "./kv_cache.ts";
import { slideKv } from "./kv_shift.ts";
import { synthModel, tinyModel } from "../test/fixtures.ts";

/** Layer 0's keys depend only on token and position, so a slid cache must match a fresh one there. */
async function checkSlide(path: string, type: "f32" | "f16" | "q8", tolerance: number) {
  const model = await Model.load(path, { threads: 1 });
  try {
    const c = model.config;
    const fwd = new Forward(model.kernels, c, model.weights, 32);
    const tokens = [9707, 11, 1879, 13, 358, 1079, 264, 12305, 30, 151645];
    const slid = new KvCache(c, 32, type);
    for (const t of tokens) fwd.step(t, slid, false);
    assert.equal(slideKv(model.kernels, slid, c, 2, 3), 3);
    const kept = [...tokens.slice(0, 2), ...tokens.slice(5)];
    const fresh = new KvCache(c, 32, type);
    for (const t of kept) fwd.step(t, fresh, false);
    assert.equal(slid.length, kept.length);
    const view = (b: Uint8Array) => dequantKv(type, b.subarray(0, slid.length * slid.rowBytes));
    const a = view(slid.keys[0]);
    const b = view(fresh.keys[0]);
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
    assert.ok(worst < tolerance, `layer-0 keys differ by ${worst}`);
    assert.deepEqual(view(slid.values[0]), view(fresh.values[0]));
    if (type === "q8") {
      // Values are never touched by a slide: byte for byte what a fresh run stores.
      assert.deepEqual(
        slid.values[0].subarray(0, slid.length * slid.rowBytes),
        fresh.values[0].subarray(0, slid.length * slid.rowBytes),
      );
    }
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

Deno.test("sliding a q8 cache re-rotates and re-quantizes keys", async () => {
  await checkSlide(await tinyModel(), "q8", 5e-2);
});

/** Independent decoding of a cached layer to f32, for comparing. */
function dequantKv(type: "f32" | "f16" | "q8", bytes: Uint8Array): Float32Array {
  if (type === "f32") {
    return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  }
  if (type === "f16") {
    return Float32Array.from(
      new Float16Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)),
    );
  }
  const out = new Float32Array(bytes.length / 34 * 32);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let b = 0; b < out.length / 32; b++) {
    const d = dv.getFloat16(b * 34, true);
    for (let i = 0; i < 32; i++) out[b * 32 + i] = d * dv.getInt8(b * 34 + 2 + i);
  }
  return out;
}
