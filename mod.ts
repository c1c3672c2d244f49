/**
 * Bonsai edge runtime: run PrismML's Bonsai 1-bit language models (Qwen3 architecture, GGUF
 * Q1_0 / Q2_0 weights) on small CPUs, with a deterministic, bounded-memory decode loop.
 *
 * ```ts
 * import { Model, Scheduler } from "./mod.ts";
 * const model = await Model.load("bonsai-1.7b.gguf");
 * const scheduler = new Scheduler(model, { contextSize: 2048, parallel: 4 });
 * for await (const ev of scheduler.submit({ prompt: "Which way is north?", maxTokens: 64 })) {
 *   if (ev.type === "token") console.log(ev.text);
 * }
 * model.close();
 * ```
 * @module
 */
export { Model, type LoadOptions } from "./runtime/model.ts";
export {
  type ChatMessage,
  type FinishReason,
  type GenerationEvent,
  type GenerationRequest,
  type GenerationStats,
  RequestError,
  type SamplingOptions,
  type TokenConstraint,
  type TokenVocabulary,
  type ToolCall,
  type ToolChoice,
  type ToolDefinition,
} from "./runtime/request.ts";
export { Scheduler, type SchedulerOptions } from "./runtime/scheduler.ts";
export { promptTokens, Sequence } from "./runtime/sequence.ts";
export { type BatchRow, Forward } from "./runtime/forward.ts";
export { ModelConfigError, type Qwen3Config, qwen3ConfigFromGguf, type RopeScaling } from "./runtime/config.ts";
export { GgufError, type GgufFile, type GgufTensorInfo, type GgufValue, parseGguf, readGguf } from "./runtime/gguf.ts";
export { GgufWriter } from "./runtime/gguf_writer.ts";
export { FORMATS, GgmlType, type WeightFormat } from "./runtime/ggml_types.ts";
export { Tokenizer, type TokenizerSpec, tokenizerSpecFromMetadata } from "./runtime/tokenizer.ts";
export { StreamDecoder } from "./runtime/utf8_stream.ts";
export { type ChatOptions, encodeChat, renderChat } from "./runtime/chat.ts";
export { DEFAULT_SAMPLING, type ResolvedSampling, Sampler } from "./runtime/sampler.ts";
export { KvCache, KvCacheFullError } from "./runtime/kv_cache.ts";
export { slideKv } from "./runtime/kv_shift.ts";
export { estimateMemory, type MemoryEstimate, type ServingShape } from "./runtime/memory.ts";
export { Rng } from "./runtime/rng.ts";
export { Kernels } from "./kernels/ffi.ts";
export { serveStdin, type StdinAdapterOptions } from "./adapters/stdin.ts";
export { parseWireRequest, type WireRequest } from "./adapters/request.ts";
export { type JsonSchemaOptions, jsonSchemaToGrammar, SchemaError } from "./runtime/constrain/json_schema.ts";
export { parseGbnf } from "./runtime/constrain/gbnf.ts";
export { type Grammar, GrammarError } from "./runtime/constrain/grammar.ts";
export { ByteMatcher } from "./runtime/constrain/matcher.ts";
export { GrammarConstraint, tokenIndex } from "./runtime/constrain/token_constraint.ts";
export { requestConstraint } from "./runtime/constrain/request.ts";
export { parseToolCalls } from "./runtime/constrain/tools.ts";
