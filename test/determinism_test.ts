/**
 * Determinism: for a given model, prompt, settings and seed, the token stream is the same across
 * runs, thread counts and kernel paths (scalar reference vs the best SIMD path of this machine).
 * Holds because every path computes exact integer block sums and accumulates floats in one fixed
 * order, and each output row is computed by exactly one thread.
 */
import assert from "node:assert/strict";
import { Model } from "../runtime/model.ts";
import { Scheduler } from "../runtime/scheduler.ts";
import type { GenerationRequest } from "../runtime/request.ts";
import { Kernels } from "../kernels/ffi.ts";
import { synthModel, tinyModel } from "./fixtures.ts";

const REQUESTS: GenerationRequest[] = [
  {
    prompt: "Report the battery level.",
    maxTokens: 12,
    sampling: { temperature: 0.9, topK: 40, topP: 0.95, seed: 1234 },
  },
  { prompt: "Hello", maxTokens: 12, sampling: { temperature: 0 } },
  { prompt: "Plan a path to the door.", maxTokens: 12, sampling: { temperature: 0.5, seed: 7, repeatPenalty: 1.2 } },
];

async function tokenStreams(path: string, threads: number, isa: "scalar" | "best"): Promise<number[][]> {
  const kernels = Kernels.load();
  const available = kernels.isaAvailable();
  kernels.forceIsa(isa === "scalar" ? [] : available);
  const model = await Model.load(path, { threads, kernels });
  try {
    const scheduler = new Scheduler(model, { parallel: 2, contextSize: 256 });
    const streams: number[][] = [];
    for (const req of REQUESTS) {
      const tokens: number[] = [];
      for await (const ev of scheduler.submit(req)) if (ev.type === "token") tokens.push(ev.token);
      streams.push(tokens);
    }
    return streams;
  } finally {
    model.close();
    kernels.forceIsa(available);
  }
}

for (
  const [name, opts] of [["Q1_0", { shape: "tiny", seed: 1 }], ["Q2_0", {
    shape: "tiny",
    seed: 2,
    type: "q2_0",
  }]] as const
) {
  Deno.test(`${name}: same tokens across runs, thread counts 1/2/3 and scalar vs SIMD kernels`, async () => {
    const path = name === "Q1_0" ? await tinyModel() : await synthModel(opts);
    const reference = await tokenStreams(path, 1, "scalar");
    assert.ok(reference.every((s) => s.length > 0));
    assert.deepEqual(await tokenStreams(path, 1, "scalar"), reference, "second run");
    assert.deepEqual(await tokenStreams(path, 2, "best"), reference, "2 threads, best ISA");
    assert.deepEqual(await tokenStreams(path, 3, "best"), reference, "3 threads, best ISA");
  });
}
