/**
 * The OpenAI chat and text completion APIs mapped onto the runtime's request vocabulary, and the
 * response objects and stream chunks built from its events. Field checks that the JSON-lines
 * wire format already has (sampling, stop, tools, tool_choice, json_schema) are done by
 * {@link parseWireRequest}: this module translates the OpenAI shapes into that form first.
 *
 * @module
 */
import type {
  ChatMessage,
  FinishReason,
  GenerationEvent,
  GenerationRequest,
  GenerationStats,
  ToolCall,
} from "../../runtime/request.ts";
import { RequestError } from "../../runtime/request.ts";
import { parseWireRequest } from "../request.ts";

/** A checked OpenAI request. */
export interface OpenAiRequest {
  request: GenerationRequest;
  stream: boolean;
  /** `stream_options.include_usage`: a last chunk with usage and no choices. */
  includeUsage: boolean;
  /** The model name the client gave (any name is accepted: one model is served). */
  model?: string;
}

/** Fields passed on to {@link parseWireRequest} under the same name (llama.cpp's extras included). */
const PASSED = [
  "temperature",
  "top_p",
  "top_k",
  "min_p",
  "repeat_penalty",
  "repeat_last_n",
  "presence_penalty",
  "frequency_penalty",
  "seed",
  "stop",
  "tools",
  "tool_choice",
  "grammar",
  "json_schema",
];

/** Fields OpenAI clients send that change nothing here; accepted and ignored. */
const IGNORED = new Set([
  "model",
  "user",
  "metadata",
  "store",
  "parallel_tool_calls",
  "service_tier",
  "prompt_cache_key",
  "safety_identifier",
  "cache_prompt",
]);

const CHAT_FIELDS = new Set([
  ...PASSED,
  ...IGNORED,
  "messages",
  "max_tokens",
  "max_completion_tokens",
  "stream",
  "stream_options",
  "response_format",
  "n",
  "logprobs",
  "chat_template_kwargs",
]);

const COMPLETION_FIELDS = new Set([
  ...PASSED.filter((f) => f !== "tools" && f !== "tool_choice"),
  ...IGNORED,
  "prompt",
  "max_tokens",
  "stream",
  "stream_options",
  "n",
  "logprobs",
  "echo",
]);

function bad(message: string): RequestError {
  return new RequestError("BAD_REQUEST", message);
}

function asObject(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw bad(`${what} must be an object`);
  return value as Record<string, unknown>;
}

/** The fields every completion endpoint shares; returns the wire object to check. */
function common(obj: Record<string, unknown>, allowed: Set<string>): {
  wire: Record<string, unknown>;
  stream: boolean;
  includeUsage: boolean;
  model?: string;
} {
  const unknown = Object.keys(obj).filter((k) => !allowed.has(k));
  if (unknown.length > 0) {
    throw bad(`unrecognized request argument${unknown.length > 1 ? "s" : ""}: ${unknown.join(", ")}`);
  }
  const wire: Record<string, unknown> = {};
  // null is what several SDKs send for "not set".
  for (const k of PASSED) if (obj[k] !== undefined && obj[k] !== null && allowed.has(k)) wire[k] = obj[k];
  if (obj.model !== undefined && typeof obj.model !== "string") throw bad("model must be a string");
  if (obj.n !== undefined && obj.n !== null && obj.n !== 1) throw bad("n must be 1 (one choice per request)");
  if (obj.logprobs !== undefined && obj.logprobs !== null && obj.logprobs !== false) {
    throw bad("logprobs are not supported");
  }
  const stream = obj.stream ?? false;
  if (typeof stream !== "boolean") throw bad("stream must be true or false");
  let includeUsage = false;
  if (obj.stream_options !== undefined && obj.stream_options !== null) {
    const so = asObject(obj.stream_options, "stream_options");
    if (so.include_usage !== undefined && typeof so.include_usage !== "boolean") {
      throw bad("stream_options.include_usage must be true or false");
    }
    includeUsage = so.include_usage === true;
  }
  return { wire, stream, includeUsage, model: obj.model as string | undefined };
}

function maxTokens(obj: Record<string, unknown>, wire: Record<string, unknown>, ...names: string[]): void {
  for (const name of names) {
    const v = obj[name];
    if (v === undefined || v === null) continue;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 1) throw bad(`${name} must be a positive integer`);
    wire.max_tokens = v;
  }
}

