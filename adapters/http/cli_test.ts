/**
 * `bonsai serve --http` as a process: flags checked before the model loads, the API served with
 * a bearer token from the environment, SIGTERM stops it (exit 0).
 */
import assert from "node:assert/strict";
import { tinyModel } from "../../test/fixtures.ts";

const CLI = new URL("../../cli/main.ts", import.meta.url).pathname;

function bonsai(args: string[], env: Record<string, string> = {}) {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", CLI, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env,
  });
}

Deno.test("serve: --http or --mqtt is required, a bad address is a usage error before the model loads", async () => {
  const missing = "/nonexistent/model.gguf";
  const none = await bonsai(["serve", "-m", missing]).output();
  assert.equal(none.code, 2);
  assert.match(new TextDecoder().decode(none.stderr), /give --mqtt URL .*--http \[HOST:\]PORT, or both/);
  const bad = await bonsai(["serve", "-m", missing, "--http", "localhost:http"]).output();
  assert.equal(bad.code, 2);
  assert.match(new TextDecoder().decode(bad.stderr), /HTTP address must be PORT, HOST:PORT or \[IPV6\]:PORT/);
});

Deno.test("serve --http: the API answers with the key from BONSAI_API_KEY; SIGTERM exits 0", {
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const model = await tinyModel();
  const child = bonsai(["serve", "-m", model, "--http", "127.0.0.1:0", "--ctx", "256", "-n", "4"], {
    BONSAI_API_KEY: "k1",
  }).spawn();
  const lines = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let log = "";
  let url: string | undefined;
  while (!url) {
    const { done, value } = await lines.read();
    if (done) throw new Error(`serve ended early:\n${log}`);
    log += value;
    url = /HTTP API on (http:\/\/127\.0\.0\.1:\d+)\/v1/.exec(log)?.[1];
  }
  try {
    // The server listens before the model is loaded: wait for it.
    let health;
    for (let i = 0; i < 200; i++) {
      health = await (await fetch(`${url}/health`)).json();
      if (health.status === "ok") break;
      assert.equal(health.status, "loading");
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(health.status, "ok");
    assert.equal(health.model, model.replace(/^.*\//, "").replace(/\.gguf$/, ""));
    const body = JSON.stringify({ model: "x", messages: [{ role: "user", content: "hi" }] });
    const denied = await fetch(`${url}/v1/chat/completions`, { method: "POST", body });
    assert.equal(denied.status, 401);
    await denied.body?.cancel();
    const r = await fetch(`${url}/v1/chat/completions`, {
      method: "POST",
      body,
      headers: { authorization: "Bearer k1" },
    });
    assert.equal(r.status, 200);
    assert.equal((await r.json()).usage.completion_tokens, 4);
  } finally {
    child.kill("SIGTERM");
  }
  const status = await child.status;
  // Read the rest of the log for the summary line.
  while (true) {
    const { done, value } = await lines.read();
    if (done) break;
    log += value;
  }
  assert.equal(status.code, 0, log);
  assert.match(log, /HTTP: served 1, cancelled 0, failed 0, busy 0, rejected 1/);
});
