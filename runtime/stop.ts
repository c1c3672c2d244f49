/**
 * Stop strings over a text stream: text is released as soon as it can no longer be the start
 * of a stop string, and nothing from the first stop string on is ever released.
 */
export class StopMatcher {
  private held = "";
  /** True once a stop string has been seen. */
  stopped = false;

  constructor(private readonly stops: readonly string[]) {
    for (const s of stops) {
      if (typeof s !== "string" || s.length === 0) throw new RangeError("stop strings must be non-empty strings");
    }
  }

  /** Adds streamed text; returns what may be shown now and whether a stop string was reached. */
  push(text: string): { emit: string; stopped: boolean } {
    if (this.stopped) return { emit: "", stopped: true };
    this.held += text;
    let cut = -1;
    for (const s of this.stops) {
      const at = this.held.indexOf(s);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) {
      this.stopped = true;
      const emit = this.held.slice(0, cut);
      this.held = "";
      return { emit, stopped: true };
    }
    const keep = this.longestStopPrefixSuffix();
    const emit = this.held.slice(0, this.held.length - keep);
    this.held = this.held.slice(this.held.length - keep);
    return { emit, stopped: false };
  }

  /** Releases whatever is held back (the stream ended without completing a stop string). */
  flush(text = ""): string {
    const { emit, stopped } = this.push(text);
    if (stopped) return emit;
    const rest = this.held;
    this.held = "";
    return emit + rest;
  }

  /** Length of the longest tail of the held text that begins some stop string. */
  private longestStopPrefixSuffix(): number {
    let best = 0;
    for (const s of this.stops) {
      for (let n = Math.min(s.length - 1, this.held.length); n > best; n--) {
        if (this.held.endsWith(s.slice(0, n))) {
          best = n;
          break;
        }
      }
    }
    return best;
  }
}
