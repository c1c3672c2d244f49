/**
 * From a detected (or `--device`-forced) profile and a model file to the settings a command runs
 * with: threads, context, parallel sequences and memory budget. Flags always win over the profile.
 * @module
 */

import { type DeviceProfile, profileById } from "./profiles.ts";
import { detectDevice, type Detection, type DeviceFacts, readDeviceFacts } from "./detect.ts";
import { formatMiB, memoryBudget, type MemoryPlan, type ModelFootprint, planMemory } from "./budget.ts";
import type { GgufFile } from "../runtime/gguf.ts";
import type { Qwen3Config } from "../runtime/config.ts";
import type { KvTypeName } from "../kernels/ffi.ts";
import { estimateMemory } from "../runtime/memory.ts";

/** The profile in force and how it was chosen. */
export interface DeviceChoice {
  detection: Detection;
  profile: DeviceProfile;
  /** `detected` or `--device` (forced). */
  source: "detected" | "--device";
}

/** Detects the device, or uses the profile named by `--device` (`auto` or absent = detect). */
export function chooseDevice(
  flag: string | undefined,
  facts: DeviceFacts = readDeviceFacts(),
): DeviceChoice {
  const detection = detectDevice(facts);
  if (flag === undefined || flag === "auto") {
    return { detection, profile: detection.profile, source: "detected" };
  }
  return { detection, profile: profileById(flag), source: "--device" };
}

/** Kernel threads `profile` asks for on the detected machine. */
export function profileThreads(
  profile: DeviceProfile,
  detection: Detection,
): number {
  return Math.max(
    1,
    profile.threads === "physical" ? detection.physicalCores : detection.logicalCpus,
  );
}

/** The footprint of a model file for the planner, from the calibrated `estimateMemory`. */
export function footprintOf(
  file: GgufFile,
  config: Qwen3Config,
  kvType: KvTypeName = "f16",
): ModelFootprint {
  return {
    contextLength: config.contextLength,
    bytesNeeded: (contextSize, parallel) =>
      estimateMemory(file, config, { contextSize: contextSize, parallel, kvType })
        .totalBytes,
    describe: (contextSize, parallel) => {
      const e = estimateMemory(file, config, {
        contextSize: contextSize,
        parallel,
        kvType,
      });
      return `weights ${formatMiB(e.weightsBytes)}, KV cache ${formatMiB(e.kvBytes)}, scratch ${
        formatMiB(e.scratchBytes)
      }, runtime ${formatMiB(e.runtimeBytes)}`;
    },
  };
}

/** Explicit flag values (undefined = take the profile's). */
export interface SettingFlags {
  threads?: number;
  contextSize?: number;
  parallel?: number;
  /** `--max-memory` in bytes. */
  maxMemory?: number;
}

/** What a command runs with. */
export interface DeviceSettings {
  device: DeviceChoice;
  threads: number;
  contextSize: number;
  parallel: number;
  budgetBytes: number;
  plan: MemoryPlan;
}

/** Applies the profile's defaults to whatever the flags leave open. */
export function deviceSettings(
  device: DeviceChoice,
  model: ModelFootprint,
  flags: SettingFlags = {},
): DeviceSettings {
  const budgetBytes = flags.maxMemory ??
    memoryBudget(device.profile, device.detection.memoryBytes);
  const plan = planMemory(device.profile, device.detection.memoryBytes, model, {
    contextSize: flags.contextSize,
    parallel: flags.parallel,
    budgetBytes,
  });
  return {
    device,
    threads: flags.threads ?? profileThreads(device.profile, device.detection),
    contextSize: plan.contextSize,
    parallel: plan.parallel,
    budgetBytes,
    plan,
  };
}

/** One line for a command's start-up log. */
export function describeSettings(s: DeviceSettings): string {
  const d = s.device;
  const why = d.source === "detected" ? d.detection.reason : "--device";
  return `device ${d.profile.id} (${why}): ${s.threads} threads, ctx ${s.contextSize} x ${s.parallel}, ` +
    `memory budget ${formatMiB(s.budgetBytes)}`;
}
