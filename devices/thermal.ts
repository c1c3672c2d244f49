/**
 * SoC temperature and throttling, read from what Linux sysfs exposes (no vcgencmd): thermal
 * zones under /sys/class/thermal, the Raspberry Pi firmware's `get_throttled` file where the
 * kernel has it, and the CPU clock against its maximum. Every part is optional: a board (or a
 * container) that exposes nothing gives an empty reading, never an error.
 * @module
 */

/** One thermal zone. */
export interface ThermalZone {
  /** The zone's type, e.g. "cpu-thermal" on a Pi, "x86_pkg_temp" on a PC. */
  type: string;
  celsius: number;
}

/** What the board tells about heat and throttling. */
export interface ThermalReading {
  zones: ThermalZone[];
  /** The hottest zone, when there is one. */
  maxCelsius?: number;
  /**
   * The Pi firmware's throttling bits (bit 0 under-voltage now, 1 frequency capped now, 2
   * throttled now, 3 soft temperature limit now; bits 16-19 the same "has occurred"), when the
   * kernel exposes /sys/devices/platform/soc/soc:firmware/get_throttled.
   */
  throttledBits?: number;
  /** True when a throttling bit says "now", or the CPU clock is below 90 % of its maximum under load. */
  throttled?: boolean;
  /** Current and maximum clock of CPU 0 in kHz, when cpufreq is there. */
  cpuKhz?: number;
  cpuMaxKhz?: number;
}

/** Where to read from (a fake tree in tests). */
export interface ThermalPaths {
  thermal: string;
  throttled: string;
  cpufreq: string;
}

/** The real sysfs paths. */
export const SYSFS_PATHS: ThermalPaths = {
  thermal: "/sys/class/thermal",
  throttled: "/sys/devices/platform/soc/soc:firmware/get_throttled",
  cpufreq: "/sys/devices/system/cpu/cpu0/cpufreq",
};

function readText(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path).trim();
  } catch {
    return undefined;
  }
}

function readInt(path: string, radix = 10): number | undefined {
  const t = readText(path);
  if (t === undefined) return undefined;
  const n = parseInt(t, radix);
  return Number.isFinite(n) ? n : undefined;
}

/** Reads the board's thermal state; missing files are left out. */
export function readThermal(paths: ThermalPaths = SYSFS_PATHS): ThermalReading {
  const zones: ThermalZone[] = [];
  let entries: Deno.DirEntry[] = [];
  try {
    entries = [...Deno.readDirSync(paths.thermal)];
  } catch {
    // no thermal class (container, non-Linux)
  }
  for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    if (!e.name.startsWith("thermal_zone")) continue;
    const milli = readInt(`${paths.thermal}/${e.name}/temp`);
    // Some zones read -273 or absurd values when their sensor is off: not a temperature.
    if (milli === undefined || milli <= -40_000 || milli >= 200_000) continue;
    zones.push({
      type: readText(`${paths.thermal}/${e.name}/type`) ?? e.name,
      celsius: milli / 1000,
    });
  }
  const reading: ThermalReading = { zones };
  if (zones.length > 0) {
    reading.maxCelsius = Math.max(...zones.map((z) => z.celsius));
  }
  const bitsText = readText(paths.throttled);
  if (bitsText !== undefined) {
    const bits = parseInt(bitsText.replace(/^0x/i, ""), 16);
    if (Number.isFinite(bits)) reading.throttledBits = bits;
  }
  const cur = readInt(`${paths.cpufreq}/scaling_cur_freq`);
  const max = readInt(`${paths.cpufreq}/cpuinfo_max_freq`);
  if (cur !== undefined && max !== undefined && max > 0) {
    reading.cpuKhz = cur;
    reading.cpuMaxKhz = max;
  }
  if (reading.throttledBits !== undefined) {
    reading.throttled = (reading.throttledBits & 0xf) !== 0;
  }
  return reading;
}
