/**
 * The tokenizer description a GGUF file carries (`tokenizer.ggml.*`), checked and in plain form.
 *
 * @module
 */

/** Token types as llama.cpp writes them to `tokenizer.ggml.token_type`. */
export const TokenType = {
  NORMAL: 1,
  UNKNOWN: 2,
  CONTROL: 3,
  USER_DEFINED: 4,
  UNUSED: 5,
  BYTE: 6,
} as const;

/** Everything the tokenizer needs, in the form the GGUF `tokenizer.ggml.*` keys store it. */
export interface TokenizerSpec {
  /** Token texts by id; normal tokens are GPT-2 byte-to-unicode encoded. */
  tokens: string[];
  /** One {@link TokenType} per token. */
  tokenTypes: number[];
  /** BPE merges `"left right"`, highest priority first. */
  merges: string[];
  eosTokenId: number;
  paddingTokenId?: number;
  bosTokenId?: number;
  /** `tokenizer.ggml.model`; only "gpt2" (byte-level BPE) is supported. */
  model?: string;
  /** `tokenizer.ggml.pre`; only "qwen2" is supported. */
  pre?: string;
  addBosToken?: boolean;
  chatTemplate?: string;
}

/** Tokenizer models this runtime implements. */
export const SUPPORTED_MODELS: readonly string[] = ["gpt2"];
/** Pre-tokenizers this runtime implements. */
export const SUPPORTED_PRE: readonly string[] = ["qwen2"];

/** Throws unless `model`/`pre` name a tokenizer this runtime implements. */
export function assertSupportedTokenizer(
  model: string | undefined,
  pre: string | undefined,
): void {
  if (model !== undefined && !SUPPORTED_MODELS.includes(model)) {
    throw new Error(
      `unsupported tokenizer model "${model}" (tokenizer.ggml.model): only ${
        SUPPORTED_MODELS.join(", ")
      } byte-level BPE is supported`,
    );
  }
  if (pre !== undefined && !SUPPORTED_PRE.includes(pre)) {
    throw new Error(
      `unsupported pre-tokenizer "${pre}" (tokenizer.ggml.pre): only ${SUPPORTED_PRE.join(", ")} is supported`,
    );
  }
}

/**
 * Builds a spec from a GGUF metadata map (keys tokenizer.ggml.model/pre/tokens/token_type/merges/
 * eos_token_id/padding_token_id/bos_token_id/add_bos_token, tokenizer.chat_template).
 * Integers may be numbers or bigints, integer arrays plain or typed arrays.
 * Throws an Error naming the missing or ill-typed key, or the unsupported tokenizer model/pre
 * (only gpt2 + qwen2 are supported now).
 */
export function tokenizerSpecFromMetadata(
  meta: Map<string, unknown>,
): TokenizerSpec {
  const model = requiredString(meta, "tokenizer.ggml.model");
  const pre = requiredString(meta, "tokenizer.ggml.pre");
  assertSupportedTokenizer(model, pre);
  const tokens = stringArray(meta, "tokenizer.ggml.tokens");
  const tokenTypes = integerArray(meta, "tokenizer.ggml.token_type");
  if (tokenTypes.length !== tokens.length) {
    throw new Error(
      `tokenizer.ggml.token_type has ${tokenTypes.length} entries but tokenizer.ggml.tokens has ${tokens.length}`,
    );
  }
  const spec: TokenizerSpec = {
    tokens,
    tokenTypes,
    merges: stringArray(meta, "tokenizer.ggml.merges"),
    eosTokenId: tokenIdKey(
      meta,
      "tokenizer.ggml.eos_token_id",
      tokens.length,
      true,
    )!,
    paddingTokenId: tokenIdKey(
      meta,
      "tokenizer.ggml.padding_token_id",
      tokens.length,
      false,
    ),
    bosTokenId: tokenIdKey(
      meta,
      "tokenizer.ggml.bos_token_id",
      tokens.length,
      false,
    ),
    model,
    pre,
  };
  const addBos = meta.get("tokenizer.ggml.add_bos_token");
  if (addBos !== undefined) {
    if (typeof addBos !== "boolean") {
      throw new Error(
        `tokenizer.ggml.add_bos_token must be a boolean, got ${describe(addBos)}`,
      );
    }
    spec.addBosToken = addBos;
  }
  const template = meta.get("tokenizer.chat_template");
  if (template !== undefined) {
    if (typeof template !== "string") {
      throw new Error(
        `tokenizer.chat_template must be a string, got ${describe(template)}`,
      );
    }
    spec.chatTemplate = template;
  }
  return spec;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (ArrayBuffer.isView(value)) return value.constructor.name;
  return typeof value;
}

function requiredString(meta: Map<string, unknown>, key: string): string {
  const value = meta.get(key);
  if (value === undefined) throw new Error(`GGUF metadata is missing ${key}`);
  if (typeof value !== "string") {
    throw new Error(`${key} must be a string, got ${describe(value)}`);
  }
  return value;
}

function stringArray(meta: Map<string, unknown>, key: string): string[] {
  const value = meta.get(key);
  if (value === undefined) throw new Error(`GGUF metadata is missing ${key}`);
  if (!Array.isArray(value)) {
    throw new Error(
      `${key} must be an array of strings, got ${describe(value)}`,
    );
  }
  for (let i = 0; i < value.length; i++) {
    if (typeof value[i] !== "string") {
      throw new Error(
        `${key}[${i}] must be a string, got ${describe(value[i])}`,
      );
    }
  }
  return value as string[];
}

function toInteger(value: unknown): number | undefined {
  if (typeof value === "bigint") value = Number(value);
  return typeof value === "number" && Number.isSafeInteger(value) ? value : undefined;
}

function integerArray(meta: Map<string, unknown>, key: string): number[] {
  const value = meta.get(key);
  if (value === undefined) throw new Error(`GGUF metadata is missing ${key}`);
  if (
    !Array.isArray(value) && !(ArrayBuffer.isView(value) && "length" in value)
  ) {
    throw new Error(
      `${key} must be an array of integers, got ${describe(value)}`,
    );
  }
  const items = value as ArrayLike<unknown>;
  const out = new Array<number>(items.length);
  for (let i = 0; i < items.length; i++) {
    const n = toInteger(items[i]);
    if (n === undefined) {
      throw new Error(
        `${key}[${i}] must be an integer, got ${describe(items[i])}`,
      );
    }
    out[i] = n;
  }
  return out;
}

function tokenIdKey(
  meta: Map<string, unknown>,
  key: string,
  vocabSize: number,
  required: boolean,
): number | undefined {
  const value = meta.get(key);
  if (value === undefined) {
    if (required) throw new Error(`GGUF metadata is missing ${key}`);
    return undefined;
  }
  const id = toInteger(value);
  if (id === undefined) {
    throw new Error(`${key} must be an integer, got ${describe(value)}`);
  }
  if (id < 0 || id >= vocabSize) {
    throw new Error(
      `${key} = ${id} is outside the vocabulary [0, ${vocabSize})`,
    );
  }
  return id;
}
