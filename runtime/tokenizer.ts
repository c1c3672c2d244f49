/**
 * Byte-level BPE tokenizer for Qwen2/Qwen3 vocabularies (GGUF `tokenizer.ggml.model = gpt2`,
 * `pre = qwen2`), built from a plain {@link TokenizerSpec}.
 *
 * Encoding follows the Hugging Face `tokenizer.json` these models ship:
 * 1. special-token texts are cut out first (only when `parseSpecial` is set);
 * 2. each remaining segment is NFC-normalized (the Qwen3 tokenizer.json declares an NFC
 *    normalizer, so "e\u0301" and "é" tokenize alike);
 * 3. the qwen2 regex splits it into pre-tokens;
 * 4. each pre-token's UTF-8 bytes start as one token per byte (GPT-2 byte-to-unicode) and are
 *    merged by BPE, lowest merge rank first, leftmost first among equal ranks.
 *
 * @module
 */

import { bytesToUnicode, pretokenize, unicodeToBytes } from "./pretokenize.ts";
import { assertSupportedTokenizer, type TokenizerSpec, TokenType } from "./tokenizer_spec.ts";

export { tokenizerSpecFromMetadata, TokenType } from "./tokenizer_spec.ts";
export type { TokenizerSpec } from "./tokenizer_spec.ts";

/** Pre-tokens cached with their token ids before the cache is dropped and refilled. */
const WORD_CACHE_LIMIT = 32768;
/** Longer pre-tokens (whitespace runs, long words) are not cached. */
const WORD_CACHE_MAX_CHARS = 48;
/** Heap keys pack `rank * 2^32 + position`: lower rank first, then leftmost. */
const POS_SPAN = 2 ** 32;

const utf8Encoder = new TextEncoder();

/** Byte-level BPE tokenizer (encode, decode, special-token lookup). */
export class Tokenizer {
  /** Number of token ids (rows of the embedding). */
  readonly vocabSize: number;
  readonly eosTokenId: number;
  readonly bosTokenId: number | undefined;
  /** Whether the file asks for a BOS token in front of a prompt; {@link encode} never adds one. */
  readonly addBosToken: boolean;
  /** The Jinja chat template from the file, if any. */
  readonly chatTemplate: string | undefined;

  readonly #tokens: string[];
  readonly #types: number[];
  readonly #idOf = new Map<string, number>();
  /** Token id of each single byte, the starting point of BPE. */
  readonly #byteToken = new Int32Array(256);
  /** `left * vocabSize + right` -> merge rank. */
  readonly #pairRank = new Map<number, number>();
  /** Token id produced by the merge of each rank; -1 until first used (saves constructor time). */
  readonly #mergeResult: Int32Array;
  readonly #merges: string[];
  /** Matches any CONTROL or USER_DEFINED token text, longest first; undefined when there are none. */
  readonly #specialRegex: RegExp | undefined;
  readonly #endIds = new Set<number>();
  readonly #wordCache = new Map<string, number[]>();
  readonly #tokenBytes: (Uint8Array | undefined)[];
  readonly #charToByte = unicodeToBytes();

