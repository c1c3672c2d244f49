/**
 * Bonsai edge runtime: run PrismML's Bonsai 1-bit language models (Qwen3 architecture, GGUF
 * Q1_0 / Q2_0 weights) on small CPUs, with a deterministic, bounded-memory decode loop.
 *
 * The public API is small on purpose: load a {@link Model}, make a {@link Scheduler} (continuous
 * batching over a fixed number of KV slots), submit {@link GenerationRequest}s and read their
 * {@link GenerationEvent}s. Structured output and tool calls are request fields; the adapters
 * (stdin JSON lines, MQTT) are library calls too. Everything else (the forward pass, KV cache,
 * kernels, GGUF reader and writer...) is in `internal.ts`, with no stability promise.
 *
 * The examples below run as tests (`deno test --doc mod.ts`, with `BONSAI_MODEL` naming a model
 * file; test/examples_test.ts does that on a generated model).
 *
 * Generate text, streaming it:
 *
 * ```ts
 * import { Model, Scheduler } from "./mod.ts";
 *
 * const model = await Model.load(Deno.env.get("BONSAI_MODEL") ?? "bonsai-1.7b.gguf");
 * const scheduler = new Scheduler(model, { contextSize: 512, parallel: 2 });
 * let text = "";
 * for await (const ev of scheduler.submit({ prompt: "Which way is north?", maxTokens: 16 })) {
 *   if (ev.type === "token") text += ev.text; // streamed as it is generated
 *   else console.log(ev.finishReason, ev.stats.completionTokens, "tokens:", ev.text === text);
 * }
 * model.close();
 * ```
 *
 * Structured output: the answer is JSON valid against a schema, enforced while decoding; the same
 * seed gives the same answer:
 *
 * ```ts
 * import { Model, RequestError, Scheduler } from "./mod.ts";
 *
 * const model = await Model.load(Deno.env.get("BONSAI_MODEL") ?? "bonsai-1.7b.gguf");
 * const scheduler = new Scheduler(model, { contextSize: 512 });
 * const schema = {
 *   type: "object",
 *   properties: { joint: { type: "integer" }, open: { type: "boolean" } },
 *   required: ["joint", "open"],
 * };
 * for await (const ev of scheduler.submit({ prompt: "Gripper state?", jsonSchema: schema, maxTokens: 48, sampling: { seed: 7 } })) {
 *   if (ev.type === "done") console.log(JSON.parse(ev.text));
 * }
 * // A bad request fails with a specific code before it takes a slot.
 * try {
 *   await Array.fromAsync(scheduler.submit({ prompt: "x", grammar: "root ::= missing" }));
 *   throw new Error("not refused");
 * } catch (e) {
 *   if (!(e instanceof RequestError) || e.code !== "BAD_REQUEST") throw e;
 * }
 * model.close();
 * ```
 *
 * The JSON-lines adapter as a library call (what `bonsai run --json` does over stdin):
 *
 * ```ts
 * import { Model, Scheduler, serveStdin } from "./mod.ts";
 *
 * const model = await Model.load(Deno.env.get("BONSAI_MODEL") ?? "bonsai-1.7b.gguf");
 * const scheduler = new Scheduler(model, { contextSize: 512 });
 * const lines = ['{"id": 1, "prompt": "Battery level?", "max_tokens": 8}\n', '{"id": 2, "prompt": 5}\n'];
 * const events: string[] = [];
 * await serveStdin(scheduler, {
 *   json: true,
 *   input: ReadableStream.from(lines.map((l) => new TextEncoder().encode(l))),
 *   write: (line) => events.push(line),
 * });
 * console.log(events.filter((e) => !e.includes('"token"')).join("")); // a done event, a BAD_REQUEST error
 * model.close();
 * ```
 *
 * The MQTT service (needs a broker; see the README for topics and payloads):
 *
 * ```ts ignore
 * import { Model, MqttService, Scheduler } from "./mod.ts";
 *
 * const model = await Model.load("bonsai-1.7b.gguf");
 * const service = new MqttService(new Scheduler(model, { parallel: 2 }), { url: "mqtt://127.0.0.1:1883", node: "arm1" });
 * await service.start(); // answers requests on bonsai/arm1/request until service.stop()
 * ```
 * @module
 */
export { type LoadOptions, Model } from "./runtime/model.ts";
export { Scheduler, type SchedulerOptions } from "./runtime/scheduler.ts";
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
export { Tokenizer } from "./runtime/tokenizer.ts";
export { type ChatOptions, encodeChat, renderChat } from "./runtime/chat.ts";
export { GgufError } from "./runtime/gguf.ts";
export { ModelConfigError } from "./runtime/config.ts";
export { type JsonSchemaOptions, jsonSchemaToGrammar, SchemaError } from "./runtime/constrain/json_schema.ts";
export { parseGbnf } from "./runtime/constrain/gbnf.ts";
export { type Grammar, GrammarError } from "./runtime/constrain/grammar.ts";
export { parseToolCalls } from "./runtime/constrain/tools.ts";
export { serveStdin, type StdinAdapterOptions, type StdinSummary } from "./adapters/stdin.ts";
export { MqttService, type MqttServiceOptions, type MqttServiceStats } from "./adapters/mqtt/service.ts";
export { parseWireRequest, type WireRequest } from "./adapters/request.ts";
export { createHttpHandler, type HttpOptions, type HttpServer, serveHttp } from "./adapters/http/server.ts";
