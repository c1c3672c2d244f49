/**
 * Continuous batching: requests wait in a bounded queue, run in one of `parallel` KV slots, and
 * every step runs one token of each decoding sequence plus a chunk of prompt tokens, so that
 * the weights are read once per step for all of them. A sequence's tokens do not depend on what
 * it is batched with (each row's arithmetic is the same as alone). A free slot keeps what it
 * last held, so a request that starts with the same tokens (a repeated system prompt) skips
 * prefilling them.
 */
import type { Model } from "./model.ts";
import { type BatchRow, Forward } from "./forward.ts";
import { KvCache } from "./kv_cache.ts";
import type { KvTypeName } from "../kernels/ffi.ts";
import { Sequence } from "./sequence.ts";
import { EventChannel } from "./event_channel.ts";
import { Yielder } from "./yielder.ts";
import { slideKv } from "./kv_shift.ts";
import { type GenerationEvent, type GenerationRequest, RequestError } from "./request.ts";

/** Settings of a scheduler. */
export interface SchedulerOptions {
  /** Sequences decoding together; each gets its own KV slot of `contextSize` tokens. */
  parallel?: number;
  /** KV slot size in tokens (default: the model's context, at most 4096). */
  contextSize?: number;
  kvType?: KvTypeName;
  /** Requests allowed to wait for a slot; more are refused with BUSY. */
  maxQueue?: number;
  /** Default upper bound on generated tokens per request. */
  maxTokens?: number;
  /** Most rows (tokens) in one step; prompt chunks fill what decoding leaves. */
  maxBatch?: number;
  /**
   * What a full KV slot does: `error` ends the request with CONTEXT_FULL (default); `slide`
   * keeps the first `keep` tokens, drops the older half of the rest and goes on.
   */
  overflow?: "error" | "slide";
  /** Tokens kept at the start when sliding; -1 (default) keeps the whole prompt, at most half the slot. */
  keep?: number;
}

interface Job {
  signal?: AbortSignal;
  channel: EventChannel<GenerationEvent>;
  cancelled: boolean;
  /** Tokenized and its constraint compiled at submit: the decode loop never does either. */
  seq: Sequence;
  slot?: KvCache;
  /** The token to run next once prefilled. */
  next?: number;
}

/** Schedules generation requests on one model. */
export class Scheduler {
  readonly parallel: number;
  readonly contextSize: number;
  readonly maxQueue: number;
  readonly overflow: "error" | "slide";
  readonly keep: number;
  private readonly free: KvCache[] = [];
  private readonly queue: Job[] = [];
  private readonly active: Job[] = [];
  private readonly forward: Forward;
  private readonly defaultMaxTokens: number;
  private readonly yielder = new Yielder();
  private running = false;
  private idleWaiters: (() => void)[] = [];

  constructor(readonly model: Model, opts: SchedulerOptions = {}) {
    const c = model.config;
    this.parallel = opts.parallel ?? 1;
    this.contextSize = opts.contextSize ?? Math.min(c.contextLength, 4096);
    this.maxQueue = opts.maxQueue ?? 64;
    this.defaultMaxTokens = opts.maxTokens ?? 512;
    this.overflow = opts.overflow ?? "error";
    this.keep = opts.keep ?? -1;
    if (this.overflow !== "error" && this.overflow !== "slide") {
      throw new RangeError(`overflow policy must be error or slide, got ${this.overflow}`);
    }
    if (!Number.isInteger(this.parallel) || this.parallel < 1) {
      throw new RangeError(`parallel must be a positive integer, got ${this.parallel}`);
    }
    if (this.contextSize > c.contextLength) {
      throw new RangeError(`context size ${this.contextSize} exceeds the model's trained context ${c.contextLength}`);
    }
    for (let i = 0; i < this.parallel; i++) this.free.push(new KvCache(c, this.contextSize, opts.kvType ?? "f16"));
    const maxBatch = Math.max(opts.maxBatch ?? 64, this.parallel);
    this.forward = new Forward(model.kernels, c, model.weights, this.contextSize, {
      maxBatch,
      maxLogitRows: this.parallel,
    });
  }

