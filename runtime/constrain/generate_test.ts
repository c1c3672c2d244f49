/**
 * Structured output end to end on a random-weight model with the real Qwen3 vocabulary (the
 * hardest case: the model knows nothing, so only the constraint makes the output valid).
 */
import assert from "node:assert/strict";
import { tinyModel } from "../../test/fixtures.ts";
import { Model } from "../model.ts";
import { Scheduler } from "../scheduler.ts";
import { type GenerationEvent, type GenerationRequest, RequestError, type ToolDefinition } from "../request.ts";
import { renderChat } from "../chat.ts";
import { TEST_SCHEMAS, validate } from "../../test/json_schema_validator.ts";

let shared: Promise<Model> | undefined;
const model = () => shared ??= tinyModel().then((p) => Model.load(p));

async function run(s: Scheduler, req: GenerationRequest) {
  let done: Extract<GenerationEvent, { type: "done" }> | undefined;
  let streamed = "";
  for await (const ev of s.submit(req)) {
    if (ev.type === "token") streamed += ev.text;
    else done = ev;
  }
  assert.equal(streamed, done!.text);
  return done!;
}

Deno.test({
  name: "json_schema: 30 random-model runs (seeds x temperatures x budgets) all give valid JSON",
  sanitizeResources: false,
  async fn() {
    const s = new Scheduler(await model(), { contextSize: 512, parallel: 3 });
    const jobs: Promise<void>[] = [];
    const schemas = Object.entries(TEST_SCHEMAS);
    for (let i = 0; i < 30; i++) {
      const [name, schema] = schemas[i % schemas.length];
      const temperature = [0, 0.6, 1, 2][i % 4];
      const maxTokens = i % 10 === 1 ? 24 : [24, 60, 120][i % 3];
      jobs.push(
        run(s, {
          prompt: `Give me ${name} as JSON`,
          jsonSchema: schema,
          maxTokens,
          // top_k 0 (sort the whole allowed vocabulary) is slow in wide states: only a few runs.
          sampling: { temperature, seed: i, topK: i % 10 === 1 ? 0 : i % 2 ? 100 : 20, topP: i % 2 ? 0.95 : 1 },
        }).then((done) => {
          const what = `run ${i} (${name}, t=${temperature}, max ${maxTokens}): ${done.text}`;
          assert.equal(done.finishReason, "stop", what);
          assert.ok(done.stats.completionTokens <= maxTokens, what);
          let value: unknown;
          assert.doesNotThrow(() => value = JSON.parse(done.text), what);
          assert.deepEqual(validate(value, schema), [], what);
        }),
      );
    }
    await Promise.all(jobs);
  },
});

Deno.test({
  name: "grammar: a GBNF command grammar constrains a random model",
  sanitizeResources: false,
  async fn() {
    const s = new Scheduler(await model(), { contextSize: 256 });
    const grammar = `root ::= ("move" | "turn") " " ("left" | "right") " " [1-9][0-9]{0,2}`;
    for (let seed = 0; seed < 4; seed++) {
      const done = await run(s, { prompt: "command?", grammar, maxTokens: 12, sampling: { temperature: 1, seed } });
      assert.match(done.text, /^(move|turn) (left|right) [1-9][0-9]{0,2}$/);
      assert.equal(done.finishReason, "stop");
    }
  },
});

const TOOLS: ToolDefinition[] = [
  {
    name: "set_speed",
    description: "Set the wheel speed",
    parameters: {
      type: "object",
      properties: { mps: { type: "number" }, unit: { enum: ["m/s", "km/h"] } },
      required: ["mps"],
    },
  },
  { name: "stop", description: "Stop now" },
];

Deno.test({
  name: "tools: required calls are listed tools with valid arguments, returned parsed",
  sanitizeResources: false,
  async fn() {
    const s = new Scheduler(await model(), { contextSize: 768 });
    for (let seed = 0; seed < 5; seed++) {
      const done = await run(s, {
        prompt: "slow down",
        tools: TOOLS,
        toolChoice: seed === 4 ? { name: "set_speed" } : "required",
        maxTokens: 120,
        sampling: { temperature: 1, seed },
      });
      assert.equal(done.finishReason, "stop", done.text);
      assert.ok(done.toolCalls && done.toolCalls.length >= 1, done.text);
      for (const call of done.toolCalls!) {
        const tool = TOOLS.find((t) => t.name === call.name);
        assert.ok(tool, call.name);
        if (seed === 4) assert.equal(call.name, "set_speed");
        assert.deepEqual(validate(call.arguments, tool!.parameters ?? { type: "object" }), [], done.text);
      }
      assert.match(done.text, /^<tool_call>\n\{"name": "(set_speed|stop)", "arguments": /);
    }
    // auto: free text unless the model opens a call; the done event still carries toolCalls.
    const auto = await run(s, { prompt: "hi", tools: TOOLS, maxTokens: 8, sampling: { temperature: 0 } });
    assert.ok(Array.isArray(auto.toolCalls));
  },
});

Deno.test("tools: the system prompt lists them as the Qwen3 template does", () => {
  const text = renderChat([{ role: "system", content: "Be brief." }, { role: "user", content: "hi" }], {
    tools: [{ name: "stop", description: "Stop now", parameters: { type: "object", properties: {} } }],
  });
  assert.ok(
    text.startsWith(
      "<|im_start|>system\nBe brief.\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n" +
        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n" +
        '{"type": "function", "function": {"name": "stop", "description": "Stop now", "parameters": {"type": "object", "properties": {}}}}\n' +
        "</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n" +
        '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n<|im_start|>user\nhi<|im_end|>\n',
    ),
    text,
  );
});

Deno.test({
  name: "bad schema, grammar or tool requests fail with BAD_REQUEST naming the problem",
  sanitizeResources: false,
  async fn() {
    const s = new Scheduler(await model(), { contextSize: 256 });
    const cases: [GenerationRequest, RegExp][] = [
      [{ prompt: "x", jsonSchema: { type: "string", format: "email" } }, /unsupported JSON-schema keyword 'format'/],
      [{ prompt: "x", grammar: "root ::= nothing" }, /'nothing' is used but not defined/],
      [{ prompt: "x", grammar: `root ::= <not-a-token>` }, /not a special token/],
      [{ prompt: "x", jsonSchema: { type: "string" }, grammar: `root ::= "a"` }, /at most one of json_schema, grammar/],
      [{ prompt: "x", tools: TOOLS, toolChoice: "required", jsonSchema: true }, /at most one of/],
      [{
        prompt: "x",
        tools: [{ name: "t", parameters: { type: "object", properties: { a: { type: "integer", maximum: 3 } } } }],
        toolChoice: "required",
      }, /'maximum' at #\/tools\/0\/parameters\/properties\/a/],
    ];
    for (const [req, re] of cases) {
      await assert.rejects(
        async () => await run(s, req),
        (e: Error) => e instanceof RequestError && e.code === "BAD_REQUEST" && re.test(e.message),
        re.source,
      );
    }
  },
});
