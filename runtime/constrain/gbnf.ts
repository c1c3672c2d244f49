/**
 * A GBNF-like grammar text (the llama.cpp form) parsed into a {@link Grammar}.
 *
 * ```
 * root   ::= "move " dir " " [0-9]{1,3}   # comments run to the end of the line
 * dir    ::= "left" | "right" | ( "for" | "back" ) "ward"
 * ```
 * Supported: `name ::= alternatives` (rules may span lines; a new rule starts at `name ::=`),
 * `|`, sequences, string literals `"..."`, classes `[a-z]` / `[^"\\]`, `.` (any character),
 * groups `( ... )`, postfix `?`, `*`, `+`, `{m}`, `{m,}`, `{m,n}`, special tokens by their text
 * in angle brackets (`<tool_call>`), escapes `\n \r \t \\ \" \] \- \xHH \uHHHH \UHHHHHHHH`.
 * The start rule is `root`.
 *
 * @module
 */
import {
  charClass,
  type Element,
  type Grammar,
  GrammarBuilder,
  GrammarError,
  literal,
  MAX_CODE_POINT,
} from "./grammar.ts";

import { MAX_GRAMMAR_CHARS, MAX_NESTING, MAX_REPEAT } from "./limits.ts";

export { MAX_GRAMMAR_CHARS, MAX_REPEAT };

/** Parses `text`; throws a GrammarError naming the line and column of a syntax error. */
export function parseGbnf(text: string): Grammar {
  if (typeof text !== "string") throw new GrammarError("grammar must be a string");
  if (text.length > MAX_GRAMMAR_CHARS) throw new GrammarError(`grammar is longer than ${MAX_GRAMMAR_CHARS} characters`);
  return new Parser(text).parse();
}

const NAME = /[a-zA-Z0-9_-]/;

class Parser {
  private at = 0;
  private readonly b = new GrammarBuilder();
  private groups = 0;
  /** Groups open at the cursor, against MAX_NESTING (the parser recurses into each). */
  private depth = 0;

  constructor(private readonly src: string) {}

  parse(): Grammar {
    this.space(true);
    if (this.at >= this.src.length) throw new GrammarError("grammar is empty");
    while (this.at < this.src.length) {
      const name = this.name();
      this.space(false);
      if (!this.src.startsWith("::=", this.at)) this.fail("expected '::=' after the rule name");
      this.at += 3;
      this.space(true);
      if (this.b.isDefined(name)) this.fail(`rule '${name}' is defined twice`);
      this.b.define(name, this.alternatives(name, false));
      this.space(true);
    }
    return this.b.build("root");
  }

  private fail(msg: string): never {
    const before = this.src.slice(0, this.at);
    const line = before.split("\n").length;
    const col = this.at - before.lastIndexOf("\n");
    throw new GrammarError(`grammar line ${line}, column ${col}: ${msg}`);
  }

  /** Skips blanks and comments; newlines too when `newlines` (inside groups or between rules). */
  private space(newlines: boolean): void {
    const s = this.src;
    while (this.at < s.length) {
      const c = s[this.at];
      if (c === " " || c === "\t" || (newlines && (c === "\n" || c === "\r"))) this.at++;
      else if (c === "#") { while (this.at < s.length && s[this.at] !== "\n") this.at++; }
      else break;
    }
  }

  private name(): string {
    const start = this.at;
    while (this.at < this.src.length && NAME.test(this.src[this.at])) this.at++;
    if (this.at === start) this.fail("expected a rule name");
    return this.src.slice(start, this.at);
  }

  /** True when a rule definition (`name ::=`) starts at the cursor: the previous rule ended. */
  private atRuleStart(): boolean {
    const m = /^[a-zA-Z0-9_-]+[ \t]*::=/.exec(this.src.slice(this.at, this.at + 200));
    return m !== null;
  }

  private alternatives(ruleName: string, nested: boolean): Element[][] {
    const alts: Element[][] = [this.sequence(ruleName, nested)];
    while (this.src[this.at] === "|") {
      this.at++;
      this.space(true);
      alts.push(this.sequence(ruleName, nested));
    }
    return alts;
  }

