/**
 * One bench configuration, measured in its own process (so load time and peak RSS are its own):
 * load, prefill of a prompt in scheduler-sized chunks, decode, and optionally the prefix-cache
 * line through a Scheduler. Prints one JSON object ({@link Measurement}) on stdout.
 *
 * Usage: deno run -A bench/measure.ts --model PATH --threads N [--prompt 512] [--decode 128]
 *        [--chunk 64] [--prefix 400]
 */
import { parseArgs } from "node:util";
import { Model } from "../runtime/model.ts";
import { Forward } from "../runtime/forward.ts";
import { KvCache } from "../runtime/kv_cache.ts";
import { Scheduler } from "../runtime/scheduler.ts";

/** What one configuration measured. */
export interface Measurement {
  model: string;
  threads: number;
  isa: string[];
  /** GEMM variant of the prompt chunks (`null`: the lookup-table kernels, as in decode). */
  gemm: string | null;
  loadMs: number;
  promptTokens: number;
  prefillTokS: number;
  /** Time to first token: prefill of the whole prompt plus the first sampled token's step. */
  ttftMs: number;
  decodeTokens: number;
  decodeTokS: number;
  /** Median decode step. */
  decodeStepMs: number;
  peakRssMB: number;
  weightBytesPerToken: number;
  /** Prefix cache: time to first token of a request with a long system prompt, cold then cached. */
  prefix?: {
    promptTokens: number;
    coldTtftMs: number;
    warmTtftMs: number;
    warmCachedTokens: number;
  };
}

/** Peak resident set of this process in MB (VmHWM), or NaN where /proc is missing or not allowed. */
export function peakRssMB(): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(
      Deno.readTextFileSync(`/proc/${Deno.pid}/status`),
    );
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : NaN;
}

/** Runs the measurement described by the CLI arguments. */
export async function measure(args: string[]): Promise<Measurement> {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: "string" },
      threads: { type: "string", default: "0" },
      prompt: { type: "string", default: "512" },
      decode: { type: "string", default: "128" },
      chunk: { type: "string", default: "64" },
      prefix: { type: "string", default: "0" },
    },
  });
  if (!values.model) throw new Error("--model PATH is required");
  const nPrompt = Number(values.prompt),
    nDecode = Number(values.decode),
    chunk = Number(values.chunk);
  const model = await Model.load(values.model, {
    threads: Number(values.threads),
  });
  try {
    const c = model.config;
    const K = model.kernels;
    const ctx = nPrompt + nDecode + 8;
    const fwd = new Forward(K, c, model.weights, ctx, {
      maxBatch: chunk,
      maxLogitRows: 1,
    });
    const kv = new KvCache(c, ctx, "f16");
    // deterministic ordinary-looking token ids
    const tokens = Array.from(
      { length: nPrompt },
      (_, i) => (i * 7919 + 13) % Math.min(c.nVocab, 150000),
    );
    const argmax = (x: Float32Array) => {
      let b = 0;
      for (let i = 1; i < c.nVocab; i++) if (x[i] > x[b]) b = i;
      return b;
    };
    const t0 = performance.now();
    for (let i = 0; i < nPrompt; i += chunk) {
      const n = Math.min(chunk, nPrompt - i);
      fwd.run(
        tokens.slice(i, i + n).map((token, j) => ({
          token,
          kv,
          wantLogits: i + j === nPrompt - 1,
        })),
      );
    }
    const prefillMs = performance.now() - t0;
    let next = argmax(fwd.logits);
    const steps: number[] = [];
    for (let i = 0; i < nDecode; i++) {
      const s = performance.now();
      next = argmax(fwd.step(next, kv));
      steps.push(performance.now() - s);
    }
    const decodeMs = steps.reduce((a, b) => a + b, 0);
    const result: Measurement = {
      model: values.model,
      threads: K.threads(),
      isa: K.isaActive(),
      gemm: K.gemmPath(),
      loadMs: model.loadMs,
      promptTokens: nPrompt,
      prefillTokS: nPrompt / (prefillMs / 1000),
      ttftMs: prefillMs + (steps[0] ?? 0),
      decodeTokens: nDecode,
      decodeTokS: nDecode / (decodeMs / 1000),
      decodeStepMs: median(steps),
      peakRssMB: 0,
      weightBytesPerToken: model.weights.bytesPerToken,
    };
    const nPrefix = Number(values.prefix);
    if (nPrefix > 0) result.prefix = await prefixCache(model, nPrefix);
    result.peakRssMB = peakRssMB();
    return result;
  } finally {
    model.close();
  }
}

/** A system prompt of about `n` tokens sent twice through one Scheduler: cold, then from the cache. */
async function prefixCache(
  model: Model,
  n: number,
): Promise<NonNullable<Measurement["prefix"]>> {
  const words = "the robot checks its sensors and reports the status of every joint motor and battery cell"
    .split(" ");
  let system = "";
  for (let i = 0; model.tokenizer.encode(system).length < n; i++) {
    system += words[i % words.length] + " ";
  }
  const sched = new Scheduler(model, {
    parallel: 1,
    contextSize: n + 64,
    maxTokens: 1,
  });
  const once = async (prompt: string) => {
    const t0 = performance.now();
    let ttft = NaN, cached = 0, promptTokens = 0;
    for await (
      const ev of sched.submit({
        system,
        prompt,
        maxTokens: 1,
        sampling: { temperature: 0 },
      })
    ) {
      if (ev.type === "token" && Number.isNaN(ttft)) {
        ttft = performance.now() - t0;
      }
      if (ev.type === "done") {
        cached = ev.stats.cachedPromptTokens;
        promptTokens = ev.stats.promptTokens;
      }
    }
    return { ttft, cached, promptTokens };
  };
  const cold = await once("Status?");
  const warm = await once("Battery?");
  return {
    promptTokens: cold.promptTokens,
    coldTtftMs: cold.ttft,
    warmTtftMs: warm.ttft,
    warmCachedTokens: warm.cached,
  };
}

if (import.meta.main) {
  console.log(JSON.stringify(await measure(Deno.args)));
}
