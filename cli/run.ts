/**
 * `bonsai run`: load a model and answer prompts from stdin (or one `--prompt`), streaming tokens.
 */
import { parseFlags, UsageError } from "./args.ts";
import { serveStdin } from "../adapters/stdin.ts";
import {
  MODEL_FLAGS,
  MODEL_FLAGS_USAGE,
  parseModelFlags,
  parseSamplingFlags,
  SAMPLING_FLAGS,
  SAMPLING_FLAGS_USAGE,
  setupModel,
} from "./setup.ts";

export const RUN_USAGE = `Usage: bonsai run --model FILE [options]

Reads prompts from stdin, one per line, and streams each answer to stdout.

Options:
  -p, --prompt TEXT       answer this one prompt and exit instead of reading stdin
      --json              JSON lines mode: one request object per line in, one event per line out
  -s, --system TEXT       system message for every prompt
${MODEL_FLAGS_USAGE}
                          (text mode answers one prompt at a time: 1 slot unless --parallel)
${SAMPLING_FLAGS_USAGE}
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
  ...MODEL_FLAGS,
  ...SAMPLING_FLAGS,
  prompt: { type: "string", short: "p" },
  json: { type: "boolean" },
  system: { type: "string", short: "s" },
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
  const flags = parseModelFlags(v);
  const sampling = parseSamplingFlags(v);
  const quiet = v.quiet ?? !(v.verbose || Deno.stderr.isTerminal());
  const log = (s: string) => {
    if (!quiet) Deno.stderr.writeSync(new TextEncoder().encode(s));
  };
  const { jsonSchema, grammar } = await readConstraintFiles(
    v["json-schema"],
    v.grammar,
  );
  const { model, scheduler } = await setupModel(flags, {
    log: (line) => log(line + "\n"),
    progress: !quiet && Deno.stderr.isTerminal(),
    parallel: v.json ? undefined : 1,
  });
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
      throw new UsageError(
        `--json-schema ${schemaPath} is not valid JSON: ${(e as Error).message}`,
      );
    }
  }
  const grammar = grammarPath === undefined ? undefined : await read("grammar", grammarPath);
  return { jsonSchema, grammar };
}

function writeAll(bytes: Uint8Array): void {
  let at = 0;
  while (at < bytes.length) at += Deno.stdout.writeSync(bytes.subarray(at));
}
