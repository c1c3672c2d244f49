import assert from "node:assert/strict";
import { readThermal } from "./thermal.ts";

async function fakeTree(files: Record<string, string>): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "bonsai-thermal-" });
  for (const [path, text] of Object.entries(files)) {
    await Deno.mkdir(`${root}/${path.split("/").slice(0, -1).join("/")}`, {
      recursive: true,
    });
    await Deno.writeTextFile(`${root}/${path}`, text);
  }
  return root;
}

Deno.test("thermal: zones, hottest zone, Pi throttling bits and the CPU clock are read from sysfs files", async () => {
  const root = await fakeTree({
    "thermal/thermal_zone0/temp": "61234\n",
    "thermal/thermal_zone0/type": "cpu-thermal\n",
    "thermal/thermal_zone1/temp": "-273000\n", // a sensor that is off: skipped
    "thermal/thermal_zone2/temp": "48000\n",
    "thermal/cooling_device0/type": "fan\n",
    "throttled": "50005\n",
    "cpufreq/scaling_cur_freq": "600000\n",
    "cpufreq/cpuinfo_max_freq": "1500000\n",
  });
  try {
    const r = readThermal({
      thermal: `${root}/thermal`,
      throttled: `${root}/throttled`,
      cpufreq: `${root}/cpufreq`,
    });
    assert.deepEqual(r.zones, [{ type: "cpu-thermal", celsius: 61.234 }, {
      type: "thermal_zone2",
      celsius: 48,
    }]);
    assert.equal(r.maxCelsius, 61.234);
    assert.equal(r.throttledBits, 0x50005);
    assert.equal(r.throttled, true);
    assert.equal(r.cpuKhz, 600000);
    assert.equal(r.cpuMaxKhz, 1500000);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("thermal: a board that exposes nothing gives an empty reading", () => {
  const r = readThermal({
    thermal: "/no/such/dir",
    throttled: "/no/such/file",
    cpufreq: "/no/such",
  });
  assert.deepEqual(r, { zones: [] });
});
