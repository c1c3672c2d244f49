/**
 * A scheduler whose model can be replaced while it serves (SIGHUP reload): new requests go to the
 * new scheduler at once, while the old one finishes (or cancels) what it already has and then
 * closes its model. Adapters hold this object instead of a {@link Scheduler}, so they never see
 * the swap.
 * @module
 */
import type { Scheduler } from "./scheduler.ts";
import type { GenerationEvent, GenerationRequest } from "./request.ts";

/** What happens to the old model's requests on a reload. */
export type ReloadMode = "finish" | "cancel";

/** A {@link Scheduler} front that can swap in a scheduler of another model. */
export class ReloadableScheduler {
  #current: Scheduler;
  readonly #draining = new Set<Scheduler>();

  constructor(scheduler: Scheduler) {
    this.#current = scheduler;
  }

  /** The model new requests run on. */
  get model(): Scheduler["model"] {
    return this.#current.model;
  }
  get parallel(): number {
    return this.#current.parallel;
  }
  get contextSize(): number {
    return this.#current.contextSize;
  }
  get maxQueue(): number {
    return this.#current.maxQueue;
  }
  /** Requests running, on the current model and on any model still finishing its requests. */
  get activeCount(): number {
    let n = this.#current.activeCount;
    for (const s of this.#draining) n += s.activeCount;
    return n;
  }
  /** Requests waiting, likewise. */
  get queuedCount(): number {
    let n = this.#current.queuedCount;
    for (const s of this.#draining) n += s.queuedCount;
    return n;
  }

  /** {@link Scheduler.submit} on the current model. */
  submit(request: GenerationRequest, signal?: AbortSignal): AsyncIterable<GenerationEvent> {
    return this.#current.submit(request, signal);
  }

  /**
   * Sends new requests to `next` from now on; the old scheduler finishes (`finish`) or cancels
   * (`cancel`) its queued and running requests, then its model is closed. Resolves when it is.
   */
  async replace(next: Scheduler, mode: ReloadMode): Promise<void> {
    const old = this.#current;
    if (old === next) return;
    this.#current = next;
    this.#draining.add(old);
    try {
      if (mode === "cancel") old.cancelAll();
      await old.idle();
    } finally {
      this.#draining.delete(old);
      old.model.close();
    }
  }
}
