import assert from "node:assert/strict";
import { longTimeout, MAX_TIMER_MS } from "./long_timeout.ts";

Deno.test("longTimeout: the largest MQTT expiry (4294967295 s) does not fire at once", async () => {
  let fired = false;
  const cancel = longTimeout(() => fired = true, 4294967295 * 1000);
  await new Promise((r) => setTimeout(r, 30));
  cancel();
  assert.ok(!fired, "a delay past the 32-bit timer range fired at once");
});

Deno.test("longTimeout: a delay just past the timer range does not fire at once", async () => {
  let fired = false;
  const cancel = longTimeout(() => fired = true, MAX_TIMER_MS + 1);
  await new Promise((r) => setTimeout(r, 30));
  cancel();
  assert.ok(!fired);
});

Deno.test("longTimeout: a short delay fires once, and a cancelled one never", async () => {
  let n = 0;
  longTimeout(() => n++, 5);
  const cancel = longTimeout(() => n += 100, 5);
  cancel();
  await new Promise((r) => setTimeout(r, 40));
  assert.equal(n, 1);
});
