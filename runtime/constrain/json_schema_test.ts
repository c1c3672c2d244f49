import assert from "node:assert/strict";
import { loadQwen3Vocab } from "../../tools/qwen3_vocab.ts";
import { Rng } from "../rng.ts";
import { Sampler } from "../sampler.ts";
import { Tokenizer } from "../tokenizer.ts";
import { jsonSchemaToGrammar, SchemaError } from "./json_schema.ts";
import { ByteMatcher, DEAD } from "./matcher.ts";
import { GrammarConstraint, tokenIndex } from "./token_constraint.ts";
import { TEST_SCHEMAS, validate } from "../../test/json_schema_validator.ts";

const utf8 = new TextEncoder();
let shared: Tokenizer | undefined;
const qwen3 = () => shared ??= new Tokenizer(loadQwen3Vocab());

function accepts(schema: unknown, text: string): boolean {
  const m = new ByteMatcher(jsonSchemaToGrammar(schema));
  const s = m.walk(m.initial, utf8.encode(text));
  return s !== DEAD && m.canEnd(s);
}

Deno.test("schema: accepts valid documents in the compact/one-space form, refuses invalid ones", () => {
  const cmd = TEST_SCHEMAS.robotCommand;
  for (
    const ok of [
      '{"action":"move","speed":1.5}',
      '{"action": "stop", "speed": -0, "steps": 3, "safe": true}',
      '{"action":"turn","speed":0.25,"safe":false}',
    ]
  ) {
    assert.ok(accepts(cmd, ok), ok);
    assert.deepEqual(validate(JSON.parse(ok), cmd), [], ok);
  }
  for (
    const bad of [
      '{"action":"fly","speed":1}',
      '{"speed":1,"action":"move"}',
      '{"action":"move"}',
      '{"action":"move","speed":1,"extra":1}',
      '{"action":"move","speed":1.}',
      '{"action":"move","speed":01}',
      '{"action":"move","steps":1.5,"speed":1}',
      '{ "action":"move","speed":1}',
    ]
  ) {
    assert.ok(!accepts(cmd, bad), bad);
  }
  const list = TEST_SCHEMAS.list;
  assert.ok(accepts(list, '["a","bcd"]'));
  assert.ok(!accepts(list, '["a"]'), "minItems");
  assert.ok(!accepts(list, '["a",""]'), "minLength");
  assert.ok(!accepts(list, '["abcde","a"]'), "maxLength");
  assert.ok(!accepts(list, '["a","b","c","d","e"]'), "maxItems");
  assert.ok(accepts({ type: "string" }, '"tab\\t quote\\" é ✓"'));
  assert.ok(!accepts({ type: "string" }, '"raw\ttab"'), "control characters must be escaped");
  assert.ok(!accepts({ type: "string" }, '"\\u0041"'), "no \\u escapes");
  assert.ok(accepts({ anyOf: [{ type: "null" }, { const: { a: [1, "x"] } }] }, '{"a":[1,"x"]}'));
  assert.ok(accepts(TEST_SCHEMAS.anything, '{"k": [1, {"z": null}], "s": "x"}'));
  assert.ok(accepts({ type: "integer", enum: [1, "a", 2.5] }, "1"));
  assert.ok(!accepts({ type: "integer", enum: [1, "a", 2.5] }, '"a"'), "enum values must also have the type");
});

