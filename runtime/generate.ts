/**
 * The decode loop: prompt -> tokens -> prefill -> sample/step until a stop, streaming events.
 */
import type { Model } from "./model.ts";
import { Forward } from "./forward.ts";
import { KvCache, type KvType } from "./kv_cache.ts";
import { Sampler, type SamplingOptions } from "./sampler.ts";
import { type ChatMessage, encodeChat } from "./chat.ts";
import { StreamDecoder } from "./tokenizer.ts";
import { StopMatcher } from "./stop.ts";

/** What to generate. Give `prompt` or `messages`. */
export interface GenerationRequest {
  /** A user message (wrapped in the chat template unless `raw`). */
  prompt?: string;
  /** A whole conversation, in chat order. */
  messages?: ChatMessage[];
  /** A system message put before `prompt`. */
  system?: string;
  /** Tokenize `prompt` as is, special tokens included, with no chat template. */
  raw?: boolean;
  /** Let the model think (`<think>` block) before answering. Off by default. */
  enableThinking?: boolean;
  /** Upper bound on generated tokens. */
  maxTokens?: number;
  /** Generation ends when the text produces one of these (it is not included in the output). */
  stop?: string[];
  sampling?: SamplingOptions;
}

/** Why a generation ended. */
export type FinishReason = "stop" | "length" | "cancelled";

/** Counts and timings of one generation. */
export interface GenerationStats {
  promptTokens: number;
  completionTokens: number;
  prefillMs: number;
  decodeMs: number;
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
}

/** Streamed output. */
export type GenerationEvent =
  | { type: "token"; token: number; text: string }
  | { type: "done"; text: string; finishReason: FinishReason; stats: GenerationStats };

/** Errors a request can end with; the runtime keeps serving after each. */
export class RequestError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
    this.name = "RequestError";
  }
}

/** Settings of a generator. */
export interface GeneratorOptions {
  /** KV cache capacity in tokens (default: the model's context, capped at 4096). */
  contextSize?: number;
  kvType?: KvType;
  /** Default upper bound on generated tokens. */
  maxTokens?: number;
}

const YIELD_EVERY_MS = 20;

/** Runs requests one after the other on one model with one bounded KV cache. */
export class Generator {
  readonly kv: KvCache;
  private readonly forward: Forward;
  private readonly defaultMaxTokens: number;

  constructor(readonly model: Model, opts: GeneratorOptions = {}) {
    const ctx = opts.contextSize ?? Math.min(model.config.contextLength, 4096);
    if (ctx > model.config.contextLength) {
      throw new RangeError(
        `context size ${ctx} exceeds the model's trained context ${model.config.contextLength}`,
      );
    }
    this.kv = new KvCache(model.config, ctx, opts.kvType ?? "f16");
    this.forward = new Forward(model.kernels, model.config, model.weights, ctx);
    this.defaultMaxTokens = opts.maxTokens ?? 512;
  }

  /** Turns a request into prompt token ids (throws RequestError on a bad request). */
  promptTokens(req: GenerationRequest): number[] {
    const tok = this.model.tokenizer;
    if (req.messages !== undefined && req.prompt !== undefined) {
      throw new RequestError("BAD_REQUEST", "give either prompt or messages, not both");
    }
    if (req.raw) {
      if (typeof req.prompt !== "string") throw new RequestError("BAD_REQUEST", "raw mode needs a prompt string");
      return tok.encode(req.prompt, { parseSpecial: true });
    }
    let messages: ChatMessage[];
    if (req.messages !== undefined) {
      messages = req.messages;
    } else if (typeof req.prompt === "string") {
      messages = [{ role: "user", content: req.prompt }];
      if (req.system) messages.unshift({ role: "system", content: req.system });
    } else {
      throw new RequestError("BAD_REQUEST", "request has no prompt (give prompt or messages)");
    }
    if (messages.length === 0) throw new RequestError("BAD_REQUEST", "messages is empty");
    return encodeChat(tok, messages, { enableThinking: req.enableThinking ?? false });
  }

  /** Generates, streaming one event per token and a final `done`. */
  async *generate(req: GenerationRequest, signal?: AbortSignal): AsyncGenerator<GenerationEvent> {
    const { model, kv, forward } = this;
    const tok = model.tokenizer;
    const prompt = this.promptTokens(req);
    const maxTokens = req.maxTokens ?? this.defaultMaxTokens;
    if (!Number.isInteger(maxTokens) || maxTokens < 1) {
      throw new RequestError("BAD_REQUEST", `max_tokens must be a positive integer, got ${maxTokens}`);
    }
    if (prompt.length === 0) throw new RequestError("BAD_REQUEST", "prompt is empty");
    if (prompt.length >= kv.capacity) {
      throw new RequestError(
        "PROMPT_TOO_LONG",
        `prompt has ${prompt.length} tokens; the context holds ${kv.capacity} (raise --ctx or shorten the prompt)`,
      );
    }
    let sampler: Sampler;
    try {
      sampler = new Sampler(req.sampling ?? {}, model.samplingDefaults);
    } catch (e) {
      throw new RequestError("BAD_REQUEST", (e as Error).message);
    }
    const stop = new StopMatcher(req.stop ?? []);
    const decoder = new StreamDecoder(tok, { skipSpecial: true });

    kv.clear();
    const history = [...prompt];
    let lastYield = performance.now();
    const t0 = performance.now();
    let logits = forward.logits;
    for (let i = 0; i < prompt.length; i++) {
      logits = forward.step(prompt[i], kv, i === prompt.length - 1);
      if (performance.now() - lastYield > YIELD_EVERY_MS) {
        await yieldToEventLoop();
        lastYield = performance.now();
        if (signal?.aborted) break;
      }
    }
    const t1 = performance.now();

    let text = "";
    let generated = 0;
    let finishReason: FinishReason = "length";
    while (true) {
      if (signal?.aborted) {
        finishReason = "cancelled";
        break;
      }
      const next = sampler.sample(logits, history);
      generated++;
      if (tok.isEndOfGeneration(next)) {
        finishReason = "stop";
        break;
      }
      history.push(next);
      const { emit, stopped } = stop.push(decoder.push(next));
      if (emit) {
        text += emit;
        yield { type: "token", token: next, text: emit };
      }
      if (stopped) {
        finishReason = "stop";
        break;
      }
      if (generated >= maxTokens) break;
      if (kv.length >= kv.capacity) {
        throw new RequestError(
          "CONTEXT_FULL",
          `context full after ${generated} generated tokens: the KV cache holds ${kv.capacity} tokens (raise --ctx)`,
        );
      }
      logits = forward.step(next, kv);
      if (performance.now() - lastYield > YIELD_EVERY_MS) {
        await yieldToEventLoop();
        lastYield = performance.now();
      }
    }
    if (finishReason !== "stop" || !stop.stopped) {
      const rest = stop.flush(decoder.flush());
      if (rest) {
        text += rest;
        yield { type: "token", token: -1, text: rest };
      }
    }
    const t2 = performance.now();
    const decodeTokens = Math.max(0, generated - 1);
    yield {
      type: "done",
      text,
      finishReason,
      stats: {
        promptTokens: prompt.length,
        completionTokens: generated,
        prefillMs: t1 - t0,
        decodeMs: t2 - t1,
        prefillTokensPerSecond: prompt.length / ((t1 - t0) / 1000),
        decodeTokensPerSecond: decodeTokens > 0 ? decodeTokens / ((t2 - t1) / 1000) : 0,
      },
    };
  }
}

/** Lets timers, signals and I/O run (a microtask would not). */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}
