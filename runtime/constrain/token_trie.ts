/**
 * The vocabulary's text tokens in a trie over their bytes, walked together with a matcher
 * state to list every token allowed there at once: a dead byte prunes the whole subtree of
 * tokens starting with it, so narrow states (JSON punctuation, keys, numbers) cost microseconds.
 *
 * @module
 */
import { type ByteMatcher, DEAD } from "./matcher.ts";

/** Byte trie of token ids (flat arrays: children as first-child / next-sibling lists). */
export class TokenTrie {
  private readonly firstChild: Int32Array;
  private readonly nextSibling: Int32Array;
  private readonly byte: Uint8Array;
  /** Token ids ending at each node: `ids[idStart[n] .. idStart[n + 1])`. */
  private readonly idStart: Int32Array;
  private readonly ids: Int32Array;

  /** Builds the trie of the tokens with `include[id]` set. */
  constructor(bytes: readonly Uint8Array[], include: (id: number) => boolean) {
    // Insert into a map-based trie, then flatten.
    const children: Map<number, number>[] = [new Map()];
    const ending: number[][] = [[]];
    for (let id = 0; id < bytes.length; id++) {
      if (!include(id)) continue;
      let node = 0;
      for (const b of bytes[id]) {
        let child = children[node].get(b);
        if (child === undefined) {
          child = children.length;
          children.push(new Map());
          ending.push([]);
          children[node].set(b, child);
        }
        node = child;
      }
      ending[node].push(id);
    }
    const n = children.length;
    this.firstChild = new Int32Array(n).fill(-1);
    this.nextSibling = new Int32Array(n).fill(-1);
    this.byte = new Uint8Array(n);
    this.idStart = new Int32Array(n + 1);
    let total = 0;
    for (let node = 0; node < n; node++) {
      this.idStart[node] = total;
      total += ending[node].length;
      let prev = -1;
      for (const [b, child] of children[node]) {
        this.byte[child] = b;
        if (prev < 0) this.firstChild[node] = child;
        else this.nextSibling[prev] = child;
        prev = child;
      }
    }
    this.idStart[n] = total;
    this.ids = new Int32Array(total);
    let at = 0;
    for (const list of ending) for (const id of list) this.ids[at++] = id;
  }

  /**
   * Every token whose bytes the matcher accepts from `state`, or undefined as soon as more
   * than `limit` are found (a wide state: checking candidates one by one is cheaper there).
   */
  allowed(matcher: ByteMatcher, state: number, limit: number): number[] | undefined {
    const out: number[] = [];
    const nodes: number[] = [0];
    const states: number[] = [state];
    while (nodes.length > 0) {
      const node = nodes.pop()!;
      const s = states.pop()!;
      for (let i = this.idStart[node]; i < this.idStart[node + 1]; i++) out.push(this.ids[i]);
      if (out.length > limit) return undefined;
      for (let child = this.firstChild[node]; child >= 0; child = this.nextSibling[child]) {
        const next = matcher.step(s, this.byte[child]);
        if (next === DEAD) continue;
        nodes.push(child);
        states.push(next);
      }
    }
    return out;
  }
}
