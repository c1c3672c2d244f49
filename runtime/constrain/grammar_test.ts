import assert from "node:assert/strict";
import { parseGbnf } from "./gbnf.ts";
import { GrammarError } from "./grammar.ts";
import { ByteMatcher, DEAD } from "./matcher.ts";

const utf8 = new TextEncoder();

function matcher(text: string): ByteMatcher {
  return new ByteMatcher(parseGbnf(text));
}

/** "full", "prefix" (could continue to a match) or "no". */
function check(m: ByteMatcher, input: string | Uint8Array): "full" | "prefix" | "no" {
  const s = m.walk(m.initial, typeof input === "string" ? utf8.encode(input) : input);
  return s === DEAD ? "no" : m.canEnd(s) ? "full" : "prefix";
}

Deno.test("gbnf: alternatives, groups, classes, repetition and comments", () => {
  const m = matcher(`
# a robot command
root ::= "move " dir " " num
dir  ::= "left" | "right"
       | ( "for" | "back" ) "ward"   # continues on the next line
num  ::= [1-9] [0-9]{0,2} | "0"
`);
  for (const ok of ["move left 1", "move forward 120", "move backward 0", "move right 999"]) {
    assert.equal(check(m, ok), "full", ok);
  }
  for (const bad of ["move up 1", "move left 1000", "move left 01", "move  left 1", "Move left 1"]) {
    assert.equal(check(m, bad), "no", bad);
  }
  assert.equal(check(m, "move for"), "prefix");
});

Deno.test("gbnf: * + ? . negated classes, escapes and special tokens", () => {
  const m = matcher(String.raw`root ::= "a"+ "b"* "c"? [^x\n] "\x41\u00e9" . <tool_call>`);
  const g = m.grammar;
  assert.ok(
    g.rules.some((alts) => alts.some((alt) => alt.some((e) => e.type === "token" && e.text === "<tool_call>"))),
  );
  const s = m.walk(m.initial, utf8.encode("aabbcyAé\u{1F600}"));
  assert.notEqual(s, DEAD);
  assert.equal(m.canEnd(s), false);
  const end = m.stepToken(s, "<tool_call>");
  assert.equal(m.isComplete(end), true);
  assert.equal(m.stepToken(s, "<think>"), DEAD);
  assert.equal(check(m, "ax"), "no");
  assert.equal(check(m, "a\n"), "no");
});

Deno.test("matcher: multi-byte characters split anywhere, invalid UTF-8 refused", () => {
  const m = matcher(`root ::= "\\"" [^"\\\\]{0,8} "\\""`);
  const bytes = utf8.encode(`"é✓😀"`);
  // Byte by byte: every prefix stays alive, only the whole is complete.
  let s = m.initial;
  for (let i = 0; i < bytes.length; i++) {
    s = m.step(s, bytes[i]);
    assert.notEqual(s, DEAD, `byte ${i}`);
    assert.equal(m.canEnd(s), i === bytes.length - 1);
  }
  const open = m.step(m.initial, 0x22);
  assert.equal(m.step(open, 0x80), DEAD, "lone continuation byte");
  assert.equal(m.step(open, 0xc0), DEAD, "overlong lead");
  assert.equal(m.walk(open, Uint8Array.of(0xed, 0xa0)), DEAD, "surrogate");
  assert.equal(m.walk(open, Uint8Array.of(0xe0, 0x80)), DEAD, "overlong 3-byte");
  assert.equal(m.walk(open, Uint8Array.of(0xf4, 0x90)), DEAD, "above U+10FFFF");
  const mid = m.walk(open, Uint8Array.of(0xe2, 0x9c));
  assert.notEqual(mid, DEAD);
  assert.equal(m.step(mid, 0x22), DEAD, "a quote cannot end a character");
  // A class of only ASCII refuses every lead byte.
  const ascii = matcher(`root ::= [a-z]+`);
  assert.equal(ascii.step(ascii.initial, 0xc3), DEAD);
});

Deno.test("matcher: minRemaining is the shortest completion and falls by one along it", () => {
  const m = matcher(`root ::= "{" ( "\\"ab\\"" | "\\"a\\"" ) ( "," [0-9]+ )? "}"`);
  assert.equal(m.minRemaining(m.initial), '{"a"}'.length);
  let s = m.initial;
  let left = m.minRemaining(s);
  for (const b of utf8.encode('{"a"}')) {
    s = m.step(s, b);
    assert.equal(m.minRemaining(s), --left);
  }
  assert.equal(m.isComplete(s), true);
  const multi = matcher(`root ::= "é" "x"`);
  assert.equal(multi.minRemaining(multi.initial), 3);
  assert.equal(multi.minRemaining(multi.step(multi.initial, 0xc3)), 2);
});

Deno.test("gbnf: errors name the problem", () => {
  const cases: [string, RegExp][] = [
    ["", /empty/],
    [`root ::= foo`, /'foo' is used but not defined/],
    [`start ::= "a"`, /no 'root' rule/],
    [`root ::= root "a" | "b"`, /left-recursive: root -> root/],
    [`root ::= x\nx ::= "" | y "a"\ny ::= x`, /empty string literal|left-recursive/],
    [`root ::= "a"\nroot ::= "b"`, /defined twice/],
    [`root ::= "abc`, /line 1, column \d+: unterminated string/],
    [`root ::= "a"\n  [z-a]`, /line 2, column \d+: character range is reversed/],
    [`root ::= "a"{3,1}`, /max < min/],
    [`root ::= "a"{1,99999}`, /repetition bound/],
    [`root ::= "\\q"`, /unknown escape/],
    [`root ::= ( "a"`, /expected '\)'/],
    [`root ::= "a" @`, /unexpected character "@"/],
  ];
  for (const [text, re] of cases) {
    assert.throws(() => parseGbnf(text), (e: Error) => e instanceof GrammarError && re.test(e.message), text);
  }
});
