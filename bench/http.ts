/**
 * What the HTTP adapter costs: the time of a 1-token request through `POST /v1/chat/completions`
 * (plain and streamed) against the same request submitted to the scheduler directly, and the
 * latency of each streamed chunk from the moment the scheduler emits the token to the moment the
 * client has parsed the SSE frame (same process, same clock). Runs on the tiny synthetic model by
 * default, where model time is small and the adapter's share is visible.
 *
 *   deno run --allow-all bench/http.ts [--model FILE] [--requests 200] [--tokens 64] [--json FILE]
 *
 * Prints a table, then the results as one JSON line (and to --json FILE if given).
 */
import { parseArgs } from "node:util";
import { Model } from "../runtime/model.ts";
import { Scheduler } from "../runtime/scheduler.ts";
import type { GenerationEvent, GenerationRequest } from "../runtime/request.ts";
import { serveHttp } from "../adapters/http/server.ts";
import { synthModel } from "../test/fixtures.ts";
import { fmt, table } from "./report.ts";

/** The streaming client: prints the wall-clock arrival time of each content chunk, as JSON. */
const STREAM_CLIENT = `
const [url, tokens] = Deno.args;
const r = await fetch(url + "/v1/chat/completions", {
  method: "POST",
  body: JSON.stringify({ messages: [{ role: "user", content: "Count" }], max_tokens: Number(tokens), stream: true }),
});
const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
const received = [];
let buffer = "";
while (true) {
  const { done, value } = await reader.read();
  if (done) break;
  buffer += value;
  let cut;
  while ((cut = buffer.indexOf("\\n\\n")) >= 0) {
    const frame = buffer.slice(6, cut);
    buffer = buffer.slice(cut + 2);
    if (frame === "[DONE]") continue;
    if (JSON.parse(frame).choices[0]?.delta?.content) received.push(performance.timeOrigin + performance.now());
  }
}
console.log(JSON.stringify(received));
`;

/** Results of one run (milliseconds). */
export interface HttpBenchResult {
  requests: number;
  schedulerMs: Stats;
  httpMs: Stats;
  httpStreamMs: Stats;
  /** HTTP p50 minus scheduler p50: the adapter's cost per request. */
  overheadMs: number;
  streamTokens: number;
  /** Token emitted by the scheduler -> SSE chunk parsed by the client. */
  chunkLatencyMs: Stats;
}

/** Median, 95th percentile and mean. */
export interface Stats {
  p50: number;
  p95: number;
  mean: number;
}