  /** Requests running now. */
  get activeCount(): number {
    return this.active.length;
  }

  /** Requests waiting for a slot. */
  get queuedCount(): number {
    return this.queue.length;
  }

  /**
   * Queues a request. Throws RequestError BUSY at once when the queue is full; otherwise the
   * events stream from the returned iterable, which throws a RequestError if the request fails.
   * The request is tokenized and its output constraint compiled here, before it queues: a bad
   * request fails at once (through the iterable) without waiting for a slot, and the decode loop
   * never tokenizes. Aborting `signal` (or leaving the iteration early) cancels the request and
   * frees its slot.
   */
  submit(request: GenerationRequest, signal?: AbortSignal): AsyncIterable<GenerationEvent> {
    if (this.queue.length >= this.maxQueue) {
      throw new RequestError(
        "BUSY",
        `busy: ${this.active.length} requests running and ${this.queue.length} waiting (queue limit ${this.maxQueue}); retry later`,
      );
    }
    let seq: Sequence;
    try {
      seq = new Sequence(this.model, request, {
        contextSize: this.contextSize,
        defaultMaxTokens: this.defaultMaxTokens,
      });
    } catch (e) {
      const failed = new EventChannel<GenerationEvent>(() => {});
      failed.end(e);
      return failed;
    }
    const job: Job = {
      seq,
      signal,
      cancelled: false,
      channel: new EventChannel(() => {
        job.cancelled = true;
        this.kick();
      }),
    };
    signal?.addEventListener("abort", () => this.kick(), { once: true });
    this.queue.push(job);
    this.kick();
    return job.channel;
  }

