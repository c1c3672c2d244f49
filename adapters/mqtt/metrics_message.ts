/**
 * The `{prefix}/{node}/metrics` message: a {@link MetricsSnapshot} rendered as JSON with
 * snake_case names (the names the README documents), plus the node's MQTT-only counters.
 */
import type { MetricsSnapshot } from "../metrics.ts";

/** MQTT-side counters reported beside the request outcomes. */
export interface MqttCounters {
  retainedIgnored: number;
  replyRefused: number;
  duplicates: number;
  redelivered: number;
  chunksDropped: number;
  reconnects: number;
}

/** The metrics message payload. */
export function metricsMessage(
  node: string,
  s: MetricsSnapshot,
  mqtt: MqttCounters,
): Record<string, unknown> {
  const t = s.thermal;
  return {
    node,
    time: s.time,
    uptime_s: s.uptimeSeconds,
    requests: s.requests,
    tokens: s.tokens,
    tokens_per_s_1m: s.tokensPerSecond,
    prompt_tokens: s.promptTokens,
    prompt_tokens_cached: s.cachedPromptTokens,
    decode_tokens_per_s: s.lastDecodeTokensPerSecond,
    decode_tokens_per_s_mean: s.meanDecodeTokensPerSecond,
    ttft_ms: {
      p50: s.ttftMs.p50 ?? null,
      p95: s.ttftMs.p95 ?? null,
      count: s.ttftMs.count,
      sum: s.ttftMs.sumMs,
      // JSON has no Infinity: the last bucket's bound is "+Inf", as in Prometheus.
      buckets: s.ttftMs.buckets.map((
        b,
      ) => [Number.isFinite(b.le) ? b.le : "+Inf", b.count]),
    },
    // The service always passes its scheduler's load; 0 keeps the fields numbers regardless.
    queue_depth: s.load?.queueDepth ?? 0,
    queue_limit: s.load?.queueLimit ?? 0,
    active_slots: s.load?.activeSlots ?? 0,
    slots: s.load?.slots ?? 0,
    memory: {
      rss_bytes: s.memory.rssBytes,
      ...(s.memory.plan
        ? {
          plan: {
            budget_bytes: s.memory.plan.budgetBytes,
            needed_bytes: s.memory.plan.neededBytes,
            ctx: s.memory.plan.contextSize,
            parallel: s.memory.plan.parallel,
          },
        }
        : {}),
    },
    thermal: {
      max_celsius: t.maxCelsius ?? null,
      zones: t.zones.map((z) => ({ type: z.type, celsius: z.celsius })),
      throttled: t.throttled ?? null,
      throttled_bits: t.throttledBits ?? null,
      cpu_khz: t.cpuKhz ?? null,
      cpu_max_khz: t.cpuMaxKhz ?? null,
    },
    mqtt: {
      retained_ignored: mqtt.retainedIgnored,
      reply_refused: mqtt.replyRefused,
      duplicate_ids: mqtt.duplicates,
      redelivered_ignored: mqtt.redelivered,
      chunks_dropped: mqtt.chunksDropped,
      reconnects: mqtt.reconnects,
    },
  };
}
