/**
 * Aggregate decode throughput of the continuous-batching scheduler (what `bonsai serve` runs) at
 * 1, 4, 16 and 50 concurrent requests on the 1.7B shape (synthetic weights, generated into
 * models/ if missing). Each level submits N requests at once and times them to the last token.
 *
 *   deno run --allow-all bench/concurrency.ts [--levels 1,4,16,50] [--tokens 32] [--parallel 16]
 *     [--ctx 128] [--threads N] [--shape 1.7b] [--json FILE]
 *
 * Prints a table, then the results as one JSON line (and to --json FILE if given).
 */
import { parseArgs } from "node:util";
import { Model } from "../runtime/model.ts";
import { Scheduler } from "../runtime/scheduler.ts";
import { ensureModel } from "./models.ts";

const { values: v } = parseArgs({
  args: Deno.args,
  options: {
    levels: { type: "string", default: "1,4,16,50" },
    tokens: { type: "string", default: "32" },
    parallel: { type: "string", default: "16" },
    ctx: { type: "string", default: "128" },
    threads: { type: "string" },
    shape: { type: "string", default: "1.7b" },
    json: { type: "string" },
  },
});
const levels = v.levels!.split(",").map(Number);
const tokens = Number(v.tokens);
const maxParallel = Number(v.parallel);
const ctx = Number(v.ctx);
if (levels.some((n) => !Number.isInteger(n) || n < 1) || !(tokens >= 1) || !(maxParallel >= 1) || !(ctx >= 64)) {
  console.error("bad arguments: --levels takes positive integers, --tokens and --parallel >= 1, --ctx >= 64");
  Deno.exit(2);
}

const path = await ensureModel(v.shape!);
const model = await Model.load(path, { threads: v.threads ? Number(v.threads) : undefined });
const PROMPTS = [
  "Report the line status.",
  "Which valve is open?",
  "Summarise the last alarm.",
  "Is the arm at home position?",
];

interface Row {
  concurrent: number;
  parallel: number;
  tokens: number;
  wallSeconds: number;
  aggregateTokensPerSecond: number;
  perRequestTokensPerSecond: number;
  ttftMedianMs: number;
}

const rows: Row[] = [];
try {
  // Warm-up: page the weights in and let the kernels settle.
  await run(new Scheduler(model, { parallel: 1, contextSize: ctx }), 1, 4);
  for (const n of levels) {
    const parallel = Math.min(n, maxParallel);
    const scheduler = new Scheduler(model, {
      parallel,
      contextSize: ctx,
      maxQueue: n,
      maxBatch: Math.max(64, parallel),
    });
    rows.push(await run(scheduler, n, tokens));
    const r = rows.at(-1)!;
    console.error(`${n} concurrent: ${r.aggregateTokensPerSecond.toFixed(1)} tok/s aggregate`);
  }
} catch (e) {
  model.close();
  throw e;
}

async function run(scheduler: Scheduler, n: number, maxTokens: number): Promise<Row> {
  const t0 = performance.now();
  const ttft: number[] = [];
  const perRequest: number[] = [];
  let total = 0;
  await Promise.all(Array.from({ length: n }, async (_, i) => {
    let first = 0;
    for await (
      const ev of scheduler.submit({
        prompt: PROMPTS[i % PROMPTS.length],
        maxTokens,
        stop: [],
        sampling: { temperature: 0.7, seed: i },
      })
    ) {
      if (ev.type === "token" && first === 0) first = performance.now() - t0;
      if (ev.type === "done") {
        total += ev.stats.completionTokens;
        perRequest.push(ev.stats.decodeTokensPerSecond);
      }
    }
    ttft.push(first);
  }));
  const wall = (performance.now() - t0) / 1000;
  ttft.sort((a, b) => a - b);
  return {
    concurrent: n,
    parallel: scheduler.parallel,
    tokens: total,
    wallSeconds: round(wall),
    aggregateTokensPerSecond: round(total / wall),
    perRequestTokensPerSecond: round(perRequest.reduce((a, b) => a + b, 0) / perRequest.length),
    ttftMedianMs: round(ttft[Math.floor(ttft.length / 2)]),
  };
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

const header = ["concurrent", "parallel", "tokens", "wall s", "aggregate tok/s", "per-request tok/s", "TTFT p50 ms"];
const table = rows.map((r) =>
  [
    r.concurrent,
    r.parallel,
    r.tokens,
    r.wallSeconds,
    r.aggregateTokensPerSecond,
    r.perRequestTokensPerSecond,
    r.ttftMedianMs,
  ].map(String)
);
const widths = header.map((h, i) => Math.max(h.length, ...table.map((t) => t[i].length)));
const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i])).join("  ");
console.log(
  `${model.config.name} (${v.shape}), ${tokens} tokens per request, KV ${ctx} tokens per slot, kernels ${
    model.kernels.isaActive().join("+") || "scalar"
  } x${model.kernels.threads()}`,
);
console.log(line(header));
for (const t of table) console.log(line(t));
const result = { bench: "concurrency", shape: v.shape, tokensPerRequest: tokens, contextSize: ctx, rows };
console.log(JSON.stringify(result));
if (v.json) await Deno.writeTextFile(v.json, JSON.stringify(result, null, 2) + "\n");
model.close();
