/**
 * Device detection as a pure function of the text of `/proc/cpuinfo`, the device-tree model and
 * `/proc/meminfo` (so every board is testable with fixture text), plus a reader for the real files.
 * @module
 */

import { type DeviceProfile, PROFILES } from "./profiles.ts";

/** The raw facts detection looks at; any may be missing (empty string / undefined). */
export interface DeviceFacts {
  /** `/proc/cpuinfo` text. */
  cpuinfo: string;
  /** `/proc/device-tree/model` text (NUL-terminated in the kernel's file; ARM boards only). */
  deviceTreeModel?: string;
  /** `/proc/meminfo` text. */
  meminfo: string;
  /** `Deno.build.arch`. */
  arch: string;
  /** Logical CPUs if cpuinfo cannot tell (`navigator.hardwareConcurrency`). */
  fallbackCpus?: number;
  /** Total RAM if meminfo cannot tell (`Deno.systemMemoryInfo().total`). */
  fallbackMemoryBytes?: number;
  /** Files that exist but the process may not read (Deno: /proc needs --allow-all). */
  notReadable?: string[];
}

/** What detection concluded, and why. */
export interface Detection {
  profile: DeviceProfile;
  /** One line saying which fact chose the profile. */
  reason: string;
  /** Device-tree model without its trailing NUL, if any. */
  model?: string;
  /** ARM `CPU part` (e.g. `0xd0b`) or x86 `model name`. */
  cpu?: string;
  /** Logical CPUs. */
  logicalCpus: number;
  /** Physical cores (SMT siblings counted once). */
  physicalCores: number;
  /** CPU feature flags (`Features` on ARM, `flags` on x86). */
  features: string[];
  /** MemTotal in bytes. */
  memoryBytes: number;
  /** Kernel threads the profile asks for on this machine. */
  threads: number;
}

/** ARM `CPU part` numbers (implementer 0x41, Arm Ltd) of the supported boards. */
const ARM_PARTS: Record<string, { cpu: string; profile: keyof typeof PROFILES }> = {
  "0xd08": { cpu: "Cortex-A72", profile: "pi4" },
  "0xd0b": { cpu: "Cortex-A76", profile: "pi5" },
  "0xd42": { cpu: "Cortex-A78AE", profile: "jetson-orin" },
};

/** Values of a `key : value` field across all cpuinfo blocks, in order. */
function fieldValues(cpuinfo: string, key: string): string[] {
  const out: string[] = [];
  for (const line of cpuinfo.split("\n")) {
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    if (line.slice(0, colon).trim().toLowerCase() === key) out.push(line.slice(colon + 1).trim());
  }
  return out;
}

/** MemTotal of a `/proc/meminfo` text in bytes, or undefined. */
export function parseMemTotal(meminfo: string): number | undefined {
  const m = /^MemTotal:\s*(\d+)\s*kB/im.exec(meminfo);
  return m ? Number(m[1]) * 1024 : undefined;
}

function countCpus(cpuinfo: string): { logical: number; physical: number } | undefined {
  const logical = fieldValues(cpuinfo, "processor").length;
  if (logical === 0) return undefined;
  // x86: distinct (physical id, core id) pairs; ARM cpuinfo has neither, and no SMT
  const phys = fieldValues(cpuinfo, "physical id");
  const core = fieldValues(cpuinfo, "core id");
  if (core.length === logical) {
    const pairs = new Set(core.map((c, i) => `${phys[i] ?? 0}:${c}`));
    return { logical, physical: pairs.size };
  }
  return { logical, physical: logical };
}

