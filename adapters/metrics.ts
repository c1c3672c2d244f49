/**
 * Service metrics shared by every adapter (MQTT now; an HTTP /metrics later): requests by
 * outcome, generated tokens and tokens/s over the last minute, time to first token (p50/p95 and
 * cumulative histogram buckets), queue depth and active slots, RSS and the memory plan, uptime,
 * and the board's temperature and throttling. {@link Metrics.snapshot} gives a plain object;
 * each adapter renders it in its own format (the MQTT metrics message, Prometheus text, ...).
 * @module
 */

/**
 * The board's heat and throttling as the metrics carry it (devices/thermal.ts reads it from
 * sysfs; the command wires it in, since adapters/ and devices/ are sibling layers).
 */
export interface ThermalReading {
  zones: { type: string; celsius: number }[];
  maxCelsius?: number;
  throttledBits?: number;
  throttled?: boolean;
  cpuKhz?: number;
  cpuMaxKhz?: number;
}

/** The parts of the memory plan (devices/budget.ts MemoryPlan) the metrics report. */
export interface PlanSummary {
  budgetBytes: number;
  neededBytes: number;
  ctx: number;
  parallel: number;
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
  /** Not run and not answered: no or forbidden reply address, retained, redelivered twice. */
  | "refused";

/** The outcomes, in report order. */
export const OUTCOMES: readonly Outcome[] = [
  "served",
  "failed",
  "busy",
  "expired",
  "cancelled",
  "refused",
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
  /** Time to first token of the recent requests (last {@link TTFT_WINDOW}), ms; undefined before any. */
  ttftMs: {
    p50?: number;
    p95?: number;
    count: number;
    sumMs: number;
    buckets: { le: number; count: number }[];
  };
  load: LoadGauges;
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
  };
  private tokens = 0;
  /** Tokens per whole second, for the last 60 seconds: [second, count] pairs, oldest first. */
  private readonly perSecond: [number, number][] = [];
  private readonly ttft: number[] = [];
  private ttftCount = 0;
  private ttftSum = 0;
  private readonly ttftBuckets = new Array<number>(TTFT_BUCKETS_MS.length + 1)
    .fill(0);
  private readonly started: number;

  constructor(
    private readonly opts: {
      /** The memory plan the node started with. */
      plan?: PlanSummary;
      now?: () => number;
      /** Reads the board's thermal state (default: none, an empty reading). */
      thermal?: () => ThermalReading;
      rss?: () => number;
    } = {},
  ) {
    this.started = this.now();
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

  /** The metrics now; `load` comes from the scheduler. */
  snapshot(load: LoadGauges): MetricsSnapshot {
    const now = this.now();
    const sec = Math.floor(now / 1000);
    const recent = this.perSecond.filter(([s]) => s > sec - 60).reduce(
      (a, [, n]) => a + n,
      0,
    );
    const span = Math.min(60, Math.max(1, (now - this.started) / 1000));
    const sorted = [...this.ttft].sort((a, b) => a - b);
    let cumulative = 0;
    const plan = this.opts.plan;
    return {
      time: new Date(now).toISOString(),
      uptimeSeconds: Math.round((now - this.started) / 1000),
      requests: { ...this.requests },
      tokens: this.tokens,
      tokensPerSecond: round2(recent / span),
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
      load,
      memory: {
        rssBytes: (this.opts.rss ?? (() => Deno.memoryUsage().rss))(),
        ...(plan
          ? {
            plan: {
              budgetBytes: plan.budgetBytes,
              neededBytes: plan.neededBytes,
              ctx: plan.ctx,
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
