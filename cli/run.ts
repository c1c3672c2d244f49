/**
 * `bonsai run`: load a model and answer prompts from stdin (or one `--prompt`), streaming tokens.
 */
import { kvTypeFlag, numberFlag, overflowFlag, parseFlags, UsageError } from "./args.ts";
import { Model } from "../runtime/model.ts";
import { Scheduler } from "../runtime/scheduler.ts";
import type { SamplingOptions } from "../runtime/request.ts";
import { serveStdin } from "../adapters/stdin.ts";
import { checkMemoryBudget, parseByteSize } from "../runtime/memory.ts";
import { readGguf } from "../runtime/gguf.ts";
import { qwen3ConfigFromGguf } from "../runtime/config.ts";
import { chooseDevice, describeSettings, deviceSettings, footprintOf } from "../devices/settings.ts";
import { DEVICE_IDS } from "../devices/profiles.ts";
import { Progress } from "./progress.ts";

export const RUN_USAGE = `Usage: bonsai run --model FILE [options]

Reads prompts from stdin, one per line, and streams each answer to stdout.

Options:
  -m, --model FILE        GGUF model file (required)
  -p, --prompt TEXT       answer this one prompt and exit instead of reading stdin
      --json              JSON lines mode: one request object per line in, one event per line out
  -s, --system TEXT       system message for every prompt
  -n, --max-tokens N      most tokens to generate per answer (default 512)
  -c, --ctx N             KV cache size in tokens per slot (default: the device profile's, at
                          most the model context, lowered to fit the memory budget)
      --parallel N        JSON mode: requests decoded together, batched (default 1; each slot
                          has its own --ctx tokens of KV cache)
  -t, --threads N         kernel threads (default: the device profile's, e.g. all cores on a Pi)
      --device NAME       device profile for the defaults of --threads, --ctx and the memory
                          budget: ${DEVICE_IDS.join(", ")} or auto (default: detected)
      --kv-type f16|f32|q8
                          KV cache element type (default f16; q8 = 8-bit blocks, 0.53 bytes/elem)
      --overflow error|slide
                          when the context fills: end the answer with CONTEXT_FULL (default), or
                          keep the first --keep tokens, drop the older half of the rest, go on
      --keep N            tokens kept when sliding (default: the whole prompt, at most half the context)
      --max-memory SIZE   refuse to start unless weights + KV cache + scratch + runtime fit
                          (e.g. 1.5G, 800M); the message says which --ctx would fit
      --temp X            temperature; 0 = greedy (default: the model file's, else 0)
      --top-k N           (default: the model file's, else 20)
      --top-p X           (default: the model file's, else 0.85)
      --min-p X           (default: the model file's, else 0)
      --repeat-penalty X  (default 1 = off)
      --seed N            sampler seed (default 0): same seed, same answer
      --stop TEXT         stop string (repeatable)
      --raw               no chat template: the prompt is fed as is, special tokens parsed
      --think             let the model think (<think> block) before answering
      --json-schema FILE  constrain every answer to JSON valid against this JSON schema
      --grammar FILE      constrain every answer to this GBNF-like grammar
  -q, --quiet             no load and speed messages on stderr
  -v, --verbose           load and speed messages on stderr even when it is not a terminal
  -h, --help              this text

JSON request fields: id, prompt | messages, system, max_tokens, temperature, top_k, top_p,
min_p, repeat_penalty, presence_penalty, frequency_penalty, repeat_last_n, seed, stop, raw,
think, stream, stop_tokens, json_schema, grammar, tools, tool_choice. Requests run as they arrive (see --parallel); events carry the
request's id. {"cancel": ID} cancels a running request. Events: {"event":"token",...},
{"event":"done",...}, {"event":"error",...} (with "line" when the request had no id).
Ctrl-C cancels the answer in progress and exits (code 130); end of input exits 0.`;

const OPTIONS = {
  model: { type: "string", short: "m" },
  prompt: { type: "string", short: "p" },
  json: { type: "boolean" },
  system: { type: "string", short: "s" },
  "max-tokens": { type: "string", short: "n" },
  ctx: { type: "string", short: "c" },
  parallel: { type: "string" },
  device: { type: "string" },
  threads: { type: "string", short: "t" },
  "kv-type": { type: "string" },
  overflow: { type: "string" },
  keep: { type: "string" },
  "max-memory": { type: "string" },
  temp: { type: "string" },
  "top-k": { type: "string" },
  "top-p": { type: "string" },
  "min-p": { type: "string" },
  "repeat-penalty": { type: "string" },
  seed: { type: "string" },
  stop: { type: "string", multiple: true },
  raw: { type: "boolean" },
  think: { type: "boolean" },
  "json-schema": { type: "string" },
  grammar: { type: "string" },
  quiet: { type: "boolean", short: "q" },
  verbose: { type: "boolean", short: "v" },
  help: { type: "boolean", short: "h" },
} as const;

