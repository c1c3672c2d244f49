/**
 * A one-line progress display for terminals: a phase label, an optional bar or count, and a
 * rate (tokens per second). It redraws in place with `\r` and erases itself when done; when
 * stderr is not a terminal (piped, a service's journal) it writes nothing at all, so logs stay
 * clean.
 * @module
 */

/** Options of {@link Progress}. */
export interface ProgressOptions {
  /** Draw at all (default: stderr is a terminal). */
  enabled?: boolean;
  /** Sink (default: stderr). */
  write?: (text: string) => void;
  /** Clock in ms (default `performance.now`), for tests. */
  now?: () => number;
  /** Least ms between redraws (default 80), so a fast loop does not flood the terminal. */
  intervalMs?: number;
}

const SPINNER = "|/-\\";
const BAR_WIDTH = 24;

/** Formats `count` items over `ms` as a rate, e.g. `41.7 tok/s`. */
export function formatRate(count: number, ms: number, unit = "tok"): string {
  if (!(ms > 0)) return `- ${unit}/s`;
  const r = (count * 1000) / ms;
  return `${r >= 100 ? r.toFixed(0) : r.toFixed(1)} ${unit}/s`;
}

/** A progress line; create one per long operation and call {@link Progress.done} at the end. */
export class Progress {
  readonly enabled: boolean;
  #write: (text: string) => void;
  #now: () => number;
  #interval: number;
  #lastDraw = -Infinity;
  #frame = 0;
  #drawn = false;
  #started: number;

  constructor(opts: ProgressOptions = {}) {
    this.enabled = opts.enabled ?? isStderrTerminal();
    const encoder = new TextEncoder();
    this.#write = opts.write ?? ((s) => Deno.stderr.writeSync(encoder.encode(s)));
    this.#now = opts.now ?? (() => performance.now());
    this.#interval = opts.intervalMs ?? 80;
    this.#started = this.#now();
  }

  /** Shows `label`, with a bar when `fraction` (0..1) is given, else a spinner. */
  update(label: string, fraction?: number, force = false): void {
    if (!this.enabled) return;
    const now = this.#now();
    if (!force && now - this.#lastDraw < this.#interval) return;
    this.#lastDraw = now;
    let line: string;
    if (fraction !== undefined && Number.isFinite(fraction)) {
      const f = Math.min(1, Math.max(0, fraction));
      const filled = Math.round(f * BAR_WIDTH);
      line = `${label} [${"#".repeat(filled)}${"-".repeat(BAR_WIDTH - filled)}] ${(f * 100).toFixed(0)}%`;
    } else {
      line = `${SPINNER[this.#frame++ % SPINNER.length]} ${label}`;
    }
    this.#write(`\r\x1b[K${line}`);
    this.#drawn = true;
  }

  /** Shows a running count with its rate since the progress began, e.g. `generating 12 tok, 8.1 tok/s`. */
  count(label: string, n: number, unit = "tok"): void {
    this.update(`${label} ${n} ${unit}, ${formatRate(n, this.#now() - this.#started, unit)}`);
  }

  /** Erases the line; then prints `final` (on a terminal only) if given. */
  done(final?: string): void {
    if (!this.enabled) return;
    if (this.#drawn) this.#write("\r\x1b[K");
    this.#drawn = false;
    if (final !== undefined) this.#write(final.endsWith("\n") ? final : final + "\n");
  }

  /** Milliseconds since this progress began. */
  elapsedMs(): number {
    return this.#now() - this.#started;
  }
}

function isStderrTerminal(): boolean {
  try {
    return Deno.stderr.isTerminal();
  } catch {
    return false;
  }
}
