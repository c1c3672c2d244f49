import assert from "node:assert/strict";
import { memoryBudget, MIN_PLANNED_CONTEXT, type ModelFootprint, planMemory } from "./budget.ts";
import { footprintOf } from "./settings.ts";
import { tinyModel } from "../test/fixtures.ts";
import { readGguf } from "../runtime/gguf.ts";
import { qwen3ConfigFromGguf } from "../runtime/config.ts";
import { KvCache } from "../runtime/kv_cache.ts";
import { PROFILES } from "./profiles.ts";

const MiB = 2 ** 20;
const GiB = 2 ** 30;

/** A linear stand-in for `estimateMemory`: weights + KV + logits + tokenizer/runtime. */
function footprint(
  weightBytes: number,
  nLayer: number,
  contextLength: number,
): ModelFootprint {
  const kvPerToken = 2 * nLayer * 8 * 128 * 2; // f16, 8 KV heads of 128
  return {
    contextLength,
    bytesNeeded: (contextSize, parallel) =>
      weightBytes + kvPerToken * contextSize * parallel + parallel * 151669 * 4 +
      145 * MiB,
  };
}
// Bonsai 1.7B and 8B Q1_0 (BONSAI.md): ~242 MB / 1.15 GB of weights, 28 / 36 layers
const BONSAI_1_7B = footprint(242e6, 28, 32768);
const BONSAI_8B = footprint(1.15e9, 36, 65536);
const bytesNeeded = (m: ModelFootprint, contextSize: number, parallel: number) => m.bytesNeeded(contextSize, parallel);

Deno.test("budget: a share of RAM minus the margin, never negative", () => {
  assert.equal(memoryBudget(PROFILES.pi4, 4 * GiB), 4 * GiB * 0.75 - 128 * MiB);
  assert.ok(
    memoryBudget(PROFILES["jetson-orin"], 8 * GiB) <
      memoryBudget(PROFILES.pi5, 8 * GiB),
  );
  assert.equal(memoryBudget(PROFILES["x86-kiosk"], 256 * MiB), 0);
});

Deno.test("budget: profile defaults stand when they fit", () => {
  const plan = planMemory(PROFILES.pi5, 8 * GiB, BONSAI_1_7B);
  assert.equal(plan.contextSize, PROFILES.pi5.contextSize);
  assert.equal(plan.parallel, PROFILES.pi5.parallel);
  assert.ok(plan.fits);
  assert.deepEqual(plan.notes, []);
  assert.equal(
    plan.neededBytes,
    bytesNeeded(BONSAI_1_7B, plan.contextSize, plan.parallel),
  );
});

Deno.test("budget: a 1 GB Pi 4 still runs the 1.7B model, with what fits", () => {
  const plan = planMemory(PROFILES.pi4, 1 * GiB - 120e6, BONSAI_1_7B);
  assert.ok(plan.fits, plan.notes.join("; "));
  assert.ok(plan.neededBytes <= plan.budgetBytes);
  assert.ok(plan.contextSize >= MIN_PLANNED_CONTEXT);
});

Deno.test("budget: defaults are lowered parallel first, then ctx", () => {
  const p = PROFILES["jetson-orin"];
  // a budget that holds ctx 4096 x 1 but not x 2
  const budget = bytesNeeded(BONSAI_1_7B, 4096, 1) + MiB;
  const plan = planMemory(p, 8 * GiB, BONSAI_1_7B, { budgetBytes: budget });
  assert.equal(plan.parallel, 1);
  assert.equal(plan.contextSize, 4096);
  assert.match(
    plan.notes[0],
    /lowered jetson-orin defaults from ctx 4096 x 4 to ctx 4096 x 1/,
  );
  const tighter = planMemory(p, 8 * GiB, BONSAI_1_7B, {
    budgetBytes: bytesNeeded(BONSAI_1_7B, 1024, 1),
  });
  assert.equal(tighter.contextSize, 1024);
  assert.ok(tighter.fits);
});

Deno.test("budget: ctx is capped by the model's trained context", () => {
  const plan = planMemory(PROFILES.pi5, 8 * GiB, {
    ...BONSAI_1_7B,
    contextLength: 1024,
  });
  assert.equal(plan.contextSize, 1024);
});

Deno.test("budget: the 8B model does not fit a 1 GB Pi 4, and the note says why", () => {
  const plan = planMemory(PROFILES.pi4, 1 * GiB, BONSAI_8B);
  assert.equal(plan.fits, false);
  assert.equal(plan.contextSize, MIN_PLANNED_CONTEXT);
  assert.match(plan.notes.at(-1)!, /needs \d+ MiB .* budget is \d+ MiB/);
});

Deno.test("budget: explicit ctx and parallel are kept even when over budget", () => {
  const plan = planMemory(PROFILES.pi4, 1 * GiB, BONSAI_1_7B, {
    contextSize: 32768,
    parallel: 3,
  });
  assert.equal(plan.contextSize, 32768);
  assert.equal(plan.parallel, 3);
  assert.equal(plan.fits, false);
});

Deno.test("budget: a plan over budget names a context that fits, and that context does fit", async () => {
  const file = await readGguf(await tinyModel());
  const config = qwen3ConfigFromGguf(file);
  // 32 slots of f32 keys and values: the KV cache, not the tokenizer, decides what fits.
  const footprint = footprintOf(file, config, "f32");
  const budget = footprint.bytesNeeded(512, 32) +
    200 * 32 * KvCache.bytesPerToken(config, "f32");
  const over = planMemory(PROFILES.generic, 8 * GiB, footprint, {
    contextSize: 2048,
    parallel: 32,
    budgetBytes: budget,
  });
  assert.equal(over.fits, false);
  assert.match(
    over.notes.at(-1)!,
    /model needs \d+ MiB \(weights \d+ MiB, KV cache \d+ MiB, .*\) for ctx 2048 x 32 but the memory budget is \d+ MiB; a context of \d+ tokens would fit \(--ctx \d+/,
  );
  assert.ok(
    over.fittingContextSize >= 512 && over.fittingContextSize < 2048,
    String(over.fittingContextSize),
  );
  assert.ok(
    planMemory(PROFILES.generic, 8 * GiB, footprint, {
      contextSize: over.fittingContextSize,
      parallel: 32,
      budgetBytes: budget,
    }).fits,
  );
  const next = over.fittingContextSize + MIN_PLANNED_CONTEXT;
  assert.equal(
    planMemory(PROFILES.generic, 8 * GiB, footprint, {
      contextSize: next,
      parallel: 32,
      budgetBytes: budget,
    }).fits,
    false,
  );
  const none = planMemory(PROFILES.generic, 8 * GiB, footprint, {
    contextSize: 256,
    budgetBytes: 1000,
  });
  assert.equal(none.fittingContextSize, 0);
  assert.match(none.notes.at(-1)!, /even a 256-token context does not fit/);
});