/** Runs the command; returns the process exit code. */
export async function runCommand(args: string[]): Promise<number> {
  const { values: v } = parseFlags(args, OPTIONS);
  if (v.help) {
    console.log(RUN_USAGE);
    return 0;
  }
  if (!v.model) throw new UsageError("--model FILE is required");
  const kvType = kvTypeFlag(v["kv-type"]);
  const overflow = overflowFlag(v.overflow);
  const keep = numberFlag("keep", v.keep, { integer: true, min: 0 });
  const sampling: SamplingOptions = {
    temperature: numberFlag("temp", v.temp, { min: 0 }),
    topK: numberFlag("top-k", v["top-k"], { integer: true, min: 0 }),
    topP: numberFlag("top-p", v["top-p"], { min: 0, max: 1 }),
    minP: numberFlag("min-p", v["min-p"], { min: 0, max: 1 }),
    repeatPenalty: numberFlag("repeat-penalty", v["repeat-penalty"], { min: 0 }),
    seed: numberFlag("seed", v.seed, { integer: true, min: 0, max: 0xffffffff }),
  };
  const maxTokens = numberFlag("max-tokens", v["max-tokens"], { integer: true, min: 1 });
  const contextSize = numberFlag("ctx", v.ctx, { integer: true, min: 16 });
  const parallel = numberFlag("parallel", v.parallel, { integer: true, min: 1, max: 256 }) ?? 1;
  const threads = numberFlag("threads", v.threads, { integer: true, min: 1, max: 1024 });
  const quiet = v.quiet ?? !(v.verbose || Deno.stderr.isTerminal());
  const log = (s: string) => {
    if (!quiet) Deno.stderr.writeSync(new TextEncoder().encode(s));
  };

  let maxMemory: number | undefined;
  try {
    maxMemory = v["max-memory"] === undefined ? undefined : parseByteSize(v["max-memory"]);
  } catch (e) {
    throw new UsageError(`--max-memory: ${(e as Error).message}`);
  }
  const progress = new Progress({ enabled: !quiet && Deno.stderr.isTerminal() });
  progress.update(`reading ${v.model}`, undefined, true);
  const file = await readGguf(v.model).finally(() => progress.done());
  const config = qwen3ConfigFromGguf(file);
  let device;
  try {
    device = chooseDevice(v.device);
  } catch (e) {
    throw new UsageError(`--device: ${(e as Error).message}`);
  }
  // the profile fills what the flags leave open: threads, and a ctx that fits its memory budget
  const settings = deviceSettings(device, footprintOf(file, config, kvType), {
    threads,
    ctx: contextSize,
    parallel,
    maxMemory,
  });
  const ctx = settings.ctx;
  log(describeSettings(settings) + "\n");
  for (const note of settings.plan.notes) log(`note: ${note}\n`);
  if (maxMemory !== undefined) checkMemoryBudget(file, config, { contextSize: ctx, kvType, parallel }, maxMemory);
  const { jsonSchema, grammar } = await readConstraintFiles(v["json-schema"], v.grammar);
  progress.update("mapping weights and building the tokenizer", undefined, true);
  const model = await Model.load(v.model, { threads: settings.threads, file }).finally(() => progress.done());
  const c = model.config;
  log(
    `loaded ${c.name}: ${c.nLayer} layers, ${c.nEmbd} wide, vocab ${c.nVocab}, ` +
      `kernels ${model.kernels.isaActive().join("+") || "scalar"} x${model.kernels.threads()} ` +
      `in ${model.loadMs.toFixed(0)} ms\n`,
  );
  const scheduler = new Scheduler(model, { contextSize: ctx, kvType, maxTokens, overflow, keep, parallel });
  const encoder = new TextEncoder();
  const write = (s: string) => writeAll(encoder.encode(s));
  const defaults = {
    system: v.system,
    sampling,
    stop: v.stop,
    raw: v.raw,
    enableThinking: v.think,
    jsonSchema,
    grammar,
  };

  const controller = new AbortController();
  const onSigint = () => controller.abort();
  Deno.addSignalListener("SIGINT", onSigint);
  try {
    const input = v.prompt !== undefined ? ReadableStream.from([encoder.encode(v.prompt + "\n")]) : Deno.stdin.readable;
    const summary = await serveStdin(scheduler, {
      json: v.json ?? false,
      input,
      write,
      log: (s) => Deno.stderr.writeSync(encoder.encode(s)),
      onStats: log,
      defaults,
      signal: controller.signal,
    });
    if (summary.cancelled) return 130;
    return v.prompt !== undefined && summary.failed > 0 ? 1 : 0;
  } finally {
    Deno.removeSignalListener("SIGINT", onSigint);
    model.close();
  }
}

/** The --json-schema and --grammar files (checked when the first request runs). */
async function readConstraintFiles(schemaPath?: string, grammarPath?: string) {
  const read = async (flag: string, path: string) => {
    try {
      return await Deno.readTextFile(path);
    } catch (e) {
      throw new UsageError(`--${flag} ${path}: ${(e as Error).message}`);
    }
  };
  let jsonSchema: unknown;
  if (schemaPath !== undefined) {
    const text = await read("json-schema", schemaPath);
    try {
      jsonSchema = JSON.parse(text);
    } catch (e) {
      throw new UsageError(`--json-schema ${schemaPath} is not valid JSON: ${(e as Error).message}`);
    }
  }
  const grammar = grammarPath === undefined ? undefined : await read("grammar", grammarPath);
  return { jsonSchema, grammar };
}

function writeAll(bytes: Uint8Array): void {
  let at = 0;
  while (at < bytes.length) at += Deno.stdout.writeSync(bytes.subarray(at));
}
