/**
 * Context-free grammars over Unicode code points (plus whole special tokens), the common form
 * that the GBNF parser and the JSON-schema compiler both produce and the byte matcher runs.
 *
 * A grammar is a list of rules; a rule is a list of alternatives; an alternative is a sequence
 * of elements: a character class, a special token (matched only by that token id, never by
 * bytes) or a reference to another rule. Repetition is expanded into rules when built.
 *
 * @module
 */
import { MAX_COMPILE_WORK, MAX_GRAMMAR_ELEMENTS } from "./limits.ts";

/** One element of an alternative. */
export type Element =
  /** One code point in (or, when `negated`, outside) the inclusive `[lo, hi, lo, hi, ...]` ranges. */
  | { type: "char"; ranges: number[]; negated: boolean }
  /** A special token of the vocabulary, by its text (e.g. `<tool_call>`). */
  | { type: "token"; text: string }
  | { type: "ref"; rule: number };

/** A checked grammar: every referenced rule defined, no left recursion, `root` matches something. */
export interface Grammar {
  readonly names: readonly string[];
  readonly rules: readonly (readonly (readonly Element[])[])[];
  readonly root: number;
}

/** A grammar that cannot be built (undefined rule, left recursion, empty language). */
export class GrammarError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "GrammarError";
  }
}

/** Largest code point. */
export const MAX_CODE_POINT = 0x10ffff;

/** Builds rules by name, so that rules can be referenced before they are defined. */
export class GrammarBuilder {
  private readonly names: string[] = [];
  private readonly rules: (Element[][] | undefined)[] = [];
  private readonly ids = new Map<string, number>();
  /** Next suffix to try per base name: fresh() stays O(1), not O(names with that base). */
  private readonly nextSuffix = new Map<string, number>();
  /** Elements defined so far, against MAX_GRAMMAR_ELEMENTS. */
  private elements = 0;

  /** Id of the rule `name`, created undefined on first mention. */
  ruleId(name: string): number {
    let id = this.ids.get(name);
    if (id === undefined) {
      id = this.names.length;
      this.ids.set(name, id);
      this.names.push(name);
      this.rules.push(undefined);
    }
    return id;
  }

  /** Whether `name` has been defined. */
  isDefined(name: string): boolean {
    const id = this.ids.get(name);
    return id !== undefined && this.rules[id] !== undefined;
  }

  /** Defines `name` (once); returns a reference element to it. */
  define(name: string, alternatives: Element[][]): Element {
    const id = this.ruleId(name);
    if (this.rules[id] !== undefined) throw new GrammarError(`rule '${name}' is defined twice`);
    for (const alt of alternatives) this.count(alt.length + 1);
    this.rules[id] = alternatives;
    return { type: "ref", rule: id };
  }

  /** A name not used yet, derived from `base`. */
  fresh(base: string): string {
    if (!this.ids.has(base)) return base;
    for (let i = this.nextSuffix.get(base) ?? 1;; i++) {
      if (!this.ids.has(`${base}-${i}`)) {
        this.nextSuffix.set(base, i + 1);
        return `${base}-${i}`;
      }
    }
  }

  /** Counts `n` more elements; throws once the grammar outgrows MAX_GRAMMAR_ELEMENTS. */
  private count(n: number): void {
    this.elements += n;
    if (this.elements > MAX_GRAMMAR_ELEMENTS) {
      throw new GrammarError(
        `grammar is too large: more than ${MAX_GRAMMAR_ELEMENTS} elements with repetitions expanded (limit MAX_GRAMMAR_ELEMENTS)`,
      );
    }
  }

  /** A reference to `name` (defined now or later). */
  ref(name: string): Element {
    return { type: "ref", rule: this.ruleId(name) };
  }

