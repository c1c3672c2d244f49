/**
 * Structured-output budgets (limits.ts): grammars and schemas that would freeze the node or
 * overflow the stack are refused with BAD_REQUEST naming the limit, and other requests go on.
 */
import assert from "node:assert/strict";
import { tinyModel } from "../../test/fixtures.ts";
import { qwen3 } from "../../test/qwen3_tokenizers.ts";
import { Model } from "../model.ts";
import { Scheduler } from "../scheduler.ts";
import { type GenerationRequest, RequestError } from "../request.ts";
import { charClass, GrammarBuilder, GrammarError, literal } from "./grammar.ts";
import { GrammarConstraint, tokenIndex } from "./token_constraint.ts";
import { Tokenizer } from "../tokenizer.ts";
import { microVocab } from "../../tools/micro_model.ts";
import { parseGbnf } from "./gbnf.ts";
import { ByteMatcher, DEAD } from "./matcher.ts";
import { requestConstraint } from "./request.ts";
import { MAX_GRAMMAR_ELEMENTS, MAX_MATCH_STACKS, MAX_NESTING, MAX_TOKEN_WORK } from "./limits.ts";

/** The ambiguous recursive grammar of the hostile test: 3^n parse stacks after n a's. */
const AMBIGUOUS = 'root ::= s\ns ::= "a" s "b" | "a" s "c" | "a" s "d" | "a"';

const badRequest = (limit: string) => (e: unknown) => {
  assert.ok(e instanceof RequestError, `not a RequestError: ${e}`);
  assert.equal(e.code, "BAD_REQUEST");
  assert.match(e.message, new RegExp(limit));
  return true;
};

Deno.test("matcher: an ambiguous grammar stops at MAX_MATCH_STACKS instead of growing 3^n stacks", () => {
  const m = new ByteMatcher(parseGbnf(AMBIGUOUS));
  let state = m.initial;
  const a = "a".charCodeAt(0);
  assert.throws(() => {
    for (let i = 0; i < 12; i++) state = m.step(state, a);
  }, (e: unknown) => e instanceof GrammarError && /MAX_MATCH_STACKS/.test(e.message) && /4096/.test(e.message));
  // Still consistent for the transitions it could compute.
  assert.notEqual(m.step(m.initial, a), DEAD);
  assert.ok(MAX_MATCH_STACKS < 3 ** 12);
});

Deno.test("request: the ambiguous grammar is BAD_REQUEST (MAX_MATCH_STACKS) once the constraint matches", () => {
  const { tok } = qwen3();
  const make = requestConstraint({ grammar: AMBIGUOUS })!;
  const c = make(tok);
  const id = tok.tokenId("aaaaaaaa") ?? tok.tokenId("aaaa")!;
  assert.throws(() => {
    for (let i = 0; i < 4; i++) {
      assert.ok(c.allows(id));
      c.accept(id);
    }
  }, badRequest("MAX_MATCH_STACKS"));
});

Deno.test("gbnf: groups nested deeper than MAX_NESTING are BAD_REQUEST, not a stack overflow", () => {
  for (const depth of [MAX_NESTING + 1, 5000]) {
    const grammar = "root ::= " + "(".repeat(depth) + '"a"' + ")".repeat(depth);
    assert.throws(() => requestConstraint({ grammar }), badRequest("MAX_NESTING"));
  }
  const ok = "root ::= " + "(".repeat(MAX_NESTING) + '"a"' + ")".repeat(MAX_NESTING);
  assert.ok(requestConstraint({ grammar: ok }));
});

Deno.test("json_schema: subschemas nested deeper than MAX_NESTING are BAD_REQUEST, not a stack overflow", () => {
  let schema: unknown = { type: "string" };
  for (let i = 0; i < 10000; i++) schema = { type: "array", items: schema };
  assert.throws(() => requestConstraint({ jsonSchema: schema }), badRequest("MAX_NESTING"));
});

Deno.test("grammar: a chain of 30000 rules is checked without recursion or quadratic passes", () => {
  const b = new GrammarBuilder();
  const n = 30000;
  // r0 ::= r1 "x", r1 ::= r2 "x", ...: left references all the way down, in the worst order.
  for (let i = 0; i < n; i++) b.define(`r${i}`, [[b.ref(`r${i + 1}`), ...literal("x")]]);
  b.define(`r${n}`, [literal("x")]);
  b.define("root", [[b.ref("r0")]]);
  const g = b.build("root");
  assert.equal(g.rules.length, n + 2);
});

Deno.test("grammar: a repetition expanding past MAX_GRAMMAR_ELEMENTS is BAD_REQUEST", () => {
  const grammar = `root ::= "${"a".repeat(100)}"{10000}`;
  assert.throws(() => requestConstraint({ grammar }), badRequest("MAX_GRAMMAR_ELEMENTS"));
  assert.ok(100 * 10000 > MAX_GRAMMAR_ELEMENTS);
  // The reported one: 10000 optional copies compiles (rule naming is no longer quadratic).
  assert.ok(requestConstraint({ grammar: 'root ::= "a"{0,10000}' }));
});

Deno.test("grammar: an end-of-generation token cannot be part of the output (BAD_REQUEST)", () => {
  const { tok } = qwen3();
  for (const t of ["<|im_end|>", "<|endoftext|>"]) {
    const make = requestConstraint({ grammar: `root ::= "x" ${t}` })!;
    assert.throws(() => make(tok), badRequest("ends the generation"));
  }
});

Deno.test({
  name: "scheduler: the ambiguous grammar fails alone with BAD_REQUEST; a request beside it completes",
  sanitizeResources: false,
  async fn() {
    const s = new Scheduler(await Model.load(await tinyModel()), { contextSize: 256, parallel: 2 });
    const collect = async (req: GenerationRequest) => {
      let text = "";
      for await (const ev of s.submit(req)) if (ev.type === "done") text = ev.text;
      return text;
    };
    const bad = collect({ prompt: "a", grammar: AMBIGUOUS, maxTokens: 64, sampling: { temperature: 0 } });
    const good = collect({ prompt: "Hello", maxTokens: 8, sampling: { temperature: 0 } });
    await assert.rejects(bad, badRequest("MAX_MATCH_STACKS"));
    assert.equal(typeof await good, "string");
  },
});

Deno.test("constraint: more than MAX_TOKEN_WORK of matching for one token is BAD_REQUEST", () => {
  // 4000 alternatives that all take any ASCII character first: every new byte transition
  // advances and re-expands 4000 stacks (~12k work units), just under MAX_MATCH_STACKS.
  const b = new GrammarBuilder();
  const alts = [];
  for (let i = 0; i < 4000; i++) alts.push([charClass([1, 127]), ...literal(`-${i}`)]);
  b.define("root", alts);
  const m = new ByteMatcher(b.build("root"));
  const v = microVocab();
  const tok = new Tokenizer({
    tokens: v.tokens,
    tokenTypes: v.types,
    merges: v.merges,
    eosTokenId: v.eos,
    model: "gpt2",
    pre: "qwen2",
  });
  const c = new GrammarConstraint(m, tokenIndex(tok));
  assert.throws(() => {
    // Checking the candidates of one pick, each a new transition.
    for (let id = 0; id < 256; id++) c.allows(id);
  }, badRequest("MAX_TOKEN_WORK"));
  assert.ok(m.work > MAX_TOKEN_WORK);
  // The next pick (after a token is accepted) starts a fresh budget.
  const again = new GrammarConstraint(m, tokenIndex(tok));
  assert.ok(again.allows(v.tokens.indexOf("a")));
});
