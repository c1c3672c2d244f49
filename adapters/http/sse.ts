/**
 * Server-sent events: a byte stream of `data: JSON\n\n` frames ending with `data: [DONE]`, as
 * OpenAI streams; a client that goes away cancels the source.
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
 *
 * Frames are queued as soon as they exist rather than when the server asks for more (a pull
 * per frame costs event-loop turns that the decode loop shares: with fast tokens the frames fell
 * behind by tens of milliseconds). The queue is bounded by the request's token budget.
 */
export function sseStream(next: () => Promise<unknown[] | null>, cancel: () => void): ReadableStream<Uint8Array> {
  let finished = false;
  let gone = false;
  return new ReadableStream<Uint8Array>({
    start(controller) {
      void (async () => {
        while (!gone) {
          const frames = await next();
          if (gone) return;
          if (frames === null) {
            controller.enqueue(sseFrame("[DONE]"));
            finished = true;
            controller.close();
            return;
          }
          for (const f of frames) controller.enqueue(sseFrame(f));
        }
      })().catch((e) => {
        if (!gone) controller.error(e);
      });
    },
    cancel() {
      gone = true;
      if (!finished) cancel();
    },
  });
}

/** Response headers of an event stream. */
export const SSE_HEADERS: Record<string, string> = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache",
  "x-accel-buffering": "no",
};