/** Checks a `POST /v1/chat/completions` body; throws RequestError BAD_REQUEST naming the field. */
export function parseChatCompletion(body: unknown): OpenAiRequest {
  const obj = asObject(body, "request body");
  const { wire, stream, includeUsage, model } = common(obj, CHAT_FIELDS);
  if (obj.messages === undefined) throw bad("messages is required");
  if (!Array.isArray(obj.messages) || obj.messages.length === 0) throw bad("messages must be a non-empty array");
  const messages = obj.messages.map(parseMessage);
  wire.messages = messages.map(({ role, content }) => ({ role, content }));
  maxTokens(obj, wire, "max_tokens", "max_completion_tokens");
  const rf = obj.response_format;
  if (rf !== undefined && rf !== null) {
    const f = asObject(rf, "response_format");
    if (f.type === "json_object") wire.json_schema = { type: "object" };
    else if (f.type === "json_schema") {
      const js = asObject(f.json_schema, "response_format.json_schema");
      if (js.schema === undefined) wire.json_schema = { type: "object" };
      else wire.json_schema = asObject(js.schema, "response_format.json_schema.schema");
    } else if (f.type !== "text") throw bad(`response_format.type must be text, json_object or json_schema`);
  }
  if (obj.chat_template_kwargs !== undefined) {
    const k = asObject(obj.chat_template_kwargs, "chat_template_kwargs");
    if (k.enable_thinking !== undefined) wire.think = k.enable_thinking;
  }
  const { request } = parseWireRequest(wire);
  // The wire form has no tool_calls in messages: put the checked calls back.
  request.messages = messages;
  return { request, stream, includeUsage, model };
}

/** Checks a `POST /v1/completions` body (a raw prompt, no chat template). */
export function parseCompletion(body: unknown): OpenAiRequest {
  const obj = asObject(body, "request body");
  const { wire, stream, includeUsage, model } = common(obj, COMPLETION_FIELDS);
  let prompt = obj.prompt;
  if (Array.isArray(prompt) && prompt.length === 1) prompt = prompt[0];
  if (typeof prompt !== "string") throw bad("prompt must be a string (one prompt per request)");
  if (obj.echo !== undefined && obj.echo !== null && obj.echo !== false) throw bad("echo is not supported");
  wire.prompt = prompt;
  wire.raw = true;
  maxTokens(obj, wire, "max_tokens");
  const { request } = parseWireRequest(wire);
  return { request, stream, includeUsage, model };
}

const ROLES: Record<string, ChatMessage["role"]> = {
  system: "system",
  developer: "system",
  user: "user",
  assistant: "assistant",
  tool: "tool",
};

function parseMessage(value: unknown, i: number): ChatMessage {
  const m = asObject(value, `messages[${i}]`);
  const role = typeof m.role === "string" ? ROLES[m.role] : undefined;
  if (!role) throw bad(`messages[${i}].role must be one of ${Object.keys(ROLES).join(", ")}`);
  const message: ChatMessage = { role, content: parseContent(m.content, i, role) };
  if (m.tool_calls !== undefined && m.tool_calls !== null) {
    if (role !== "assistant") throw bad(`messages[${i}].tool_calls is only for assistant messages`);
    if (!Array.isArray(m.tool_calls)) throw bad(`messages[${i}].tool_calls must be an array`);
    message.toolCalls = m.tool_calls.map((c, j) => parseHistoryCall(c, `messages[${i}].tool_calls[${j}]`));
  }
  return message;
}

/** A string, null (assistant turns that only call tools), or an array of text parts. */
function parseContent(content: unknown, i: number, role: string): string {
  if (typeof content === "string") return content;
  if ((content === null || content === undefined) && role === "assistant") return "";
  if (Array.isArray(content)) {
    return content.map((p, j) => {
      const part = asObject(p, `messages[${i}].content[${j}]`);
      if (part.type !== "text" || typeof part.text !== "string") {
        throw bad(
          `messages[${i}].content[${j}] must be a text part ({"type": "text", "text": ...}); this model reads text only`,
        );
      }
      return part.text;
    }).join("");
  }
  throw bad(`messages[${i}].content must be a string or an array of text parts`);
}

function parseHistoryCall(value: unknown, where: string): ToolCall {
  const c = asObject(value, where);
  if (c.type !== undefined && c.type !== "function") throw bad(`${where}.type must be "function"`);
  const fn = asObject(c.function, `${where}.function`);
  if (typeof fn.name !== "string" || fn.name === "") throw bad(`${where}.function.name must be a string`);
  let args: unknown = fn.arguments ?? {};
  if (typeof args === "string") {
    try {
      args = args.trim() === "" ? {} : JSON.parse(args);
    } catch {
      throw bad(`${where}.function.arguments is not valid JSON`);
    }
  }
  if (typeof args !== "object" || args === null || Array.isArray(args)) {
    throw bad(`${where}.function.arguments must be a JSON object`);
  }
  return { name: fn.name, arguments: args as Record<string, unknown> };
}

