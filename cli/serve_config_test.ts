import assert from "node:assert/strict";
import { checkServeConfig } from "./serve_config.ts";
import { withDefaults } from "../adapters/request_defaults.ts";

Deno.test("serve config: request defaults are checked like a request; limits; per-request fields refused", () => {
  const c = checkServeConfig({
    request: { system: "You steer arm 3.", temperature: 0.2, max_tokens: 32 },
    limits: { max_tokens: 64 },
  });
  assert.deepEqual(c.requestDefaults, { system: "You steer arm 3.", temperature: 0.2, max_tokens: 32 });
  assert.equal(c.maxTokensLimit, 64);
  assert.throws(() => checkServeConfig([]), /must be a JSON object/);
  assert.throws(() => checkServeConfig({ request: { prompt: "x" } }), /must not set prompt/);
  assert.throws(() => checkServeConfig({ request: { top_k: "many" } }), /request: top_k/);
  assert.throws(() => checkServeConfig({ limits: { max_tokens: 0 } }), /positive integer/);
  assert.throws(() => checkServeConfig({ limits: { speed: 1 } }), /unknown limit/);
  assert.throws(() => checkServeConfig({ request: { max_tokens: 100 }, limits: { max_tokens: 64 } }), /exceeds limits/);
});

Deno.test("request defaults: the request's fields win; its messages replace the default system, its constraint the default one", () => {
  const d = { system: "S", temperature: 0.1, json_schema: { type: "object" } };
  assert.deepEqual(withDefaults(d, { prompt: "p", temperature: 0.9 }), {
    system: "S",
    temperature: 0.9,
    json_schema: { type: "object" },
    prompt: "p",
  });
  assert.deepEqual(withDefaults(d, { messages: [] }), {
    temperature: 0.1,
    json_schema: { type: "object" },
    messages: [],
  });
  assert.deepEqual(withDefaults(d, { prompt: "p", tools: [] }), {
    system: "S",
    temperature: 0.1,
    prompt: "p",
    tools: [],
  });
});
