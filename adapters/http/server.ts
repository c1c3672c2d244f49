/**
 * The HTTP adapter: an OpenAI-compatible API (`/v1/chat/completions`, `/v1/completions`,
 * `/v1/models`), `/health`, Prometheus `/metrics` and the kiosk chat page at `/`, on Deno.serve
 * over one scheduler. Every request is a scheduler request: the scheduler's queue limit
 * answers 429, a client that disconnects cancels its generation and frees its slot.
 *
 * @module
 */
import type { GenerationEvent, GenerationRequest, GenerationStats } from "../../runtime/request.ts";
import type { Scheduler as RuntimeScheduler } from "../../runtime/scheduler.ts";
/** What the HTTP adapter needs of a scheduler: a real one, or a front that swaps models (SIGHUP). */
export type HttpScheduler = Pick<RuntimeScheduler, "submit" | "parallel" | "maxQueue" | "activeCount" | "queuedCount">;
import { loadOf, Metrics } from "../metrics.ts";
import { renderPrometheus } from "../metrics_prometheus.ts";
import { checkBearer } from "./auth.ts";
import { readJsonBody } from "./body.ts";
import { describeError, errorResponse, HttpError } from "./errors.ts";
import { kioskPage } from "./kiosk_page.ts";
import {
  chatChunk,
  chatCompletion,
  finishReason,
  newIdentity,
  type OpenAiRequest,
  openAiToolCalls,
  parseChatCompletion,
  parseCompletion,
  type ResponseIdentity,
  textChunk,
  textCompletion,
  usageChunk,
} from "./openai.ts";
import { SSE_HEADERS, sseStream } from "./sse.ts";

/** Settings of the HTTP adapter. */
export interface HttpOptions {
  /** Address to listen on (default 127.0.0.1: only this machine). */
  hostname?: string;
  /** Port (default 8080; 0 picks a free one). */
  port?: number;
  /** Bearer token the API and /metrics require (none by default); /health and the page stay open. */
  apiKey?: string;
  /** The model id `/v1/models` lists and responses carry (any requested name is accepted). */
  modelName?: string;
  /** System prompt of the kiosk page's conversations. */
  kioskSystem?: string;
  /** Largest request body in bytes (default 1 MiB); larger: 413. */
  maxBodyBytes?: number;
  /** Time allowed to receive a request body (default 10 s); slower: 408. */
  bodyTimeoutMs?: number;
  /** Fields applied under every request (sampling defaults; a request's own fields win). */
  defaults?: Omit<GenerationRequest, "prompt" | "messages">;
  /** Metrics to count into (the command shares one with the MQTT adapter); a new one by default. */
  metrics?: Metrics;
  /** Receives one line per notable event (listening, bugs). */
  log?: (line: string) => void;
  /**
   * `POST /admin/reload` calls this (the command's model reload, as SIGHUP does) and answers 200
   * when the new model serves, 409 when the reload was refused (the old model serves on). Needs
   * `apiKey`: without one the route answers 403, so no unauthenticated client can trigger it.
   */
  reload?: () => Promise<{ ok: boolean; message: string }>;
}

/** A running server. */
export interface HttpServer {
  /** Base URL, e.g. `http://127.0.0.1:8080`. */
  readonly url: string;
  readonly port: number;
  readonly metrics: Metrics;
  /** Cancels running requests and stops listening. */
  close(): Promise<void>;
  /** Resolves when the server has stopped. */
  readonly finished: Promise<void>;
}

/**
 * The request handler alone (for tests, or to mount under another server). `scheduler` may be
 * a promise: until it resolves, the API answers 503 and /health says loading.
 */
