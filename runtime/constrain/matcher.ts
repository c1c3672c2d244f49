/**
 * Byte-level pushdown matcher for a {@link Grammar}, determinised lazily.
 *
 * A parse position is a stack of grammar positions (as in llama.cpp's grammar engine); a
 * matcher state is the set of stacks still alive plus the bytes of a UTF-8 character read so
 * far. States are interned and every transition, once computed, is kept in a table, so the
 * matcher becomes a DFA over the parts of the grammar actually visited: walking a token's
 * bytes is a few array reads. Multi-byte characters may be split across tokens: a state can
 * sit in the middle of a character, and only bytes that can still complete a character some
 * stack accepts are let through (invalid UTF-8, overlong forms and surrogates never are).
 *
 * @module
 */
import {
  charMatches,
  type Element,
  elementCost,
  firstMatch,
  type Grammar,
  GrammarError,
  minRuleCosts,
} from "./grammar.ts";
import { MAX_MATCH_NODES, MAX_MATCH_STACKS, MAX_MATCH_STATE_STACKS, MAX_MATCH_STATES } from "./limits.ts";

/** Transition not computed yet. */
const UNKNOWN = -2;
/** No way forward. */
export const DEAD = -1;

interface State {
  /** Stack node ids whose top element is a char or token element, sorted. */
  leaves: number[];
  /** The empty stack is among the alive ones: the text so far is a complete match. */
  accepting: boolean;
  /** Partial UTF-8 character: bytes still expected (0 = none), its lead byte, and bits so far. */
  need: number;
  lead: number;
  partial: number;
  /** Least cost (bytes, 1 per special token) of any way to a complete match. */
  minRemaining: number;
  tokenTrans?: Map<string, number>;
  wide?: boolean;
}

/** Lazily determinised matcher of one grammar; shared by every sequence that uses it. */
export class ByteMatcher {
  /** State to start from. */
  readonly initial: number;
  /** Elements of all alternatives, each alternative ended by null. */
  private readonly elems: (Element | null)[] = [];
  private readonly ruleStarts: number[][] = [];
  /** Least cost from each flat position to the end of its alternative. */
  private readonly restCost: number[] = [];
  private readonly nodePos: number[] = [];
  private readonly nodeParent: number[] = [];
  private readonly nodeCost: number[] = [];
  private readonly nodeIds = new Map<number, number>();
  private readonly states: State[] = [];
  private readonly stateIds = new Map<string, number>();
  private trans = new Int32Array(256 * 64).fill(UNKNOWN);
  /** Stack entries summed over all states, against MAX_MATCH_STATE_STACKS. */
  private stateStacks = 0;
  /** Work units done so far (stack expansions and checks); callers budget by differences. */
  private workDone = 0;

  constructor(readonly grammar: Grammar) {
    const ruleCost = minRuleCosts(grammar);
    // Flatten: every alternative becomes a run of element slots ended by null.
    grammar.rules.forEach((alts, r) => {
      this.ruleStarts[r] = [];
      for (const alt of alts) {
        this.ruleStarts[r].push(this.elems.length);
        for (const e of alt) this.elems.push(e);
        this.elems.push(null);
      }
    });
    for (let p = this.elems.length - 1; p >= 0; p--) {
      const e = this.elems[p];
      this.restCost[p] = e === null ? 0 : elementCost(e, ruleCost) + this.restCost[p + 1];
    }
    const leaves = new Set<number>();
    let accepting = false;
    for (const start of this.ruleStarts[grammar.root]) {
      accepting = this.expand(this.node(start, -1), leaves, new Set()) || accepting;
    }
    this.initial = this.intern([...leaves], accepting, 0, 0, 0);
  }

  /** Number of states built so far (grows as new parts of the grammar are visited). */
  get stateCount(): number {
    return this.states.length;
  }

  /** Work units done since the matcher was built; deterministic, unlike time. */
  get work(): number {
    return this.workDone;
  }

  /**
   * Whether the matcher has used half of a memory budget (states, nodes, stack entries): a
   * cache should build a fresh one rather than share it with the next request.
   */
  get worn(): boolean {
    return this.states.length > MAX_MATCH_STATES / 2 || this.nodePos.length > MAX_MATCH_NODES / 2 ||
      this.stateStacks > MAX_MATCH_STATE_STACKS / 2;
  }

  /** The state after `byte`, or {@link DEAD}. */
  step(state: number, byte: number): number {
    const at = state * 256 + byte;
    let next = this.trans[at];
    if (next === UNKNOWN) {
      next = this.computeByte(state, byte);
      this.trans[at] = next; // after the call: computing may have grown the table
    }
    return next;
  }

  /** The state after all of `bytes`, or {@link DEAD}. */
  walk(state: number, bytes: Uint8Array): number {
    let s = state;
    for (let i = 0; i < bytes.length; i++) {
      let next = this.trans[s * 256 + bytes[i]];
      if (next === UNKNOWN) next = this.step(s, bytes[i]);
      if (next < 0) return DEAD;
      s = next;
    }
    return s;
  }

