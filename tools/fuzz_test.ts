/**
 * The fuzz harness in the test suite: a small seeded budget of every family, and the fixtures
 * of test/fuzz/ (cases found by hostile testing, each with the outcome it must have).
 */
import assert from "node:assert/strict";
import { FAMILIES, FuzzContext, type FuzzInput, runCase, runFuzz } from "./fuzz.ts";

const FIXTURES = new URL("../test/fuzz/", import.meta.url);

Deno.test({
  name: "fuzz: a small seeded budget (model files, wire requests, grammars) finds no crash, INTERNAL or overrun",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const report = await runFuzz({ seed: 20261203, cases: 400, timeMs: 40_000, families: FAMILIES });
    const failures = report.failures.map((f) => `case ${f.index} (${f.input.family}): ${f.problem}`);
    assert.deepEqual(failures, [], `replay with: deno task fuzz --seed ${report.seed} --case N`);
    for (const family of FAMILIES) assert.ok(report.ran[family] > 0, `no ${family} case ran`);
  },
});

Deno.test({
  name: "fuzz: the fixtures of test/fuzz/ end as recorded",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const ctx = await FuzzContext.open();
    try {
      for await (const entry of Deno.readDir(FIXTURES)) {
        if (!entry.name.endsWith(".json")) continue;
        const fixture = JSON.parse(await Deno.readTextFile(new URL(entry.name, FIXTURES))) as {
          note?: string;
          expect?: string;
          input: FuzzInput;
        };
        await t.step(entry.name, async () => {
          const outcome = await runCase(ctx, fixture.input);
          assert.equal(outcome.problem, undefined, `${entry.name}: ${outcome.problem}`);
          if (fixture.expect) assert.equal(outcome.code, fixture.expect, `${entry.name} (${fixture.note ?? ""})`);
        });
      }
    } finally {
      await ctx.close();
    }
  },
});
