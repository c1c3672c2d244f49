/**
 * The Prometheus text exposition (version 0.0.4) of a {@link MetricsSnapshot}: the same counters
 * and gauges the MQTT metrics message carries, as the HTTP adapter serves them at `GET /metrics`.
 * @module
 */
import { type MetricsSnapshot, OUTCOMES } from "./metrics.ts";

/** Renders the snapshot as Prometheus text; every metric name starts with `{prefix}_`. */
export function renderPrometheus(s: MetricsSnapshot, prefix = "bonsai"): string {
  const out: string[] = [];
  const metric = (name: string, type: string, help: string, samples: [string, number][]) => {
    out.push(`# HELP ${prefix}_${name} ${help}`, `# TYPE ${prefix}_${name} ${type}`);
    for (const [labels, v] of samples) out.push(`${prefix}_${name}${labels} ${formatNumber(v)}`);
  };
  const gauge = (name: string, help: string, v: number) => metric(name, "gauge", help, [["", v]]);
  const counter = (name: string, help: string, v: number) => metric(name, "counter", help, [["", v]]);
  metric(
    "requests_total",
    "counter",
    "Requests by outcome (busy: queue full; rejected: bad input or auth; refused: not run nor answered).",
    OUTCOMES.map((o) => [`{outcome="${o}"}`, s.requests[o]]),
  );
  counter("prompt_tokens_total", "Prompt tokens of finished requests.", s.promptTokens);
  counter("prompt_tokens_cached_total", "Prompt tokens reused from the KV cache.", s.cachedPromptTokens);
  counter("completion_tokens_total", "Generated tokens.", s.tokens);
  gauge("tokens_per_second_1m", "Generated tokens per second over the last minute.", s.tokensPerSecond);
  gauge("decode_tokens_per_second", "Decode speed of the last finished request.", s.lastDecodeTokensPerSecond);
  gauge(
    "decode_tokens_per_second_mean",
    "Generated tokens over decode time, all requests.",
    s.meanDecodeTokensPerSecond,
  );
  // Prometheus measures time in seconds: the snapshot's millisecond bounds are divided by 1000.
  const t = s.ttftMs;
  const ttft = `${prefix}_time_to_first_token_seconds`;
  out.push(
    `# HELP ${ttft} Time from a request's arrival to its first token.`,
    `# TYPE ${ttft} histogram`,
    ...t.buckets.map((b) => `${ttft}_bucket{le="${Number.isFinite(b.le) ? b.le / 1000 : "+Inf"}"} ${b.count}`),
    `${ttft}_sum ${formatNumber(t.sumMs / 1000)}`,
    `${ttft}_count ${t.count}`,
  );
  gauge("uptime_seconds", "Seconds since the service started.", s.uptimeSeconds);
  if (s.load) {
    gauge("queue_depth", "Requests waiting for a slot.", s.load.queueDepth);
    gauge("queue_limit", "Most requests allowed to wait.", s.load.queueLimit);
    gauge("slots_busy", "KV slots generating now.", s.load.activeSlots);
    gauge("slots_total", "KV slots (requests decoded together).", s.load.slots);
  }
  gauge("resident_memory_bytes", "Resident set size of the process.", s.memory.rssBytes);
  const plan = s.memory.plan;
  if (plan) {
    gauge("memory_budget_bytes", "Memory budget of the plan the service started with.", plan.budgetBytes);
    gauge("memory_needed_bytes", "Memory the plan needs (weights, KV cache, scratch).", plan.neededBytes);
  }
  const th = s.thermal;
  if (th.zones.length > 0) {
    gauge("cpu_temperature_celsius", "First thermal zone's temperature.", th.zones[0].celsius);
  }
  if (th.maxCelsius !== undefined) gauge("temperature_max_celsius", "Hottest thermal zone.", th.maxCelsius);
  if (th.throttled !== undefined) {
    gauge("throttled", "1 when the firmware reports throttling now (Raspberry Pi).", th.throttled ? 1 : 0);
  }
  if (th.cpuKhz !== undefined) gauge("cpu_frequency_khz", "Current CPU clock.", th.cpuKhz);
  return out.join("\n") + "\n";
}

function formatNumber(v: number): string {
  if (Number.isInteger(v)) return String(v);
  return Number.isFinite(v) ? String(Math.round(v * 1000) / 1000) : "NaN";
}