Deno.test("schema: unsupported or malformed keywords are refused by name", () => {
  const cases: [unknown, RegExp][] = [
    [{ type: "string", pattern: "^a" }, /unsupported JSON-schema keyword 'pattern' at #/],
    [{ type: "object", properties: { v: { type: "number", minimum: 0 } } }, /'minimum' at #\/properties\/v/],
    [{ type: "object", properties: { v: { $ref: "#/defs/x" } } }, /'\$ref'/],
    [{ oneOf: [{ type: "string" }] }, /'oneOf'/],
    [{ type: "float" }, /unsupported type "float"/],
    [{ type: "object", required: ["a"], properties: {} }, /required property 'a'/],
    [{ type: "array", items: [{ type: "string" }] }, /tuple 'items'/],
    [{ type: "string", maxLength: 1e6 }, /above the supported/],
    [{ type: "string", minLength: 5, maxLength: 2 }, /below 'minLength'/],
    [{ anyOf: [{ type: "string" }], type: "string" }, /anyOf' at # next to 'type'/],
    [{ enum: [] }, /non-empty array/],
    [{ type: "object", additionalProperties: { type: "string" } }, /must be true or false/],
    [false, /nothing is valid/],
    ["string", /must be an object or a boolean/],
  ];
  for (const [schema, re] of cases) {
    assert.throws(
      () => jsonSchemaToGrammar(schema),
      (e: Error) => e instanceof SchemaError && re.test(e.message),
      JSON.stringify(schema),
    );
  }
  // Annotations are fine.
  assert.ok(accepts({ $schema: "x", title: "t", description: "d", examples: [1], default: 1, type: "integer" }, "42"));
});

let pool: Float32Array | undefined;
function randomPool(): Float32Array {
  if (pool) return pool;
  const rng = new Rng(12345);
  pool = new Float32Array(qwen3().vocabSize + 100_003);
  for (let i = 0; i < pool.length; i++) pool[i] = rng.nextFloat() * 8;
  return pool;
}

/**
 * Decodes with random logits (a model that knows nothing) through the real Qwen3 vocabulary:
 * whatever comes out must be complete JSON valid against the schema, within the token budget.
 */
function randomDecode(schema: unknown, seed: number, temperature: number, maxTokens: number) {
  const tok = qwen3();
  const m = new ByteMatcher(jsonSchemaToGrammar(schema));
  const c = new GrammarConstraint(m, tokenIndex(tok));
  const rng = new Rng(seed);
  const sampler = new Sampler({ temperature, topK: 40, topP: 1, seed });
  // Each step's logits: a window at a random offset into one random pool (cheap, still random).
  const pool = randomPool();
  const ids: number[] = [];
  for (let step = 0; step < maxTokens; step++) {
    const at = Math.floor(rng.nextFloat() * (pool.length - tok.vocabSize));
    const logits = pool.subarray(at, at + tok.vocabSize);
    c.setRemaining(maxTokens - step);
    const listed = c.candidates();
    const only = listed && [...listed, ...(c.canEnd() ? [tok.eosTokenId] : [])];
    const id = sampler.sample(logits, [], (id) => tok.isEndOfGeneration(id) ? c.canEnd() : c.allows(id), only);
    if (tok.isEndOfGeneration(id)) return { text: tok.decode(ids), ended: "eos" };
    c.accept(id);
    ids.push(id);
    if (c.isComplete()) return { text: tok.decode(ids), ended: "complete" };
  }
  return { text: tok.decode(ids), ended: "length" };
}

Deno.test("random logits through the real vocabulary: always complete, valid JSON within max_tokens", () => {
  let runs = 0;
  for (const [name, schema] of Object.entries(TEST_SCHEMAS)) {
    for (let seed = 1; seed <= 6; seed++) {
      const temperature = [0, 0.7, 1.5][seed % 3];
      // Tight budgets too: the output must be steered to its shortest completion in time.
      const maxTokens = seed % 2 === 0 ? 200 : 40;
      const r = randomDecode(schema, seed, temperature, maxTokens);
      assert.notEqual(r.ended, "length", `${name} seed ${seed}: ran out of tokens: ${r.text}`);
      let value: unknown;
      assert.doesNotThrow(() => value = JSON.parse(r.text), `${name} seed ${seed}: ${r.text}`);
      assert.deepEqual(validate(value, schema), [], `${name} seed ${seed}: ${r.text}`);
      if (Deno.env.get("SHOW_OUTPUTS")) console.log(name, seed, maxTokens, r.ended, r.text);
      runs++;
    }
  }
  assert.equal(runs, 24);
});

Deno.test("special tokens never appear inside JSON; end tokens only when complete", () => {
  const tok = qwen3();
  const m = new ByteMatcher(jsonSchemaToGrammar({ type: "object", properties: { s: { type: "string" } } }));
  const c = new GrammarConstraint(m, tokenIndex(tok));
  for (const t of [...utf8.encode('{"s":"')].map((b) => tok.encode(String.fromCharCode(b))[0])) c.accept(t);
  for (const special of ["<|im_start|>", "<|im_end|>", "<think>", "<tool_call>", "<|endoftext|>"]) {
    assert.equal(c.allows(tok.tokenId(special)!), false, special);
  }
  assert.equal(c.canEnd(), false);
  assert.equal(c.allows(tok.encode("hello")[0]), true);
  // Steering: with 3 tokens left inside the string, only progress toward `"}` is allowed.
  c.setRemaining(3);
  assert.equal(c.allows(tok.encode("hello")[0]), false);
  assert.equal(c.allows(tok.encode('"}')[0]), true);
});
