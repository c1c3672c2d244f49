/**
 * Peak RSS of a real decode against the figure `estimateMemory` computes before loading
 * (issue 4: within 5%). Each configuration runs in its own process so peaks do not mix.
 *
 *   deno run -A bench/memory_budget.ts [--shape 4b|1.7b] [--ctx 4096] [--tokens 64] [--json]
 */
import { parseArgs } from "node:util";
import { ensureModel } from "./models.ts";
import type { SynthType } from "../tools/synth.ts";

/** One measurement. */
export interface MemoryResult {
  shape: string;
  type: SynthType;
  contextSize: number;
  estimatedBytes: number;
  peakRssBytes: number;
  /** (peak - estimate) / estimate. */
  error: number;
  parts: Record<string, number>;
}

/** Generates the model if needed, then measures it in a child process. */
export async function measureMemory(
  shape: string,
  contextSize: number,
  tokens: number,
  type: SynthType = "q1_0",
): Promise<MemoryResult> {
  const path = await ensureModel(shape, "models", type);
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL(import.meta.url).pathname,
      "--child",
      path,
      "--ctx",
      String(contextSize),
      "--tokens",
      String(tokens),
    ],
    stdout: "piped",
    stderr: "inherit",
  });
  const out = await child.output();
  if (!out.success) throw new Error(`memory child for ${shape} failed`);
  const r = JSON.parse(new TextDecoder().decode(out.stdout));
  return { shape, type, contextSize, ...r, error: (r.peakRssBytes - r.estimatedBytes) / r.estimatedBytes };
}

async function child(path: string, contextSize: number, tokens: number): Promise<void> {
  const { Model } = await import("../runtime/model.ts");
  const { Scheduler } = await import("../runtime/scheduler.ts");
  const { readGguf } = await import("../runtime/gguf.ts");
  const { qwen3ConfigFromGguf } = await import("../runtime/config.ts");
  const { estimateMemory } = await import("../runtime/memory.ts");
  const file = await readGguf(path);
  const est = estimateMemory(file, qwen3ConfigFromGguf(file), { contextSize });
  const model = await Model.load(path, { file });
  const scheduler = new Scheduler(model, { contextSize });
  for await (
    const _ of scheduler.submit({ prompt: "Report status.", maxTokens: tokens, sampling: { temperature: 0 } })
  ) { /* decode */ }
  const status = await Deno.readTextFile("/proc/self/status");
  const peak = Number(/VmHWM:\s+(\d+)/.exec(status)![1]) * 1024;
  console.log(JSON.stringify({
    estimatedBytes: est.totalBytes,
    peakRssBytes: peak,
    parts: { weights: est.weightsBytes, kv: est.kvBytes, scratch: est.scratchBytes, runtime: est.runtimeBytes },
  }));
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      child: { type: "string" },
      shape: { type: "string", default: "4b" },
      ctx: { type: "string", default: "4096" },
      tokens: { type: "string", default: "64" },
      json: { type: "boolean" },
    },
  });
  if (values.child) {
    await child(values.child, Number(values.ctx), Number(values.tokens));
  } else {
    const r = await measureMemory(values.shape!, Number(values.ctx), Number(values.tokens));
    if (values.json) console.log(JSON.stringify(r));
    else {
      const mib = (n: number) => `${(n / 2 ** 20).toFixed(0)} MiB`;
      console.log(
        `${r.shape} ctx ${r.contextSize}: estimated ${mib(r.estimatedBytes)}, peak RSS ${mib(r.peakRssBytes)} (${
          (r.error * 100).toFixed(1)
        }%)`,
      );
      console.log(`  ${Object.entries(r.parts).map(([k, v]) => `${k} ${mib(v)}`).join(", ")}`);
    }
  }
}
