/**
 * Tool calls in the Qwen3 form:
 * ```
 * <tool_call>
 * {"name": "set_speed", "arguments": {"mps": 0.5}}
 * </tool_call>
 * ```
 * Tool definitions (checked by the wire layer, adapters/request.ts) are compiled here to a
 * grammar whose only matches are calls of a listed tool with arguments valid against its
 * parameters, and the calls are parsed back out of the generated text.
 *
 * @module
 */
import type { TokenConstraint, ToolCall, ToolDefinition } from "../request.ts";
import { type Element, type Grammar, GrammarBuilder, literal } from "./grammar.ts";
import { JsonSchemaCompiler, type JsonSchemaOptions } from "./json_schema.ts";
import type { ByteMatcher } from "./matcher.ts";
import { GrammarConstraint, type TokenIndex } from "./token_constraint.ts";

/** Most calls in one `required` answer. */
export const MAX_TOOL_CALLS = 4;

/** Rules for the body of one call (what follows `<tool_call>`), up to `</tool_call>`. */
function callBody(b: GrammarBuilder, tools: ToolDefinition[], opts: JsonSchemaOptions): Element {
  const compiler = new JsonSchemaCompiler(b, opts);
  const alts = tools.map((t, i) => {
    const args = compiler.compile(t.parameters ?? { type: "object", properties: {} }, `#/tools/${i}/parameters`);
    return [...literal(`${JSON.stringify(t.name)}, "arguments": `), args];
  });
  const which = b.define("tool-name-and-arguments", alts);
  return b.define("tool-call-body", [[...literal('\n{"name": '), which, ...literal("}\n"), {
    type: "token",
    text: "</tool_call>",
  }]]);
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
