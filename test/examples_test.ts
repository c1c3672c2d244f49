/**
 * The public API's examples (the code blocks in mod.ts's documentation) run as written, on a
 * generated model: `deno test --doc mod.ts` in a child process with BONSAI_MODEL set.
 */
import assert from "node:assert/strict";
import { tinyModel } from "./fixtures.ts";

Deno.test("mod.ts examples run against a real (generated) model", async () => {
  const mod = new URL("../mod.ts", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["test", "--allow-all", "--doc", mod],
    env: { BONSAI_MODEL: await tinyModel(), NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, text);
  assert.match(text, /ok \| 3 passed \| 0 failed/);
  assert.match(text, /"code":"BAD_REQUEST"/);
});
