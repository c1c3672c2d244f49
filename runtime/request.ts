/**
 * The request vocabulary: what a generation request is, what it streams back, and the tool and
 * constraint types both carry. A leaf module (it imports nothing from the runtime), so that the
 * scheduler, the sequence, the constrained decoders, the adapters and the public API can all
 * share these types without importing each other.
 *
 * @module
 */

/** One turn of a conversation. */
export interface ChatMessage {
  role: "system" | "user" | "assistant" | "tool";
  content: string;
  /** Calls an assistant turn made (history of a tool round trip), rendered after its content. */
  toolCalls?: ToolCall[];
}

/** Sampling settings; zero or absent values switch a stage off. */
export interface SamplingOptions {
  /** 0 means greedy (always the most likely token). */
  temperature?: number;
  /** Keep only the k most likely tokens (0 = all). */
  topK?: number;
  /** Keep the smallest set of tokens whose probability sum reaches p (1 = all). */
  topP?: number;
  /** Drop tokens less likely than minP times the most likely one. */
  minP?: number;
  /** Divide positive (multiply negative) logits of recently seen tokens by this (1 = off). */
  repeatPenalty?: number;
  /** Subtract from the logit of every recently seen token (0 = off). */
  presencePenalty?: number;
  /** Subtract this times the count of a recently seen token (0 = off). */
  frequencyPenalty?: number;
  /** How many recent tokens the penalties look at. */
  repeatLastN?: number;
  /** Seed of the sampler's PRNG. */
  seed?: number;
}

/** A function the model may call. */
export interface ToolDefinition {
  name: string;
  description?: string;
  /** JSON schema of the arguments object (default: an object with no properties). */
  parameters?: Record<string, unknown>;
}

/**
 * Whether and which tools to call: `auto` (default) lets the model answer in text or call
 * tools; `required` makes the whole answer tool calls; `{ name }` forces calls of that tool;
 * `none` neither lists the tools in the prompt nor parses calls.
 */
export type ToolChoice = "auto" | "none" | "required" | { name: string };

/** A parsed call. */
export interface ToolCall {
  name: string;
  arguments: Record<string, unknown>;
}

/**
 * What a constraint needs to know of the vocabulary. The runtime's `Tokenizer` is one; the
 * interface keeps the constrained decoders independent of the tokenizer implementation.
 */
export interface TokenVocabulary {
  /** Number of token ids. */
  readonly vocabSize: number;
  /** Exact token text lookup, e.g. `"<tool_call>"`. */
  tokenId(text: string): number | undefined;
  /** The token's type (the GGUF token types: NORMAL, CONTROL, USER_DEFINED...). */
  tokenType(id: number): number;
  /** The token's text as stored in the vocabulary. */
  tokenText(id: number): string;
  /** The bytes the token stands for (shared: do not modify). */
  tokenBytes(id: number): Uint8Array;
  /** Whether sampling `id` ends the generation (end-of-turn / end-of-text tokens). */
  isEndOfGeneration(id: number): boolean;
}

/**
 * Restricts which tokens may come next (structured output). Built per sequence from the
 * request's `constraint` factory.
 */
export interface TokenConstraint {
  /** Whether `id` (never an end-of-generation token) may come next. */
  allows(id: number): boolean;
  /** Whether the output is complete enough to end here. */
  canEnd(): boolean;
  /** Records the chosen token. */
  accept(id: number): void;
  /** True when nothing more may follow: generation ends. */
  isComplete(): boolean;
  /**
   * Called before each pick with the tokens the sequence may still generate (that one
   * included), so that the constraint can steer to a complete output in time.
   */
  setRemaining?(tokens: number): void;
  /**
   * Every token that may come next (end-of-generation tokens aside), when the constraint can
   * list them cheaply; the sampler then looks at those only.
   */
  candidates?(): ArrayLike<number> | undefined;
}

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
  constraint?: (vocabulary: TokenVocabulary) => TokenConstraint;
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
