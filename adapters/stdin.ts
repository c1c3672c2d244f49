/**
 * The stdin adapter: prompts in, tokens out, one request at a time.
 *
 * Text mode: each non-empty line is a user message; the answer streams to the output and ends
 * with a newline. JSON mode: each line is a request object (see adapters/request.ts) and every
 * reply is one JSON event per line: `token`, `done` or `error`, each carrying the request's id.
 * A bad line gets an error event and the next line is served as usual.
 */
import { type GenerationEvent, type GenerationRequest, RequestError } from "../runtime/request.ts";
import type { Scheduler } from "../runtime/scheduler.ts";
import { readLines } from "./lines.ts";
import { doneEvent, parseWireRequest, tokenEvent, wireError, type WireRequest } from "./request.ts";

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
  const json = opts.json ? new JsonSession(scheduler, opts, summary) : undefined;
  let lineNumber = 0;
  while (true) {
    const next = await Promise.race([lines.next(), aborted]);
    if (next === "aborted") break;
    if (next.done) break;
    lineNumber++;
    const line = next.value;
    if (!line.tooLong && line.text.trim() === "") continue;
    if (json) {
      json.accept(line.tooLong ? null : line.text, lineNumber);
      continue;
    }
    const ok = await serveTextLine(scheduler, line.tooLong ? null : line.text, opts);
    if (ok) summary.served++;
    else summary.failed++;
    if (opts.signal?.aborted) break;
  }
  await json?.finish();
  summary.cancelled = opts.signal?.aborted ?? false;
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
    log(`error: ${wireError(e).message}\n`);
    return false;
  }
}

/**
 * JSON lines: every request runs as soon as it is read (the scheduler batches them and queues
 * what does not fit), so events of different requests interleave, each tagged with its `id`.
 * A line `{"cancel": ID}` cancels a running request. Errors about a line that has no usable id
 * carry its line number.
 */
class JsonSession {
  private readonly running = new Map<string | number, AbortController>();
  private readonly pending = new Set<Promise<void>>();

  constructor(
    private readonly scheduler: Scheduler,
    private readonly opts: StdinAdapterOptions,
    private readonly summary: StdinSummary,
  ) {}

  accept(text: string | null, line: number): void {
    let id: string | number | undefined;
    try {
      if (text === null) {
        throw new RequestError("TOO_LARGE", `request line longer than ${this.opts.maxLineBytes ?? 1 << 20} bytes`);
      }
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (e) {
        throw new RequestError("BAD_JSON", `request is not valid JSON: ${(e as Error).message}`);
      }
      if (isCancel(value)) return this.cancel(value.cancel, line);
      const wire = parseWireRequest(value);
      id = wire.id;
      if (id !== undefined && this.running.has(id)) {
        throw new RequestError("DUPLICATE_ID", `a request with id ${JSON.stringify(id)} is still running`);
      }
      const defaults = this.opts.defaults;
      const request = { ...defaults, ...wire.request, sampling: { ...defaults?.sampling, ...wire.request.sampling } };
      const control = new AbortController();
      const onAbort = () => control.abort();
      this.opts.signal?.addEventListener("abort", onAbort, { once: true });
      const events = this.scheduler.submit(request, control.signal);
      if (id !== undefined) this.running.set(id, control);
      const task = this.stream(wire, events, line).finally(() => {
        this.opts.signal?.removeEventListener("abort", onAbort);
        if (id !== undefined && this.running.get(id) === control) this.running.delete(id);
        this.pending.delete(task);
      });
      this.pending.add(task);
    } catch (e) {
      this.summary.failed++;
      this.emit(errorEvent(id, line, e));
    }
  }

  /** Waits for every running request. */
  async finish(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  private cancel(id: string | number, line: number): void {
    const control = this.running.get(id);
    if (!control) {
      this.emit(
        errorEvent(id, line, new RequestError("UNKNOWN_ID", `no running request has id ${JSON.stringify(id)}`)),
      );
      return;
    }
    control.abort();
  }

  private async stream(wire: WireRequest, events: AsyncIterable<GenerationEvent>, line: number): Promise<void> {
    try {
      for await (const ev of events) {
        if (ev.type === "token" && wire.stream) this.emit(tokenEvent(wire.id, ev));
        if (ev.type === "done") this.emit(doneEvent(wire.id, ev));
      }
      this.summary.served++;
    } catch (e) {
      this.summary.failed++;
      this.emit(errorEvent(wire.id, line, e));
    }
  }

  private emit(obj: Record<string, unknown>): void {
    this.opts.write(JSON.stringify(obj) + "\n");
  }
}

function isCancel(value: unknown): value is { cancel: string | number } {
  if (typeof value !== "object" || value === null || !("cancel" in value)) return false;
  const keys = Object.keys(value);
  const id = (value as { cancel: unknown }).cancel;
  if (keys.length !== 1 || (typeof id !== "string" && typeof id !== "number")) {
    throw new RequestError("BAD_REQUEST", `a cancel line is {"cancel": ID} with the request's string or number id`);
  }
  return true;
}

function errorEvent(id: string | number | undefined, line: number, e: unknown): Record<string, unknown> {
  return { event: "error", ...(id !== undefined ? { id } : { line }), error: wireError(e) };
}
