/**
 * Bad input and overload on the HTTP adapter: malformed JSON, wrong types, unknown endpoints, a
 * 20 MB body, 200 concurrent connections with the queue full, a body that trickles in.
 */
import assert from "node:assert/strict";
import OpenAI from "openai";
import { withServer } from "../../test/http_server.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };

async function post(url: string, body: string | ReadableStream<Uint8Array>, headers = {}) {
  const r = await fetch(`${url}/v1/chat/completions`, { method: "POST", body, headers });
  return { status: r.status, headers: r.headers, json: await r.json() };
}

/** Sends raw bytes over TCP and returns what the server answers until it closes (or `ms`). */
async function rawExchange(port: number, head: string, body: Uint8Array, ms: number): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(head));
    if (body.length > 0) await conn.write(body);
    const chunks: string[] = [];
    const buf = new Uint8Array(4096);
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      const n = await Promise.race([
        conn.read(buf),
        new Promise<"wait">((r) => setTimeout(() => r("wait"), Math.max(1, deadline - Date.now()))),
      ]);
      if (n === "wait" || n === null) break;
      chunks.push(new TextDecoder().decode(buf.subarray(0, n)));
      if (chunks.join("").includes("}}")) break;
    }
    return chunks.join("");
  } finally {
    conn.close();
  }
}

Deno.test("bad requests get 400 in the OpenAI error shape, naming the problem", opts, async () => {
  await withServer({}, async ({ server, client }) => {
    const malformed = await post(server.url, '{"messages": [');
    assert.equal(malformed.status, 400);
    assert.equal(malformed.json.error.code, "BAD_JSON");
    assert.equal(malformed.json.error.type, "invalid_request_error");
    const cases: [unknown, RegExp][] = [
      [[1, 2], /request body must be an object/],
      [{}, /messages is required/],
      [{ messages: "hi" }, /messages must be a non-empty array/],
      [{ messages: [{ role: "robot", content: "x" }] }, /messages\[0\]\.role/],
      [{ messages: [{ role: "user", content: 5 }] }, /messages\[0\]\.content/],
      [{ messages: [{ role: "user", content: [{ type: "image_url", image_url: {} }] }] }, /text only/],
      [{ messages: [{ role: "user", content: "x" }], temperature: "hot" }, /temperature must be a number/],
      [{ messages: [{ role: "user", content: "x" }], max_tokens: -1 }, /max_tokens must be a positive integer/],
      [{ messages: [{ role: "user", content: "x" }], stream: "yes" }, /stream must be true or false/],
      [{ messages: [{ role: "user", content: "x" }], n: 2 }, /n must be 1/],
      [{ messages: [{ role: "user", content: "x" }], frobnicate: 1 }, /unrecognized request argument: frobnicate/],
      [{ messages: [{ role: "user", content: "x" }], response_format: { type: "xml" } }, /response_format\.type/],
      [{ messages: [{ role: "user", content: "x" }], tool_choice: "auto" }, /tool_choice needs tools/],
      [
        { messages: [{ role: "user", content: "x" }], tools: [{ type: "function", function: { name: "a b" } }] },
        /tools\[0\]\.name/,
      ],
      [{
        messages: [{
          role: "assistant",
          content: null,
          tool_calls: [{ type: "function", function: { name: "f", arguments: "{x" } }],
        }],
      }, /arguments is not valid JSON/],
    ];
    for (const [body, message] of cases) {
      const r = await post(server.url, JSON.stringify(body));
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(r.json.error.code, "BAD_REQUEST");
      assert.match(r.json.error.message, message);
    }
    // A schema the compiler refuses fails before the headers, even streamed.
    const schema = await post(
      server.url,
      JSON.stringify({
        messages: [{ role: "user", content: "x" }],
        stream: true,
        response_format: {
          type: "json_schema",
          json_schema: { name: "s", schema: { type: "object", $ref: "#/nowhere" } },
        },
      }),
    );
    assert.equal(schema.status, 400, JSON.stringify(schema.json));
    // The official client maps these to its error classes.
    await assert.rejects(
      client.chat.completions.create({
        model: "x",
        messages: [{ role: "user", content: "x" }],
        temperature: "hot" as unknown as number,
      }),
      (e: unknown) => e instanceof OpenAI.BadRequestError && /temperature/.test(e.message),
    );
    const notFound = await fetch(`${server.url}/v2/things`);
    assert.equal(notFound.status, 404);
    assert.equal((await notFound.json()).error.code, "NOT_FOUND");
    const wrongMethod = await fetch(`${server.url}/v1/chat/completions`);
    assert.equal(wrongMethod.status, 405);
    assert.equal(wrongMethod.headers.get("allow"), "POST");
    await wrongMethod.body?.cancel();
    assert.equal(server.metrics.snapshot().requests.served, 0);
  });
});

