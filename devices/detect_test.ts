import assert from "node:assert/strict";
import { detectDevice, parseMemTotal, readDeviceFacts } from "./detect.ts";
import { armCpuinfo, FIXTURES, meminfo } from "../test/device_fixtures.ts";
import { DEVICE_IDS, profileById, PROFILES } from "./profiles.ts";

const GiB = 2 ** 30;

Deno.test("detect: each board fixture picks its profile, threads and memory", () => {
  const expect: Record<string, { id: string; threads: number; gib: number }> = {
    "pi4-4gb": { id: "pi4", threads: 4, gib: 4 },
    "pi4-1gb": { id: "pi4", threads: 4, gib: 1 },
    "pi5-8gb": { id: "pi5", threads: 4, gib: 8 },
    "jetson-orin-nano-8gb": { id: "jetson-orin", threads: 6, gib: 8 },
    "jetson-orin-nx-16gb": { id: "jetson-orin", threads: 8, gib: 16 },
    "x86-kiosk-4c8t": { id: "x86-kiosk", threads: 4, gib: 8 },
    "x86-no-avx2": { id: "generic", threads: 2, gib: 4 },
    "unknown-arm": { id: "generic", threads: 4, gib: 2 },
  };
  for (const [name, facts] of Object.entries(FIXTURES)) {
    const d = detectDevice(facts);
    const e = expect[name];
    assert.ok(e, `fixture ${name} has an expectation`);
    assert.equal(d.profile.id, e.id, `${name}: ${d.reason}`);
    assert.equal(d.threads, e.threads, `${name} threads`);
    // MemTotal is a little under the nominal size (firmware, kernel)
    assert.ok(d.memoryBytes < e.gib * GiB && d.memoryBytes > (e.gib - 0.75) * GiB, `${name} memory ${d.memoryBytes}`);
  }
});

Deno.test("detect: CPU part alone identifies the board when there is no device tree", () => {
  const parts: Record<string, string> = { "0xd08": "pi4", "0xd0b": "pi5", "0xd42": "jetson-orin" };
  for (const [part, id] of Object.entries(parts)) {
    const d = detectDevice({
      cpuinfo: armCpuinfo([{ part, features: "fp asimd" }, { part, features: "fp asimd" }]),
      meminfo: meminfo(4),
      arch: "aarch64",
    });
    assert.equal(d.profile.id, id);
    assert.match(d.reason, new RegExp(`CPU part ${part}`));
    assert.equal(d.threads, 2);
  }
});

Deno.test("detect: the device tree model wins over the CPU part, with its NUL stripped", () => {
  const d = detectDevice({
    cpuinfo: armCpuinfo([{ part: "0xd08", features: "fp asimd" }]),
    deviceTreeModel: "Raspberry Pi 5 Model B Rev 1.0\0",
    meminfo: meminfo(4),
    arch: "aarch64",
  });
  assert.equal(d.profile.id, "pi5");
  assert.equal(d.model, "Raspberry Pi 5 Model B Rev 1.0");
});

Deno.test("detect: Pi 5 features include asimddp, Pi 4's do not", () => {
  assert.ok(detectDevice(FIXTURES["pi5-8gb"]).features.includes("asimddp"));
  assert.ok(!detectDevice(FIXTURES["pi4-4gb"]).features.includes("asimddp"));
});

Deno.test("detect: x86 kiosk threads count physical cores, not SMT siblings", () => {
  const d = detectDevice(FIXTURES["x86-kiosk-4c8t"]);
  assert.equal(d.logicalCpus, 8);
  assert.equal(d.physicalCores, 4);
  assert.equal(d.threads, 4);
  assert.match(d.cpu ?? "", /Intel/);
});

Deno.test("detect: empty files fall back to the given CPU count and memory", () => {
  const d = detectDevice({ cpuinfo: "", meminfo: "", arch: "x86_64", fallbackCpus: 3, fallbackMemoryBytes: 5 * GiB });
  assert.equal(d.profile.id, "generic");
  assert.equal(d.logicalCpus, 3);
  assert.equal(d.threads, 3);
  assert.equal(d.memoryBytes, 5 * GiB);
});

Deno.test("detect: parseMemTotal reads kB; garbage gives undefined", () => {
  assert.equal(parseMemTotal("MemFree: 1 kB\nMemTotal:  2048 kB\n"), 2048 * 1024);
  assert.equal(parseMemTotal("nothing here"), undefined);
});

Deno.test("detect: this machine's real files give a sane detection", () => {
  const d = detectDevice(readDeviceFacts());
  assert.ok(d.logicalCpus >= 1 && d.threads >= 1 && d.threads <= d.logicalCpus);
  assert.ok(d.memoryBytes > 0);
  if (Deno.build.arch === "x86_64" && d.features.includes("avx2")) assert.equal(d.profile.id, "x86-kiosk");
});

Deno.test("profiles: every id resolves; unknown ids name the known ones", () => {
  for (const id of DEVICE_IDS) assert.equal(profileById(id), PROFILES[id]);
  assert.throws(() => profileById("pi3"), /unknown device 'pi3'.*pi4, pi5/);
});

Deno.test("detect: files Deno would not let us read are named in the reason", () => {
  const d = detectDevice({ cpuinfo: "", meminfo: "", arch: "x86_64", fallbackCpus: 2, notReadable: ["/proc/cpuinfo"] });
  assert.equal(d.profile.id, "generic");
  assert.match(d.reason, /could not read \/proc\/cpuinfo \(Deno allows \/proc only with --allow-all\)/);
});
