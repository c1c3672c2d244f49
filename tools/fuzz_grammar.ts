/**
 * Random grammars and JSON schemas for the fuzz harness: small random GBNF rule sets (nesting,
 * repetition, alternation, recursion, special tokens) and schemas (nested objects, arrays,
 * anyOf, enums, bounds), plus mutations of the hostile cases of issue 15. Each is compiled and
 * then matched for a few random tokens; a bad one must be refused with BAD_REQUEST.
 *
 * @module
 */
import type { FuzzRng } from "./fuzz_rng.ts";

/** A structured-output request to compile and match. */
export type ConstraintInput = { grammar: string } | { jsonSchema: unknown };

const HOSTILE = [
  'root ::= "a"{0,10000}',
  'root ::= s\ns ::= "a" s "b" | "a" s "c" | "a" s "d" | "a"',
  "root ::= <|im_end|>",
  'root ::= x\nx ::= "a" x "b" | "a" x "c" | "a"? x "d" | "a"',
  'root ::= ("a" | "a" "a" | "a" "a" "a")*',
  "root ::= ([a-z]* [a-z]*)*",
];

function atom(rng: FuzzRng, rules: number, depth: number): string {
  const k = rng.int(depth > 6 ? 4 : 7);
  if (k === 0) return JSON.stringify(rng.pick(["a", "b", "ab", "hello", "é", "{", "\\"]));
  if (k === 1) return rng.pick(["[a-z]", "[^a]", ".", "[0-9]", "[\\u0100-\\uffff]", "[ab]"]);
  if (k === 2) return `r${rng.int(rules)}`;
  if (k === 3) return rng.pick(["<think>", "<tool_call>", "<|im_start|>", "<nope>"]);
  return `(${alternatives(rng, rules, depth + 1)})`;
}

function sequence(rng: FuzzRng, rules: number, depth: number): string {
  const parts: string[] = [];
  for (let i = 0, n = 1 + rng.int(3); i < n; i++) {
    let a = atom(rng, rules, depth);
    const p = rng.int(8);
    if (p === 0) a += "*";
    else if (p === 1) a += "+";
    else if (p === 2) a += "?";
    else if (p === 3) a += `{${rng.int(5)},${rng.pick(["", String(5 + rng.int(200)), "10000"])}}`;
    parts.push(a);
  }
  return parts.join(" ");
}

function alternatives(rng: FuzzRng, rules: number, depth: number): string {
  const alts: string[] = [];
  for (let i = 0, n = 1 + rng.int(3); i < n; i++) alts.push(sequence(rng, rules, depth));
  return alts.join(" | ");
}

/** A random GBNF text (often invalid: undefined rules, left recursion, empty languages). */
export function randomGrammar(rng: FuzzRng): string {
  if (rng.chance(0.15)) {
    const h = rng.pick(HOSTILE);
    return rng.chance(0.5) ? h : h.replace(/\d+/, String(rng.int(20000)));
  }
  const rules = 1 + rng.int(5);
  const lines = [`root ::= ${alternatives(rng, rules, 0)}`];
  for (let r = 0; r < rules; r++) lines.push(`r${r} ::= ${alternatives(rng, rules, 0)}`);
  return lines.join("\n");
}

/** A random JSON schema (sometimes unsupported or too deep). */
export function randomSchema(rng: FuzzRng, depth = 0): unknown {
  if (depth === 0 && rng.chance(0.05)) {
    let s: unknown = { type: "string" };
    for (let i = 0, n = rng.pick([50, 70, 500]); i < n; i++) s = { type: "array", items: s };
    return s;
  }
  const k = rng.int(depth > 3 ? 5 : 9);
  if (k === 0) return { type: "string", maxLength: rng.pick([1, 8, 4096, 5000]), minLength: rng.int(3) };
  if (k === 1) return { type: rng.pick(["integer", "number", "boolean", "null"]) };
  if (k === 2) return { enum: [1, "two", null, { a: [1] }].slice(0, 1 + rng.int(4)) };
  if (k === 3) return rng.pick([true, false, {}, { type: "date" }, { pattern: "x" }]);
  if (k === 4) return { const: rng.pick(["x", 3, null]) };
  if (k === 5 || k === 6) {
    const properties: Record<string, unknown> = {};
    for (let i = 0, n = rng.int(4); i < n; i++) {
      properties[rng.pick(["a", "b", "constructor", "é", "x y"])] = randomSchema(rng, depth + 1);
    }
    return {
      type: "object",
      properties,
      required: Object.keys(properties).slice(0, rng.int(3)),
      additionalProperties: rng.chance(0.2),
    };
  }
  if (k === 7) return { type: "array", items: randomSchema(rng, depth + 1), maxItems: rng.pick([1, 4, 4096, 9999]) };
  return { anyOf: [randomSchema(rng, depth + 1), randomSchema(rng, depth + 1)] };
}

/** A grammar or a schema. */
export function randomConstraint(rng: FuzzRng): ConstraintInput {
  return rng.chance(0.6) ? { grammar: randomGrammar(rng) } : { jsonSchema: randomSchema(rng) };
}
