/**
 * Service metrics shared by every adapter (MQTT and HTTP count into one object when both run):
 * requests by outcome, generated and prompt tokens, tokens/s over the last minute and decode
 * speed, time to first token (p50/p95 and cumulative histogram buckets), queue depth and slots,
 * RSS and the memory plan, uptime, and the board's temperature and throttling.
 * {@link Metrics.snapshot} gives a plain object; each adapter renders it in its own format (the
 * MQTT metrics message in mqtt/metrics_message.ts, Prometheus text in metrics_prometheus.ts).
 * @module
 */
import type { GenerationStats } from "../runtime/request.ts";

/** What the metrics report of the memory plan (devices/budget.ts's `MemoryPlan` fits it). */
export interface PlanSummary {
  budgetBytes: number;
  neededBytes: number;
  contextSize: number;
  parallel: number;
}

/**
 * What the metrics report of heat and throttling (devices/thermal.ts's `readThermal` gives it;
 * the command that runs the service passes that reader, since adapters do not import devices).
 */
export interface ThermalReading {
  zones: { type: string; celsius: number }[];
  maxCelsius?: number;
  throttledBits?: number;
  throttled?: boolean;
  cpuKhz?: number;
  cpuMaxKhz?: number;
}

/** How a request ended, for the counters. */
export type Outcome =
  /** Answered (finish reason stop or length). */
  | "served"
  /** Ended with an error reply (bad request, prompt too long, internal...). */
  | "failed"
  /** Refused with BUSY (queue full). */
  | "busy"
  /** Its message expiry passed before it started (EXPIRED). */
  | "expired"
  /** Cancelled by its client or by a shutdown. */
  | "cancelled"
  /** Not run and not answered (MQTT): no or forbidden reply address, retained, redelivered twice. */
  | "refused"
  /** Answered with an error before running (HTTP): bad input, unknown route, bad or missing key. */
  | "rejected";

/** The outcomes, in report order. */
export const OUTCOMES: readonly Outcome[] = [
  "served",
  "failed",
  "busy",
  "expired",
  "cancelled",
  "refused",
  "rejected",
];

/** Upper bounds (ms) of the time-to-first-token histogram buckets; the last bucket is +Inf. */
export const TTFT_BUCKETS_MS: readonly number[] = [
  50,
  100,
  250,
  500,
  1000,
  2500,
  5000,
  10000,
  30000,
];

/** What the scheduler side reports at snapshot time. */
export interface LoadGauges {
  /** Requests waiting for a slot. */
  queueDepth: number;
  /** Requests decoding now. */
  activeSlots: number;
  /** Slots in all. */
  slots: number;
  /** Most requests allowed to wait. */
  queueLimit: number;
}

/** The load gauges of a scheduler now. */
export function loadOf(
  scheduler: { queuedCount: number; activeCount: number; parallel: number; maxQueue: number },
): LoadGauges {
  return {
    queueDepth: scheduler.queuedCount,
    activeSlots: scheduler.activeCount,
    slots: scheduler.parallel,
    queueLimit: scheduler.maxQueue,
  };
}

/** A point-in-time view of the metrics: plain data, ready to render. */
export interface MetricsSnapshot {
  /** ISO time of the snapshot. */
  time: string;
  uptimeSeconds: number;
  requests: Record<Outcome, number>;
  /** Generated tokens since start. */
  tokens: number;
  /** Generated tokens per second over the last 60 s (or since start, if shorter). */
  tokensPerSecond: number;
  /** Prompt tokens of finished generations, and those of them reused from the KV cache. */
  promptTokens: number;
  cachedPromptTokens: number;
  /** Decode speed (tokens/s) of the last finished generation that generated any; 0 before. */
  lastDecodeTokensPerSecond: number;
  /** Generated tokens over decode time, all finished generations together; 0 before any. */
  meanDecodeTokensPerSecond: number;
  /** Time to first token of the recent requests (last {@link TTFT_WINDOW}), ms; undefined before any. */
  ttftMs: {
    p50?: number;
    p95?: number;
    count: number;
    sumMs: number;
    buckets: { le: number; count: number }[];
  };
  /** Undefined when the adapter has no scheduler yet (the model is loading). */
  load?: LoadGauges;
  memory: {
    rssBytes: number;
    plan?: PlanSummary;
  };
  thermal: ThermalReading;
}

/** Recent TTFT samples kept for the percentiles. */
export const TTFT_WINDOW = 1024;

