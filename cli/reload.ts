/**
 * Reloading the model file of a running service (SIGHUP): the new file is checked and loaded
 * beside the old model, which keeps serving; only then do new requests move to it, while the old
 * model finishes or cancels its requests (`--reload finish|cancel`) and is closed. A broken file
 * is refused with its error and the old model goes on serving. Loading beside the old model needs
 * memory for both for a moment: when the budget cannot hold that, the reload is refused (restart
 * the service instead), so a reload never runs the device out of memory.
 * @module
 */
import { Model } from "../runtime/model.ts";
import { readGguf } from "../runtime/gguf.ts";
import { qwen3ConfigFromGguf } from "../runtime/config.ts";
import { estimateMemory } from "../runtime/memory.ts";
import type { ReloadableScheduler, ReloadMode } from "../runtime/reloadable.ts";
import type { DeviceSettings } from "../devices/settings.ts";
import { formatMiB } from "../devices/budget.ts";
import { makeScheduler, type ModelFlags } from "./setup.ts";

/** Options of {@link reloadModel}. */
export interface ReloadOptions {
  mode: ReloadMode;
  log: (line: string) => void;
}

/** What a reload did: `ok` once the new model serves, else why it was refused. */
export interface ReloadResult {
  ok: boolean;
  message: string;
}

/**
 * Loads `flags.model` again and swaps it in. Resolves `ok` once the new model serves (the old one
 * may still be finishing its requests), not `ok` when the reload was refused (the old model serves
 * on); never throws. The message is also logged.
 */
export async function reloadModel(
  host: ReloadableScheduler,
  flags: ModelFlags,
  settings: DeviceSettings,
  opts: ReloadOptions,
): Promise<ReloadResult> {
  const old = host.model;
  try {
    const file = await readGguf(flags.model);
    const config = qwen3ConfigFromGguf(file);
    const shape = { contextSize: settings.contextSize, parallel: settings.parallel, kvType: flags.kvType };
    const next = estimateMemory(file, config, shape);
    const current = estimateMemory(old.file, old.config, shape);
    const during = next.totalBytes + current.weightsBytes + current.kvBytes + current.scratchBytes;
    if (during > settings.budgetBytes) {
      throw new Error(
        `loading it beside the running model needs ${formatMiB(during)} but the memory budget is ` +
          `${formatMiB(settings.budgetBytes)}; restart the service to switch models`,
      );
    }
    const model = await Model.load(flags.model, { threads: settings.threads, file });
    let scheduler;
    try {
      scheduler = makeScheduler(model, flags, settings);
    } catch (e) {
      model.close();
      throw e;
    }
    const message = `reload: ${config.name} from ${flags.model} serves new requests; the old model ` +
      `${opts.mode === "finish" ? "finishes" : "cancels"} its ${host.activeCount + host.queuedCount} request(s)`;
    opts.log(message);
    host.replace(scheduler, opts.mode).then(
      () => opts.log("reload: the old model is closed"),
      (e) => opts.log(`reload: closing the old model failed: ${(e as Error).message}`),
    );
    return { ok: true, message };
  } catch (e) {
    const message = `reload refused: ${(e as Error).message}; still serving ${old.config.name} as loaded`;
    opts.log(message);
    return { ok: false, message };
  }
}