export function createHttpHandler(
  scheduler: HttpScheduler | Promise<HttpScheduler>,
  opts: HttpOptions = {},
): { handler: (req: Request) => Promise<Response>; metrics: Metrics; cancelAll: () => void } {
  const metrics = opts.metrics ?? new Metrics();
  let ready: HttpScheduler | undefined;
  let loadError: unknown;
  if (scheduler instanceof Promise) {
    scheduler.then((s) => ready = s, (e) => loadError = e);
  } else ready = scheduler;
  const running = new Set<AbortController>();
  // Errors of a generation that had started, counted as failed (not as rejected input).
  const counted = new WeakSet<object>();
  const limits = { maxBytes: opts.maxBodyBytes ?? 1 << 20, timeoutMs: opts.bodyTimeoutMs ?? 10_000 };
  const modelName = opts.modelName ?? "bonsai";

  const need = (): HttpScheduler => {
    if (ready) return ready;
    if (loadError) throw new HttpError(500, "INTERNAL", `model failed to load: ${(loadError as Error).message}`);
    throw new HttpError(503, "LOADING", "the model is loading; retry shortly");
  };

  const generate = async (req: Request, kind: "chat" | "text", arrived: number): Promise<Response> => {
    checkBearer(req, opts.apiKey);
    const sched = need();
    const body = await readJsonBody(req, limits);
    const parsed = kind === "chat" ? parseChatCompletion(body) : parseCompletion(body);
    const d = opts.defaults;
    const request: GenerationRequest = {
      ...d,
      ...parsed.request,
      sampling: { ...d?.sampling, ...parsed.request.sampling },
    };
    const control = new AbortController();
    const onGone = () => control.abort();
    req.signal.addEventListener("abort", onGone, { once: true });
    running.add(control);
    const cleanup = () => {
      req.signal.removeEventListener("abort", onGone);
      running.delete(control);
    };
    let iterator: AsyncIterator<GenerationEvent>;
    let first: IteratorResult<GenerationEvent>;
    try {
      iterator = sched.submit(request, control.signal)[Symbol.asyncIterator]();
      // The first event (or the request's error) comes before the headers, so that a bad
      // schema or grammar is a 400 and not an error inside a 200 stream.
      first = await iterator.next();
    } catch (e) {
      cleanup();
      throw e;
    }
    if (!first.done && first.value.type === "token") metrics.addTtft(performance.now() - arrived);
    const who = newIdentity(kind, parsed.model ?? modelName);
    if (!parsed.stream) {
      try {
        let ev = first;
        while (!ev.done && ev.value.type !== "done") ev = await iterator.next();
        const done = ev.done ? undefined : ev.value;
        if (done?.type !== "done") throw new HttpError(500, "INTERNAL", "generation ended without a done event");
        finished(metrics, done.stats, done.finishReason === "cancelled");
        return Response.json(kind === "chat" ? chatCompletion(who, done) : textCompletion(who, done));
      } catch (e) {
        metrics.count("failed");
        if (typeof e === "object" && e !== null) counted.add(e);
        throw e;
      } finally {
        cleanup();
      }
    }
    const frames = streamFrames(kind, who, parsed, first, iterator, metrics, cleanup);
    return new Response(
      sseStream(frames.next, () => {
        control.abort();
        frames.drain();
      }),
      { headers: SSE_HEADERS },
    );
  };

  const handler = async (req: Request): Promise<Response> => {
    const arrived = performance.now();
    const path = new URL(req.url).pathname;
    try {
      const route = `${req.method} ${path}`;
      switch (route) {
        case "POST /v1/chat/completions":
          return await generate(req, "chat", arrived);
        case "POST /v1/completions":
          return await generate(req, "text", arrived);
        case "GET /v1/models":
          checkBearer(req, opts.apiKey);
          return Response.json({
            object: "list",
            data: [{ id: modelName, object: "model", created: 0, owned_by: "bonsai-edge" }],
          });
        case "GET /health":
          return health(ready, loadError, modelName);
        case "GET /metrics":
          checkBearer(req, opts.apiKey);
          return new Response(renderPrometheus(metrics.snapshot(ready ? loadOf(ready) : undefined)), {
            headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
          });
        case "POST /admin/reload": {
          if (!opts.reload) throw new HttpError(404, "NOT_FOUND", "this server has no reload action");
          if (opts.apiKey === undefined) {
            throw new HttpError(403, "FORBIDDEN", "admin actions need an API key (--api-key or BONSAI_API_KEY)");
          }
          checkBearer(req, opts.apiKey);
          const r = await opts.reload();
          return Response.json({ reloaded: r.ok, message: r.message }, { status: r.ok ? 200 : 409 });
        }
        case "GET /":
        case "GET /index.html":
          return new Response(kioskPage({ model: modelName, system: opts.kioskSystem ?? "" }), {
            headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-cache" },
          });
      }
      const known = [
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/models",
        "/health",
        "/metrics",
        "/",
        "/admin/reload",
      ];
      if (known.includes(path)) {
        const allow = path.startsWith("/v1/c") || path.startsWith("/admin/") ? "POST" : "GET";
        throw new HttpError(405, "METHOD_NOT_ALLOWED", `${req.method} is not allowed on ${path}; use ${allow}`, {
          allow,
        });
      }
      throw new HttpError(404, "NOT_FOUND", `no such endpoint: ${req.method} ${path}`);
    } catch (e) {
      const { status } = describeError(e);
      const fresh = typeof e !== "object" || e === null || !counted.has(e);
      if (path.startsWith("/v1/c") && fresh) {
        metrics.count(status === 429 ? "busy" : status >= 500 ? "failed" : "rejected");
      }
      if (status === 500) opts.log?.(`bug answering ${req.method} ${path}: ${(e as Error)?.stack ?? e}`);
      return errorResponse(e);
    }
  };
  return { handler, metrics, cancelAll: () => running.forEach((c) => c.abort()) };
}

/**
 * The frames of a streamed answer, from the first event on (`next`), and `drain`, which reads
 * the rest of the events after the client left (the cancelled generation's done event is still
 * counted). Reads of the iterator are chained, so a pull in flight and the drain never overlap.
 */
