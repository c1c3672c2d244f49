/**
 * Continuous batching on the tiny model: many requests at once, each answered exactly as if it
 * ran alone; a full queue, a cancelled request, a full context and a bad request each end that
 * request only.
 */
import assert from "node:assert/strict";
import { Model } from "../runtime/model.ts";
import { Scheduler } from "../runtime/scheduler.ts";
import { type GenerationEvent, type GenerationRequest, RequestError } from "../runtime/request.ts";
import { tinyModel } from "./fixtures.ts";

async function collect(events: AsyncIterable<GenerationEvent>) {
  let streamed = "";
  for await (const ev of events) {
    if (ev.type === "token") streamed += ev.text;
    else return { streamed, done: ev };
  }
  throw new Error("no done event");
}

const PROMPTS = ["Hello", "Status report, please.", "2+2=?", "Move the arm left", "Hi", "What is the temperature?"];
const request = (prompt: string, seed: number): GenerationRequest => ({
  prompt,
  maxTokens: 12,
  sampling: { temperature: 0.8, seed },
});

Deno.test("batched requests give the same tokens as each alone", async () => {
  const model = await Model.load(await tinyModel(), { threads: 2 });
  try {
    const alone = new Scheduler(model, { parallel: 1, contextSize: 256 });
    const expected = [];
    for (const [i, p] of PROMPTS.entries()) expected.push((await collect(alone.submit(request(p, i)))).done.text);

    const together = new Scheduler(model, { parallel: 4, contextSize: 256, maxBatch: 16 });
    const results = await Promise.all(PROMPTS.map((p, i) => collect(together.submit(request(p, i)))));
    assert.deepEqual(results.map((r) => r.done.text), expected);
    for (const r of results) assert.equal(r.streamed, r.done.text);
    assert.equal(together.activeCount, 0);
  } finally {
    model.close();
  }
});

Deno.test("a full queue answers BUSY at once; the others still complete", async () => {
  const model = await Model.load(await tinyModel(), { threads: 1 });
  try {
    const s = new Scheduler(model, { parallel: 1, contextSize: 128, maxQueue: 2 });
    const running = [collect(s.submit(request("a", 1))), collect(s.submit(request("b", 2)))];
    assert.throws(() => s.submit(request("c", 3)), (e: unknown) => e instanceof RequestError && e.code === "BUSY");
    const done = await Promise.all(running);
    assert.ok(done.every((d) => d.done.type === "done"));
  } finally {
    model.close();
  }
});

Deno.test("cancelling frees the slot at once for the next request", async () => {
  const model = await Model.load(await tinyModel(), { threads: 1 });
  try {
    const s = new Scheduler(model, { parallel: 1, contextSize: 512 });
    const ctrl = new AbortController();
    const long = s.submit({ prompt: "go", maxTokens: 400, sampling: { temperature: 0 } }, ctrl.signal);
    const waiting = collect(s.submit(request("next", 5)));
    let tokens = 0;
    let final: GenerationEvent | undefined;
    for await (const ev of long) {
      if (ev.type === "token" && ++tokens === 3) ctrl.abort();
      if (ev.type === "done") final = ev;
    }
    assert.equal(final?.type === "done" && final.finishReason, "cancelled");
    assert.ok(final?.type === "done" && final.stats.completionTokens < 10);
    assert.equal((await waiting).done.type, "done");
  } finally {
    model.close();
  }
});

Deno.test("a full context ends that request with CONTEXT_FULL; a bad request fails alone", async () => {
  const model = await Model.load(await tinyModel(), { threads: 1 });
  try {
    const s = new Scheduler(model, { parallel: 2, contextSize: 24 });
    const [full, bad, fine] = await Promise.allSettled([
      collect(s.submit({ prompt: "hi", maxTokens: 100, sampling: { temperature: 0 } })),
      collect(s.submit({ prompt: "hi", sampling: { topP: 7 } })),
      collect(s.submit(request("ok", 1))),
    ]);
    const reason = (r: PromiseSettledResult<unknown>) => r.status === "rejected" ? r.reason : undefined;
    assert.ok(reason(full) instanceof RequestError && reason(full).code === "CONTEXT_FULL", String(reason(full)));
    // The runtime states the fact; advice naming CLI flags is the adapters' (adapters/request.ts).
    assert.match(reason(full).message, /the KV cache holds 24 tokens$/);
    assert.ok(reason(bad) instanceof RequestError && reason(bad).code === "BAD_REQUEST");
    assert.match(reason(bad).message, /top_p/);
    assert.equal(fine.status, "fulfilled");
  } finally {
    model.close();
  }
});