  /**
   * `seq` repeated between `min` and `max` times (`max` may be Infinity), as a reference to
   * fresh rules: `min` copies, then a chain of optional copies (or a right-recursive star).
   */
  repeat(base: string, seq: Element[], min: number, max: number): Element {
    if (!Number.isInteger(min) || min < 0 || !(max >= min) || (max !== Infinity && !Number.isInteger(max))) {
      throw new GrammarError(`bad repetition bounds {${min},${max}}`);
    }
    // Checked before copying: {m} copies `seq` m times.
    this.count(min * seq.length);
    const out: Element[] = [];
    for (let i = 0; i < min; i++) for (const e of seq) out.push(e);
    if (max === Infinity) {
      const name = this.fresh(`${base}-star`);
      const star = this.ref(name);
      this.define(name, [[...seq, star], []]);
      out.push(star);
    } else if (max > min) {
      // opt_k ::= seq opt_{k-1} | empty, built from the innermost outwards.
      let inner: Element | undefined;
      for (let k = 1; k <= max - min; k++) {
        const name = this.fresh(`${base}-opt`);
        inner = this.define(name, [inner ? [...seq, inner] : [...seq], []]);
      }
      out.push(inner!);
    }
    const name = this.fresh(`${base}-rep`);
    return this.define(name, [out]);
  }

  /** Checks and freezes the grammar. */
  build(rootName: string): Grammar {
    const root = this.ids.get(rootName);
    if (root === undefined || this.rules[root] === undefined) {
      throw new GrammarError(`grammar has no '${rootName}' rule`);
    }
    this.rules.forEach((r, i) => {
      if (r === undefined) throw new GrammarError(`rule '${this.names[i]}' is used but not defined`);
    });
    const grammar: Grammar = { names: this.names, rules: this.rules as Element[][][], root };
    checkGrammar(grammar);
    return grammar;
  }
}

/** Elements matching the code points of `text`, one each. */
export function literal(text: string): Element[] {
  const out: Element[] = [];
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    out.push({ type: "char", ranges: [cp, cp], negated: false });
  }
  return out;
}

/** A character class element. Ranges are sorted and merged. */
export function charClass(ranges: number[], negated = false): Element {
  const pairs: [number, number][] = [];
  for (let i = 0; i < ranges.length; i += 2) pairs.push([ranges[i], ranges[i + 1]]);
  pairs.sort((a, b) => a[0] - b[0]);
  const merged: number[] = [];
  for (const [lo, hi] of pairs) {
    if (lo > hi) throw new GrammarError(`character range ${lo}-${hi} is reversed`);
    const n = merged.length;
    if (n > 0 && lo <= merged[n - 1] + 1) merged[n - 1] = Math.max(merged[n - 1], hi);
    else merged.push(lo, hi);
  }
  return { type: "char", ranges: merged, negated };
}

/** Whether code point `cp` matches a char element. */
export function charMatches(e: { ranges: number[]; negated: boolean }, cp: number): boolean {
  const r = e.ranges;
  let inside = false;
  for (let i = 0; i < r.length; i += 2) {
    if (cp >= r[i] && cp <= r[i + 1]) {
      inside = true;
      break;
    }
  }
  return inside !== e.negated;
}

/** Smallest code point >= lo and <= hi matching a char element, or -1. */
export function firstMatch(e: { ranges: number[]; negated: boolean }, lo: number, hi: number): number {
  const r = e.ranges;
  if (!e.negated) {
    for (let i = 0; i < r.length; i += 2) {
      if (r[i + 1] < lo || r[i] > hi) continue;
      return Math.max(r[i], lo);
    }
    return -1;
  }
  let x = lo;
  for (let i = 0; i < r.length && x <= hi; i += 2) {
    if (r[i] > x) break;
    if (r[i + 1] >= x) x = r[i + 1] + 1;
  }
  return x <= hi ? x : -1;
}

