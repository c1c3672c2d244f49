import assert from "node:assert/strict";
import { chooseDevice, describeSettings, deviceSettings, footprintOf, profileThreads } from "./settings.ts";
import { FIXTURES } from "../test/device_fixtures.ts";
import { PROFILES } from "./profiles.ts";
import { memoryBudget } from "./budget.ts";
import { tinyModel } from "../test/fixtures.ts";
import { readGguf } from "../runtime/gguf.ts";
import { qwen3ConfigFromGguf } from "../runtime/config.ts";
import { estimateMemory } from "../runtime/memory.ts";

const MiB = 2 ** 20;
const linear = (contextLength: number) => ({
  contextLength,
  bytesNeeded: (contextSize: number, parallel: number) => 300 * MiB + contextSize * parallel * 112 * 1024,
});

Deno.test("settings: detected profile's defaults; flags override each one", () => {
  const pi5 = chooseDevice(undefined, FIXTURES["pi5-8gb"]);
  assert.equal(pi5.source, "detected");
  const s = deviceSettings(pi5, linear(32768));
  assert.deepEqual([s.threads, s.contextSize, s.parallel], [4, PROFILES.pi5.contextSize, PROFILES.pi5.parallel]);
  assert.equal(s.budgetBytes, memoryBudget(PROFILES.pi5, pi5.detection.memoryBytes));
  const o = deviceSettings(pi5, linear(32768), { threads: 2, contextSize: 512, parallel: 3, maxMemory: 1000 * MiB });
  assert.deepEqual([o.threads, o.contextSize, o.parallel, o.budgetBytes], [2, 512, 3, 1000 * MiB]);
  assert.match(
    describeSettings(s),
    /^device pi5 \(device tree model 'Raspberry Pi 5 Model B Rev 1\.0'\): 4 threads, ctx 4096 x 2/,
  );
});

Deno.test("settings: --device forces a profile on other hardware, threads from the real core count", () => {
  const c = chooseDevice("x86-kiosk", FIXTURES["jetson-orin-nx-16gb"]);
  assert.equal(c.profile.id, "x86-kiosk");
  assert.equal(c.source, "--device");
  assert.equal(profileThreads(c.profile, c.detection), 8);
  assert.equal(chooseDevice("auto", FIXTURES["pi4-1gb"]).profile.id, "pi4");
  assert.throws(() => chooseDevice("pi3", FIXTURES["pi4-1gb"]), /unknown device 'pi3'/);
});

Deno.test("settings: a 1 GB Pi 4 gets a context that fits its budget", () => {
  const s = deviceSettings(chooseDevice(undefined, FIXTURES["pi4-1gb"]), {
    contextLength: 32768,
    bytesNeeded: (contextSize) => 500 * MiB + contextSize * 112 * 1024,
  });
  assert.ok(s.plan.fits);
  assert.ok(s.contextSize < PROFILES.pi4.contextSize, `ctx ${s.contextSize}`);
  assert.ok(s.plan.neededBytes <= s.budgetBytes);
});

Deno.test("settings: footprintOf agrees with estimateMemory on a real file", async () => {
  const file = await readGguf(await tinyModel());
  const config = qwen3ConfigFromGguf(file);
  const f = footprintOf(file, config);
  assert.equal(f.contextLength, config.contextLength);
  assert.equal(f.bytesNeeded(64, 2), estimateMemory(file, config, { contextSize: 64, parallel: 2 }).totalBytes);
});