  /** Resolves once no request is queued or running (at once when none is). */
  idle(): Promise<void> {
    if (this.queue.length === 0 && this.active.length === 0 && !this.running) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Cancels every queued and running request: each ends with `finish_reason: "cancelled"`. */
  cancelAll(): void {
    for (const job of [...this.queue, ...this.active]) job.cancelled = true;
    this.kick();
  }

  /** Starts the loop on a later microtask, so that `submit` never runs model work itself. */
  private kick(): void {
    if (this.running) return;
    this.running = true;
    queueMicrotask(() => void this.pump());
  }

  private async pump(): Promise<void> {
    try {
      while (this.queue.length > 0 || this.active.length > 0) {
        this.dropCancelled();
        this.admit();
        if (this.active.length > 0) this.step();
        await this.yielder.yield();
      }
    } finally {
      this.running = false;
      if (this.queue.length === 0 && this.active.length === 0) {
        for (const wake of this.idleWaiters.splice(0)) wake();
      }
    }
  }

  private isCancelled(job: Job): boolean {
    return job.cancelled || (job.signal?.aborted ?? false);
  }

  private dropCancelled(): void {
    for (let i = this.queue.length - 1; i >= 0; i--) {
      const job = this.queue[i];
      if (!this.isCancelled(job)) continue;
      this.queue.splice(i, 1);
      job.channel.push(cancelledBeforeStart());
      job.channel.end();
    }
    for (const job of [...this.active]) {
      if (this.isCancelled(job)) this.retire(job, job.seq.finish("cancelled").events);
    }
  }

  /** Moves queued jobs into free slots. */
  private admit(): void {
    while (this.free.length > 0 && this.queue.length > 0) {
      const job = this.queue.shift()!;
      job.seq.startedAt = performance.now();
      job.slot = this.takeSlot(job.seq);
      this.active.push(job);
    }
  }

  /** One forward pass over every active sequence, then sampling. */
  private step(): void {
    const rows: BatchRow[] = [];
    const owners: Job[] = [];
    // Decoding sequences first: one row each.
    for (const job of this.active) {
      if (job.next === undefined) continue;
      if (job.slot!.length >= job.slot!.contextSize && !this.makeRoom(job)) continue;
      rows.push({ token: job.next, kv: job.slot!, wantLogits: true });
      owners.push(job);
    }
    // Prompt chunks fill the rest of the batch, oldest request first.
    for (const job of this.active) {
      const seq = job.seq;
      if (job.next !== undefined || seq.prefilled >= seq.prompt.length) continue;
      const room = this.forward.maxBatch - rows.length;
      if (room <= 0) break;
      const take = Math.min(room, seq.prompt.length - seq.prefilled);
      for (let i = 0; i < take; i++) {
        const last = seq.prefilled + i === seq.prompt.length - 1;
        rows.push({ token: seq.prompt[seq.prefilled + i], kv: job.slot!, wantLogits: last });
        owners.push(job);
      }
      seq.prefilled += take;
    }
    if (rows.length === 0) return;
    try {
      this.forward.run(rows);
    } catch (e) {
      for (const job of new Set(owners)) this.fail(job, e);
      return;
    }
    const nVocab = this.model.config.nVocab;
    let m = 0;
    for (let i = 0; i < rows.length; i++) {
      if (!rows[i].wantLogits) continue;
      const job = owners[i];
      const seq = job.seq;
      if (!seq.prefillDoneAt) seq.prefillDoneAt = performance.now();
      const logits = this.forward.logits.subarray(m * nVocab, (m + 1) * nVocab);
      m++;
      let result;
      try {
        result = seq.advance(logits);
      } catch (e) {
        this.fail(job, e);
        continue;
      }
      for (const ev of result.events) job.channel.push(ev);
      if (result.next === undefined) this.retire(job, []);
      else job.next = result.next;
    }
  }

  /**
   * Picks the free slot that already holds the longest prefix of the prompt (a repeated system
   * prompt is then not prefilled again) and keeps that prefix; at least the last prompt token is
   * always run, since its logits are needed.
   */
  private takeSlot(seq: Sequence): KvCache {
    let best = 0;
    let bestLen = -1;
    for (let i = 0; i < this.free.length; i++) {
      const len = this.free[i].commonPrefix(seq.prompt);
      if (len > bestLen) {
        best = i;
        bestLen = len;
      }
    }
    const slot = this.free.splice(best, 1)[0];
    const reuse = Math.min(bestLen, seq.prompt.length - 1);
    slot.truncate(reuse);
    seq.prefilled = reuse;
    seq.cachedPromptTokens = reuse;
    return slot;
  }

  /** A decoding job's slot is full: slide it (policy `slide`) or fail the job. */
  private makeRoom(job: Job): boolean {
    const slot = job.slot!;
    const seq = job.seq;
    if (this.overflow === "slide") {
      const keep = Math.min(this.keep < 0 ? seq.prompt.length : this.keep, Math.floor(slot.contextSize / 2));
      const discard = Math.max(1, Math.floor((slot.length - keep) / 2));
      if (slideKv(this.model.kernels, slot, this.model.config, keep, discard) > 0) return true;
    }
    this.fail(
      job,
      new RequestError(
        "CONTEXT_FULL",
        `context full after ${seq.generated} generated tokens: the KV cache holds ${slot.contextSize} tokens`,
      ),
    );
    return false;
  }

  private fail(job: Job, e: unknown): void {
    const error = e instanceof RequestError
      ? e
      : new RequestError("INTERNAL", e instanceof Error ? e.message : String(e));
    this.release(job);
    job.channel.end(error);
  }

  private retire(job: Job, events: GenerationEvent[]): void {
    for (const ev of events) job.channel.push(ev);
    this.release(job);
    job.channel.end();
  }

  /** Frees the job's slot at once (its cache contents are dropped). */
  private release(job: Job): void {
    const i = this.active.indexOf(job);
    if (i >= 0) this.active.splice(i, 1);
    if (job.slot) {
      // The slot keeps its tokens so that a later request with the same prefix can reuse them.
      this.free.push(job.slot);
      job.slot = undefined;
    }
  }
}

function cancelledBeforeStart(): GenerationEvent {
  return {
    type: "done",
    text: "",
    finishReason: "cancelled",
    stats: {
      promptTokens: 0,
      cachedPromptTokens: 0,
      completionTokens: 0,
      prefillMs: 0,
      decodeMs: 0,
      prefillTokensPerSecond: 0,
      decodeTokensPerSecond: 0,
    },
  };
}
