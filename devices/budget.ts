/**
 * Memory budget: how much RAM the runtime may take on a device, and the largest default context
 * and parallel-sequence count that fit a given model inside it.
 * @module
 */

import type { DeviceProfile } from "./profiles.ts";

const MiB = 2 ** 20;

/** Smallest context the planner will shrink to before giving up. */
export const MIN_PLANNED_CONTEXT = 256;

/** What the plan needs to know of a model. */
export interface ModelFootprint {
  /** Trained context (the upper bound of `ctx`). */
  contextLength: number;
  /**
   * Bytes needed to run with `parallel` sequences of `ctx` tokens (weights, KV cache, scratch,
   * runtime): `estimateMemory` of `runtime/memory.ts` for a real model file.
   */
  bytesNeeded(contextSize: number, parallel: number): number;
  /** What those bytes are made of, for messages (e.g. "weights 240 MiB, KV cache 96 MiB, ..."). */
  describe?(contextSize: number, parallel: number): string;
}

/** Explicit choices that the plan must keep (from flags). */
export interface PlanOverrides {
  contextSize?: number;
  parallel?: number;
  /** Budget in bytes instead of the profile's share of RAM. */
  budgetBytes?: number;
}

/** A memory plan. */
export interface MemoryPlan {
  budgetBytes: number;
  contextSize: number;
  parallel: number;
  /** Bytes the plan needs: weights + KV + scratch + runtime. */
  neededBytes: number;
  fits: boolean;
  /**
   * When the plan does not fit: the largest context (a multiple of {@link MIN_PLANNED_CONTEXT}, at
   * most the model's) that would, with the same parallel count; 0 when none does. Equal to `ctx`
   * when the plan fits.
   */
  fittingContextSize: number;
  /** Why the defaults were lowered, or why the plan does not fit; empty when nothing to say. */
  notes: string[];
}

/** The profile's budget on a machine with `memoryBytes` RAM: a share, minus a margin, never negative. */
export function memoryBudget(
  profile: DeviceProfile,
  memoryBytes: number,
): number {
  return Math.max(
    0,
    Math.floor(
      memoryBytes * profile.memoryFraction - profile.memoryReserveBytes,
    ),
  );
}

/**
 * Chooses ctx and parallel: the profile's defaults (capped by the model's context) lowered until
 * they fit: parallel first down to 1, then ctx halved down to {@link MIN_PLANNED_CONTEXT}. A value
 * given in `overrides` is kept as is; if the result does not fit, `fits` is false and a note says
 * by how much.
 */
export function planMemory(
  profile: DeviceProfile,
  memoryBytes: number,
  model: ModelFootprint,
  overrides: PlanOverrides = {},
): MemoryPlan {
  const budgetBytes = overrides.budgetBytes ??
    memoryBudget(profile, memoryBytes);
  const notes: string[] = [];
  let contextSize = overrides.contextSize ?? Math.min(profile.contextSize, model.contextLength);
  let parallel = overrides.parallel ?? profile.parallel;
  const fitsNow = () => model.bytesNeeded(contextSize, parallel) <= budgetBytes;
  const start = { contextSize, parallel };
  while (!fitsNow() && overrides.parallel === undefined && parallel > 1) {
    parallel = Math.max(1, parallel >> 1);
  }
  while (!fitsNow() && overrides.contextSize === undefined && contextSize > MIN_PLANNED_CONTEXT) {
    contextSize = Math.max(MIN_PLANNED_CONTEXT, contextSize >> 1);
  }
  if (contextSize !== start.contextSize || parallel !== start.parallel) {
    notes.push(
      `lowered ${profile.id} defaults from ctx ${start.contextSize} x ${start.parallel} to ctx ${contextSize} x ${parallel} ` +
        `to fit the ${formatMiB(budgetBytes)} budget`,
    );
  }
  const neededBytes = model.bytesNeeded(contextSize, parallel);
  const fits = neededBytes <= budgetBytes;
  const fittingContextSize = fits ? contextSize : largestFittingContext(model, parallel, budgetBytes);
  if (!fits) {
    const advice = fittingContextSize > 0
      ? `a context of ${fittingContextSize} tokens would fit (--ctx ${fittingContextSize}${
        parallel > 1 ? ", or fewer parallel slots" : ""
      })`
      : `even a ${MIN_PLANNED_CONTEXT}-token context does not fit: this model needs a device with more memory, or a smaller model`;
    const parts = model.describe ? ` (${model.describe(contextSize, parallel)})` : "";
    notes.push(
      `model needs ${formatMiB(neededBytes)}${parts} for ctx ${contextSize} x ${parallel} but the memory budget is ${
        formatMiB(budgetBytes)
      }; ${advice}`,
    );
  }
  return { budgetBytes, contextSize, parallel, neededBytes, fits, fittingContextSize, notes };
}

/** The largest multiple of MIN_PLANNED_CONTEXT up to the model's context that fits; 0 if none. */
function largestFittingContext(
  model: ModelFootprint,
  parallel: number,
  budgetBytes: number,
): number {
  const fits = (steps: number) => model.bytesNeeded(steps * MIN_PLANNED_CONTEXT, parallel) <= budgetBytes;
  if (!fits(1)) return 0;
  let lo = 1; // fits
  let hi = Math.floor(model.contextLength / MIN_PLANNED_CONTEXT) + 1; // does not fit, or past the model's context
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (fits(mid)) lo = mid;
    else hi = mid;
  }
  return lo * MIN_PLANNED_CONTEXT;
}

/** A byte count as whole MiB, as every memory message prints it (e.g. "655 MiB"). */
export function formatMiB(n: number): string {
  return `${(n / MiB).toFixed(0)} MiB`;
}
