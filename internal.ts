/**
 * The runtime's internals, for tools, benchmarks and tests: the forward pass, KV cache, sampler,
 * kernel binding, GGUF reader and writer, tokenizer data, constraint machinery and memory
 * estimate. No stability promise: the public API is `mod.ts`.
 * @module
 */
export { type BatchRow, Forward } from "./runtime/forward.ts";
export { promptTokens, Sequence } from "./runtime/sequence.ts";
export { KvCache, KvCacheFullError } from "./runtime/kv_cache.ts";
export { slideKv } from "./runtime/kv_shift.ts";
export { DEFAULT_SAMPLING, type ResolvedSampling, Sampler } from "./runtime/sampler.ts";
export { Rng } from "./runtime/rng.ts";
export { StreamDecoder } from "./runtime/utf8_stream.ts";
export { type TokenizerSpec, tokenizerSpecFromMetadata } from "./runtime/tokenizer.ts";
export { type Qwen3Config, qwen3ConfigFromGguf, type RopeScaling } from "./runtime/config.ts";
export { type GgufFile, type GgufTensorInfo, type GgufValue, parseGguf, readGguf } from "./runtime/gguf.ts";
export { GgufWriter } from "./runtime/gguf_writer.ts";
export { FORMATS, GgmlType, type WeightFormat } from "./runtime/ggml_types.ts";
export { estimateMemory, type MemoryEstimate, type ServingShape } from "./runtime/memory.ts";
export { ByteMatcher } from "./runtime/constrain/matcher.ts";
export { GrammarConstraint, tokenIndex } from "./runtime/constrain/token_constraint.ts";
export { requestConstraint } from "./runtime/constrain/request.ts";
export { Kernels, type KvTypeName } from "./kernels/ffi.ts";
