/**
 * The HTTP adapter with the official `openai` npm client on the tiny synthetic model: chat
 * (plain, streamed, json_schema, tools round trip), stop, seed determinism against the stdin
 * adapter, cancellation by abort, text completions, models, health, metrics and auth.
 */
import assert from "node:assert/strict";
import OpenAI from "openai";
import type { Scheduler } from "../../runtime/scheduler.ts";
import { serveStdin } from "../stdin.ts";
import { serveHttp } from "./server.ts";
import { withServer } from "../../test/http_server.ts";

/** Waits until `cond` holds (polling), failing after `ms`. */
async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const opts = { sanitizeResources: false, sanitizeOps: false };

Deno.test("openai client: chat completion, streamed and not, with the same text", opts, async () => {
  await withServer({}, async ({ client }) => {
    const messages = [{ role: "system" as const, content: "Be brief." }, {
      role: "user" as const,
      content: "Where is the gripper?",
    }];
    const full = await client.chat.completions.create({ model: "anything", messages, max_tokens: 8, temperature: 0 });
    assert.equal(full.object, "chat.completion");
    assert.equal(full.model, "anything");
    assert.equal(full.choices.length, 1);
    assert.equal(full.choices[0].message.role, "assistant");
    assert.equal(full.choices[0].finish_reason, "length");
    assert.equal(full.usage?.completion_tokens, 8);
    assert.ok((full.usage?.prompt_tokens ?? 0) > 5);
    const text = full.choices[0].message.content ?? "";
    assert.ok(text.length > 0);

    const stream = await client.chat.completions.create({
      model: "tiny",
      messages,
      max_tokens: 8,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    let streamed = "";
    let finish: string | null = null;
    let usage;
    let chunks = 0;
    for await (const chunk of stream) {
      assert.equal(chunk.object, "chat.completion.chunk");
      chunks++;
      if (chunk.usage) usage = chunk.usage;
      const choice = chunk.choices[0];
      if (!choice) continue;
      streamed += choice.delta.content ?? "";
      if (choice.finish_reason) finish = choice.finish_reason;
    }
    assert.equal(streamed, text);
    assert.equal(finish, "length");
    assert.equal(usage?.completion_tokens, 8);
    assert.ok(chunks >= 4, `streamed in ${chunks} chunks`);
  });
});

Deno.test("openai client: text completion, models list, stop strings", opts, async () => {
  await withServer({}, async ({ client }) => {
    const models = await client.models.list();
    assert.deepEqual(models.data.map((m) => m.id), ["tiny"]);

    const raw = await client.completions.create({ model: "tiny", prompt: "The arm", max_tokens: 12, temperature: 0 });
    assert.equal(raw.object, "text_completion");
    const text = raw.choices[0].text;
    assert.equal(raw.usage?.completion_tokens, 12);
    // A stop string taken from the middle of the greedy answer cuts it there.
    const stop = text.slice(4, 7);
    assert.ok(stop.trim().length > 0, `stop from ${JSON.stringify(text)}`);
    const cut = await client.completions.create({
      model: "tiny",
      prompt: "The arm",
      max_tokens: 12,
      temperature: 0,
      stop,
    });
    assert.equal(cut.choices[0].text, text.slice(0, text.indexOf(stop)));
    assert.equal(cut.choices[0].finish_reason, "stop");
  });
});

Deno.test("openai client: json_schema and json_object answers parse and match", opts, async () => {
  await withServer({ scheduler: { maxTokens: 64 } }, async ({ client }) => {
    const schema = {
      type: "object",
      properties: { joint: { type: "integer" }, open: { type: "boolean" } },
      required: ["joint", "open"],
      additionalProperties: false,
    };
    const res = await client.chat.completions.create({
      model: "tiny",
      messages: [{ role: "user", content: "Gripper state?" }],
      max_tokens: 48,
      seed: 3,
      temperature: 0.8,
      response_format: { type: "json_schema", json_schema: { name: "state", schema, strict: true } },
    });
    const value = JSON.parse(res.choices[0].message.content ?? "");
    assert.equal(typeof value.joint, "number");
    assert.equal(typeof value.open, "boolean");
    const obj = await client.chat.completions.create({
      model: "tiny",
      messages: [{ role: "user", content: "Anything" }],
      max_tokens: 40,
      response_format: { type: "json_object" },
    });
    const parsed = JSON.parse(obj.choices[0].message.content ?? "");
    assert.equal(typeof parsed, "object");
    assert.ok(!Array.isArray(parsed) && parsed !== null);
  });
});

Deno.test("openai client: tools round trip (tool call, tool message, answer), streamed and not", opts, async () => {
  await withServer({ scheduler: { maxTokens: 64 } }, async ({ client }) => {
    const tools = [{
      type: "function" as const,
      function: {
        name: "set_speed",
        description: "Set the conveyor speed",
        parameters: { type: "object", properties: { mps: { type: "number" } }, required: ["mps"] },
      },
    }];
    const user = { role: "user" as const, content: "Slow the belt down" };
    const first = await client.chat.completions.create({
      model: "tiny",
      messages: [user],
      tools,
      tool_choice: "required",
      max_tokens: 48,
      seed: 1,
    });
    const choice = first.choices[0];
    assert.equal(choice.finish_reason, "tool_calls");
    const calls = choice.message.tool_calls ?? [];
    assert.ok(calls.length >= 1);
    const call = calls[0];
    assert.equal(call.type, "function");
    if (call.type !== "function") return;
    assert.equal(call.function.name, "set_speed");
    assert.equal(typeof JSON.parse(call.function.arguments).mps, "number");
    assert.match(call.id, /^call_/);
    assert.equal(choice.message.content, null);

    // The same call streamed: one tool_calls delta, finish_reason tool_calls.
    const stream = await client.chat.completions.create({
      model: "tiny",
      messages: [user],
      tools,
      tool_choice: { type: "function", function: { name: "set_speed" } },
      max_tokens: 48,
      seed: 1,
      stream: true,
    });
    let streamedArgs = "";
    let finish = null;
    for await (const chunk of stream) {
      const c = chunk.choices[0];
      for (const tc of c?.delta.tool_calls ?? []) {
        assert.equal(tc.function?.name, "set_speed");
        streamedArgs += tc.function?.arguments ?? "";
      }
      if (c?.finish_reason) finish = c.finish_reason;
    }
    assert.equal(finish, "tool_calls");
    assert.deepEqual(
      JSON.parse(streamedArgs),
      JSON.parse(calls.filter((c) => c.type === "function")[0].function.arguments),
    );

    // History with the assistant's tool_calls and the tool's answer: the model answers in text.
    const answer = await client.chat.completions.create({
      model: "tiny",
      messages: [user, { role: "assistant", content: null, tool_calls: calls }, {
        role: "tool",
        tool_call_id: call.id,
        content: '{"ok": true}',
      }],
      tools,
      tool_choice: "none",
      max_tokens: 6,
    });
    assert.equal(answer.choices[0].finish_reason, "length");
    assert.equal(typeof answer.choices[0].message.content, "string");
    assert.equal(answer.choices[0].message.tool_calls, undefined);
    // The tool call is in the prompt: more prompt tokens than without it.
    const without = await client.chat.completions.create({
      model: "tiny",
      messages: [user, { role: "tool", tool_call_id: call.id, content: '{"ok": true}' }],
      tools,
      tool_choice: "none",
      max_tokens: 1,
    });
    assert.ok((answer.usage?.prompt_tokens ?? 0) > (without.usage?.prompt_tokens ?? 0) + 5);
  });
});

Deno.test("seed determinism: the same seed gives the same text through HTTP as through stdin", opts, async () => {
  await withServer({}, async ({ client, scheduler }) => {
    const req = { messages: [{ role: "user" as const, content: "Report the battery" }], max_tokens: 12, seed: 42 };
    const sampling = { temperature: 0.9, top_p: 0.95 };
    const http = await client.chat.completions.create({ model: "tiny", ...req, ...sampling });
    const again = await client.chat.completions.create({ model: "tiny", ...req, ...sampling });
    const lines: string[] = [];
    await serveStdin(scheduler, {
      json: true,
      input: ReadableStream.from([
        new TextEncoder().encode(JSON.stringify({ id: 1, ...req, ...sampling, stream: false }) + "\n"),
      ]),
      write: (l) => lines.push(l),
    });
    const stdin = JSON.parse(lines[0]);
    assert.equal(stdin.event, "done");
    assert.equal(http.choices[0].message.content, stdin.text);
    assert.equal(again.choices[0].message.content, stdin.text);
    const other = await client.chat.completions.create({ model: "tiny", ...req, ...sampling, seed: 43 });
    assert.notEqual(other.choices[0].message.content, stdin.text);
  });
});

Deno.test("a client that aborts cancels its request and frees the slot", opts, async () => {
  // Sliding context: the request would run for its whole max_tokens budget unless cancelled.
  await withServer({ scheduler: { parallel: 1, overflow: "slide", maxTokens: 100_000 } }, async (s) => {
    const control = new AbortController();
    const stream = await s.client.chat.completions.create({
      model: "tiny",
      messages: [{ role: "user", content: "Count forever" }],
      max_tokens: 100_000,
      stream: true,
    }, { signal: control.signal });
    let chunks = 0;
    // The SDK ends the iteration quietly on abort.
    for await (const _ of stream) {
      if (++chunks === 3) control.abort();
    }
    assert.equal(chunks, 3);
    await until(() => s.scheduler.activeCount === 0, 5000, "the slot to be freed");
    await until(() => s.server.metrics.snapshot().requests.cancelled === 1, 2000, "the cancel to be counted");
    const snap = s.server.metrics.snapshot();
    assert.equal(snap.requests.served, 0);
    assert.ok(snap.tokens < 100_000);
    // Non-streamed: the connection closes while the answer is generated. (Plain fetch: with
    // the SDK, Deno's fetch keeps this connection open after an abort before the headers.)
    const control2 = new AbortController();
    const pending = fetch(`${s.server.url}/v1/chat/completions`, {
      method: "POST",
      body: JSON.stringify({ messages: [{ role: "user", content: "Count again" }], max_tokens: 100_000 }),
      signal: control2.signal,
    });
    await until(() => s.scheduler.activeCount === 1, 5000, "the request to start");
    control2.abort();
    await assert.rejects(pending);
    await until(() => s.scheduler.activeCount === 0, 5000, "the slot to be freed");
    await until(() => s.server.metrics.snapshot().requests.cancelled === 2, 2000, "the second cancel");
    // The slot serves the next request.
    const next = await s.client.chat.completions.create({
      model: "tiny",
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 2,
    });
    assert.equal(next.usage?.completion_tokens, 2);
  });
});

Deno.test("health, metrics and the bearer token", opts, async () => {
  await withServer({ http: { apiKey: "s3cret" } }, async ({ server, client }) => {
    const health = await (await fetch(`${server.url}/health`)).json();
    assert.deepEqual(health, { status: "ok", model: "tiny", slots_total: 2, slots_busy: 0, queue: 0, queue_limit: 64 });
    for (const path of ["/v1/models", "/metrics"]) {
      const r = await fetch(`${server.url}${path}`);
      assert.equal(r.status, 401, path);
      assert.equal((await r.json()).error.code, "UNAUTHORIZED");
    }
    const wrong = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "guess", maxRetries: 0 });
    await assert.rejects(wrong.models.list(), (e: unknown) => e instanceof OpenAI.AuthenticationError);
    await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "x" }], max_tokens: 3 });
    const text = await (await fetch(`${server.url}/metrics`, { headers: { authorization: "Bearer s3cret" } })).text();
    assert.match(text, /^bonsai_requests_total\{outcome="served"\} 1$/m);
    assert.match(text, /^bonsai_requests_total\{outcome="rejected"\} 0$/m);
    assert.match(text, /^bonsai_completion_tokens_total 3$/m);
    assert.match(text, /^bonsai_time_to_first_token_seconds_count 1$/m);
    assert.match(text, /^bonsai_time_to_first_token_seconds_bucket\{le="\+Inf"\} 1$/m);
    assert.match(text, /^bonsai_slots_total 2$/m);
    assert.match(text, /^bonsai_queue_depth 0$/m);
    assert.match(text, /^bonsai_resident_memory_bytes \d+$/m);
    assert.match(text, /^# TYPE bonsai_time_to_first_token_seconds histogram$/m);
  });
});

Deno.test("while the model loads: 503 with Retry-After, health says loading", opts, async () => {
  let resolve!: (s: Scheduler) => void;
  const server = await serveHttp(new Promise<Scheduler>((r) => resolve = r), { port: 0 });
  try {
    const h = await fetch(`${server.url}/health`);
    assert.equal(h.status, 503);
    assert.equal((await h.json()).status, "loading");
    const r = await fetch(`${server.url}/v1/chat/completions`, {
      method: "POST",
      body: JSON.stringify({ messages: [{ role: "user", content: "x" }] }),
    });
    assert.equal(r.status, 503);
    assert.ok(r.headers.get("retry-after"));
    assert.equal((await r.json()).error.code, "LOADING");
  } finally {
    void resolve;
    await server.close();
  }
});
