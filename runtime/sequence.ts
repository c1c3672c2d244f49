/**
 * One request's decoding state: its prompt, sampler, stop strings, streaming detokenizer and
 * optional output constraint. The scheduler feeds it logits; it answers with events and the
 * next token to run.
 */
import type { Model } from "./model.ts";
import { encodeChat } from "./chat.ts";
import { Sampler } from "./sampler.ts";
import { StopMatcher } from "./stop.ts";
import type { Tokenizer } from "./tokenizer.ts";
import { StreamDecoder } from "./utf8_stream.ts";
import { activeTools, requestConstraint } from "./constrain/request.ts";
import { parseToolCalls } from "./constrain/tools.ts";
import {
  type ChatMessage,
  type FinishReason,
  type GenerationEvent,
  type GenerationRequest,
  RequestError,
  type TokenConstraint,
} from "./request.ts";

/** Turns a request into prompt token ids; throws RequestError on a bad request. */
export function promptTokens(tok: Tokenizer, req: GenerationRequest): number[] {
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
  return encodeChat(tok, messages, { enableThinking: req.enableThinking ?? false, tools: activeTools(req) });
}

/** Decoding state of one request. */
export class Sequence {
  readonly prompt: number[];
  readonly maxTokens: number;
  /** Prompt and generated tokens (read by the repetition penalties). */
  readonly history: number[];
  /** Prompt tokens already in the KV cache. */
  prefilled = 0;
  /** Prompt tokens found in the KV cache from an earlier request (not run again). */
  cachedPromptTokens = 0;
  generated = 0;
  text = "";
  /** When the sequence got a KV slot (prefill time is counted from here, not from the queue). */
  startedAt: number = performance.now();
  prefillDoneAt = 0;
  private readonly sampler: Sampler;
  private readonly stop: StopMatcher;
  private readonly decoder: StreamDecoder;
  private readonly constraint?: TokenConstraint;
  private readonly tools?: GenerationRequest["tools"];
  private readonly tok: Tokenizer;
  private readonly contextSize: number;
  private readonly stopTokens: Set<number>;

  /** Validates the request against a KV cache of `contextSize` tokens; throws RequestError. */
  constructor(model: Model, req: GenerationRequest, opts: { contextSize: number; defaultMaxTokens: number }) {
    this.tok = model.tokenizer;
    this.prompt = promptTokens(this.tok, req);
    this.maxTokens = req.maxTokens ?? opts.defaultMaxTokens;
    if (!Number.isInteger(this.maxTokens) || this.maxTokens < 1) {
      throw new RequestError("BAD_REQUEST", `max_tokens must be a positive integer, got ${this.maxTokens}`);
    }
    if (this.prompt.length === 0) throw new RequestError("BAD_REQUEST", "prompt is empty");
    if (this.prompt.length >= opts.contextSize) {
      throw new RequestError(
        "PROMPT_TOO_LONG",
        `prompt has ${this.prompt.length} tokens; the context holds ${opts.contextSize}`,
      );
    }
    try {
      this.sampler = new Sampler(req.sampling ?? {}, model.samplingDefaults, this.tok.vocabSize);
      this.stop = new StopMatcher(req.stop ?? []);
    } catch (e) {
      throw new RequestError("BAD_REQUEST", (e as Error).message);
    }
    this.stopTokens = new Set(req.stopTokens ?? []);
    for (const id of this.stopTokens) {
      if (!Number.isInteger(id) || id < 0 || id >= this.tok.vocabSize) {
        throw new RequestError("BAD_REQUEST", `stop token ${id} is not a token id (0..${this.tok.vocabSize - 1})`);
      }
    }
    this.constraint = requestConstraint(req)?.(this.tok);
    this.tools = activeTools(req);
    this.contextSize = opts.contextSize;
    this.decoder = new StreamDecoder(this.tok, { skipSpecial: true });
    this.history = [...this.prompt];
  }

  /**
   * Picks the next token from the logits of the last token run. Returns the events to stream
   * and, unless the sequence has finished, the token to run next.
   */
  advance(logits: Float32Array): { events: GenerationEvent[]; next?: number } {
    const events: GenerationEvent[] = [];
    const c = this.constraint;
    const allowed = c ? (id: number) => this.tok.isEndOfGeneration(id) ? c.canEnd() : c.allows(id) : undefined;
    // The KV cache may run out before max_tokens does.
    c?.setRemaining?.(Math.min(this.maxTokens, this.contextSize - this.prompt.length) - this.generated);
    let candidates: number[] | undefined;
    const listed = c?.candidates?.();
    if (c && listed) {
      candidates = Array.from(listed);
      if (c.canEnd()) candidates.push(...this.endIds());
    }
    const next = this.sampler.sample(logits, this.history, allowed, candidates);
    this.generated++;
    if (this.tok.isEndOfGeneration(next) || this.stopTokens.has(next)) return this.finish("stop", events);
    c?.accept(next);
    this.history.push(next);
    const { emit, stopped } = this.stop.push(this.decoder.push(next));
    if (emit) {
      this.text += emit;
      events.push({ type: "token", token: next, text: emit });
    }
    if (stopped || c?.isComplete()) return this.finish("stop", events);
    if (this.generated >= this.maxTokens) return this.finish("length", events);
    return { events, next };
  }

  /** The vocabulary's end-of-generation token ids. */
  private endIds(): number[] {
    const ids = [this.tok.eosTokenId, this.tok.tokenId("<|im_end|>"), this.tok.tokenId("<|endoftext|>")];
    return [...new Set(ids.filter((id): id is number => id !== undefined && this.tok.isEndOfGeneration(id)))];
  }

  /** Ends the sequence now (cancelled, or out of context); returns the final events. */
  finish(reason: FinishReason, events: GenerationEvent[] = []): { events: GenerationEvent[] } {
    if (!this.stop.stopped) {
      const rest = this.stop.flush(this.decoder.flush());
      if (rest) {
        this.text += rest;
        events.push({ type: "token", token: -1, text: rest });
      }
    }
    const now = performance.now();
    const prefillDone = this.prefillDoneAt || now;
    const prefillMs = prefillDone - this.startedAt;
    const decodeMs = now - prefillDone;
    const decodeSteps = Math.max(0, this.generated - 1);
    events.push({
      type: "done",
      text: this.text,
      finishReason: reason,
      stats: {
        promptTokens: this.prompt.length,
        completionTokens: this.generated,
        prefillMs,
        decodeMs,
        cachedPromptTokens: this.cachedPromptTokens,
        prefillTokensPerSecond: prefillMs > 0 ? (this.prefilled - this.cachedPromptTokens) / (prefillMs / 1000) : 0,
        decodeTokensPerSecond: decodeSteps > 0 && decodeMs > 0 ? decodeSteps / (decodeMs / 1000) : 0,
      },
      ...(this.tools ? { toolCalls: parseToolCalls(this.text, this.tools) } : {}),
    });
    return { events };
  }
}
