/**
 * The one setup path of every command that runs a model (`run`, `serve`, and any later adapter):
 * flag table -> device profile -> memory plan -> `Model.load` -> `Scheduler`, with the plan
 * printed on start. The flags are declared here once, with one set of defaults, so the commands
 * cannot drift apart.
 * @module
 */
import { byteSizeFlag, kvTypeFlag, numberFlag, overflowFlag, UsageError } from "./args.ts";
import { Model } from "../runtime/model.ts";
import { Scheduler } from "../runtime/scheduler.ts";
import type { SamplingOptions } from "../runtime/sampler.ts";
import { readGguf } from "../runtime/gguf.ts";
import { qwen3ConfigFromGguf } from "../runtime/config.ts";
import {
  chooseDevice,
  describeSettings,
  type DeviceSettings,
  deviceSettings,
  footprintOf,
} from "../devices/settings.ts";
import { DEVICE_IDS } from "../devices/profiles.ts";
import { Progress } from "./progress.ts";
import type { KvTypeName } from "../kernels/ffi.ts";

/** Flags of every command that runs a model (node:util parseArgs options). */
export const MODEL_FLAGS = {
  model: { type: "string", short: "m" },
  ctx: { type: "string", short: "c" },
  parallel: { type: "string", short: "P" },
  threads: { type: "string", short: "t" },
  device: { type: "string" },
  "kv-type": { type: "string" },
  overflow: { type: "string" },
  keep: { type: "string" },
  "max-memory": { type: "string" },
  "max-tokens": { type: "string", short: "n" },
  "max-queue": { type: "string" },
} as const;

/** Sampling-default flags (a request's own fields win). */
export const SAMPLING_FLAGS = {
  temp: { type: "string" },
  "top-k": { type: "string" },
  "top-p": { type: "string" },
  "min-p": { type: "string" },
  "repeat-penalty": { type: "string" },
  seed: { type: "string" },
} as const;

/** The usage lines of {@link MODEL_FLAGS}. */
export const MODEL_FLAGS_USAGE = `  -m, --model FILE        GGUF model file (required)
  -c, --ctx N             KV cache size in tokens per slot (default: the device profile's, at
                          most the model context, lowered to fit the memory budget)
  -P, --parallel N        requests decoded together, batched (default: the device profile's;
                          each slot has its own --ctx tokens of KV cache)
  -t, --threads N         kernel threads (default: the device profile's, e.g. all cores on a Pi)
      --device NAME       device profile for the defaults of --threads, --ctx, --parallel and
                          the memory budget: ${DEVICE_IDS.join(", ")} or auto (default: detected)
      --max-memory SIZE   memory budget (e.g. 1.5G, 800M; default: the profile's share of RAM):
                          refuse to start unless weights + KV cache + scratch + runtime fit;
                          the message says which --ctx would fit
      --kv-type f16|f32|q8
                          KV cache element type (default f16; q8 = 8-bit blocks, 0.53 bytes/elem)
      --overflow error|slide
                          when the context fills: end the answer with CONTEXT_FULL (default), or
                          keep the first --keep tokens, drop the older half of the rest, go on
      --keep N            tokens kept when sliding (default: the whole prompt, at most half the context)
  -n, --max-tokens N      default most tokens to generate per answer (default 512)
      --max-queue N       requests waiting for a slot; more are refused with BUSY (default 64)`;

/** The usage lines of {@link SAMPLING_FLAGS}. */
export const SAMPLING_FLAGS_USAGE =
  `      --temp X            temperature; 0 = greedy (default: the model file's, else 0)
      --top-k N           (default: the model file's, else 20)
      --top-p X           (default: the model file's, else 0.85)
      --min-p X           (default: the model file's, else 0)
      --repeat-penalty X  (default 1 = off)
      --seed N            sampler seed (default 0): same seed, same answer`;

/** {@link MODEL_FLAGS} checked and typed; undefined = the device profile's (or the runtime's) default. */
export interface ModelFlags {
  model: string;
  contextSize?: number;
  parallel?: number;
  threads?: number;
  device?: string;
  kvType: KvTypeName;
  overflow: "error" | "slide";
  keep?: number;
  maxMemory?: number;
  maxTokens?: number;
  maxQueue?: number;
}

type FlagValues<T> = { [K in keyof T]?: string | boolean | string[] };

/** A string flag's value, or undefined (absent, or parsed as another type). */
const str = (x: unknown): string | undefined => (typeof x === "string" ? x : undefined);