/** Bytes of the UTF-8 encoding of `cp`. */
export function utf8Length(cp: number): number {
  return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

/**
 * The least cost of matching each element: UTF-8 bytes of the smallest code point of a class,
 * 1 for a special token (one token), the least cost of the rule for a reference. Infinity for
 * a rule that matches nothing.
 */
export function minRuleCosts(g: Grammar): number[] {
  const cost = new Array<number>(g.rules.length).fill(Infinity);
  untilStable(g, (alts, r) => {
    let changed = false;
    for (const alt of alts) {
      let sum = 0;
      for (const e of alt) sum += elementCost(e, cost);
      if (sum < cost[r]) {
        cost[r] = sum;
        changed = true;
      }
    }
    return changed;
  });
  return cost;
}

/**
 * Re-evaluates rules until nothing changes: `update` returns true when rule `r`'s value
 * changed, and then only the rules that reference `r` are evaluated again (a worklist, not
 * whole passes: a long chain of rules defined in the wrong order would take quadratic time).
 * The work (elements visited) is bounded by MAX_COMPILE_WORK.
 */
function untilStable(g: Grammar, update: (alts: readonly (readonly Element[])[], r: number) => boolean): void {
  const users: number[][] = g.rules.map(() => []);
  const size: number[] = [];
  g.rules.forEach((alts, r) => {
    let n = 1;
    for (const alt of alts) {
      n += alt.length + 1;
      for (const e of alt) if (e.type === "ref") users[e.rule].push(r);
    }
    size[r] = n;
  });
  const queued = new Uint8Array(g.rules.length).fill(1);
  const queue: number[] = g.rules.map((_, r) => r);
  let work = 0;
  for (let head = 0; head < queue.length; head++) {
    const r = queue[head];
    queued[r] = 0;
    work += size[r];
    if (work > MAX_COMPILE_WORK) {
      throw new GrammarError(
        `grammar takes too long to check: over ${MAX_COMPILE_WORK} work units (limit MAX_COMPILE_WORK)`,
      );
    }
    if (!update(g.rules[r], r)) continue;
    for (const u of users[r]) {
      if (queued[u] === 0) {
        queued[u] = 1;
        queue.push(u);
      }
    }
    // Keep the queue's memory bounded by the rules waiting, not by all evaluations so far.
    if (head > 65536 && head * 2 > queue.length) {
      queue.splice(0, head + 1);
      head = -1;
    }
  }
}

/** Least cost of one element given the rule costs. */
export function elementCost(e: Element, ruleCost: number[]): number {
  if (e.type === "token") return 1;
  if (e.type === "ref") return ruleCost[e.rule];
  const cp = surrogateFreeFirst(e);
  return cp < 0 ? Infinity : utf8Length(cp);
}

/** Smallest encodable (non-surrogate) code point of a class, or -1. */
function surrogateFreeFirst(e: { ranges: number[]; negated: boolean }): number {
  const a = firstMatch(e, 0, 0xd7ff);
  return a >= 0 ? a : firstMatch(e, 0xe000, MAX_CODE_POINT);
}

function checkGrammar(g: Grammar): void {
  const cost = minRuleCosts(g);
  if (cost[g.root] === Infinity) throw new GrammarError(`rule '${g.names[g.root]}' matches no text`);
  // Left recursion (a rule reaching itself before consuming anything) would make the matcher
  // expand forever: refuse it, naming the cycle.
  const nullable = g.rules.map(() => false);
  untilStable(g, (alts, r) => {
    if (nullable[r] || !alts.some((alt) => alt.every((e) => e.type === "ref" && nullable[e.rule]))) return false;
    nullable[r] = true;
    return true;
  });
  const leftRefs = g.rules.map((alts) => {
    const out = new Set<number>();
    for (const alt of alts) {
      for (const e of alt) {
        if (e.type !== "ref") break;
        out.add(e.rule);
        if (!nullable[e.rule]) break;
      }
    }
    return out;
  });
  // Depth-first with an explicit stack: a chain of thousands of rules must not overflow the call stack.
  const state = new Uint8Array(g.rules.length); // 0 new, 1 on the path, 2 done
  const path: number[] = [];
  const pending: Iterator<number>[] = [];
  for (let start = 0; start < g.rules.length; start++) {
    if (state[start] !== 0) continue;
    state[start] = 1;
    path.push(start);
    pending.push(leftRefs[start].values());
    while (path.length > 0) {
      const step = pending[pending.length - 1].next();
      if (step.done) {
        state[path.pop()!] = 2;
        pending.pop();
        continue;
      }
      const next = step.value;
      if (state[next] === 1) {
        const cycle = path.slice(path.indexOf(next)).concat(next).map((i) => g.names[i]);
        throw new GrammarError(`grammar is left-recursive: ${cycle.join(" -> ")}`);
      }
      if (state[next] === 0) {
        state[next] = 1;
        path.push(next);
        pending.push(leftRefs[next].values());
      }
    }
  }
}