  /** The state after the special token whose text is `text`, or {@link DEAD}. */
  stepToken(state: number, text: string): number {
    const st = this.states[state];
    if (st.need > 0) return DEAD;
    const cached = st.tokenTrans?.get(text);
    if (cached !== undefined) return cached;
    this.workDone += st.leaves.length;
    const leaves = new Set<number>();
    let accepting = false;
    const seen = new Set<number>();
    for (const leaf of st.leaves) {
      const e = this.elems[this.nodePos[leaf]]!;
      if (e.type === "token" && e.text === text) {
        accepting = this.expand(this.node(this.nodePos[leaf] + 1, this.nodeParent[leaf]), leaves, seen) || accepting;
      }
    }
    const next = leaves.size === 0 && !accepting ? DEAD : this.intern([...leaves], accepting, 0, 0, 0);
    (st.tokenTrans ??= new Map()).set(text, next);
    return next;
  }

  /**
   * Whether some alive stack expects a character from a wide class (at least 64 of the ASCII
   * characters, e.g. inside a JSON string): then most tokens fit and listing them is pointless.
   */
  isWide(state: number): boolean {
    const st = this.states[state];
    if (st.wide === undefined) {
      st.wide = st.leaves.some((leaf) => {
        const e = this.elems[this.nodePos[leaf]]!;
        if (e.type !== "char") return false;
        let n = 0;
        for (let cp = 0; cp < 128; cp++) if (charMatches(e, cp)) n++;
        return n >= 64;
      });
    }
    return st.wide;
  }

  /** Whether the text so far is a complete match. */
  canEnd(state: number): boolean {
    const st = this.states[state];
    return st.accepting && st.need === 0;
  }

  /** Whether the text is a complete match and nothing may follow. */
  isComplete(state: number): boolean {
    const st = this.states[state];
    return st.accepting && st.need === 0 && st.leaves.length === 0;
  }

  /**
   * Least cost to a complete match: bytes, counting a special token as 1. Since a byte-level
   * vocabulary has a token for every byte, it bounds the tokens needed to finish.
   */
  minRemaining(state: number): number {
    return this.states[state].minRemaining;
  }

  /**
   * Interned stack node (grammar position over a parent stack). A finished alternative is its
   * parent (parents are never finished ones): popping it at once keeps a right-recursive rule
   * such as `x*` from stacking one frame per repetition, so its states repeat instead of
   * growing with the output.
   */
  private node(pos: number, parent: number): number {
    if (this.elems[pos] === null) return parent;
    const key = pos * 2147483648 + (parent + 1);
    let id = this.nodeIds.get(key);
    if (id === undefined) {
      id = this.nodePos.length;
      if (id >= MAX_MATCH_NODES) {
        throw new GrammarError(`grammar needs more than ${MAX_MATCH_NODES} parse stack nodes (limit MAX_MATCH_NODES)`);
      }
      this.nodePos.push(pos);
      this.nodeParent.push(parent);
      this.nodeCost.push(this.restCost[pos] + (parent >= 0 ? this.nodeCost[parent] : 0));
      this.nodeIds.set(key, id);
    }
    return id;
  }

  /**
   * Adds to `leaves` every stack reachable from `node` without consuming input whose top is a
   * char or token element; returns true when the empty stack (a complete match) is reachable.
   */
  private expand(node: number, leaves: Set<number>, seen: Set<number>): boolean {
    let accepting = false;
    const todo = [node];
    while (todo.length > 0) {
      this.workDone++;
      let n = todo.pop()!;
      // Pop finished alternatives.
      while (n >= 0 && this.elems[this.nodePos[n]] === null) n = this.nodeParent[n];
      if (n < 0) {
        accepting = true;
        continue;
      }
      if (seen.has(n)) continue;
      seen.add(n);
      const pos = this.nodePos[n];
      const e = this.elems[pos]!;
      if (e.type !== "ref") {
        leaves.add(n);
        // An ambiguous grammar multiplies the stacks alive at each character.
        if (leaves.size > MAX_MATCH_STACKS) {
          throw new GrammarError(
            `grammar is too ambiguous: more than ${MAX_MATCH_STACKS} parse stacks alive at once (limit MAX_MATCH_STACKS)`,
          );
        }
        continue;
      }
      const cont = this.node(pos + 1, this.nodeParent[n]);
      for (const start of this.ruleStarts[e.rule]) todo.push(this.node(start, cont));
    }
    return accepting;
  }

