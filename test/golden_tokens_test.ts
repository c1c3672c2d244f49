/**
 * Behaviour unchanged: the token streams of the synthetic models equal the ones recorded in
 * `test/golden/tokens.json` (see golden_tokens.ts), case by case.
 */
import assert from "node:assert/strict";
import { GOLDEN_CASES, GOLDEN_FILE, runGoldenCase } from "./golden_tokens.ts";

const recorded: Record<string, number[][]> = JSON.parse(
  await Deno.readTextFile(GOLDEN_FILE),
);

for (const c of GOLDEN_CASES) {
  Deno.test(`golden tokens: ${c.name}`, async () => {
    assert.ok(
      recorded[c.name],
      `no recorded streams for '${c.name}' (run test/golden_tokens.ts --write)`,
    );
    assert.deepEqual(await runGoldenCase(c), recorded[c.name]);
  });
}
