/** `bonsai info` end to end: device, profile, kernels and the per-device plan for a model. */
import assert from "node:assert/strict";
import { tinyModel } from "../test/fixtures.ts";
import { detectDevice, readDeviceFacts } from "../devices/detect.ts";

const CLI = new URL("./main.ts", import.meta.url).pathname;

async function bonsai(args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", CLI, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...env },
  }).output();
  return { code: out.code, stdout: new TextDecoder().decode(out.stdout), stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test("info --json: detected device, its profile and the kernels that will run", async () => {
  const r = await bonsai(["info", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const info = JSON.parse(r.stdout);
  const facts = readDeviceFacts();
  const expected = detectDevice(facts);
  assert.equal(
    info.device.profile,
    expected.profile.id,
    `child detected ${info.device.profile}; this process read ${facts.cpuinfo.length} bytes of cpuinfo, arch ${facts.arch}: ${expected.reason}`,
  );
  assert.equal(info.device.source, "detected");
  assert.equal(info.device.threads, expected.threads);
  assert.ok(info.device.memory_budget_bytes > 0 && info.device.memory_budget_bytes < info.device.memory_bytes);
  assert.ok(Array.isArray(info.kernels.active));
  for (const isa of info.kernels.active) assert.ok(info.kernels.available.includes(isa));
});

Deno.test("info --device pi4 --model: forced profile, plan for the model, missing NEON named", async () => {
  const r = await bonsai(["info", "--device", "pi4", "--model", await tinyModel()]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /device: +Raspberry Pi 4 \[pi4\] \(--device\)/);
  assert.match(r.stdout, /ctx 2048 x 1/);
  assert.match(r.stdout, /on this device: ctx \d+ x 1, needs [\d.]+ MiB \(fits the budget\)/);
  if (Deno.build.arch === "x86_64") assert.match(r.stdout, /lacks neon/);
});

Deno.test("info: unknown --device is a usage error (exit 2) listing the profiles", async () => {
  const r = await bonsai(["info", "--device", "pi3"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--device must be one of pi4, pi5, jetson-orin, x86-kiosk, generic, auto; got 'pi3'/);
  const help = await bonsai(["info", "--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--device NAME/);
});

Deno.test("info: lookup-table kernels on where the CPU has them, off with BONSAI_NO_LUT=1", async () => {
  const on = JSON.parse((await bonsai(["info", "--json"], { BONSAI_NO_LUT: "" })).stdout);
  const simd = on.kernels.available as string[];
  const expected = (simd.includes("avx2") && simd.includes("f16c")) || simd.includes("neon");
  assert.equal(on.kernels.lookup_tables, expected, `available ${simd.join(",")}`);
  const off = await bonsai(["info"], { BONSAI_NO_LUT: "1" });
  assert.equal(off.code, 0, off.stderr);
  assert.match(off.stdout, /Q1_0\/Q2_0 path: row kernels \(BONSAI_NO_LUT is set\)/);
  const zero = JSON.parse((await bonsai(["info", "--json"], { BONSAI_NO_LUT: "0" })).stdout);
  assert.equal(zero.kernels.lookup_tables, expected, "BONSAI_NO_LUT=0 keeps them on");
});
