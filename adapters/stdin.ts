/**
 * The stdin adapter: prompts in, tokens out, one request at a time.
 *
 * Text mode: each non-empty line is a user message; the answer streams to the output and ends
 * with a newline. JSON mode: each line is a request object (see adapters/request.ts) and every
 * reply is one JSON event per line: `token`, `done` or `error`, each carrying the request's id.
 * A bad line gets an error event and the next line is served as usual.
 */
import type { GenerationEvent } from "../runtime/generate.ts";
import type { Scheduler } from "../runtime/scheduler.ts";
import { RequestError } from "../runtime/generate.ts";
import { readLines } from "./lines.ts";
import { parseWireRequest, type WireRequest } from "./request.ts";
import type { GenerationRequest } from "../runtime/generate.ts";

/** How the adapter reads and writes. */
export interface StdinAdapterOptions {
  json: boolean;
  input: ReadableStream<Uint8Array>;
  /** Receives output text exactly as it should appear (JSON lines end with "\n"). */
  write: (text: string) => void;
  /** Receives error messages in text mode (stderr). */
  log?: (text: string) => void;
  /** Receives a speed summary after each text-mode answer. */
  onStats?: (text: string) => void;
  /** Fields applied to every text-mode prompt (system message, sampling, max tokens). */
  defaults?: Omit<GenerationRequest, "prompt" | "messages">;
  /** Aborting it cancels the running generation and stops reading. */
  signal?: AbortSignal;
  /** Longest accepted line in bytes. */
  maxLineBytes?: number;
}

/** Counts of a finished session. */
export interface StdinSummary {
  served: number;
  failed: number;
  cancelled: boolean;
}

/** Serves lines until the input ends or `signal` aborts. */
export async function serveStdin(scheduler: Scheduler, opts: StdinAdapterOptions): Promise<StdinSummary> {
  const summary: StdinSummary = { served: 0, failed: 0, cancelled: false };
  const lines = readLines(opts.input, opts.maxLineBytes);
  const aborted = new Promise<"aborted">((resolve) => {
    if (opts.signal?.aborted) resolve("aborted");
    opts.signal?.addEventListener("abort", () => resolve("aborted"), { once: true });
  });
  while (true) {
    const next = await Promise.race([lines.next(), aborted]);
    if (next === "aborted") {
      summary.cancelled = true;
      break;
    }
    if (next.done) break;
    const line = next.value;
    if (!line.tooLong && line.text.trim() === "") continue;
    const ok = opts.json
      ? await serveJsonLine(scheduler, line.tooLong ? null : line.text, opts)
      : await serveTextLine(scheduler, line.tooLong ? null : line.text, opts);
    if (ok) summary.served++;
    else summary.failed++;
    if (opts.signal?.aborted) {
      summary.cancelled = true;
      break;
    }
  }
  // Let the line reader release stdin.
  void lines.return(undefined);
  return summary;
}

async function serveTextLine(scheduler: Scheduler, text: string | null, opts: StdinAdapterOptions): Promise<boolean> {
  const log = opts.log ?? (() => {});
  if (text === null) {
    log(`error: line longer than ${opts.maxLineBytes ?? 1 << 20} bytes, skipped\n`);
    return false;
  }
  try {
    for await (const ev of scheduler.submit({ ...opts.defaults, prompt: text }, opts.signal)) {
      if (ev.type === "token") opts.write(ev.text);
      else {
        opts.write("\n");
        const s = ev.stats;
        opts.onStats?.(
          `[${s.promptTokens} prompt tokens, ${s.prefillTokensPerSecond.toFixed(1)} tok/s; ` +
            `${s.completionTokens} generated, ${s.decodeTokensPerSecond.toFixed(1)} tok/s; ${ev.finishReason}]\n`,
        );
      }
    }
    return true;
  } catch (e) {
    log(`error: ${errorMessage(e)}\n`);
    return false;
  }
}

async function serveJsonLine(scheduler: Scheduler, text: string | null, opts: StdinAdapterOptions): Promise<boolean> {
  const emit = (obj: Record<string, unknown>) => opts.write(JSON.stringify(obj) + "\n");
  let wire: WireRequest | undefined;
  try {
    if (text === null) {
      throw new RequestError("TOO_LARGE", `request line longer than ${opts.maxLineBytes ?? 1 << 20} bytes`);
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (e) {
      throw new RequestError("BAD_JSON", `request is not valid JSON: ${(e as Error).message}`);
    }
    wire = parseWireRequest(value);
    const request = { ...opts.defaults, ...wire.request, sampling: { ...opts.defaults?.sampling, ...wire.request.sampling } };
    for await (const ev of scheduler.submit(request, opts.signal)) {
      if (ev.type === "token" && wire.stream) emit(tokenEvent(wire.id, ev));
      if (ev.type === "done") emit(doneEvent(wire.id, ev));
    }
    return true;
  } catch (e) {
    emit({
      event: "error",
      ...(wire?.id !== undefined ? { id: wire.id } : {}),
      error: { code: e instanceof RequestError ? e.code : "INTERNAL", message: errorMessage(e) },
    });
    return false;
  }
}

function tokenEvent(id: string | number | undefined, ev: Extract<GenerationEvent, { type: "token" }>) {
  return { event: "token", ...(id !== undefined ? { id } : {}), text: ev.text, token: ev.token };
}

/** The final event, with usage and timings in the field names llama.cpp's server uses. */
export function doneEvent(id: string | number | undefined, ev: Extract<GenerationEvent, { type: "done" }>) {
  const s = ev.stats;
  return {
    event: "done",
    ...(id !== undefined ? { id } : {}),
    text: ev.text,
    finish_reason: ev.finishReason,
    usage: {
      prompt_tokens: s.promptTokens,
      completion_tokens: s.completionTokens,
      cached_prompt_tokens: s.cachedPromptTokens,
    },
    timings: {
      prompt_ms: round(s.prefillMs),
      predicted_ms: round(s.decodeMs),
      prompt_per_second: round(s.prefillTokensPerSecond),
      predicted_per_second: round(s.decodeTokensPerSecond),
    },
  };
}

function round(x: number): number {
  return Number.isFinite(x) ? Math.round(x * 100) / 100 : 0;
}

function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
