/**
 * Text-to-pieces stage of the Qwen2/Qwen3 byte-level BPE tokenizer: the "qwen2" pre-tokenizer
 * split and the GPT-2 byte-to-unicode mapping.
 *
 * @module
 */

/**
 * Unicode White_Space, the class `\s` means in the Rust/Oniguruma regex engines the reference
 * tokenizer was trained with. JavaScript's `\s` differs: it adds U+FEFF and lacks U+0085, so the
 * class is spelled out to cut text exactly where the model's own tokenizer would.
 */
const WS = "\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";

/**
 * The qwen2 split pattern (tokenizer.json `pre_tokenizer`, llama.cpp `LLAMA_VOCAB_PRE_TYPE_QWEN2`),
 * with the case-insensitive `(?i:'s|'t|'re|'ve|'m|'ll|'d)` group expanded for JavaScript.
 */
export const QWEN2_SPLIT_PATTERN = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])" +
  "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+" +
  "|\\p{N}" +
  `| ?[^${WS}\\p{L}\\p{N}]+[\\r\\n]*` +
  `|[${WS}]*[\\r\\n]+` +
  `|[${WS}]+(?![^${WS}])` +
  `|[${WS}]+`;

const splitRegex = new RegExp(QWEN2_SPLIT_PATTERN, "gu");

/**
 * Splits text into pre-tokens with the qwen2 pattern. Every character lands in exactly one piece
 * (the alternatives cover all input), so joining the result gives back `text`.
 */
export function pretokenize(text: string): string[] {
  return text.match(splitRegex) ?? [];
}

/**
 * GPT-2's byte-to-unicode table: printable Latin-1 bytes map to themselves, the other 68 bytes to
 * U+0100 onwards, so every byte becomes one visible character of a token's text.
 */
export function bytesToUnicode(): string[] {
  const table = new Array<string>(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) ||
      (b >= 0xae && b <= 0xff);
    table[b] = String.fromCharCode(printable ? b : 256 + extra++);
  }
  return table;
}

/** Inverse of {@link bytesToUnicode}: the byte of each of its 256 characters, keyed by char code. */
export function unicodeToBytes(): Map<number, number> {
  const inverse = new Map<number, number>();
  bytesToUnicode().forEach((ch, b) => inverse.set(ch.charCodeAt(0), b));
  return inverse;
}
