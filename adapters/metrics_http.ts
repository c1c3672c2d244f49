/**
 * Serving counters of an adapter (requests by outcome, tokens, decode speed, time to first token)
 * plus the runtime gauges read at scrape time (queue depth, slots, RSS, temperature), and their
 * Prometheus text rendering. Nothing here knows HTTP: the HTTP adapter counts into it and serves
 * the text at `GET /metrics`; any other adapter can count into the same object.
 *
 * @module
 */
import type { GenerationStats } from "../runtime/request.ts";

/** How a request ended. */
export type RequestOutcome = "completed" | "cancelled" | "failed" | "busy" | "rejected";

/** Outcomes in rendering order. */
export const OUTCOMES: readonly RequestOutcome[] = ["completed", "cancelled", "failed", "busy", "rejected"];

/** Upper bounds (seconds) of the time-to-first-token histogram buckets. */
export const TTFT_BUCKETS_S: readonly number[] = [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** What the scheduler and the process look like now. */
export interface RuntimeGauges {
  queueDepth: number;
  queueLimit: number;
  slotsBusy: number;
  slotsTotal: number;
  rssBytes: number;
  /** Degrees Celsius of the first thermal zone, when the system has one. */
  temperatureC?: number;
}

/** A plain copy of every counter, for JSON or a renderer. */
export interface MetricsSnapshot {
  requests: Record<RequestOutcome, number>;
  promptTokens: number;
  cachedPromptTokens: number;
  completionTokens: number;
  /** Decode speed of the last finished request. */
  lastDecodeTokensPerSecond: number;
  /** Completion tokens over decode seconds, all finished requests together. */
  meanDecodeTokensPerSecond: number;
  /** Cumulative counts per bucket of {@link TTFT_BUCKETS_S}, then the +Inf count. */
  ttftBuckets: number[];
  ttftSumSeconds: number;
  ttftCount: number;
}

/** Counters of served requests. */
export class RequestMetrics {
  private readonly requests: Record<RequestOutcome, number> = {
    completed: 0,
    cancelled: 0,
    failed: 0,
    busy: 0,
    rejected: 0,
  };
  private promptTokens = 0;
  private cachedPromptTokens = 0;
  private completionTokens = 0;
  private decodeMs = 0;
  private lastTps = 0;
  private readonly ttft = new Array<number>(TTFT_BUCKETS_S.length + 1).fill(0);
  private ttftSum = 0;

  /** Counts a request that ended without a generation (busy, rejected) or with an error. */
  count(outcome: RequestOutcome): void {
    this.requests[outcome]++;
  }

  /** Counts a finished generation (completed or cancelled) and its tokens. */
  finished(stats: GenerationStats, cancelled: boolean): void {
    this.requests[cancelled ? "cancelled" : "completed"]++;
    this.promptTokens += stats.promptTokens;
    this.cachedPromptTokens += stats.cachedPromptTokens;
    this.completionTokens += stats.completionTokens;
    this.decodeMs += stats.decodeMs;
    if (stats.completionTokens > 0) this.lastTps = stats.decodeTokensPerSecond;
  }

  /** Records a time to first token (from the request's arrival). */
  firstToken(ms: number): void {
    const s = ms / 1000;
    this.ttftSum += s;
    const i = TTFT_BUCKETS_S.findIndex((b) => s <= b);
    this.ttft[i < 0 ? TTFT_BUCKETS_S.length : i]++;
  }

  /** A copy of the counters. */
  snapshot(): MetricsSnapshot {
    let cum = 0;
    const buckets = this.ttft.map((n) => cum += n);
    return {
      requests: { ...this.requests },
      promptTokens: this.promptTokens,
      cachedPromptTokens: this.cachedPromptTokens,
      completionTokens: this.completionTokens,
      lastDecodeTokensPerSecond: this.lastTps,
      meanDecodeTokensPerSecond: this.decodeMs > 0 ? this.completionTokens / (this.decodeMs / 1000) : 0,
      ttftBuckets: buckets,
      ttftSumSeconds: this.ttftSum,
      ttftCount: cum,
    };
  }
}

/** The scheduler's load and the process's memory and temperature now. */
export function runtimeGauges(
  scheduler: { activeCount: number; queuedCount: number; parallel: number; maxQueue: number },
  readTemperature: () => number | undefined = cpuTemperature,
): RuntimeGauges {
  const g: RuntimeGauges = {
    queueDepth: scheduler.queuedCount,
    queueLimit: scheduler.maxQueue,
    slotsBusy: scheduler.activeCount,
    slotsTotal: scheduler.parallel,
    rssBytes: Deno.memoryUsage().rss,
  };
  const t = readTemperature();
  if (t !== undefined) g.temperatureC = t;
  return g;
}

/** The first thermal zone's temperature (Linux sysfs, millidegrees), or undefined. */
export function cpuTemperature(): number | undefined {
  try {
    const milli = Number(Deno.readTextFileSync("/sys/class/thermal/thermal_zone0/temp").trim());
    return Number.isFinite(milli) ? milli / 1000 : undefined;
  } catch {
    return undefined;
  }
}

/** The Prometheus text exposition (version 0.0.4) of the counters and gauges. */
export function renderPrometheus(m: MetricsSnapshot, g: RuntimeGauges | undefined, prefix = "bonsai"): string {
  const out: string[] = [];
  const metric = (name: string, type: string, help: string, samples: [string, number][]) => {
    out.push(`# HELP ${prefix}_${name} ${help}`, `# TYPE ${prefix}_${name} ${type}`);
    for (const [labels, v] of samples) out.push(`${prefix}_${name}${labels} ${formatNumber(v)}`);
  };
  metric(
    "requests_total",
    "counter",
    "Requests by outcome (rejected: bad input or auth; busy: queue full).",
    OUTCOMES.map((o) => [`{outcome="${o}"}`, m.requests[o]]),
  );
  metric("prompt_tokens_total", "counter", "Prompt tokens of finished requests.", [["", m.promptTokens]]);
  metric("prompt_tokens_cached_total", "counter", "Prompt tokens reused from the KV cache.", [[
    "",
    m.cachedPromptTokens,
  ]]);
  metric("completion_tokens_total", "counter", "Generated tokens.", [["", m.completionTokens]]);
  metric("decode_tokens_per_second", "gauge", "Decode speed of the last finished request.", [[
    "",
    m.lastDecodeTokensPerSecond,
  ]]);
  metric("decode_tokens_per_second_mean", "gauge", "Generated tokens over decode time, all requests.", [[
    "",
    m.meanDecodeTokensPerSecond,
  ]]);
  const buckets: [string, number][] = TTFT_BUCKETS_S.map((b, i) => [`{le="${b}"}`, m.ttftBuckets[i]]);
  buckets.push([`{le="+Inf"}`, m.ttftCount]);
  out.push(
    `# HELP ${prefix}_time_to_first_token_seconds Time from a request's arrival to its first token.`,
    `# TYPE ${prefix}_time_to_first_token_seconds histogram`,
    ...buckets.map(([l, v]) => `${prefix}_time_to_first_token_seconds_bucket${l} ${v}`),
    `${prefix}_time_to_first_token_seconds_sum ${formatNumber(m.ttftSumSeconds)}`,
    `${prefix}_time_to_first_token_seconds_count ${m.ttftCount}`,
  );
  if (g) {
    metric("queue_depth", "gauge", "Requests waiting for a slot.", [["", g.queueDepth]]);
    metric("queue_limit", "gauge", "Most requests allowed to wait.", [["", g.queueLimit]]);
    metric("slots_busy", "gauge", "KV slots generating now.", [["", g.slotsBusy]]);
    metric("slots_total", "gauge", "KV slots (requests decoded together).", [["", g.slotsTotal]]);
    metric("resident_memory_bytes", "gauge", "Resident set size of the process.", [["", g.rssBytes]]);
    if (g.temperatureC !== undefined) {
      metric("cpu_temperature_celsius", "gauge", "First thermal zone's temperature.", [["", g.temperatureC]]);
    }
  }
  return out.join("\n") + "\n";
}

function formatNumber(v: number): string {
  if (Number.isInteger(v)) return String(v);
  return Number.isFinite(v) ? String(Math.round(v * 1000) / 1000) : "NaN";
}
