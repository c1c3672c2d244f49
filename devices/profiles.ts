/**
 * Device profiles: the defaults that suit each supported board (threads, context, parallel
 * sequences, memory budget, kernel path). Detection ({@link ./detect.ts}) picks one; command-line
 * flags override any field.
 * @module
 */

import type { IsaName } from "../kernels/ffi.ts";

/** Profile identifiers, as accepted by `--device`. */
export const DEVICE_IDS = ["pi4", "pi5", "jetson-orin", "x86-kiosk", "generic"] as const;
/** A profile identifier. */
export type DeviceId = (typeof DEVICE_IDS)[number];

/** What a device class gets by default. */
export interface DeviceProfile {
  id: DeviceId;
  /** Human name, as printed by `bonsai info`. */
  name: string;
  /** CPU the profile was tuned for. */
  cpu: string;
  /** Architecture the profile applies to (`any` for the fallback). */
  arch: "aarch64" | "x86_64" | "any";
  /**
   * Kernel threads: `all` logical CPUs, or `physical` cores (SMT siblings share the SIMD units
   * and the memory bus, so a second thread per core slows bandwidth-bound matrix products).
   */
  threads: "all" | "physical";
  /** Default KV context per sequence (capped by the model's trained context). */
  contextSize: number;
  /** Default sequences decoded together (KV slots). */
  parallel: number;
  /** Share of RAM the runtime may use (the rest is the OS's, other services', a GPU's). */
  memoryFraction: number;
  /** Bytes subtracted from that share as a safety margin. */
  memoryReserveBytes: number;
  /** Kernel path the board's CPU offers (SIMD sets the library is expected to pick). */
  isa: IsaName[];
  /** RAM sizes the board ships with, in GiB (documentation and tests). */
  ramGiB: number[];
}

const MiB = 2 ** 20;

/** Every profile, by id. */
export const PROFILES: Readonly<Record<DeviceId, DeviceProfile>> = {
  pi4: {
    id: "pi4",
    name: "Raspberry Pi 4",
    cpu: "Cortex-A72 (4 cores, NEON without dotprod)",
    arch: "aarch64",
    threads: "all",
    contextSize: 2048,
    parallel: 1,
    memoryFraction: 0.75,
    memoryReserveBytes: 128 * MiB,
    isa: ["neon"],
    ramGiB: [1, 2, 4, 8],
  },
  pi5: {
    id: "pi5",
    name: "Raspberry Pi 5",
    cpu: "Cortex-A76 (4 cores, NEON + dotprod)",
    arch: "aarch64",
    threads: "all",
    contextSize: 4096,
    parallel: 2,
    memoryFraction: 0.75,
    memoryReserveBytes: 256 * MiB,
    isa: ["neon", "neon_dotprod"],
    ramGiB: [4, 8, 16],
  },
  "jetson-orin": {
    id: "jetson-orin",
    name: "NVIDIA Jetson Orin Nano/NX (CPU)",
    cpu: "Cortex-A78AE (6 or 8 cores, NEON + dotprod)",
    arch: "aarch64",
    threads: "all",
    contextSize: 4096,
    parallel: 4,
    // RAM is shared with the GPU (camera pipelines, vision models): take less of it
    memoryFraction: 0.6,
    memoryReserveBytes: 512 * MiB,
    isa: ["neon", "neon_dotprod"],
    ramGiB: [8, 16],
  },
  "x86-kiosk": {
    id: "x86-kiosk",
    name: "generic x86-64 kiosk",
    cpu: "x86-64 with AVX2",
    arch: "x86_64",
    threads: "physical",
    contextSize: 4096,
    parallel: 2,
    memoryFraction: 0.75,
    memoryReserveBytes: 512 * MiB,
    isa: ["avx2"],
    ramGiB: [4, 8, 16, 32],
  },
  generic: {
    id: "generic",
    name: "generic (unrecognised device)",
    cpu: "any",
    arch: "any",
    threads: "all",
    contextSize: 2048,
    parallel: 1,
    memoryFraction: 0.75,
    memoryReserveBytes: 256 * MiB,
    isa: [],
    ramGiB: [],
  },
};

/** The profile named `id`; throws naming the known ids otherwise. */
export function profileById(id: string): DeviceProfile {
  if (!(DEVICE_IDS as readonly string[]).includes(id)) {
    throw new Error(`unknown device '${id}' (known: ${DEVICE_IDS.join(", ")}, auto)`);
  }
  return PROFILES[id as DeviceId];
}
