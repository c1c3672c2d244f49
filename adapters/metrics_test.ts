import assert from "node:assert/strict";
import { Metrics, percentile } from "./metrics.ts";

Deno.test("metrics: outcomes, tokens/s over the last minute, TTFT percentiles and cumulative buckets", () => {
  let now = 1_000_000;
  const m = new Metrics({
    now: () => now,
    thermal: () => ({ zones: [] }),
    rss: () => 123,
  });
  m.count("served");
  m.count("served");
  m.count("busy");
  m.addTokens(100); // at t=0
  now += 120_000; // two minutes later: the first 100 tokens leave the window
  m.addTokens(30);
  now += 10_000;
  m.addTokens(30);
  for (const t of [10, 20, 30, 40, 60, 200, 900, 40_000]) m.addTtft(t);
  const s = m.snapshot({ queueDepth: 2, activeSlots: 1, slots: 4, queueLimit: 8 });
  assert.equal(s.requests.served, 2);
  assert.equal(s.requests.busy, 1);
  assert.equal(s.requests.failed, 0);
  assert.equal(s.tokens, 160);
  assert.equal(s.tokensPerSecond, 1); // 60 tokens over the last 60 s
  assert.equal(s.uptimeSeconds, 130);
  assert.equal(s.ttftMs.p50, 40);
  assert.equal(s.ttftMs.p95, 40_000);
  assert.equal(s.ttftMs.count, 8);
  assert.deepEqual(s.ttftMs.buckets.slice(0, 4), [
    { le: 50, count: 4 },
    { le: 100, count: 5 },
    { le: 250, count: 6 },
    { le: 500, count: 6 },
  ]);
  assert.deepEqual(s.ttftMs.buckets.at(-1), { le: Infinity, count: 8 });
  assert.deepEqual(s.load, { queueDepth: 2, activeSlots: 1, slots: 4, queueLimit: 8 });
  assert.equal(s.memory.rssBytes, 123);
});

Deno.test("metrics: tokens/s over a start shorter than a minute uses the time since start", () => {
  let now = 5_000_000;
  const m = new Metrics({
    now: () => now,
    thermal: () => ({ zones: [] }),
    rss: () => 0,
  });
  now += 10_000;
  m.addTokens(50);
  assert.equal(
    m.snapshot({ queueDepth: 0, activeSlots: 0, slots: 1, queueLimit: 0 }).tokensPerSecond,
    5,
  );
  assert.equal(percentile([], 0.5), undefined);
  assert.equal(percentile([7], 0.95), 7);
});
