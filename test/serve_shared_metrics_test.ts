/**
 * `bonsai serve --mqtt ... --http ...` as a process: both adapters count into one metrics object,
 * so a request over MQTT and one over HTTP show in HTTP's `GET /metrics` and in the MQTT
 * metrics message alike.
 */
import assert from "node:assert/strict";
import { tinyModel } from "./fixtures.ts";
import { mosquittoPath, startMosquitto } from "./mqtt_brokers.ts";
import { TestClient } from "./mqtt_client.ts";

const CLI = new URL("../cli/main.ts", import.meta.url).pathname;

Deno.test({
  name: "serve with MQTT and HTTP: a request over each shows in both metrics outputs",
  ignore: mosquittoPath() === undefined,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const broker = await startMosquitto();
    const model = await tinyModel();
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", "--no-check", CLI, "serve", "-m", model, "--mqtt", broker.url, "--node", "both"]
        .concat(["--http", "127.0.0.1:0", "--ctx", "128", "-n", "4", "--metrics-interval", "0"]),
      stdin: "null",
      stdout: "null",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    const lines = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let log = "";
    const watcher = await TestClient.connect(broker.url);
    try {
      let url: string | undefined;
      while (!url) {
        const { done, value } = await lines.read();
        if (done) throw new Error(`serve ended early:\n${log}`);
        log += value;
        url = /HTTP API on (http:\/\/127\.0\.0\.1:\d+)\/v1/.exec(log)?.[1];
      }
      await watcher.watch("bonsai/both/status");
      await watcher.watch("bonsai/both/metrics");
      await watcher.waitFor("bonsai/both/status", (s) => s.state === "online");
      const mqtt = await watcher.replies(await watcher.send("bonsai/both/request", { prompt: "Hi", max_tokens: 2 }));
      assert.equal(mqtt.at(-1)!.event, "done");
      const r = await fetch(`${url}/v1/chat/completions`, {
        method: "POST",
        body: JSON.stringify({ messages: [{ role: "user", content: "hi" }], max_tokens: 3 }),
      });
      assert.equal(r.status, 200);
      assert.equal((await r.json()).usage.completion_tokens, 3);
      const text = await (await fetch(`${url}/metrics`)).text();
      assert.match(text, /^bonsai_requests_total\{outcome="served"\} 2$/m);
      assert.match(text, /^bonsai_completion_tokens_total 5$/m);
      assert.match(text, /^bonsai_time_to_first_token_seconds_count 2$/m);
      // The metrics message published on stop carries the same counts.
      child.kill("SIGTERM");
      const m = await watcher.waitFor("bonsai/both/metrics", (v) => (v.requests as { served: number }).served === 2);
      assert.equal(m.tokens, 5);
      assert.equal((m.ttft_ms as { count: number }).count, 2);
      assert.equal((await child.status).code, 0);
      while (true) {
        const { done, value } = await lines.read();
        if (done) break;
        log += value;
      }
      assert.match(log, /all requests: served 2, cancelled 0, failed 0, busy 0, rejected 0/);
    } finally {
      try {
        child.kill("SIGKILL");
      } catch {
        // exited
      }
      await child.status;
      await watcher.close();
      await broker.stop();
    }
  },
});