Deno.test("a 20 MB body is refused with 413 before it is read", opts, async () => {
  await withServer({ http: { maxBodyBytes: 1 << 20 } }, async ({ server }) => {
    // Announced: the answer comes with none of the body sent.
    const head = `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n` +
      `content-length: ${20 << 20}\r\n\r\n`;
    const started = Date.now();
    const reply = await rawExchange(server.port, head, new Uint8Array(0), 5000);
    assert.match(reply, /^HTTP\/1\.1 413/);
    assert.match(reply, /"code":"TOO_LARGE"/);
    assert.ok(Date.now() - started < 4000);
    // Chunked, no length: cut off once past the limit; the generator is not drained to the end.
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        if (sent >= 20 << 20) return c.close();
        sent += 64 << 10;
        c.enqueue(new Uint8Array(64 << 10).fill(32));
      },
    });
    let status = 0;
    try {
      status = (await post(server.url, body)).status;
    } catch {
      status = -1; // the server may close before the client has finished sending
    }
    assert.ok(status === 413 || status === -1, `status ${status}`);
    assert.ok(sent < 20 << 20, `sent ${sent} bytes`);
  });
});

Deno.test("a body that trickles in (slowloris) times out with 408", opts, async () => {
  await withServer({ http: { bodyTimeoutMs: 300 } }, async ({ server }) => {
    const head = `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n` +
      `content-length: 200\r\n\r\n`;
    const started = Date.now();
    const reply = await rawExchange(server.port, head, new TextEncoder().encode('{"messages": ['), 5000);
    assert.match(reply, /^HTTP\/1\.1 408/);
    assert.match(reply, /"code":"TIMEOUT"/);
    const took = Date.now() - started;
    assert.ok(took >= 250 && took < 4000, `answered after ${took} ms`);
  });
});

Deno.test("200 concurrent requests with the queue full: 429 with Retry-After, nothing hangs", opts, async () => {
  await withServer({ scheduler: { parallel: 1, maxQueue: 2 } }, async ({ server, scheduler }) => {
    const body = JSON.stringify({ messages: [{ role: "user", content: "status?" }], max_tokens: 4 });
    const started = Date.now();
    const results = await Promise.all(Array.from({ length: 200 }, async () => {
      const r = await fetch(`${server.url}/v1/chat/completions`, { method: "POST", body });
      const json = await r.json();
      return { status: r.status, retry: r.headers.get("retry-after"), code: json.error?.code };
    }));
    const ok = results.filter((r) => r.status === 200);
    const busy = results.filter((r) => r.status === 429);
    assert.equal(
      ok.length + busy.length,
      200,
      JSON.stringify(results.filter((r) => r.status !== 200 && r.status !== 429)),
    );
    assert.ok(ok.length >= 1 && busy.length >= 150, `${ok.length} served, ${busy.length} busy`);
    for (const b of busy) {
      assert.equal(b.code, "BUSY");
      assert.equal(b.retry, "1");
    }
    assert.ok(Date.now() - started < 30_000);
    assert.equal(scheduler.activeCount + scheduler.queuedCount, 0);
    const m = server.metrics.snapshot();
    assert.equal(m.requests.busy, busy.length);
    assert.equal(m.requests.served, ok.length);
    const health = await (await fetch(`${server.url}/health`)).json();
    assert.equal(health.status, "ok");
  });
});

Deno.test("a generation that fails midway: 400 with its code, or a last error frame when streamed", opts, async () => {
  await withServer({ scheduler: { contextSize: 64, maxTokens: 500 } }, async ({ server }) => {
    const body = { messages: [{ role: "user", content: "Go on and on" }], max_tokens: 500 };
    const plain = await post(server.url, JSON.stringify(body));
    assert.equal(plain.status, 400);
    assert.equal(plain.json.error.code, "CONTEXT_FULL");
    assert.match(plain.json.error.message, /context full/);
    const r = await fetch(`${server.url}/v1/chat/completions`, {
      method: "POST",
      body: JSON.stringify({ ...body, stream: true }),
    });
    assert.equal(r.status, 200);
    const frames = (await r.text()).split("\n\n").filter((f) => f !== "").map((f) => f.replace(/^data: /, ""));
    assert.equal(frames.at(-1), "[DONE]");
    assert.equal(JSON.parse(frames.at(-2)!).error.code, "CONTEXT_FULL");
    const m = server.metrics.snapshot().requests;
    assert.equal(m.failed, 2);
    assert.equal(m.rejected, 0);
  });
});
