/**
 * A timeout that may be longer than `setTimeout` allows. Timers take a signed 32-bit delay in
 * milliseconds: anything from 2^31 ms (about 24.8 days) on overflows and fires at once, while
 * an MQTT 5 Message Expiry Interval goes up to 4294967295 s. Longer delays are run as a chain
 * of shorter timers.
 *
 * @module
 */

/** Longest delay `setTimeout` keeps as given (2^31 - 1 ms). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Calls `fn` once after `ms` milliseconds (any finite length); returns a function that cancels it. */
export function longTimeout(fn: () => void, ms: number): () => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let left = Math.max(0, ms);
  const arm = () => {
    const now = Math.min(left, MAX_TIMER_MS);
    left -= now;
    timer = setTimeout(() => (left > 0 ? arm() : fn()), now);
  };
  arm();
  return () => clearTimeout(timer);
}