  /** Builds the lookup tables; throws a clear Error on an inconsistent spec. */
  constructor(spec: TokenizerSpec) {
    assertSupportedTokenizer(spec.model, spec.pre);
    const { tokens, tokenTypes, merges } = spec;
    if (!Array.isArray(tokens) || tokens.length === 0) {
      throw new Error("tokenizer spec has no tokens");
    }
    if (!Array.isArray(tokenTypes) || tokenTypes.length !== tokens.length) {
      throw new Error(
        `tokenizer spec has ${tokenTypes?.length} token types for ${tokens.length} tokens`,
      );
    }
    if (!Array.isArray(merges)) {
      throw new Error("tokenizer spec has no merges array");
    }
    this.vocabSize = tokens.length;
    this.#tokens = tokens;
    this.#types = tokenTypes;
    this.#tokenBytes = new Array(tokens.length);
    this.eosTokenId = this.#checkId(spec.eosTokenId, "eosTokenId");
    this.bosTokenId = spec.bosTokenId === undefined ? undefined : this.#checkId(spec.bosTokenId, "bosTokenId");
    this.addBosToken = spec.addBosToken ?? false;
    this.chatTemplate = spec.chatTemplate;

    for (let id = 0; id < tokens.length; id++) {
      if (!this.#idOf.has(tokens[id])) this.#idOf.set(tokens[id], id);
    }
    const byteChars = bytesToUnicode();
    for (let b = 0; b < 256; b++) {
      const id = this.#idOf.get(byteChars[b]);
      if (id === undefined) {
        throw new Error(
          `vocabulary has no token for byte 0x${b.toString(16)} ("${byteChars[b]}"): not a byte-level BPE vocabulary`,
        );
      }
      this.#byteToken[b] = id;
    }

    this.#mergeResult = new Int32Array(merges.length).fill(-1);
    const vocab = this.vocabSize;
    for (let rank = 0; rank < merges.length; rank++) {
      const merge = merges[rank];
      // Byte-level token texts never contain a space, so the first space is the separator.
      const cut = typeof merge === "string" ? merge.indexOf(" ") : -1;
      const left = cut > 0 ? this.#idOf.get(merge.slice(0, cut)) : undefined;
      const right = cut > 0 ? this.#idOf.get(merge.slice(cut + 1)) : undefined;
      if (left === undefined || right === undefined) {
        throw new Error(
          `merges[${rank}] = ${JSON.stringify(merge)} is not "left right" over tokens of the vocabulary`,
        );
      }
      const key = left * vocab + right;
      // A repeated pair keeps its first (highest-priority) rank.
      if (!this.#pairRank.has(key)) this.#pairRank.set(key, rank);
    }
    this.#merges = merges;

    const specials: string[] = [];
    for (let id = 0; id < tokens.length; id++) {
      const type = tokenTypes[id];
      if (
        (type === TokenType.CONTROL || type === TokenType.USER_DEFINED) &&
        tokens[id] !== ""
      ) {
        if (this.#idOf.get(tokens[id]) === id) specials.push(tokens[id]);
      }
    }
    specials.sort((a, b) => b.length - a.length);
    this.#specialRegex = specials.length === 0 ? undefined : new RegExp(
      specials.map((s) => s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")).join(
        "|",
      ),
      "g",
    );

    this.#endIds.add(this.eosTokenId);
    for (const text of ["<|im_end|>", "<|endoftext|>"]) {
      const id = this.#idOf.get(text);
      if (id !== undefined) this.#endIds.add(id);
    }
  }

  /**
   * The checks the constructor leaves for later use (it stays fast for tests and tools), run by
   * Model.load so that a broken vocabulary fails at load rather than in every request: every
   * token type is known, the 256 byte tokens are NORMAL (so any text encodes), every merge
   * makes a token of the vocabulary, and the ChatML markup tokens are special tokens. Throws an
   * Error naming the key.
   */
  validate(): void {
    for (let id = 0; id < this.vocabSize; id++) {
      const type = this.#types[id];
      if (!Number.isInteger(type) || type < 0 || type > TokenType.BYTE) {
        throw new Error(`tokenizer.ggml.token_type[${id}] = ${type} is not a known token type (0..6)`);
      }
    }
    for (let b = 0; b < 256; b++) {
      const id = this.#byteToken[b];
      if (this.#types[id] !== TokenType.NORMAL) {
        throw new Error(
          `tokenizer.ggml.token_type[${id}] (the token for byte 0x${b.toString(16)}) is ${this.#types[id]}, ` +
            `not NORMAL (1): text could not be encoded`,
        );
      }
    }
    for (let rank = 0; rank < this.#merges.length; rank++) {
      if (this.#mergeResult[rank] < 0) this.#resolveMerge(rank);
    }
    for (const text of ["<|im_start|>", "<|im_end|>"]) {
      const id = this.#idOf.get(text);
      const type = id === undefined ? undefined : this.#types[id];
      if (type !== TokenType.CONTROL && type !== TokenType.USER_DEFINED) {
        throw new Error(
          `tokenizer.ggml.tokens has no special token ${text}` +
            (id === undefined ? "" : ` (token ${id} has type ${type})`) + ": not a ChatML (Qwen3) vocabulary",
        );
      }
    }
  }

  /**
   * Text to token ids. Never adds BOS/EOS.
   * @param opts.parseSpecial when true (default false!) CONTROL and USER_DEFINED token texts in
   *   `text` become their ids; when false they are tokenized as plain text, so untrusted input
   *   (e.g. from a device) cannot inject chat-control tokens.
   */
  encode(text: string, opts: { parseSpecial?: boolean } = {}): number[] {
    if (typeof text !== "string") {
      throw new TypeError(`encode expects a string, got ${typeof text}`);
    }
    const out: number[] = [];
    const regex = this.#specialRegex;
    if (!opts.parseSpecial || regex === undefined) {
      this.#encodePlain(text, out);
      return out;
    }
    regex.lastIndex = 0;
    let start = 0;
    for (let m = regex.exec(text); m !== null; m = regex.exec(text)) {
      if (m.index > start) this.#encodePlain(text.slice(start, m.index), out);
      out.push(this.#idOf.get(m[0])!);
      start = m.index + m[0].length;
    }
    if (start < text.length) this.#encodePlain(text.slice(start), out);
    return out;
  }

  /**
   * Token ids to text. Lossy only where the bytes are not valid UTF-8 (U+FFFD).
   * @param opts.skipSpecial drop CONTROL tokens (e.g. `<|im_end|>`); USER_DEFINED ones such as
   *   `<think>` are kept, as Hugging Face's `skip_special_tokens` does.
   */
  decode(ids: ArrayLike<number>, opts: { skipSpecial?: boolean } = {}): string {
    return new TextDecoder("utf-8", { ignoreBOM: true }).decode(
      this.#collectBytes(ids, opts.skipSpecial ?? false),
    );
  }

  /** Token ids to the raw bytes they stand for (special tokens as their UTF-8 text). */
  decodeBytes(ids: ArrayLike<number>): Uint8Array {
    return this.#collectBytes(ids, false);
  }

  /**
   * The bytes one token stands for; empty for CONTROL tokens when `skipSpecial`. The returned
   * array is shared: do not modify it.
   */
  tokenBytes(id: number, skipSpecial = false): Uint8Array {
    this.#checkId(id, "token id");
    if (skipSpecial && this.#types[id] === TokenType.CONTROL) return EMPTY;
    return this.#tokenBytes[id] ??= this.#computeTokenBytes(id);
  }

  /** Exact token text lookup, e.g. `"<|im_end|>"` (normal tokens in byte-to-unicode form, e.g. `"Ġthe"`). */
  tokenId(text: string): number | undefined {
    return this.#idOf.get(text);
  }

  /** The token's text as stored in the vocabulary. */
  tokenText(id: number): string {
    return this.#tokens[this.#checkId(id, "token id")];
  }

  /** The token's {@link TokenType}. */
  tokenType(id: number): number {
    return this.#types[this.#checkId(id, "token id")];
  }

  /** Tokens that end a generation: eos, `<|im_end|>`, `<|endoftext|>` when present. */
  isEndOfGeneration(id: number): boolean {
    return this.#endIds.has(id);
  }

  #checkId(id: number, what: string): number {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new RangeError(
        `${what} ${id} is outside the vocabulary [0, ${this.vocabSize})`,
      );
    }
    return id;
  }

  #collectBytes(ids: ArrayLike<number>, skipSpecial: boolean): Uint8Array {
    const parts: Uint8Array[] = [];
    let total = 0;
    for (let i = 0; i < ids.length; i++) {
      const bytes = this.tokenBytes(ids[i], skipSpecial);
      parts.push(bytes);
      total += bytes.length;
    }
    const out = new Uint8Array(total);
    let at = 0;
    for (const part of parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }

  #computeTokenBytes(id: number): Uint8Array {
    const text = this.#tokens[id];
    const type = this.#types[id];
    if (type === TokenType.CONTROL || type === TokenType.USER_DEFINED) {
      return utf8Encoder.encode(text);
    }
    if (type !== TokenType.NORMAL) return EMPTY; // UNUSED/UNKNOWN/BYTE have no text in a BPE vocabulary
    const out = new Uint8Array(text.length);
    let n = 0;
    for (let i = 0; i < text.length; i++) {
      const b = this.#charToByte.get(text.charCodeAt(i));
      if (b !== undefined) {
        out[n++] = b;
      } else {
        // Not a byte-level character (a malformed vocabulary): keep the text itself.
        return utf8Encoder.encode(text);
      }
    }
    return out.subarray(0, n);
  }

  #encodePlain(text: string, out: number[]): void {
    if (text.length === 0) return;
    for (const piece of pretokenize(text.normalize("NFC"))) {
      const cached = this.#wordCache.get(piece);
      if (cached !== undefined) {
        for (const id of cached) out.push(id);
        continue;
      }
      const ids = this.#bpe(utf8Encoder.encode(piece));
      if (piece.length <= WORD_CACHE_MAX_CHARS) {
        if (this.#wordCache.size >= WORD_CACHE_LIMIT) this.#wordCache.clear();
        this.#wordCache.set(piece, ids);
      }
      for (const id of ids) out.push(id);
    }
  }

  #resolveMerge(rank: number): number {
    const merge = this.#merges[rank];
    const merged = this.#idOf.get(merge.replace(" ", ""));
    if (merged === undefined) {
      throw new Error(
        `tokenizer.ggml.merges[${rank}] = ${JSON.stringify(merge)} makes a token that is not in the vocabulary`,
      );
    }
    return this.#mergeResult[rank] = merged;
  }