/** The OpenAI finish reason of a finished generation. */
export function finishReason(reason: FinishReason, toolCalls: ToolCall[] | undefined): string {
  if (toolCalls && toolCalls.length > 0) return "tool_calls";
  return reason === "length" ? "length" : "stop";
}

/** The answer text without its tool-call blocks (null when nothing else is left, as OpenAI does). */
export function visibleContent(text: string, toolCalls: ToolCall[] | undefined): string | null {
  if (!toolCalls || toolCalls.length === 0) return text;
  const rest = text.replace(/<tool_call>[\s\S]*?(<\/tool_call>|$)/g, "").trim();
  return rest === "" ? null : rest;
}

/** OpenAI `tool_calls` entries (arguments as a JSON string, as the API has them). */
export function openAiToolCalls(calls: ToolCall[]): {
  index: number;
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}[] {
  return calls.map((c, index) => ({
    index,
    id: `call_${crypto.randomUUID().replaceAll("-", "").slice(0, 24)}`,
    type: "function",
    function: { name: c.name, arguments: JSON.stringify(c.arguments) },
  }));
}

/** Token counts in the OpenAI form, plus llama.cpp's `timings` (the kiosk page shows tok/s). */
export function usage(s: GenerationStats) {
  return {
    prompt_tokens: s.promptTokens,
    completion_tokens: s.completionTokens,
    total_tokens: s.promptTokens + s.completionTokens,
    prompt_tokens_details: { cached_tokens: s.cachedPromptTokens },
  };
}

/** llama.cpp's `timings` object. */
export function timings(s: GenerationStats) {
  const r = (x: number) => Number.isFinite(x) ? Math.round(x * 100) / 100 : 0;
  return {
    prompt_n: s.promptTokens - s.cachedPromptTokens,
    prompt_ms: r(s.prefillMs),
    prompt_per_second: r(s.prefillTokensPerSecond),
    predicted_n: s.completionTokens,
    predicted_ms: r(s.decodeMs),
    predicted_per_second: r(s.decodeTokensPerSecond),
  };
}

/** What every response object and chunk of one request repeats. */
export interface ResponseIdentity {
  id: string;
  created: number;
  model: string;
}

/** A new identity (`chatcmpl-...` or `cmpl-...`). */
export function newIdentity(kind: "chat" | "text", model: string): ResponseIdentity {
  const prefix = kind === "chat" ? "chatcmpl-" : "cmpl-";
  return { id: prefix + crypto.randomUUID().replaceAll("-", ""), created: Math.floor(Date.now() / 1000), model };
}

type Done = Extract<GenerationEvent, { type: "done" }>;

/** The non-streamed `chat.completion` object. */
export function chatCompletion(who: ResponseIdentity, done: Done) {
  const calls = done.toolCalls && done.toolCalls.length > 0 ? openAiToolCalls(done.toolCalls) : undefined;
  return {
    ...who,
    object: "chat.completion",
    choices: [{
      index: 0,
      message: {
        role: "assistant",
        content: visibleContent(done.text, done.toolCalls),
        ...(calls ? { tool_calls: calls.map(({ index: _, ...c }) => c) } : {}),
      },
      logprobs: null,
      finish_reason: finishReason(done.finishReason, done.toolCalls),
    }],
    usage: usage(done.stats),
    timings: timings(done.stats),
  };
}

/** One `chat.completion.chunk`. */
export function chatChunk(who: ResponseIdentity, delta: Record<string, unknown>, finish: string | null = null) {
  return {
    ...who,
    object: "chat.completion.chunk",
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
  };
}

/** The last chunk of `stream_options.include_usage`: no choices, the usage. */
export function usageChunk(who: ResponseIdentity, object: string, s: GenerationStats) {
  return { ...who, object, choices: [], usage: usage(s), timings: timings(s) };
}

/** The non-streamed `text_completion` object. */
export function textCompletion(who: ResponseIdentity, done: Done) {
  return {
    ...who,
    object: "text_completion",
    choices: [{ index: 0, text: done.text, logprobs: null, finish_reason: finishReason(done.finishReason, undefined) }],
    usage: usage(done.stats),
    timings: timings(done.stats),
  };
}

/** One streamed `text_completion` chunk. */
export function textChunk(who: ResponseIdentity, text: string, finish: string | null = null) {
  return { ...who, object: "text_completion", choices: [{ index: 0, text, logprobs: null, finish_reason: finish }] };
}