/** Counts and timings of a service. */
export class Metrics {
  readonly requests: Record<Outcome, number> = {
    served: 0,
    failed: 0,
    busy: 0,
    expired: 0,
    cancelled: 0,
    refused: 0,
    rejected: 0,
  };
  private tokens = 0;
  private promptTokens = 0;
  private cachedPromptTokens = 0;
  /** Generated tokens and decode time of finished generations, for the mean decode speed. */
  private decodedTokens = 0;
  private decodeMs = 0;
  private lastTps = 0;
  /** Tokens per whole second, for the last 60 seconds: [second, count] pairs, oldest first. */
  private readonly perSecond: [number, number][] = [];
  private readonly ttft: number[] = [];
  private ttftCount = 0;
  private ttftSum = 0;
  private readonly ttftBuckets = new Array<number>(TTFT_BUCKETS_MS.length + 1)
    .fill(0);
  private readonly started: number;
  private plan?: PlanSummary;

  constructor(
    private readonly opts: {
      plan?: PlanSummary;
      now?: () => number;
      /** Reads the board's temperature and throttling (default: nothing to report). */
      thermal?: () => ThermalReading;
      rss?: () => number;
    } = {},
  ) {
    this.started = this.now();
    this.plan = opts.plan;
  }

  /** Sets the memory plan to report (known once the model is set up, after the metrics exist). */
  setPlan(plan: PlanSummary): void {
    this.plan = plan;
  }

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }

  /** Counts one finished request. */
  count(outcome: Outcome): void {
    this.requests[outcome]++;
  }

  /** Counts generated tokens (call per token event). */
  addTokens(n: number): void {
    this.tokens += n;
    const sec = Math.floor(this.now() / 1000);
    const last = this.perSecond.at(-1);
    if (last && last[0] === sec) last[1] += n;
    else this.perSecond.push([sec, n]);
    while (this.perSecond.length > 0 && this.perSecond[0][0] <= sec - 60) {
      this.perSecond.shift();
    }
  }

  /** Records one request's time to first token. */
  addTtft(ms: number): void {
    this.ttft.push(ms);
    if (this.ttft.length > TTFT_WINDOW) this.ttft.shift();
    this.ttftCount++;
    this.ttftSum += ms;
    const i = TTFT_BUCKETS_MS.findIndex((le) => ms <= le);
    this.ttftBuckets[i === -1 ? TTFT_BUCKETS_MS.length : i]++;
  }

  /**
   * Records a finished generation's prompt tokens and decode speed. Its generated tokens are
   * not counted here: {@link addTokens} counts them (as they come, for tokens/s).
   */
  addGeneration(stats: GenerationStats): void {
    this.promptTokens += stats.promptTokens;
    this.cachedPromptTokens += stats.cachedPromptTokens;
    this.decodedTokens += stats.completionTokens;
    this.decodeMs += stats.decodeMs;
    if (stats.completionTokens > 0) this.lastTps = stats.decodeTokensPerSecond;
  }

  /** The metrics now; `load` comes from the scheduler (none while the model loads). */
  snapshot(load?: LoadGauges): MetricsSnapshot {
    const now = this.now();
    const sec = Math.floor(now / 1000);
    const recent = this.perSecond.filter(([s]) => s > sec - 60).reduce(
      (a, [, n]) => a + n,
      0,
    );
    const span = Math.min(60, Math.max(1, (now - this.started) / 1000));
    const sorted = [...this.ttft].sort((a, b) => a - b);
    let cumulative = 0;
    const plan = this.plan;
    return {
      time: new Date(now).toISOString(),
      uptimeSeconds: Math.round((now - this.started) / 1000),
      requests: { ...this.requests },
      tokens: this.tokens,
      tokensPerSecond: round2(recent / span),
      promptTokens: this.promptTokens,
      cachedPromptTokens: this.cachedPromptTokens,
      lastDecodeTokensPerSecond: round2(this.lastTps),
      meanDecodeTokensPerSecond: this.decodeMs > 0 ? round2(this.decodedTokens / (this.decodeMs / 1000)) : 0,
      ttftMs: {
        p50: percentile(sorted, 0.5),
        p95: percentile(sorted, 0.95),
        count: this.ttftCount,
        sumMs: round2(this.ttftSum),
        buckets: [...TTFT_BUCKETS_MS, Infinity].map((le, i) => ({
          le,
          count: cumulative += this.ttftBuckets[i],
        })),
      },
      ...(load ? { load } : {}),
      memory: {
        rssBytes: (this.opts.rss ?? (() => Deno.memoryUsage().rss))(),
        ...(plan
          ? {
            plan: {
              budgetBytes: plan.budgetBytes,
              neededBytes: plan.neededBytes,
              contextSize: plan.contextSize,
              parallel: plan.parallel,
            },
          }
          : {}),
      },
      thermal: this.opts.thermal?.() ?? { zones: [] },
    };
  }
}

/** Nearest-rank percentile of sorted values; undefined when empty. */
export function percentile(sorted: number[], p: number): number | undefined {
  if (sorted.length === 0) return undefined;
  const rank = Math.min(
    sorted.length - 1,
    Math.max(0, Math.ceil(p * sorted.length) - 1),
  );
  return round2(sorted[rank]);
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}