  /** BPE over one pre-token: doubly linked symbols plus a min-heap of candidate merges. */
  #bpe(bytes: Uint8Array): number[] {
    const n = bytes.length;
    if (n === 1) return [this.#byteToken[bytes[0]]];
    const ids = new Int32Array(n);
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      ids[i] = this.#byteToken[bytes[i]];
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    const heap: number[] = [];
    const vocab = this.vocabSize;
    const pairRank = this.#pairRank;
    const pushPair = (at: number) => {
      const right = next[at];
      if (right < 0) return;
      const rank = pairRank.get(ids[at] * vocab + ids[right]);
      if (rank !== undefined) heapPush(heap, rank * POS_SPAN + at);
    };
    for (let i = 0; i + 1 < n; i++) pushPair(i);
    const alive = new Uint8Array(n).fill(1);
    while (heap.length > 0) {
      const key = heapPop(heap);
      const rank = Math.floor(key / POS_SPAN);
      const at = key - rank * POS_SPAN;
      const right = next[at];
      // Entries go stale when a neighbour merged first: re-check the pair is still this merge.
      if (
        !alive[at] || right < 0 ||
        pairRank.get(ids[at] * vocab + ids[right]) !== rank
      ) continue;
      ids[at] = this.#mergeResult[rank] >= 0 ? this.#mergeResult[rank] : this.#resolveMerge(rank);
      alive[right] = 0;
      next[at] = next[right];
      if (next[at] >= 0) prev[next[at]] = at;
      if (prev[at] >= 0) pushPair(prev[at]);
      pushPair(at);
    }
    const result: number[] = [];
    for (let i = 0; i >= 0; i = next[i]) result.push(ids[i]);
    return result;
  }
}

const EMPTY = new Uint8Array(0);

function heapPush(heap: number[], key: number): void {
  let i = heap.length;
  heap.push(key);
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (heap[parent] <= key) break;
    heap[i] = heap[parent];
    i = parent;
  }
  heap[i] = key;
}

function heapPop(heap: number[]): number {
  const top = heap[0];
  const last = heap.pop()!;
  const n = heap.length;
  if (n > 0) {
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && heap[child + 1] < heap[child]) child++;
      if (heap[child] >= last) break;
      heap[i] = heap[child];
      i = child;
    }
    heap[i] = last;
  }
  return top;
}
