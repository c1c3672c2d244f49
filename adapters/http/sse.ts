/**
 * Server-sent events: a pull-driven byte stream of `data: JSON\n\n` frames ending with
 * `data: [DONE]`, as OpenAI streams. Frames are produced only as the client reads them
 * (backpressure), and a client that goes away cancels the source.
 *
 * @module
 */

const encoder = new TextEncoder();

/** One `data:` frame. */
export function sseFrame(data: unknown): Uint8Array {
  return encoder.encode(`data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`);
}

/**
 * A stream of frames: `next()` gives the objects of the next frames (empty: nothing this time),
 * or null at the end; `[DONE]` is appended. `cancel` runs when the client disconnects.
 */
export function sseStream(next: () => Promise<unknown[] | null>, cancel: () => void): ReadableStream<Uint8Array> {
  let finished = false;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      while (true) {
        const frames = await next();
        if (frames === null) {
          controller.enqueue(sseFrame("[DONE]"));
          finished = true;
          controller.close();
          return;
        }
        if (frames.length === 0) continue;
        for (const f of frames) controller.enqueue(sseFrame(f));
        return;
      }
    },
    cancel() {
      if (!finished) cancel();
    },
  }, { highWaterMark: 0 });
}

/** Response headers of an event stream. */
export const SSE_HEADERS: Record<string, string> = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache",
  "x-accel-buffering": "no",
};
