import assert from "node:assert/strict";
import { formatRate, Progress } from "./progress.ts";

function fake(enabled: boolean) {
  let t = 0;
  const out: string[] = [];
  const p = new Progress({ enabled, write: (s) => out.push(s), now: () => t, intervalMs: 100 });
  return { p, out, tick: (ms: number) => (t += ms) };
}

Deno.test("progress: quiet when disabled (piped)", () => {
  const { p, out } = fake(false);
  p.update("loading", 0.5, true);
  p.count("generating", 10);
  p.done("finished");
  assert.deepEqual(out, []);
});

Deno.test("progress: bar, spinner and rate redraw in place, throttled, erased at the end", () => {
  const { p, out, tick } = fake(true);
  p.update("loading", 0.5);
  assert.equal(out.length, 1);
  assert.equal(out[0], "\r\x1b[Kloading [############------------] 50%");
  p.update("loading", 0.6); // within 100 ms: skipped
  assert.equal(out.length, 1);
  tick(150);
  p.update("mapping");
  // deno-lint-ignore no-control-regex -- the terminal escape is what is tested
  assert.match(out[1], /^\r\x1b\[K[|/\\-] mapping$/);
  tick(850);
  p.count("generating", 5);
  // deno-lint-ignore no-control-regex -- the terminal escape is what is tested
  assert.match(out[2], /^\r\x1b\[K[|/\\-] generating 5 tok, 5\.0 tok\/s$/);
  p.done("done in 1 s");
  assert.deepEqual(out.slice(3), ["\r\x1b[K", "done in 1 s\n"]);
});

Deno.test("progress: fractions are clamped; rates format by size", () => {
  const { p, out } = fake(true);
  p.update("x", 7, true);
  assert.match(out[0], /100%$/);
  assert.equal(formatRate(50, 1000), "50.0 tok/s");
  assert.equal(formatRate(1234, 1000), "1234 tok/s");
  assert.equal(formatRate(3, 0), "- tok/s");
});
