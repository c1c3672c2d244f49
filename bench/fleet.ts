/**
 * Scale-out through the broker (issue 11): aggregate decode tok/s with 1, 2 and 3 `bonsai serve`
 * nodes in one share group behind a local mosquitto, and the broker's overhead per request (the
 * round trip of a 1-token request over MQTT against the same request run in process). All
 * nodes run on this machine, so they share its cores: the figure shows the cost of the fleet
 * machinery, not what N devices would give.
 *
 *   deno run --allow-all bench/fleet.ts [--nodes 1,2,3] [--requests 24] [--tokens 16]
 *     [--shape tiny|1.7b] [--threads 1] [--json FILE]
 */
import { parseArgs } from "node:util";
import { Model } from "../runtime/model.ts";
import { Scheduler } from "../runtime/scheduler.ts";
import { ensureModel } from "./models.ts";
import { tinyModel } from "../test/fixtures.ts";
import { mosquittoPath, startMosquitto } from "../test/mqtt_brokers.ts";
import { TestClient } from "../test/mqtt_client.ts";

const { values: v } = parseArgs({
  args: Deno.args,
  options: {
    nodes: { type: "string", default: "1,2,3" },
    requests: { type: "string", default: "24" },
    tokens: { type: "string", default: "16" },
    shape: { type: "string", default: "tiny" },
    threads: { type: "string", default: "1" },
    json: { type: "string" },
  },
});
const levels = v.nodes!.split(",").map(Number);
const requests = Number(v.requests);
const tokens = Number(v.tokens);
if (levels.some((n) => !Number.isInteger(n) || n < 1) || !(requests >= 1) || !(tokens >= 1)) {
  console.error("bad arguments: --nodes takes positive integers, --requests and --tokens >= 1");
  Deno.exit(2);
}
if (!mosquittoPath()) {
  console.error("the fleet bench needs mosquitto (apt-get install mosquitto)");
  Deno.exit(1);
}
const model = v.shape === "tiny" ? await tinyModel() : await ensureModel(v.shape!);
const CLI = new URL("../cli/main.ts", import.meta.url).pathname;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const broker = await startMosquitto();
const client = await TestClient.connect(broker.url);
const rows: { nodes: number; seconds: number; tokens: number; tokPerS: number; busyRetries: number }[] = [];
let overhead: { mqttMs: number; directMs: number } | undefined;
try {
  for (const n of levels) {
    const names = Array.from({ length: n }, (_, i) => `bench-${n}-${i}`);
    const procs = names.map((name) =>
      new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-all",
          "--no-check",
          CLI,
          "serve",
          "--model",
          model,
          "--mqtt",
          broker.url,
          "--node",
          name,
          "--group",
          "bench",
          "--parallel",
          "2",
          "--threads",
          v.threads!,
          "-n",
          String(tokens),
          "--ctx",
          "256",
          "--metrics-interval",
          "0",
          "--quiet",
        ],
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn()
    );
    try {
      for (const name of names) await client.watch(`bonsai/${name}/status`);
      for (const name of names) await client.waitFor(`bonsai/${name}/status`, (s) => s.state === "online", 120_000);
      let busyRetries = 0;
      let total = 0;
      const t0 = performance.now();
      await Promise.all(Array.from({ length: requests }, async (_, i) => {
        while (true) {
          const body = { prompt: `Report ${i}`, max_tokens: tokens, temperature: 0, stream: false };
          const f = (await client.replies(await client.send("bonsai/group/bench/request", body))).at(-1)!;
          if (f.event === "error") {
            busyRetries++;
            await new Promise((r) => setTimeout(r, 20 + Math.random() * 40));
            continue;
          }
          total += (f.usage as { completion_tokens: number }).completion_tokens;
          return;
        }
      }));
      const seconds = (performance.now() - t0) / 1000;
      rows.push({ nodes: n, seconds, tokens: total, tokPerS: total / seconds, busyRetries });
      if (n === 1) {
        // Round trip of a 1-token request through the broker, sequentially, after a warm-up.
        const rt: number[] = [];
        for (let i = 0; i < 21; i++) {
          const t = performance.now();
          await client.replies(
            await client.send(`bonsai/${names[0]}/request`, { prompt: "Hi", max_tokens: 1, stream: false }),
          );
          if (i > 0) rt.push(performance.now() - t);
        }
        const m = await Model.load(model, { threads: Number(v.threads) });
        const s = new Scheduler(m, { contextSize: 256, parallel: 2 });
        const direct: number[] = [];
        for (let i = 0; i < 21; i++) {
          const t = performance.now();
          for await (const _ of s.submit({ prompt: "Hi", maxTokens: 1 })) { /* drain */ }
          if (i > 0) direct.push(performance.now() - t);
        }
        m.close();
        overhead = { mqttMs: median(rt), directMs: median(direct) };
      }
    } finally {
      for (const p of procs) {
        p.kill("SIGTERM");
        await p.status;
      }
    }
  }
} finally {
  await client.close();
  await broker.stop();
}

console.log(
  `fleet bench: ${v.shape} model, ${requests} requests x ${tokens} tokens, nodes on ONE ${navigator.hardwareConcurrency}-core machine (they share the CPU)`,
);
console.log("| nodes | wall s | tokens | aggregate tok/s | BUSY retries |");
console.log("|---|---|---|---|---|");
for (const r of rows) {
  console.log(`| ${r.nodes} | ${r.seconds.toFixed(2)} | ${r.tokens} | ${r.tokPerS.toFixed(1)} | ${r.busyRetries} |`);
}
if (overhead) {
  console.log(
    `1-token request: ${overhead.mqttMs.toFixed(2)} ms round trip over MQTT, ${
      overhead.directMs.toFixed(2)
    } ms in process: ` +
      `broker overhead ${(overhead.mqttMs - overhead.directMs).toFixed(2)} ms per request (median of 20)`,
  );
}
const json = JSON.stringify({ shape: v.shape, requests, tokens, rows, overhead });
console.log(json);
if (v.json) await Deno.writeTextFile(v.json, json + "\n");
