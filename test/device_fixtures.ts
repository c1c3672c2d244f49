/**
 * Fixture text of `/proc/cpuinfo`, device-tree model and `/proc/meminfo` for each supported
 * board, shaped like the real files (field names, tabs, per-CPU blocks), for the detection tests.
 * @module
 */

import type { DeviceFacts } from "../devices/detect.ts";

/** An ARM64 `/proc/cpuinfo`: one block per core, then the board trailer Raspberry Pi OS adds. */
export function armCpuinfo(cores: { part: string; features: string }[], trailer = ""): string {
  const blocks = cores.map((c, i) =>
    [
      `processor\t: ${i}`,
      "BogoMIPS\t: 108.00",
      `Features\t: ${c.features}`,
      "CPU implementer\t: 0x41",
      "CPU architecture: 8",
      "CPU variant\t: 0x0",
      `CPU part\t: ${c.part}`,
      "CPU revision\t: 3",
    ].join("\n")
  );
  return blocks.join("\n\n") + "\n\n" + trailer;
}

/** An x86-64 `/proc/cpuinfo` with `sockets x cores x threadsPerCore` logical CPUs. */
export function x86Cpuinfo(cores: number, threadsPerCore: number, flags: string): string {
  const blocks: string[] = [];
  let n = 0;
  for (let core = 0; core < cores; core++) {
    for (let t = 0; t < threadsPerCore; t++) {
      blocks.push([
        `processor\t: ${n++}`,
        "vendor_id\t: GenuineIntel",
        "model name\t: Intel(R) Core(TM) i5-8365U CPU @ 1.60GHz",
        "physical id\t: 0",
        `siblings\t: ${cores * threadsPerCore}`,
        `core id\t\t: ${core}`,
        `cpu cores\t: ${cores}`,
        `flags\t\t: ${flags}`,
      ].join("\n"));
    }
  }
  return blocks.join("\n\n") + "\n";
}

/** A `/proc/meminfo` with `MemTotal` of `gib` GiB less what firmware keeps (as real boards report). */
export function meminfo(gib: number, reservedKiB = 120_000): string {
  const totalKiB = gib * 1024 * 1024 - reservedKiB;
  return `MemTotal:       ${totalKiB} kB\nMemFree:        ${Math.floor(totalKiB / 2)} kB\n` +
    `MemAvailable:   ${Math.floor(totalKiB * 0.8)} kB\nBuffers:           12345 kB\n`;
}

const A72 = "fp asimd evtstrm crc32 cpuid";
const A76 = "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp";
const A78AE = A76 + " uscat ilrcpc flagm paca pacg";
const X86_AVX2 = "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr sse sse2 ht ssse3 fma cx16 sse4_1 sse4_2 " +
  "movbe popcnt aes xsave avx f16c rdrand hypervisor lahf_lm abm bmi1 avx2 bmi2";
const X86_OLD = "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr sse sse2 ht ssse3 cx16 sse4_1 sse4_2 popcnt";

const ARM = (n: number, part: string, features: string) => Array.from({ length: n }, () => ({ part, features }));

/** One fixture per board (and the fallbacks), named for the test output. */
export const FIXTURES: Record<string, DeviceFacts> = {
  "pi4-4gb": {
    cpuinfo: armCpuinfo(ARM(4, "0xd08", A72), "Revision\t: c03114\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n"),
    deviceTreeModel: "Raspberry Pi 4 Model B Rev 1.4\0",
    meminfo: meminfo(4),
    arch: "aarch64",
  },
  "pi4-1gb": {
    cpuinfo: armCpuinfo(ARM(4, "0xd08", A72)),
    deviceTreeModel: "Raspberry Pi 4 Model B Rev 1.2\0",
    meminfo: meminfo(1),
    arch: "aarch64",
  },
  "pi5-8gb": {
    cpuinfo: armCpuinfo(ARM(4, "0xd0b", A76), "Revision\t: d04170\nModel\t\t: Raspberry Pi 5 Model B Rev 1.0\n"),
    deviceTreeModel: "Raspberry Pi 5 Model B Rev 1.0\0",
    meminfo: meminfo(8),
    arch: "aarch64",
  },
  "jetson-orin-nano-8gb": {
    cpuinfo: armCpuinfo(ARM(6, "0xd42", A78AE)),
    deviceTreeModel: "NVIDIA Jetson Orin Nano Developer Kit\0",
    meminfo: meminfo(8, 600_000),
    arch: "aarch64",
  },
  "jetson-orin-nx-16gb": {
    cpuinfo: armCpuinfo(ARM(8, "0xd42", A78AE)),
    deviceTreeModel: "NVIDIA Jetson Orin NX Engineering Reference Developer Kit\0",
    meminfo: meminfo(16, 600_000),
    arch: "aarch64",
  },
  "x86-kiosk-4c8t": {
    cpuinfo: x86Cpuinfo(4, 2, X86_AVX2),
    meminfo: meminfo(8),
    arch: "x86_64",
  },
  "x86-no-avx2": {
    cpuinfo: x86Cpuinfo(2, 1, X86_OLD),
    meminfo: meminfo(4),
    arch: "x86_64",
  },
  "unknown-arm": {
    cpuinfo: armCpuinfo(ARM(4, "0xd03", "fp asimd evtstrm crc32 cpuid")),
    deviceTreeModel: "Pine64 Rock64\0",
    meminfo: meminfo(2),
    arch: "aarch64",
  },
};