  private sequence(ruleName: string, nested: boolean): Element[] {
    const seq: Element[] = [];
    for (;;) {
      this.space(nested);
      if (!nested && (this.src[this.at] === "\n" || this.src[this.at] === "\r")) {
        // A line break ends the rule only when the next line defines a new one: a line
        // starting with | adds an alternative, any other line continues the sequence.
        this.space(true);
        if (this.at >= this.src.length || this.atRuleStart() || this.src[this.at] === "|") return seq;
        continue;
      }
      const c = this.src[this.at];
      if (c === undefined || c === "|" || c === ")") return seq;
      let atom: Element[];
      if (c === '"') atom = literal(this.stringLiteral());
      else if (c === "[") atom = [this.charClass()];
      else if (c === ".") {
        this.at++;
        atom = [charClass([0, MAX_CODE_POINT])];
      } else if (c === "<") atom = [this.token()];
      else if (c === "(") {
        if (++this.depth > MAX_NESTING) this.fail(`groups nested deeper than ${MAX_NESTING} (limit MAX_NESTING)`);
        this.at++;
        this.space(true);
        const name = `${ruleName}-group-${++this.groups}`;
        const ref = this.b.define(name, this.alternatives(ruleName, true));
        this.space(true);
        if (this.src[this.at] !== ")") this.fail("expected ')'");
        this.at++;
        this.depth--;
        atom = [ref];
      } else if (NAME.test(c)) {
        if (this.atRuleStart()) return seq;
        atom = [this.b.ref(this.name())];
      } else this.fail(`unexpected character ${JSON.stringify(c)}`);
      // A loop, not push(...): a long literal has one element per character.
      for (const e of this.postfix(ruleName, atom)) seq.push(e);
    }
  }

  private postfix(ruleName: string, atom: Element[]): Element[] {
    const c = this.src[this.at];
    let min: number, max: number;
    if (c === "?") [min, max] = [0, 1];
    else if (c === "*") [min, max] = [0, Infinity];
    else if (c === "+") [min, max] = [1, Infinity];
    else if (c === "{") {
      const m = /^\{\s*(\d+)\s*(,\s*(\d*)\s*)?\}/.exec(this.src.slice(this.at, this.at + 40));
      if (!m) this.fail("expected {m}, {m,} or {m,n}");
      min = Number(m[1]);
      max = m[2] === undefined ? min : m[3] === "" ? Infinity : Number(m[3]);
      if (min > MAX_REPEAT || (max !== Infinity && max > MAX_REPEAT)) this.fail(`repetition bound above ${MAX_REPEAT}`);
      if (max < min) this.fail(`repetition {${min},${max}} has max < min`);
      this.at += m[0].length - 1;
    } else return atom;
    this.at++;
    return [this.b.repeat(`${ruleName}-${++this.groups}`, atom, min, max)];
  }

  private escape(): number {
    const s = this.src;
    const c = s[this.at++];
    const hex = (n: number) => {
      const h = s.slice(this.at, this.at + n);
      if (!new RegExp(`^[0-9a-fA-F]{${n}}$`).test(h)) this.fail(`expected ${n} hex digits`);
      this.at += n;
      const cp = parseInt(h, 16);
      if (cp > MAX_CODE_POINT) this.fail("code point above U+10FFFF");
      return cp;
    };
    switch (c) {
      case "n":
        return 10;
      case "r":
        return 13;
      case "t":
        return 9;
      case "x":
        return hex(2);
      case "u":
        return hex(4);
      case "U":
        return hex(8);
      case "\\":
      case '"':
      case "]":
      case "[":
      case "-":
      case "^":
        return c.charCodeAt(0);
      default:
        this.fail(`unknown escape \\${c ?? ""}`);
    }
  }

  private stringLiteral(): string {
    this.at++; // opening quote
    let out = "";
    for (;;) {
      const c = this.src[this.at];
      if (c === undefined || c === "\n") this.fail("unterminated string");
      if (c === '"') {
        this.at++;
        if (out === "") this.fail('empty string literal "" (use ? for optional parts)');
        return out;
      }
      if (c === "\\") {
        this.at++;
        out += String.fromCodePoint(this.escape());
      } else {
        const cp = this.src.codePointAt(this.at)!;
        out += String.fromCodePoint(cp);
        this.at += cp > 0xffff ? 2 : 1;
      }
    }
  }

  private classChar(): number {
    const c = this.src[this.at];
    if (c === undefined || c === "\n") this.fail("unterminated character class");
    if (c === "\\") {
      this.at++;
      return this.escape();
    }
    const cp = this.src.codePointAt(this.at)!;
    this.at += cp > 0xffff ? 2 : 1;
    return cp;
  }

  private charClass(): Element {
    this.at++; // [
    const negated = this.src[this.at] === "^";
    if (negated) this.at++;
    const ranges: number[] = [];
    while (this.src[this.at] !== "]") {
      const lo = this.classChar();
      let hi = lo;
      if (this.src[this.at] === "-" && this.src[this.at + 1] !== "]") {
        this.at++;
        hi = this.classChar();
        if (hi < lo) this.fail("character range is reversed");
      }
      ranges.push(lo, hi);
    }
    this.at++;
    if (ranges.length === 0) this.fail("empty character class");
    return charClass(ranges, negated);
  }

  private token(): Element {
    const end = this.src.indexOf(">", this.at);
    if (end < 0 || this.src.slice(this.at, end).includes("\n")) this.fail("unterminated <token>");
    const text = this.src.slice(this.at, end + 1);
    this.at = end + 1;
    return { type: "token", text };
  }
}
