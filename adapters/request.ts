/**
 * The wire form of a generation request (JSON over stdin, JSON or CBOR over MQTT) and its
 * checked conversion to a {@link GenerationRequest}, and the wire form of the events answering
 * it. Field names are snake_case, as in the llama.cpp and ollama APIs device integrators
 * already know.
 */
import {
  type ChatMessage,
  type GenerationEvent,
  type GenerationRequest,
  RequestError,
  type SamplingOptions,
  type ToolChoice,
  type ToolDefinition,
} from "../runtime/request.ts";

/** A parsed request with its correlation id. */
export interface WireRequest {
  /** Echoed on every reply event (string or number), if the client gave one. */
  id?: string | number;
  /** Stream token events (default true); false sends only the final event. */
  stream: boolean;
  request: GenerationRequest;
}

/** Wire names of the sampling fields, and their {@link SamplingOptions} names. */
const SAMPLING_FIELDS: Record<string, keyof SamplingOptions> = {
  temperature: "temperature",
  top_k: "topK",
  top_p: "topP",
  min_p: "minP",
  repeat_penalty: "repeatPenalty",
  presence_penalty: "presencePenalty",
  frequency_penalty: "frequencyPenalty",
  repeat_last_n: "repeatLastN",
  seed: "seed",
};

const OTHER_FIELDS = new Set([
  "id",
  "prompt",
  "messages",
  "system",
  "max_tokens",
  "stop",
  "stop_tokens",
  "raw",
  "think",
  "stream",
  "json_schema",
  "grammar",
  "tools",
  "tool_choice",
]);

/** Every field name a wire request may carry (anything else is refused with BAD_REQUEST). */
export const WIRE_FIELDS: readonly string[] = [...OTHER_FIELDS, ...Object.keys(SAMPLING_FIELDS)];

const ROLES = new Set(["system", "user", "assistant", "tool"]);

/** Checks a decoded JSON/CBOR value; throws RequestError (code BAD_REQUEST) naming the field. */
export function parseWireRequest(value: unknown): WireRequest {
  const bad = (msg: string) => new RequestError("BAD_REQUEST", msg);
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw bad("request must be an object");
  }
  const obj = value as Record<string, unknown>;
  // Own properties only: `in` would also find `constructor`, `toString`, `__proto__`, ...
  const unknown = Object.keys(obj).filter((k) => !OTHER_FIELDS.has(k) && !Object.hasOwn(SAMPLING_FIELDS, k));
  if (unknown.length > 0) throw bad(`unknown field${unknown.length > 1 ? "s" : ""}: ${unknown.join(", ")}`);

  const id = obj.id;
  // A non-finite number (1e400 parses as Infinity) would be echoed as null in JSON replies.
  if (id !== undefined && typeof id !== "string" && (typeof id !== "number" || !Number.isFinite(id))) {
    throw bad("id must be a string or a finite number");
  }
  const str = (k: string): string | undefined => {
    const v = obj[k];
    if (v !== undefined && typeof v !== "string") throw bad(`${k} must be a string`);
    return v as string | undefined;
  };
  const bool = (k: string): boolean | undefined => {
    const v = obj[k];
    if (v !== undefined && typeof v !== "boolean") throw bad(`${k} must be true or false`);
    return v as boolean | undefined;
  };
  const request: GenerationRequest = {};
  // Only fields the client gave, so that spreading this over defaults keeps the defaults.
  const set = <K extends keyof GenerationRequest>(k: K, v: GenerationRequest[K] | undefined) => {
    if (v !== undefined) request[k] = v;
  };
  set("prompt", str("prompt"));
  set("system", str("system"));
  set("raw", bool("raw"));
  set("enableThinking", bool("think"));
  if (obj.messages !== undefined) request.messages = parseMessages(obj.messages);
  if (request.prompt === undefined && request.messages === undefined) {
    throw bad("request has no prompt (give prompt or messages)");
  }
  if (obj.max_tokens !== undefined) {
    if (typeof obj.max_tokens !== "number" || !Number.isInteger(obj.max_tokens) || obj.max_tokens < 1) {
      throw bad("max_tokens must be a positive integer");
    }
    request.maxTokens = obj.max_tokens;
  }
  if (obj.stop !== undefined) {
    const stop = typeof obj.stop === "string" ? [obj.stop] : obj.stop;
    if (!Array.isArray(stop) || stop.some((s) => typeof s !== "string" || s.length === 0)) {
      throw bad("stop must be a non-empty string or an array of them");
    }
    request.stop = stop as string[];
  }
  if (obj.stop_tokens !== undefined) {
    const ids = obj.stop_tokens;
    if (!Array.isArray(ids) || ids.some((t) => typeof t !== "number" || !Number.isInteger(t) || t < 0)) {
      throw bad("stop_tokens must be an array of token ids");
    }
    request.stopTokens = ids as number[];
  }
  // Structured output: shapes are checked here, schemas and grammars when the request runs.
  if (obj.json_schema !== undefined) {
    const js = obj.json_schema;
    if (typeof js !== "boolean" && (typeof js !== "object" || js === null || Array.isArray(js))) {
      throw bad("json_schema must be a JSON-schema object");
    }
    request.jsonSchema = js;
  }
  set("grammar", str("grammar"));
  if (obj.tools !== undefined) {
    try {
      request.tools = normalizeTools(obj.tools);
      request.toolChoice = normalizeToolChoice(obj.tool_choice, request.tools);
    } catch (e) {
      throw bad((e as Error).message);
    }
  } else if (obj.tool_choice !== undefined) {
    throw bad("tool_choice needs tools");
  }
  const sampling: SamplingOptions = {};
  for (const [wire, field] of Object.entries(SAMPLING_FIELDS)) {
    const v = obj[wire];
    if (v === undefined) continue;
    if (typeof v !== "number" || !Number.isFinite(v)) throw bad(`${wire} must be a number`);
    sampling[field] = v;
  }
  request.sampling = sampling;
  return { id: id as string | number | undefined, stream: bool("stream") ?? true, request };
}