Deno.test("a repeated system prompt is taken from the cache, with the same answer as a fresh run", async () => {
  const model = await Model.load(await tinyModel(), { threads: 1 });
  try {
    const system = "You are the controller of a warehouse robot. Answer in one short sentence. ".repeat(4);
    const ask = (prompt: string): GenerationRequest => ({ system, prompt, maxTokens: 6, sampling: { temperature: 0 } });
    const cached = new Scheduler(model, { parallel: 1, contextSize: 256 });
    const first = await collect(cached.submit(ask("Where is bay 4?")));
    const second = await collect(cached.submit(ask("Is the dock free?")));
    assert.equal(first.done.type === "done" && first.done.stats.cachedPromptTokens, 0);
    const reused = second.done.type === "done" ? second.done.stats.cachedPromptTokens : 0;
    assert.ok(reused > 40, `reused ${reused} tokens`);
    const fresh = await collect(
      new Scheduler(model, { parallel: 1, contextSize: 256 }).submit(ask("Is the dock free?")),
    );
    assert.equal(second.done.text, fresh.done.text);
    // An identical request reuses all but the last prompt token.
    const again = await collect(cached.submit(ask("Is the dock free?")));
    assert.ok(again.done.type === "done" && again.done.stats.cachedPromptTokens === again.done.stats.promptTokens - 1);
    assert.equal(again.done.text, fresh.done.text);
  } finally {
    model.close();
  }
});

Deno.test("overflow 'slide' keeps generating past the context size", async () => {
  const model = await Model.load(await tinyModel(), { threads: 1 });
  try {
    const s = new Scheduler(model, { parallel: 1, contextSize: 48, overflow: "slide" });
    const r = await collect(
      s.submit({ prompt: "Count", maxTokens: 120, sampling: { temperature: 0.7, seed: 3 }, stopTokens: [] }),
    );
    assert.equal(r.done.type === "done" && r.done.finishReason, "length");
    assert.equal(r.done.type === "done" && r.done.stats.completionTokens, 120);
  } finally {
    model.close();
  }
});

Deno.test("a bad request fails at submit, before it queues: it does not wait for the running one", async () => {
  const model = await Model.load(await tinyModel(), { threads: 1 });
  try {
    const scheduler = new Scheduler(model, { parallel: 1, contextSize: 256, maxQueue: 4 });
    const order: string[] = [];
    const long = (async () => {
      for await (
        const ev of scheduler.submit({ prompt: "Talk for a while", maxTokens: 60, sampling: { temperature: 0 } })
      ) {
        if (ev.type === "done") order.push("long done");
      }
    })();
    const bad = (async () => {
      try {
        for await (const _ of scheduler.submit({ prompt: "x", grammar: "root ::= undefined-rule" })) { /* none */ }
      } catch (e) {
        order.push(`bad: ${(e as RequestError).code}`);
      }
    })();
    const tooLong = (async () => {
      try {
        for await (const _ of scheduler.submit({ prompt: "word ".repeat(400) })) { /* none */ }
      } catch (e) {
        order.push(`too long: ${(e as RequestError).code}`);
      }
    })();
    // Both bad requests are answered while the only slot is still busy, and took no queue place.
    assert.equal(scheduler.queuedCount + scheduler.activeCount, 1);
    await Promise.all([long, bad, tooLong]);
    assert.deepEqual(order, ["bad: BAD_REQUEST", "too long: PROMPT_TOO_LONG", "long done"]);
  } finally {
    model.close();
  }
});
