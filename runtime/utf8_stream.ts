/**
 * Incremental detokenization for streaming output.
 *
 * @module
 */

import type { Tokenizer } from "./tokenizer.ts";

/**
 * Incremental detokenizer: push ids, get back only complete UTF-8 text. A multi-byte character
 * split across tokens (common for emoji and CJK) is held until its last byte arrives, so the
 * concatenated output equals `tok.decode(allIds)`.
 */
export class StreamDecoder {
  readonly #tok: Tokenizer;
  readonly #skipSpecial: boolean;
  // A streaming TextDecoder keeps an incomplete trailing sequence for the next call.
  #decoder = new TextDecoder("utf-8", { ignoreBOM: true });

  /** @param opts.skipSpecial drop CONTROL tokens, as {@link Tokenizer.decode} does. */
  constructor(tok: Tokenizer, opts: { skipSpecial?: boolean } = {}) {
    this.#tok = tok;
    this.#skipSpecial = opts.skipSpecial ?? false;
  }

  /** Adds one token; returns the text that became complete (possibly ""). */
  push(id: number): string {
    return this.#decoder.decode(this.#tok.tokenBytes(id, this.#skipSpecial), {
      stream: true,
    });
  }

  /** Ends the stream: returns held bytes of an unfinished character as U+FFFD, then resets. */
  flush(): string {
    const rest = this.#decoder.decode();
    this.#decoder = new TextDecoder("utf-8", { ignoreBOM: true });
    return rest;
  }
}
