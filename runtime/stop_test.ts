import assert from "node:assert/strict";
import { StopMatcher } from "./stop.ts";

function run(stops: string[], pieces: string[]): { shown: string; stopped: boolean } {
  const m = new StopMatcher(stops);
  let shown = "";
  for (const p of pieces) {
    const r = m.push(p);
    shown += r.emit;
    if (r.stopped) return { shown, stopped: true };
  }
  return { shown: shown + m.flush(), stopped: false };
}

Deno.test("stop string split across pieces is cut and never shown", () => {
  assert.deepEqual(run(["STOP"], ["hello S", "TO", "P world"]), { shown: "hello ", stopped: true });
});

Deno.test("a held-back prefix that does not complete is released", () => {
  const m = new StopMatcher(["\n\n"]);
  assert.deepEqual(m.push("a\n"), { emit: "a", stopped: false });
  assert.deepEqual(m.push("b"), { emit: "\nb", stopped: false });
  assert.equal(m.flush(), "");
});

Deno.test("earliest of several stop strings wins", () => {
  assert.deepEqual(run(["xyz", "b"], ["a b xyz"]), { shown: "a ", stopped: true });
});

Deno.test("no stop strings passes text straight through", () => {
  assert.deepEqual(run([], ["one", " two"]), { shown: "one two", stopped: false });
});

Deno.test("empty stop string is rejected", () => {
  assert.throws(() => new StopMatcher([""]), /non-empty/);
});