/** Picks the profile for a machine described by `facts`. Pure: no file or system access. */
export function detectDevice(facts: DeviceFacts): Detection {
  const model = facts.deviceTreeModel?.replace(/\0/g, "").trim() || undefined;
  const parts = fieldValues(facts.cpuinfo, "cpu part");
  const features = (fieldValues(facts.cpuinfo, "features")[0] ?? fieldValues(facts.cpuinfo, "flags")[0] ?? "")
    .split(/\s+/).filter(Boolean);
  const counts = countCpus(facts.cpuinfo);
  const logicalCpus = counts?.logical ?? facts.fallbackCpus ?? 1;
  const physicalCores = counts?.physical ?? logicalCpus;
  const memoryBytes = parseMemTotal(facts.meminfo) ?? facts.fallbackMemoryBytes ?? 0;

  let profile: DeviceProfile = PROFILES.generic;
  let reason = facts.notReadable?.length
    ? `could not read ${facts.notReadable.join(", ")} (Deno allows /proc only with --allow-all)`
    : "no known board, CPU part or x86 AVX2 found";
  let cpu: string | undefined = fieldValues(facts.cpuinfo, "model name")[0];
  // The biggest-numbered part wins on big.LITTLE chips (the fast cores do the work).
  const knownPart = parts.map((p) => p.toLowerCase()).filter((p) => p in ARM_PARTS).sort().pop();
  if (model && /Raspberry Pi 5|Compute Module 5|Raspberry Pi 500/i.test(model)) {
    profile = PROFILES.pi5;
    reason = `device tree model '${model}'`;
  } else if (model && /Raspberry Pi 4|Compute Module 4|Raspberry Pi 400/i.test(model)) {
    profile = PROFILES.pi4;
    reason = `device tree model '${model}'`;
  } else if (model && /Jetson.*Orin|Orin.*(Nano|NX)/i.test(model)) {
    profile = PROFILES["jetson-orin"];
    reason = `device tree model '${model}'`;
  } else if (knownPart) {
    profile = PROFILES[ARM_PARTS[knownPart].profile];
    reason = `CPU part ${knownPart} (${ARM_PARTS[knownPart].cpu})`;
  } else if (facts.arch === "x86_64" && features.includes("avx2")) {
    profile = PROFILES["x86-kiosk"];
    reason = "x86-64 CPU with AVX2";
  }
  if (knownPart) cpu = `${ARM_PARTS[knownPart].cpu} (part ${knownPart})`;
  else if (parts[0]) cpu = `CPU part ${parts[0]}`;
  const threads = Math.max(1, profile.threads === "physical" ? physicalCores : logicalCpus);
  return { profile, reason, model, cpu, logicalCpus, physicalCores, features, memoryBytes, threads };
}

const notReadable = new Set<string>();

function readText(path: string): string | undefined {
  // /proc files report size 0; read them chunk by chunk to the end. A read can also come back
  // empty or fail transiently (seen in the test suite while other processes start and exit),
  // and a wrong answer here picks the wrong device: try again before giving up.
  let text = "";
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      text = readAll(path);
      if (text.length > 0) return text;
    } catch (e) {
      if (e instanceof Deno.errors.NotCapable) {
        // Deno grants /proc only to --allow-all; say so rather than silently detect nothing.
        notReadable.add(path);
        return undefined;
      }
      const absent = e instanceof Deno.errors.NotFound || e instanceof Deno.errors.PermissionDenied;
      if (absent) return undefined; // absent (non-Linux, no device tree) or not permitted
    }
  }
  return text;
}

function readAll(path: string): string {
  const file = Deno.openSync(path, { read: true });
  try {
    const chunks: Uint8Array[] = [];
    let size = 0;
    while (true) {
      const buf = new Uint8Array(65536);
      const n = file.readSync(buf);
      if (n === null || n === 0) break;
      chunks.push(buf.subarray(0, n));
      size += n;
    }
    const all = new Uint8Array(size);
    let at = 0;
    for (const c of chunks) {
      all.set(c, at);
      at += c.length;
    }
    return new TextDecoder().decode(all);
  } finally {
    file.close();
  }
}

/** Reads this machine's facts from `/proc` and the device tree (missing files read as empty). */
export function readDeviceFacts(): DeviceFacts {
  let fallbackMemoryBytes: number | undefined;
  try {
    fallbackMemoryBytes = Deno.systemMemoryInfo().total;
  } catch {
    fallbackMemoryBytes = undefined;
  }
  notReadable.clear();
  return {
    cpuinfo: readText("/proc/cpuinfo") ?? "",
    deviceTreeModel: readText("/proc/device-tree/model") ?? readText("/sys/firmware/devicetree/base/model"),
    meminfo: readText("/proc/meminfo") ?? "",
    arch: Deno.build.arch,
    fallbackCpus: navigator.hardwareConcurrency,
    fallbackMemoryBytes,
    notReadable: [...notReadable],
  };
}
