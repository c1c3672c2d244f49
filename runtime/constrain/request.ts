/**
 * From a request's `jsonSchema`, `grammar` or `tools` to the constraint factory its sequence
 * uses. Compiled matchers are cached by their source, so a controller sending the same schema
 * again reuses the transitions already determinised.
 *
 * @module
 */
import {
  type GenerationRequest,
  RequestError,
  type TokenConstraint,
  type TokenVocabulary,
  type ToolDefinition,
} from "../request.ts";
import { TokenType } from "../tokenizer_spec.ts";
import { type Grammar, GrammarError } from "./grammar.ts";
import { parseGbnf } from "./gbnf.ts";
import { jsonSchemaToGrammar, SchemaError } from "./json_schema.ts";
import { ByteMatcher } from "./matcher.ts";
import { GrammarConstraint, tokenIndex } from "./token_constraint.ts";
import { LazyToolCallConstraint, toolCallBodyGrammar, toolCallsGrammar } from "./tools.ts";

/** Compiled matchers kept for reuse. */
const CACHE_ENTRIES = 32;
const cache = new Map<string, ByteMatcher>();

/** A matcher for `key`, built by `make` unless cached; grammar errors become BAD_REQUEST. */
function cachedMatcher(key: string, make: () => Grammar): ByteMatcher {
  const hit = cache.get(key);
  // A matcher past half its memory budgets is rebuilt, so that a new request has room to grow.
  if (hit && !hit.worn) {
    cache.delete(key);
    cache.set(key, hit); // most recently used last
    return hit;
  }
  let matcher: ByteMatcher;
  try {
    matcher = new ByteMatcher(make());
  } catch (e) {
    if (e instanceof SchemaError || e instanceof GrammarError) throw new RequestError("BAD_REQUEST", e.message);
    throw e;
  }
  cache.set(key, matcher);
  if (cache.size > CACHE_ENTRIES) cache.delete(cache.keys().next().value!);
  return matcher;
}

/** The tools a request lists and will have rendered and parsed (none when `toolChoice` is "none"). */
export function activeTools(req: GenerationRequest): ToolDefinition[] | undefined {
  return req.tools && req.tools.length > 0 && req.toolChoice !== "none" ? req.tools : undefined;
}

/**
 * The constraint factory of `req`: its own `constraint`, or one built from `jsonSchema`,
 * `grammar` or `tools`. Throws RequestError BAD_REQUEST on a bad schema or grammar, or when
 * more than one is given.
 */
export function requestConstraint(req: GenerationRequest): ((tok: TokenVocabulary) => TokenConstraint) | undefined {
  const tools = activeTools(req);
  const given = [
    req.constraint && "constraint",
    req.jsonSchema !== undefined && "json_schema",
    req.grammar !== undefined && "grammar",
    tools && "tools",
  ].filter(Boolean);
  if (given.length > 1) throw new RequestError("BAD_REQUEST", `give at most one of ${given.join(", ")}`);
  if (req.constraint) return req.constraint;
  if (req.jsonSchema !== undefined) {
    const m = cachedMatcher(`schema:${JSON.stringify(req.jsonSchema)}`, () => jsonSchemaToGrammar(req.jsonSchema));
    return (tok) => grammarConstraint(m, tok);
  }
  if (req.grammar !== undefined) {
    if (typeof req.grammar !== "string") throw new RequestError("BAD_REQUEST", "grammar must be a string");
    const text = req.grammar;
    const m = cachedMatcher(`gbnf:${text}`, () => parseGbnf(text));
    return (tok) => grammarConstraint(m, tok);
  }
  if (!tools) return undefined;
  const choice = req.toolChoice ?? "auto";
  if (choice === "auto") {
    const m = cachedMatcher(`tool-body:${JSON.stringify(tools)}`, () => toolCallBodyGrammar(tools));
    return (tok) => {
      checkTokens(m.grammar, tok);
      return new LazyToolCallConstraint(m, tokenIndex(tok), tok.tokenId("<tool_call>")!);
    };
  }
  const chosen = choice === "required" ? tools : tools.filter((t) => t.name === (choice as { name: string }).name);
  if (chosen.length === 0) throw new RequestError("BAD_REQUEST", `tool_choice names a tool that is not in tools`);
  const m = cachedMatcher(`tool-calls:${JSON.stringify(chosen)}`, () => toolCallsGrammar(chosen));
  return (tok) => grammarConstraint(m, tok);
}

function grammarConstraint(m: ByteMatcher, tok: TokenVocabulary): GrammarConstraint {
  checkTokens(m.grammar, tok);
  return new GrammarConstraint(m, tokenIndex(tok));
}

/** Every special token a grammar names must be a special token of the vocabulary. */
function checkTokens(g: Grammar, tok: TokenVocabulary): void {
  for (const alts of g.rules) {
    for (const alt of alts) {
      for (const e of alt) {
        if (e.type !== "token") continue;
        const id = tok.tokenId(e.text);
        const type = id === undefined ? undefined : tok.tokenType(id);
        if (type !== TokenType.CONTROL && type !== TokenType.USER_DEFINED) {
          throw new RequestError(
            "BAD_REQUEST",
            `grammar names the token ${e.text}, which is not a special token of this vocabulary`,
          );
        }
        // An end token ends the generation before the grammar could go on: never matchable.
        if (tok.isEndOfGeneration(id!)) {
          throw new RequestError(
            "BAD_REQUEST",
            `grammar names the token ${e.text}, which ends the generation and cannot be part of the output`,
          );
        }
      }
    }
  }
}
