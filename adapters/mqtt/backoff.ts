/**
 * Reconnect delays: exponential from `minMs` to `maxMs`, each with up to `jitter` of it taken off
 * at random, so that many devices losing the same broker do not all knock at the same instant.
 */
export class Backoff {
  private attempt = 0;

  constructor(
    readonly minMs = 500,
    readonly maxMs = 30_000,
    readonly jitter = 0.2,
    private readonly random: () => number = Math.random,
  ) {
    if (!(minMs > 0) || !(maxMs >= minMs)) throw new RangeError(`backoff needs 0 < min <= max, got ${minMs}..${maxMs}`);
    if (!(jitter >= 0 && jitter < 1)) throw new RangeError(`backoff jitter must be in [0, 1), got ${jitter}`);
  }

  /** The delay before the next attempt (grows with each call until {@link reset}). */
  next(): number {
    const base = Math.min(this.maxMs, this.minMs * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    return Math.max(1, Math.round(base * (1 - this.jitter * this.random())));
  }

  /** Back to the shortest delay (after a successful connection). */
  reset(): void {
    this.attempt = 0;
  }
}
