/**
 * The wire form of a generation request (JSON over stdin, JSON or CBOR over MQTT) and its
 * checked conversion to a {@link GenerationRequest}. Field names are snake_case, as in the
 * llama.cpp and ollama APIs device integrators already know.
 */
import { type GenerationRequest, RequestError } from "../runtime/generate.ts";
import type { ChatMessage } from "../runtime/chat.ts";
import type { SamplingOptions } from "../runtime/sampler.ts";
import { normalizeToolChoice, normalizeTools } from "../runtime/constrain/tools.ts";

/** A parsed request with its correlation id. */
export interface WireRequest {
  /** Echoed on every reply event (string or number), if the client gave one. */
  id?: string | number;
  /** Stream token events (default true); false sends only the final event. */
  stream: boolean;
  request: GenerationRequest;
}

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
  "id", "prompt", "messages", "system", "max_tokens", "stop", "stop_tokens", "raw", "think", "stream",
  "json_schema", "grammar", "tools", "tool_choice",
]);

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
