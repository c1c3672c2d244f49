/**
 * Lets the event loop run (I/O, signals, timers) between decode steps. A MessageChannel round
 * trip costs ~0.05 ms where `setTimeout(0)` costs 1-4 ms (timer clamping), which would be a
 * visible share of a decode step. Open it while busy; close it when idle so it does not keep
 * the process alive.
 */
export class Yielder {
  private channel?: MessageChannel;
  private waiting: (() => void)[] = [];

  /** Resolves after one turn of the event loop. */
  yield(): Promise<void> {
    if (!this.channel) {
      this.channel = new MessageChannel();
      this.channel.port1.onmessage = () => this.waiting.shift()?.();
    }
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.channel!.port2.postMessage(0);
    });
  }

  /** Releases the channel (call when there is no more work). */
  close(): void {
    this.channel?.port1.close();
    this.channel?.port2.close();
    this.channel = undefined;
    for (const w of this.waiting.splice(0)) w();
  }
}
