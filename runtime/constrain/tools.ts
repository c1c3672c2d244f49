/**
 * Tool calls in the Qwen3 form:
 * ```
 * <tool_call>
 * {"name": "set_speed", "arguments": {"mps": 0.5}}
 * </tool_call>
 * ```
 * Tool definitions are checked here, compiled to a grammar whose only matches are calls of a
 * listed tool with arguments valid against its parameters, and the calls are parsed back out
 * of the generated text.
 *
 * @module
 */
import type { TokenConstraint } from "../sequence.ts";
import { type Element, type Grammar, GrammarBuilder, literal } from "./grammar.ts";
import { JsonSchemaCompiler, type JsonSchemaOptions } from "./json_schema.ts";
import { ByteMatcher } from "./matcher.ts";
import { GrammarConstraint, type TokenIndex } from "./token_constraint.ts";

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

/** Most calls in one `required` answer. */
export const MAX_TOOL_CALLS = 4;

const NAME = /^[a-zA-Z0-9_.-]{1,64}$/;

/**
 * Checks tool definitions, given as `{name, description?, parameters?}` or in the OpenAI form
 * `{type: "function", function: {...}}`; throws an Error naming the bad field.
 */
export function normalizeTools(value: unknown): ToolDefinition[] {
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
    if (p !== undefined && (p as Record<string, unknown>).type !== undefined && (p as Record<string, unknown>).type !== "object") {
      throw new Error(`tools[${i}].parameters must have type "object" (arguments are an object)`);
    }
    const tool: ToolDefinition = { name: t.name };
    if (t.description !== undefined) tool.description = t.description as string;
    if (p !== undefined) tool.parameters = p as Record<string, unknown>;
    return tool;
  });
}

/** Checks a tool choice (also `{type: "function", function: {name}}`) against the tools. */
export function normalizeToolChoice(value: unknown, tools: ToolDefinition[]): ToolChoice {
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

/** Rules for the body of one call (what follows `<tool_call>`), up to `</tool_call>`. */
function callBody(b: GrammarBuilder, tools: ToolDefinition[], opts: JsonSchemaOptions): Element {
  const compiler = new JsonSchemaCompiler(b, opts);
  const alts = tools.map((t, i) => {
    const args = compiler.compile(t.parameters ?? { type: "object", properties: {} }, `#/tools/${i}/parameters`);
    return [...literal(`${JSON.stringify(t.name)}, "arguments": `), args];
  });
  const which = b.define("tool-name-and-arguments", alts);
  return b.define("tool-call-body", [[...literal('\n{"name": '), which, ...literal("}\n"), { type: "token", text: "</tool_call>" }]]);
}

/** Grammar of an answer made only of 1..{@link MAX_TOOL_CALLS} calls of `tools`. */
export function toolCallsGrammar(tools: ToolDefinition[], opts: JsonSchemaOptions = {}): Grammar {
  const b = new GrammarBuilder();
  const call = b.define("tool-call", [[{ type: "token", text: "<tool_call>" }, callBody(b, tools, opts)]]);
  const more = b.repeat("more-calls", [...literal("\n"), call], 0, MAX_TOOL_CALLS - 1);
  b.define("root", [[call, more]]);
  return b.build("root");
}

/** Grammar of one call's body, for `auto` mode (the model chose to write `<tool_call>`). */
export function toolCallBodyGrammar(tools: ToolDefinition[], opts: JsonSchemaOptions = {}): Grammar {
  const b = new GrammarBuilder();
  b.define("root", [[callBody(b, tools, opts)]]);
  return b.build("root");
}

/**
 * `auto` tool choice: text is free until the model emits the `<tool_call>` token; from there
 * the call is constrained to a valid call until its `</tool_call>`, then text is free again.
 * A call is not started when the token budget could not finish it.
 */
export class LazyToolCallConstraint implements TokenConstraint {
  private call?: GrammarConstraint;
  private budget = Infinity;
  private readonly openId: number;

  constructor(private readonly body: ByteMatcher, private readonly index: TokenIndex, openId: number) {
    this.openId = openId;
  }

  setRemaining(tokens: number): void {
    this.budget = tokens;
    this.call?.setRemaining(tokens);
  }

  allows(id: number): boolean {
    if (this.call) return this.call.allows(id);
    if (id === this.openId) return this.budget > this.body.minRemaining(this.body.initial) + 2;
    return true;
  }

  canEnd(): boolean {
    return this.call === undefined;
  }

  accept(id: number): void {
    if (this.call) {
      this.call.accept(id);
      if (this.call.isComplete()) this.call = undefined;
    } else if (id === this.openId) {
      this.call = new GrammarConstraint(this.body, this.index);
      this.call.setRemaining(this.budget - 1);
    }
  }

  isComplete(): boolean {
    return false;
  }
}

/** The well-formed calls of listed tools in `text` (anything else between the tags is skipped). */
export function parseToolCalls(text: string, tools: ToolDefinition[]): ToolCall[] {
  const names = new Set(tools.map((t) => t.name));
  const calls: ToolCall[] = [];
  for (const m of text.matchAll(/<tool_call>([\s\S]*?)<\/tool_call>/g)) {
    let v: unknown;
    try {
      v = JSON.parse(m[1]);
    } catch {
      continue;
    }
    if (typeof v !== "object" || v === null) continue;
    const { name, arguments: args } = v as Record<string, unknown>;
    if (typeof name !== "string" || !names.has(name)) continue;
    if (typeof args !== "object" || args === null || Array.isArray(args)) continue;
    calls.push({ name, arguments: args as Record<string, unknown> });
  }
  return calls;
}