function stats(xs: number[]): Stats {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  return { p50: round(at(0.5)), p95: round(at(0.95)), mean: round(s.reduce((a, b) => a + b, 0) / s.length) };
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/** Measures on the model at `path`. */
export async function measureHttp(path: string, opts: { requests: number; tokens: number }): Promise<HttpBenchResult> {
  const model = await Model.load(path, { threads: 1 });
  const scheduler = new Scheduler(model, { contextSize: 256, parallel: 1 });
  // Token timestamps of the streamed request, taken as the adapter receives each event.
  const emitted: number[] = [];
  let record = false;
  const timed = {
    get activeCount() {
      return scheduler.activeCount;
    },
    get queuedCount() {
      return scheduler.queuedCount;
    },
    parallel: scheduler.parallel,
    maxQueue: scheduler.maxQueue,
    submit(request: GenerationRequest, signal?: AbortSignal): AsyncIterable<GenerationEvent> {
      const events = scheduler.submit(request, signal);
      return (async function* () {
        for await (const ev of events) {
          if (record && ev.type === "token" && ev.text !== "") emitted.push(performance.timeOrigin + performance.now());
          yield ev;
        }
      })();
    },
  } as unknown as Scheduler;
  const server = await serveHttp(timed, { port: 0 });
  try {
    const content = "Ping";
    const direct = async () => {
      const t0 = performance.now();
      for await (const _ of scheduler.submit({ prompt: content, maxTokens: 1 })) { /* drain */ }
      return performance.now() - t0;
    };
    const viaHttp = async (stream: boolean) => {
      const t0 = performance.now();
      const r = await fetch(`${server.url}/v1/chat/completions`, {
        method: "POST",
        body: JSON.stringify({ messages: [{ role: "user", content }], max_tokens: 1, stream }),
      });
      await r.text();
      return performance.now() - t0;
    };
    // Warm-up: page the weights in, open the keep-alive connection.
    for (let i = 0; i < 10; i++) await direct(), await viaHttp(false), await viaHttp(true);
    const sched: number[] = [];
    const http: number[] = [];
    const httpStream: number[] = [];
    // Interleaved, so that a slow patch of the machine touches all three alike.
    for (let i = 0; i < opts.requests; i++) {
      sched.push(await direct());
      http.push(await viaHttp(false));
      httpStream.push(await viaHttp(true));
    }

    // The streaming client runs in its own process, as a real one would: in this process it
    // would share the event loop with the decode loop and measure that instead.
    record = true;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["eval", STREAM_CLIENT, server.url, String(opts.tokens)],
      stdout: "piped",
      stderr: "inherit",
    });
    const out = await child.output();
    if (!out.success) throw new Error("the streaming client failed");
    // Wall-clock milliseconds (timeOrigin + now) make the two processes' times comparable.
    const received: number[] = JSON.parse(new TextDecoder().decode(out.stdout));
    record = false;
    const n = Math.min(emitted.length, received.length);
    const latency = Array.from({ length: n }, (_, i) => received[i] - emitted[i]);
    const s = stats(sched);
    const h = stats(http);
    return {
      requests: opts.requests,
      schedulerMs: s,
      httpMs: h,
      httpStreamMs: stats(httpStream),
      overheadMs: round(h.p50 - s.p50),
      streamTokens: n,
      chunkLatencyMs: stats(latency),
    };
  } finally {
    await server.close();
    model.close();
  }
}

if (import.meta.main) {
  const { values: v } = parseArgs({
    args: Deno.args,
    options: {
      model: { type: "string" },
      requests: { type: "string", default: "200" },
      tokens: { type: "string", default: "64" },
      json: { type: "string" },
    },
  });
  const requests = Number(v.requests);
  const tokens = Number(v.tokens);
  if (!(Number.isInteger(requests) && requests >= 1 && Number.isInteger(tokens) && tokens >= 1)) {
    console.error("bad arguments: --requests and --tokens take positive integers");
    Deno.exit(2);
  }
  const path = v.model ?? await synthModel({ shape: "tiny", seed: 1 });
  const r = await measureHttp(path, { requests, tokens });
  console.log(`${requests} requests of 1 token each (p50 / p95 / mean ms), ${path.replace(/^.*\//, "")}`);
  console.log(table(["path", "p50", "p95", "mean"], [
    ["scheduler.submit", fmt(r.schedulerMs.p50, 3), fmt(r.schedulerMs.p95, 3), fmt(r.schedulerMs.mean, 3)],
    ["HTTP", fmt(r.httpMs.p50, 3), fmt(r.httpMs.p95, 3), fmt(r.httpMs.mean, 3)],
    ["HTTP stream", fmt(r.httpStreamMs.p50, 3), fmt(r.httpStreamMs.p95, 3), fmt(r.httpStreamMs.mean, 3)],
    [
      `chunk latency (${r.streamTokens} chunks)`,
      fmt(r.chunkLatencyMs.p50, 3),
      fmt(r.chunkLatencyMs.p95, 3),
      fmt(r.chunkLatencyMs.mean, 3),
    ],
  ]));
  console.log(`HTTP overhead per request (p50): ${fmt(r.overheadMs, 3)} ms`);
  const result = { bench: "http", ...r };
  console.log(JSON.stringify(result));
  if (v.json) await Deno.writeTextFile(v.json, JSON.stringify(result, null, 2) + "\n");
}
