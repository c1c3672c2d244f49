import assert from "node:assert/strict";
import { RequestError } from "../runtime/request.ts";
import { doneEvent, parseWireRequest, tokenEvent, wireError } from "./request.ts";

Deno.test("a full request maps to the runtime's fields", () => {
  const r = parseWireRequest({
    id: 7,
    prompt: "hi",
    system: "be brief",
    max_tokens: 5,
    temperature: 0,
    top_k: 3,
    seed: 9,
    stop: "\n",
    stream: false,
  });
  assert.equal(r.id, 7);
  assert.equal(r.stream, false);
  assert.deepEqual(r.request.sampling, { temperature: 0, topK: 3, seed: 9 });
  assert.deepEqual(r.request.stop, ["\n"]);
  assert.equal(r.request.maxTokens, 5);
  assert.equal(r.request.system, "be brief");
});

Deno.test("wire events: id only when given, llama.cpp usage and timings, advice added to runtime errors", () => {
  assert.deepEqual(tokenEvent(undefined, { type: "token", token: 5, text: "a" }), {
    event: "token",
    text: "a",
    token: 5,
  });
  assert.deepEqual(tokenEvent("r", { type: "token", token: -1, text: "é" }), {
    event: "token",
    id: "r",
    text: "é",
    token: -1,
  });
  const stats = {
    promptTokens: 3,
    cachedPromptTokens: 1,
    completionTokens: 2,
    prefillMs: 1.234,
    decodeMs: 5,
    prefillTokensPerSecond: 1000 / 0.6,
    decodeTokensPerSecond: NaN,
  };
  const calls = [{ name: "stop", arguments: {} }];
  assert.deepEqual(doneEvent(7, { type: "done", text: "ab", finishReason: "length", stats, toolCalls: calls }), {
    event: "done",
    id: 7,
    text: "ab",
    finish_reason: "length",
    usage: { prompt_tokens: 3, completion_tokens: 2, cached_prompt_tokens: 1 },
    timings: { prompt_ms: 1.23, predicted_ms: 5, prompt_per_second: 1666.67, predicted_per_second: 0 },
    tool_calls: calls,
  });
  assert.deepEqual(wireError(new RequestError("PROMPT_TOO_LONG", "prompt has 9 tokens; the context holds 8")), {
    code: "PROMPT_TOO_LONG",
    message: "prompt has 9 tokens; the context holds 8 (raise --ctx or shorten the prompt)",
  });
  assert.deepEqual(wireError(new RequestError("BAD_REQUEST", "x")), { code: "BAD_REQUEST", message: "x" });
  assert.deepEqual(wireError(new TypeError("oops")), { code: "INTERNAL", message: "oops" });
  assert.deepEqual(wireError("thrown string"), { code: "INTERNAL", message: "thrown string" });
});

Deno.test("messages are checked one by one", () => {
  const r = parseWireRequest({ messages: [{ role: "user", content: "x" }] });
  assert.deepEqual(r.request.messages, [{ role: "user", content: "x" }]);
  assert.throws(() => parseWireRequest({ messages: [{ role: "robot", content: "x" }] }), /messages\[0\]\.role/);
  assert.throws(() => parseWireRequest({ messages: [{ role: "user", content: 3 }] }), /messages\[0\]\.content/);
  assert.throws(() => parseWireRequest({ messages: [] }), /non-empty/);
});

Deno.test("bad requests name the problem", () => {
  const cases: [unknown, RegExp][] = [
    [null, /must be an object/],
    [[1], /must be an object/],
    [{}, /no prompt/],
    [{ prompt: 3 }, /prompt must be a string/],
    [{ prompt: "x", max_tokens: 0 }, /max_tokens/],
    [{ prompt: "x", max_tokens: 1.5 }, /max_tokens/],
    [{ prompt: "x", temperature: "hot" }, /temperature must be a number/],
    [{ prompt: "x", tempreature: 1 }, /unknown field: tempreature/],
    [{ prompt: "x", stop: [""] }, /stop/],
    [{ prompt: "x", id: {} }, /id must be/],
  ];
  for (const [input, pattern] of cases) {
    assert.throws(() => parseWireRequest(input), pattern, JSON.stringify(input));
  }
});

Deno.test("names of Object.prototype members are unknown fields, not sampling options", () => {
  for (const name of ["constructor", "toString", "hasOwnProperty", "__proto__", "valueOf"]) {
    const value = JSON.parse(`{"prompt": "x", ${JSON.stringify(name)}: 1}`);
    assert.throws(() => parseWireRequest(value), (e: Error & { code?: string }) => {
      assert.equal(e.code, "BAD_REQUEST");
      assert.match(e.message, new RegExp(`unknown field: ${name}`));
      return true;
    });
  }
});

Deno.test("an id that is not a finite number is refused (it would be echoed as null)", () => {
  for (const text of ['{"prompt": "x", "id": 1e400}', '{"prompt": "x", "id": -1e400}']) {
    assert.throws(() => parseWireRequest(JSON.parse(text)), /id must be a string or a finite number/);
  }
  assert.throws(() => parseWireRequest({ prompt: "x", id: NaN }), /finite number/);
  assert.equal(parseWireRequest({ prompt: "x", id: 1e300 }).id, 1e300);
});