/** Checks the model flags (no file is touched): a bad value is a {@link UsageError}. */
export function parseModelFlags(v: FlagValues<typeof MODEL_FLAGS>): ModelFlags {
  const model = v.model;
  if (typeof model !== "string" || model === "") {
    throw new UsageError("--model FILE is required");
  }
  const device = str(v.device);
  if (
    device !== undefined && device !== "auto" &&
    !(DEVICE_IDS as readonly string[]).includes(device)
  ) {
    throw new UsageError(
      `--device must be one of ${DEVICE_IDS.join(", ")}, auto; got '${device}'`,
    );
  }
  return {
    model,
    contextSize: numberFlag("ctx", str(v.ctx), { integer: true, min: 16 }),
    parallel: numberFlag("parallel", str(v.parallel), {
      integer: true,
      min: 1,
      max: 256,
    }),
    threads: numberFlag("threads", str(v.threads), {
      integer: true,
      min: 1,
      max: 1024,
    }),
    device,
    kvType: kvTypeFlag(str(v["kv-type"])),
    overflow: overflowFlag(str(v.overflow)),
    keep: numberFlag("keep", str(v.keep), { integer: true, min: 0 }),
    maxMemory: byteSizeFlag("max-memory", str(v["max-memory"])),
    maxTokens: numberFlag("max-tokens", str(v["max-tokens"]), {
      integer: true,
      min: 1,
    }),
    maxQueue: numberFlag("max-queue", str(v["max-queue"]), {
      integer: true,
      min: 0,
    }),
  };
}

/** Checks the sampling flags. */
export function parseSamplingFlags(
  v: FlagValues<typeof SAMPLING_FLAGS>,
): SamplingOptions {
  return {
    temperature: numberFlag("temp", str(v.temp), { min: 0 }),
    topK: numberFlag("top-k", str(v["top-k"]), { integer: true, min: 0 }),
    topP: numberFlag("top-p", str(v["top-p"]), { min: 0, max: 1 }),
    minP: numberFlag("min-p", str(v["min-p"]), { min: 0, max: 1 }),
    repeatPenalty: numberFlag("repeat-penalty", str(v["repeat-penalty"]), {
      min: 0,
    }),
    seed: numberFlag("seed", str(v.seed), {
      integer: true,
      min: 0,
      max: 0xffffffff,
    }),
  };
}

/** A loaded model with its scheduler and the settings it runs with. */
export interface ModelSetup {
  model: Model;
  scheduler: Scheduler;
  settings: DeviceSettings;
}

/** Options of {@link setupModel}. */
export interface SetupOptions {
  /** Start-up lines (device, plan, load), without a trailing newline. */
  log: (line: string) => void;
  /** Draw a progress line on the terminal while reading and mapping the file. */
  progress?: boolean;
  /** Parallel slots when `--parallel` is absent, instead of the profile's (e.g. 1 for one-at-a-time text mode). */
  parallel?: number;
}

/** A configuration that does not fit the memory budget: the process refuses to start (exit 1). */
export class MemoryBudgetError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "MemoryBudgetError";
  }
}

/**
 * Reads the file's header, picks the device profile, plans memory (refusing to start when the
 * plan does not fit the budget), maps the model and makes the scheduler.
 */
export async function setupModel(
  flags: ModelFlags,
  opts: SetupOptions,
): Promise<ModelSetup> {
  const progress = new Progress({ enabled: opts.progress ?? false });
  progress.update(`reading ${flags.model}`, undefined, true);
  const file = await readGguf(flags.model).finally(() => progress.done());
  const config = qwen3ConfigFromGguf(file);
  const device = chooseDevice(flags.device);
  // the profile fills what the flags leave open: threads, parallel, and a ctx that fits its budget
  const settings = deviceSettings(
    device,
    footprintOf(file, config, flags.kvType),
    {
      threads: flags.threads,
      contextSize: flags.contextSize,
      parallel: flags.parallel ?? opts.parallel,
      maxMemory: flags.maxMemory,
    },
  );
  opts.log(describeSettings(settings));
  const plan = settings.plan;
  if (!plan.fits) throw new MemoryBudgetError(plan.notes.join("; "));
  for (const note of plan.notes) opts.log(`note: ${note}`);
  progress.update(
    "mapping weights and building the tokenizer",
    undefined,
    true,
  );
  const model = await Model.load(flags.model, {
    threads: settings.threads,
    file,
  }).finally(() => progress.done());
  const c = model.config;
  opts.log(
    `loaded ${c.name}: ${c.nLayer} layers, ${c.nEmbd} wide, vocab ${c.nVocab}, ` +
      `kernels ${model.kernels.isaActive().join("+") || "scalar"} x${model.kernels.threads()} ` +
      `in ${model.loadMs.toFixed(0)} ms`,
  );
  try {
    return { model, scheduler: makeScheduler(model, flags, settings), settings };
  } catch (e) {
    model.close();
    throw e;
  }
}

/** The scheduler of `model` with the flags' and the plan's settings. */
export function makeScheduler(model: Model, flags: ModelFlags, settings: DeviceSettings): Scheduler {
  return new Scheduler(model, {
    contextSize: settings.contextSize,
    parallel: settings.parallel,
    kvType: flags.kvType,
    maxTokens: flags.maxTokens,
    maxQueue: flags.maxQueue,
    overflow: flags.overflow,
    keep: flags.keep,
  });
}
