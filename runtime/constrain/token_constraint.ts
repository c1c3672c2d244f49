/**
 * The token-level side of constrained decoding: which vocabulary tokens keep the output inside
 * a grammar, checked lazily (the sampler asks only about the candidates it considers, best
 * logits first) by walking each token's bytes through the shared {@link ByteMatcher}, whose
 * memoised transitions make a check a few array reads.
 *
 * Special tokens (CONTROL / USER_DEFINED, e.g. `<|im_start|>`) never match text: they are
 * allowed only where the grammar names them as a token element (e.g. `<tool_call>`).
 * End-of-generation tokens are the sequence's business: it asks {@link GrammarConstraint.canEnd}.
 *
 * @module
 */
import type { TokenConstraint, TokenVocabulary } from "../request.ts";
import { TokenType } from "../tokenizer_spec.ts";
import { RequestError } from "../request.ts";
import { GrammarError } from "./grammar.ts";
import { MAX_TOKEN_WORK } from "./limits.ts";
import { type ByteMatcher, DEAD } from "./matcher.ts";
import { TokenTrie } from "./token_trie.ts";

/** Per-token facts the check needs, computed once per tokenizer. */
export interface TokenIndex {
  /** 0: text token with bytes; 1: special token (matched by its text as a token element); 2: never. */
  readonly kind: Uint8Array;
  readonly bytes: readonly Uint8Array[];
  readonly text: readonly string[];
  /** Ids of the special tokens (kind 1). */
  readonly specials: readonly number[];
  /** Trie of the text tokens (kind 0). */
  readonly trie: TokenTrie;
}

/** States with more allowed tokens than this are checked lazily, candidate by candidate. */
export const CANDIDATE_LIMIT = 4096;
/** States whose allowed lists are kept, per matcher and vocabulary. */
const LIST_CACHE_STATES = 4096;

const lists = new WeakMap<TokenIndex, WeakMap<ByteMatcher, Map<number, number[] | null>>>();

function listCache(index: TokenIndex, matcher: ByteMatcher): Map<number, number[] | null> {
  let byMatcher = lists.get(index);
  if (!byMatcher) lists.set(index, byMatcher = new WeakMap());
  let cache = byMatcher.get(matcher);
  if (!cache) byMatcher.set(matcher, cache = new Map());
  return cache;
}

const indexes = new WeakMap<TokenVocabulary, TokenIndex>();

/** The token index of `tok` (built on first use, ~0.2 s for the 151669-token Qwen3 vocabulary). */
export function tokenIndex(tok: TokenVocabulary): TokenIndex {
  let index = indexes.get(tok);
  if (index) return index;
  const n = tok.vocabSize;
  const kind = new Uint8Array(n);
  const bytes: Uint8Array[] = new Array(n);
  const text: string[] = new Array(n);
  const empty = new Uint8Array(0);
  for (let id = 0; id < n; id++) {
    const type = tok.tokenType(id);
    if (type === TokenType.CONTROL || type === TokenType.USER_DEFINED) {
      kind[id] = 1;
      bytes[id] = empty;
      text[id] = tok.tokenText(id);
    } else {
      bytes[id] = tok.tokenBytes(id);
      // Tokens with no bytes would let the output stall without progress.
      kind[id] = type === TokenType.NORMAL && bytes[id].length > 0 ? 0 : 2;
      text[id] = "";
    }
  }
  const specials: number[] = [];
  for (let id = 0; id < n; id++) if (kind[id] === 1) specials.push(id);
  const trie = new TokenTrie(bytes, (id) => kind[id] === 0);
  index = { kind, bytes, text, specials, trie };
  indexes.set(tok, index);
  return index;
}

/**
 * Keeps one sequence's output inside a grammar and makes sure it ends complete: a token is
 * allowed only if the shortest completion after it still fits in the remaining token budget,
 * so the output is steered to finish in time.
 */
export class GrammarConstraint implements TokenConstraint {
  private state: number;
  private budget = Infinity;
  /** Matcher work spent choosing the current token, against MAX_TOKEN_WORK. */
  private spent = 0;

  constructor(private readonly matcher: ByteMatcher, private readonly index: TokenIndex) {
    this.state = matcher.initial;
  }

  /** Tokens the sequence may still generate, this one included (steers to a short finish). */
  setRemaining(tokens: number): void {
    this.budget = tokens;
  }

  /** The matcher state after `id`, or DEAD. */
  next(id: number): number {
    return this.metered(() => {
      const kind = this.index.kind[id];
      if (kind === 0) return this.matcher.walk(this.state, this.index.bytes[id]);
      if (kind === 1) return this.matcher.stepToken(this.state, this.index.text[id]);
      return DEAD;
    });
  }

  /**
   * Runs matcher work for the current token: a matcher budget error, or more than
   * MAX_TOKEN_WORK for one token, fails the request with BAD_REQUEST naming the limit, so one
   * request cannot hold up the others that share the decode loop.
   */
  private metered<T>(f: () => T): T {
    const before = this.matcher.work;
    let out: T;
    try {
      out = f();
    } catch (e) {
      if (e instanceof GrammarError) throw new RequestError("BAD_REQUEST", e.message);
      throw e;
    }
    this.spent += this.matcher.work - before;
    if (this.spent > MAX_TOKEN_WORK) {
      throw new RequestError(
        "BAD_REQUEST",
        `grammar matching took more than ${MAX_TOKEN_WORK} work units for one token (limit MAX_TOKEN_WORK)`,
      );
    }
    return out;
  }

  /**
   * Every token allowed next (end tokens aside) when the state is narrow, from the token trie,
   * memoised per matcher state; undefined in wide states (e.g. inside a string), where the
   * sampler checks its best candidates one by one instead.
   */
  candidates(): number[] | undefined {
    const cache = listCache(this.index, this.matcher);
    let list = cache.get(this.state);
    if (list === undefined) {
      list = this.metered(() => {
        const found = this.matcher.isWide(this.state)
          ? null
          : this.index.trie.allowed(this.matcher, this.state, CANDIDATE_LIMIT) ?? null;
        if (found) {
          for (const id of this.index.specials) {
            if (this.matcher.stepToken(this.state, this.index.text[id]) !== DEAD) found.push(id);
          }
        }
        return found;
      });
      if (cache.size >= LIST_CACHE_STATES) cache.clear();
      cache.set(this.state, list);
    }
    if (list === null) return undefined;
    // The budget rule still applies (rarely binding: only near max_tokens).
    return this.budget === Infinity ? list : list.filter((id) => this.allows(id));
  }

  allows(id: number): boolean {
    const next = this.next(id);
    if (next === DEAD) return false;
    // After this token, budget - 1 tokens remain: enough for the shortest completion (one
    // token per byte suffices, every byte has a token) plus an end token. Some token always
    // qualifies while that holds now: the next byte of the shortest completion.
    const after = this.matcher.minRemaining(next);
    if (after <= this.budget - 2) return true;
    // A budget too small from the start: at least move toward the end.
    const now = this.matcher.minRemaining(this.state);
    return now > this.budget - 1 && after < now;
  }

  canEnd(): boolean {
    return this.matcher.canEnd(this.state);
  }

  accept(id: number): void {
    const next = this.next(id);
    if (next === DEAD) throw new Error(`token ${id} does not fit the grammar here`);
    this.state = next;
    this.spent = 0; // the next token's choice starts its own budget
  }

  isComplete(): boolean {
    return this.matcher.isComplete(this.state);
  }

  /** Whether the output so far is a complete match. */
  get complete(): boolean {
    return this.matcher.canEnd(this.state);
  }
}
