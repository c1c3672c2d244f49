/**
 * What a generation request is and what it streams back: the types shared by the scheduler,
 * the adapters and the public API.
 */
import type { SamplingOptions } from "./sampler.ts";
import type { ChatMessage } from "./chat.ts";
import type { Tokenizer } from "./tokenizer.ts";
import type { TokenConstraint } from "./sequence.ts";
import type { ToolCall, ToolChoice, ToolDefinition } from "./constrain/tools.ts";

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
  /** Generation ends when one of these token ids is sampled (it is not included). */
  stopTokens?: number[];
  sampling?: SamplingOptions;
  /** Builds the output constraint of this request (structured output), if any. */
  constraint?: (tokenizer: Tokenizer) => TokenConstraint;
  /** The output is JSON valid against this schema (see runtime/constrain/json_schema.ts). */
  jsonSchema?: unknown;
  /** The output matches this GBNF-like grammar (see runtime/constrain/gbnf.ts). */
  grammar?: string;
  /** Tools the model may call (listed in the system prompt, Qwen3 style). */
  tools?: ToolDefinition[];
  /** Whether and which tools to call (default "auto"). */
  toolChoice?: ToolChoice;
}

/** Why a generation ended. */
export type FinishReason = "stop" | "length" | "cancelled";

/** Counts and timings of one generation. */
export interface GenerationStats {
  promptTokens: number;
  /** Prompt tokens reused from the KV cache (prefix cache) instead of being run. */
  cachedPromptTokens: number;
  completionTokens: number;
  prefillMs: number;
  decodeMs: number;
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
}

/**
 * Streamed output. A `token` event's `token` is -1 for text released at the end (bytes of an
 * incomplete character, or a stop-string prefix that did not complete).
 */
export type GenerationEvent =
  | { type: "token"; token: number; text: string }
  | {
    type: "done";
    text: string;
    finishReason: FinishReason;
    stats: GenerationStats;
    /** The complete tool calls in `text`, when the request listed tools. */
    toolCalls?: ToolCall[];
  };

/** Errors a request can end with; the runtime keeps serving after each. */
export class RequestError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
    this.name = "RequestError";
  }
}