  private intern(leaves: number[], accepting: boolean, need: number, lead: number, partial: number): number {
    leaves.sort((a, b) => a - b);
    const key = `${leaves.join(",")}|${accepting ? 1 : 0}|${need},${lead},${partial}`;
    const known = this.stateIds.get(key);
    if (known !== undefined) return known;
    if (this.states.length >= MAX_MATCH_STATES) {
      throw new GrammarError(`grammar needs more than ${MAX_MATCH_STATES} matcher states (limit MAX_MATCH_STATES)`);
    }
    if (this.stateStacks + leaves.length > MAX_MATCH_STATE_STACKS) {
      throw new GrammarError(
        `grammar needs more than ${MAX_MATCH_STATE_STACKS} parse stacks over all matcher states (limit MAX_MATCH_STATE_STACKS)`,
      );
    }
    this.stateStacks += leaves.length;
    this.workDone += leaves.length;
    let minRemaining = accepting && need === 0 ? 0 : Infinity;
    for (const leaf of leaves) {
      if (need === 0) {
        minRemaining = Math.min(minRemaining, this.nodeCost[leaf]);
      } else if (this.partialFits(leaf, need, lead, partial)) {
        // Finish this character with `need` bytes, then the rest of the stack.
        const pos = this.nodePos[leaf];
        const rest = this.nodeCost[leaf] - (this.restCost[pos] - this.restCost[pos + 1]);
        minRemaining = Math.min(minRemaining, need + rest);
      }
    }
    const id = this.states.length;
    this.states.push({ leaves, accepting, need, lead, partial, minRemaining });
    this.stateIds.set(key, id);
    if (this.trans.length < (id + 1) * 256) {
      const grown = new Int32Array(this.trans.length * 2).fill(UNKNOWN);
      grown.set(this.trans);
      this.trans = grown;
    }
    return id;
  }

  /** Code point range a partial character can still become, given its lead byte's rules. */
  private partialRange(need: number, lead: number, partial: number): [number, number] {
    let lo = partial * 2 ** (6 * need);
    let hi = lo + 2 ** (6 * need) - 1;
    const total = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
    lo = Math.max(lo, [0, 0, 0x80, 0x800, 0x10000][total]);
    hi = Math.min(hi, [0, 0, 0x7ff, 0xffff, 0x10ffff][total]);
    if (lead === 0xed) hi = Math.min(hi, 0xd7ff); // no surrogates
    return [lo, hi];
  }

  private partialFits(leaf: number, need: number, lead: number, partial: number): boolean {
    const e = this.elems[this.nodePos[leaf]]!;
    if (e.type !== "char") return false;
    const [lo, hi] = this.partialRange(need, lead, partial);
    return lo <= hi && firstMatch(e, lo, hi) >= 0;
  }

  private computeByte(state: number, b: number): number {
    const st = this.states[state];
    if (st.need === 0) {
      if (b < 0x80) return this.advance(st.leaves, b);
      let need: number;
      if (b >= 0xc2 && b <= 0xdf) need = 1;
      else if (b >= 0xe0 && b <= 0xef) need = 2;
      else if (b >= 0xf0 && b <= 0xf4) need = 3;
      else return DEAD; // continuation byte without a lead, or a byte UTF-8 never uses
      const partial = b & (need === 1 ? 0x1f : need === 2 ? 0x0f : 0x07);
      return this.pending(st.leaves, need, b, partial);
    }
    if (b < 0x80 || b > 0xbf) return DEAD;
    // The second byte of some leads has a narrower range (overlong forms, surrogates, > U+10FFFF).
    const total = st.lead >= 0xf0 ? 4 : st.lead >= 0xe0 ? 3 : 2;
    if (st.need === total - 1) {
      if (st.lead === 0xe0 && b < 0xa0) return DEAD;
      if (st.lead === 0xed && b > 0x9f) return DEAD;
      if (st.lead === 0xf0 && b < 0x90) return DEAD;
      if (st.lead === 0xf4 && b > 0x8f) return DEAD;
    }
    const partial = st.partial * 64 + (b & 0x3f);
    if (st.need === 1) return this.advance(st.leaves, partial);
    return this.pending(st.leaves, st.need - 1, st.lead, partial);
  }

  private pending(leaves: number[], need: number, lead: number, partial: number): number {
    this.workDone += leaves.length;
    const alive = leaves.filter((leaf) => this.partialFits(leaf, need, lead, partial));
    return alive.length === 0 ? DEAD : this.intern(alive, false, need, lead, partial);
  }

  /** The state after one whole code point. */
  private advance(leaves: number[], cp: number): number {
    this.workDone += leaves.length;
    const next = new Set<number>();
    const seen = new Set<number>();
    let accepting = false;
    for (const leaf of leaves) {
      const pos = this.nodePos[leaf];
      const e = this.elems[pos]!;
      if (e.type === "char" && charMatches(e, cp)) {
        accepting = this.expand(this.node(pos + 1, this.nodeParent[leaf]), next, seen) || accepting;
      }
    }
    if (next.size === 0 && !accepting) return DEAD;
    return this.intern([...next], accepting, 0, 0, 0);
  }
}
