import assert from "node:assert/strict";
import { Metrics } from "./metrics.ts";
import { renderPrometheus } from "./metrics_prometheus.ts";
import { metricsMessage } from "./mqtt/metrics_message.ts";

const stats = {
  promptTokens: 10,
  cachedPromptTokens: 4,
  completionTokens: 5,
  prefillMs: 1,
  decodeMs: 500,
  prefillTokensPerSecond: 1,
  decodeTokensPerSecond: 10,
};
const noMqtt = { retainedIgnored: 0, replyRefused: 0, duplicates: 0, redelivered: 0, chunksDropped: 0, reconnects: 0 };

/** The sample of `name` (with its labels) in Prometheus text, as a number. */
function sample(text: string, name: string): number {
  const line = text.split("\n").find((l) => l.startsWith(name + " "));
  assert.ok(line, `${name} in\n${text}`);
  return Number(line.slice(name.length + 1));
}

Deno.test("metrics shared by both adapters: the MQTT message and the Prometheus text show the same counts", () => {
  let now = 2_000_000;
  const m = new Metrics({
    now: () => now,
    rss: () => 4096,
    thermal: () => ({ zones: [{ type: "cpu-thermal", celsius: 61.5 }], maxCelsius: 61.5, throttled: false }),
    plan: { budgetBytes: 1000, neededBytes: 600, contextSize: 512, parallel: 2 },
  });
  // As the MQTT service counts: tokens as they come, then the outcome and the stats.
  m.addTtft(80);
  for (let i = 0; i < 5; i++) m.addTokens(1);
  m.addGeneration(stats);
  m.count("served");
  m.count("refused");
  // As the HTTP adapter counts: TTFT, then tokens and stats at the end.
  m.addTtft(3000);
  m.addGeneration(stats);
  m.addTokens(stats.completionTokens);
  m.count("served");
  m.count("rejected");
  m.count("busy");
  now += 10_000;
  const snap = m.snapshot({ queueDepth: 3, activeSlots: 2, slots: 2, queueLimit: 64 });
  const mqtt = metricsMessage("n1", snap, noMqtt);
  const prom = renderPrometheus(snap);

  const requests = mqtt.requests as Record<string, number>;
  assert.deepEqual(requests, { served: 2, failed: 0, busy: 1, expired: 0, cancelled: 0, refused: 1, rejected: 1 });
  for (const [outcome, n] of Object.entries(requests)) {
    assert.equal(sample(prom, `bonsai_requests_total{outcome="${outcome}"}`), n, outcome);
  }
  assert.equal(mqtt.tokens, 10);
  assert.equal(sample(prom, "bonsai_completion_tokens_total"), 10);
  assert.equal(mqtt.tokens_per_s_1m, 1);
  assert.equal(sample(prom, "bonsai_tokens_per_second_1m"), 1);
  assert.equal(mqtt.prompt_tokens, 20);
  assert.equal(sample(prom, "bonsai_prompt_tokens_total"), 20);
  assert.equal(sample(prom, "bonsai_prompt_tokens_cached_total"), 8);
  assert.equal(sample(prom, "bonsai_decode_tokens_per_second"), 10);
  assert.equal(sample(prom, "bonsai_decode_tokens_per_second_mean"), 10);
  // TTFT: milliseconds in the message, seconds in Prometheus, the same cumulative counts.
  const ttft = mqtt.ttft_ms as { count: number; sum: number; buckets: [number | string, number][] };
  assert.equal(ttft.count, 2);
  assert.equal(ttft.sum, 3080);
  assert.equal(sample(prom, "bonsai_time_to_first_token_seconds_count"), 2);
  assert.equal(sample(prom, "bonsai_time_to_first_token_seconds_sum"), 3.08);
  for (const [le, count] of ttft.buckets) {
    const bound = le === "+Inf" ? "+Inf" : String((le as number) / 1000);
    assert.equal(sample(prom, `bonsai_time_to_first_token_seconds_bucket{le="${bound}"}`), count, `le ${le}`);
  }
  assert.equal(sample(prom, 'bonsai_time_to_first_token_seconds_bucket{le="0.1"}'), 1);
  assert.equal(mqtt.queue_depth, 3);
  assert.equal(sample(prom, "bonsai_queue_depth"), 3);
  assert.equal(sample(prom, "bonsai_queue_limit"), 64);
  assert.equal(mqtt.active_slots, 2);
  assert.equal(sample(prom, "bonsai_slots_busy"), 2);
  assert.equal(sample(prom, "bonsai_slots_total"), 2);
  assert.equal((mqtt.memory as { rss_bytes: number }).rss_bytes, 4096);
  assert.equal(sample(prom, "bonsai_resident_memory_bytes"), 4096);
  assert.equal(sample(prom, "bonsai_memory_budget_bytes"), 1000);
  assert.equal((mqtt.thermal as { max_celsius: number }).max_celsius, 61.5);
  assert.equal(sample(prom, "bonsai_cpu_temperature_celsius"), 61.5);
  assert.equal(sample(prom, "bonsai_throttled"), 0);
  assert.equal(sample(prom, "bonsai_uptime_seconds"), 10);
  assert.match(prom, /^# TYPE bonsai_time_to_first_token_seconds histogram$/m);
});

Deno.test("prometheus: no load gauges while the model loads, no temperature where the board has none", () => {
  const text = renderPrometheus(new Metrics({ rss: () => 1, thermal: () => ({ zones: [] }) }).snapshot());
  assert.equal(sample(text, 'bonsai_requests_total{outcome="served"}'), 0);
  assert.equal(sample(text, "bonsai_resident_memory_bytes"), 1);
  assert.doesNotMatch(text, /bonsai_queue_depth|bonsai_slots_total|temperature|bonsai_memory_budget_bytes/);
  assert.ok(text.endsWith("\n"));
});