function streamFrames(
  kind: "chat" | "text",
  who: ResponseIdentity,
  parsed: OpenAiRequest,
  first: IteratorResult<GenerationEvent>,
  iterator: AsyncIterator<GenerationEvent>,
  metrics: Metrics,
  cleanup: () => void,
): { next: () => Promise<unknown[] | null>; drain: () => void } {
  let pending: IteratorResult<GenerationEvent> | undefined = first;
  let started = false;
  let ended = false;
  let chain: Promise<unknown> = Promise.resolve();
  const read = (): Promise<IteratorResult<GenerationEvent>> => {
    const p = chain.then(() => {
      const ev = pending ?? iterator.next();
      pending = undefined;
      return ev;
    });
    chain = p.catch(() => {});
    return p.then((ev) => {
      if (ev.done) cleanup();
      else if (ev.value.type === "done") finished(metrics, ev.value.stats, ev.value.finishReason === "cancelled");
      return ev;
    }, (e) => {
      cleanup();
      metrics.count("failed");
      throw e;
    });
  };
  // With tools, text after a <tool_call> token is held back: it becomes tool_calls at the end.
  const tools = kind === "chat" && parsed.request.tools !== undefined && parsed.request.toolChoice !== "none";
  let inCall = false;
  const next = async (): Promise<unknown[] | null> => {
    if (ended) return null;
    const frames: unknown[] = [];
    if (kind === "chat" && !started) frames.push(chatChunk(who, { role: "assistant", content: "" }));
    started = true;
    let ev: IteratorResult<GenerationEvent>;
    try {
      ev = await read();
    } catch (e) {
      // Headers are sent: the error goes in the stream, in the OpenAI error shape.
      ended = true;
      return [...frames, describeError(e).body];
    }
    if (ev.done) {
      ended = true;
      return frames.length > 0 ? frames : null;
    }
    const e = ev.value;
    if (e.type === "token") {
      if (tools && e.text.includes("<tool_call>")) inCall = true;
      if (e.text !== "" && !inCall) {
        frames.push(kind === "chat" ? chatChunk(who, { content: e.text }) : textChunk(who, e.text));
      }
      return frames;
    }
    const reason = finishReason(e.finishReason, kind === "chat" ? e.toolCalls : undefined);
    if (kind === "chat") {
      if (e.toolCalls && e.toolCalls.length > 0) {
        frames.push(chatChunk(who, { tool_calls: openAiToolCalls(e.toolCalls) }));
      }
      frames.push(chatChunk(who, {}, reason));
    } else frames.push(textChunk(who, "", reason));
    if (parsed.includeUsage) {
      frames.push(usageChunk(who, kind === "chat" ? "chat.completion.chunk" : "text_completion", e.stats));
    }
    return frames;
  };
  const drain = () => {
    if (ended) return;
    ended = true;
    void (async () => {
      try {
        while (!(await read()).done) { /* counted by read */ }
      } catch { /* counted by read */ }
    })();
  };
  return { next, drain };
}

function health(ready: HttpScheduler | undefined, loadError: unknown, model: string): Response {
  if (!ready) {
    return Response.json({ status: loadError ? "error" : "loading", model }, { status: 503 });
  }
  const g = loadOf(ready);
  const busy = g.activeSlots >= g.slots;
  return Response.json({
    status: busy ? "busy" : "ok",
    model,
    slots_total: g.slots,
    slots_busy: g.activeSlots,
    queue: g.queueDepth,
    queue_limit: g.queueLimit,
  });
}

/**
 * Counts a finished generation (served, or cancelled by its client). Its tokens are counted
 * from its stats at the end, as this adapter always did: stop strings can hold back tokens that
 * never become token events, and the usage the client sees is the stats' count.
 */
function finished(metrics: Metrics, stats: GenerationStats, cancelled: boolean): void {
  metrics.count(cancelled ? "cancelled" : "served");
  metrics.addGeneration(stats);
  metrics.addTokens(stats.completionTokens);
}

/** Starts the server; resolves once it listens. */
export async function serveHttp(
  scheduler: HttpScheduler | Promise<HttpScheduler>,
  opts: HttpOptions = {},
): Promise<HttpServer> {
  const { handler, metrics, cancelAll } = createHttpHandler(scheduler, opts);
  const hostname = opts.hostname ?? "127.0.0.1";
  let resolveListen: (addr: Deno.NetAddr) => void;
  const listening = new Promise<Deno.NetAddr>((r) => resolveListen = r);
  const server = Deno.serve({
    hostname,
    port: opts.port ?? 8080,
    onListen: (addr) => resolveListen(addr as Deno.NetAddr),
    onError: (e) => errorResponse(e),
  }, handler);
  const addr = await listening;
  const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  const url = `http://${host}:${addr.port}`;
  opts.log?.(`HTTP API on ${url}/v1 (kiosk page ${url}/)`);
  let closing: Promise<void> | undefined;
  return {
    url,
    port: addr.port,
    metrics,
    finished: server.finished,
    close() {
      if (!closing) {
        cancelAll();
        closing = server.shutdown();
      }
      return closing;
    },
  };
}
