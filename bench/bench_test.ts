import assert from "node:assert/strict";
import { measure } from "./measure.ts";
import { measureOverhead } from "./overhead.ts";
import { fmt, table } from "./report.ts";
import { tinyModel } from "../test/fixtures.ts";

Deno.test("report table pads columns and formats missing numbers", () => {
  const t = table(["model", "tok/s"], [["1.7b", fmt(12.345)], ["4b", fmt(NaN)]])
    .split("\n");
  assert.equal(t.length, 4);
  assert.equal(
    new Set(t.map((l) => l.length)).size,
    1,
    "all lines the same width",
  );
  assert.ok(t[2].endsWith("12.3") && t[3].endsWith("-"));
});

Deno.test("measure: one configuration on the tiny model reports consistent figures", async () => {
  const m = await measure([
    "--model",
    await tinyModel(),
    "--threads",
    "1",
    "--prompt",
    "20",
    "--decode",
    "6",
    "--chunk",
    "8",
    "--prefix",
    "40",
  ]);
  assert.equal(m.threads, 1);
  assert.equal(m.promptTokens, 20);
  assert.ok(m.prefillTokS > 0 && m.decodeTokS > 0 && m.loadMs > 0);
  assert.ok(
    m.ttftMs >= (m.promptTokens / m.prefillTokS) * 1000,
    "TTFT includes the whole prefill",
  );
  assert.ok(m.weightBytesPerToken > 0);
  const p = m.prefix!;
  assert.ok(p.promptTokens >= 40);
  // the repeated request reuses the system prompt's tokens from the slot
  assert.ok(p.warmCachedTokens >= 40 && p.warmCachedTokens < p.promptTokens);
});

Deno.test("overhead: the parts add up and the step is counted call by call", async () => {
  const o = await measureOverhead(await tinyModel(), 1, 4);
  // tiny model: 2 layers; per layer four pooled products (q/k/v together, output, gate/up together, down), plus the head.
  assert.ok(o.callsPerStep > 20 && Number.isInteger(o.callsPerStep), String(o.callsPerStep));
  assert.equal(o.dispatchesPerStep, 2 * 4 + 1);
  assert.ok(o.hostMs > 0 && o.callUs > 0 && o.dispatchUs > 0);
  const parts = o.hostMs + (o.callsPerStep * o.callUs + o.dispatchesPerStep * o.dispatchUs) / 1000;
  assert.ok(Math.abs(parts - o.overheadMs) < 1e-9);
  assert.ok(Math.abs(o.fraction - o.overheadMs / o.stepMs) < 1e-9);
});

Deno.test("attention bench: one timing per thread count and context, longer contexts cost more", async () => {
  const { benchAttention } = await import("./attention.ts");
  const { Kernels } = await import("../kernels/ffi.ts");
  const k = Kernels.load();
  const before = k.threads();
  try {
    const r = benchAttention(k, { layers: 2, heads: 4, kvHeads: 2, headDim: 64 }, [8, 2048], [1]);
    assert.deepEqual(r.map((x) => [x.threads, x.positions]), [[1, 8], [1, 2048]]);
    assert.ok(r.every((x) => x.msPerToken > 0 && Number.isFinite(x.msPerToken)));
    assert.ok(r[1].msPerToken > r[0].msPerToken, "256x the positions must take longer");
  } finally {
    k.setThreads(before);
  }
});

Deno.test("http bench: overhead and chunk latency figures on the tiny model", {
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const { measureHttp } = await import("./http.ts");
  const r = await measureHttp(await tinyModel(), { requests: 5, tokens: 8 });
  assert.equal(r.requests, 5);
  assert.ok(r.schedulerMs.p50 > 0 && r.httpMs.p50 > 0 && r.httpStreamMs.p50 > 0);
  assert.equal(r.overheadMs, Math.round((r.httpMs.p50 - r.schedulerMs.p50) * 1000) / 1000);
  assert.ok(r.streamTokens >= 1 && r.streamTokens <= 8, `${r.streamTokens} chunks`);
  assert.ok(Number.isFinite(r.chunkLatencyMs.p50));
});