function parseMessages(value: unknown): ChatMessage[] {
  if (!Array.isArray(value) || value.length === 0) {
    throw new RequestError("BAD_REQUEST", "messages must be a non-empty array");
  }
  return value.map((m, i) => {
    if (typeof m !== "object" || m === null) {
      throw new RequestError("BAD_REQUEST", `messages[${i}] must be an object`);
    }
    const { role, content } = m as Record<string, unknown>;
    if (typeof role !== "string" || !ROLES.has(role)) {
      throw new RequestError("BAD_REQUEST", `messages[${i}].role must be one of ${[...ROLES].join(", ")}`);
    }
    if (typeof content !== "string") {
      throw new RequestError("BAD_REQUEST", `messages[${i}].content must be a string`);
    }
    return { role: role as ChatMessage["role"], content };
  });
}

/** Tool names as the OpenAI API allows them. */
const NAME = /^[a-zA-Z0-9_.-]{1,64}$/;

/**
 * Checks tool definitions, given as `{name, description?, parameters?}` or in the OpenAI form
 * `{type: "function", function: {...}}`; throws an Error naming the bad field.
 */
function normalizeTools(value: unknown): ToolDefinition[] {
  if (!Array.isArray(value) || value.length === 0) throw new Error("tools must be a non-empty array");
  const seen = new Set<string>();
  return value.map((raw, i) => {
    let t = raw as Record<string, unknown>;
    if (typeof t !== "object" || t === null || Array.isArray(t)) throw new Error(`tools[${i}] must be an object`);
    if (t.type !== undefined) {
      if (t.type !== "function") throw new Error(`tools[${i}].type must be "function"`);
      t = t.function as Record<string, unknown>;
      if (typeof t !== "object" || t === null) throw new Error(`tools[${i}].function must be an object`);
    }
    const extra = Object.keys(t).filter((k) => k !== "name" && k !== "description" && k !== "parameters");
    if (extra.length > 0) throw new Error(`tools[${i}] has unknown field '${extra[0]}'`);
    if (typeof t.name !== "string" || !NAME.test(t.name)) {
      throw new Error(`tools[${i}].name must be 1-64 characters of letters, digits, '_', '.' or '-'`);
    }
    if (seen.has(t.name)) throw new Error(`tools[${i}].name '${t.name}' is listed twice`);
    seen.add(t.name);
    if (t.description !== undefined && typeof t.description !== "string") {
      throw new Error(`tools[${i}].description must be a string`);
    }
    const p = t.parameters;
    if (p !== undefined && (typeof p !== "object" || p === null || Array.isArray(p))) {
      throw new Error(`tools[${i}].parameters must be a JSON-schema object`);
    }
    if (
      p !== undefined && (p as Record<string, unknown>).type !== undefined &&
      (p as Record<string, unknown>).type !== "object"
    ) {
      throw new Error(`tools[${i}].parameters must have type "object" (arguments are an object)`);
    }
    const tool: ToolDefinition = { name: t.name };
    if (t.description !== undefined) tool.description = t.description as string;
    if (p !== undefined) tool.parameters = p as Record<string, unknown>;
    return tool;
  });
}

/** Checks a tool choice (also `{type: "function", function: {name}}`) against the tools. */
function normalizeToolChoice(value: unknown, tools: ToolDefinition[]): ToolChoice {
  if (value === undefined) return "auto";
  if (value === "auto" || value === "none" || value === "required") return value;
  let v = value as Record<string, unknown>;
  if (typeof v === "object" && v !== null && v.type === "function") v = v.function as Record<string, unknown>;
  if (typeof v === "object" && v !== null && typeof v.name === "string") {
    if (!tools.some((t) => t.name === v.name)) throw new Error(`tool_choice names '${v.name}', which is not in tools`);
    return { name: v.name };
  }
  throw new Error(`tool_choice must be "auto", "none", "required" or {"name": ...}`);
}

/** A streamed chunk; `token` is -1 for text released at the end. */
export function tokenEvent(id: string | number | undefined, ev: Extract<GenerationEvent, { type: "token" }>) {
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
    ...(ev.toolCalls ? { tool_calls: ev.toolCalls } : {}),
  };
}

/**
 * What the operator can do about a runtime error, by code. The runtime states the facts; the
 * advice names the `bonsai run` / `bonsai serve` flags, so it is added here, where errors are
 * formatted for a user.
 */
const ADVICE: Record<string, string> = {
  PROMPT_TOO_LONG: "raise --ctx or shorten the prompt",
  CONTEXT_FULL: "raise --ctx, or use --overflow slide",
};

/**
 * The `error` object of an error event: a RequestError's code (INTERNAL for anything else: a
 * bug) and its message, with the advice for that code if any.
 */
export function wireError(e: unknown): { code: string; message: string } {
  const code = e instanceof RequestError ? e.code : "INTERNAL";
  const message = e instanceof Error ? e.message : String(e);
  const advice = ADVICE[code];
  return { code, message: advice ? `${message} (${advice})` : message };
}

function round(x: number): number {
  return Number.isFinite(x) ? Math.round(x * 100) / 100 : 0;
}
