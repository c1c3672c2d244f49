/**
 * Splits a byte stream into UTF-8 text lines (`\n` or `\r\n`), with a bound on line length so
 * that a sender without newlines cannot exhaust memory.
 */

/** A line, or a line that was too long (its text dropped). */
export type Line = { text: string; tooLong: false } | { text: ""; tooLong: true; bytes: number };

/** Yields lines from `input` until it ends; a last unterminated line is yielded too. */
export async function* readLines(
  input: ReadableStream<Uint8Array>,
  maxLineBytes = 1 << 20,
): AsyncGenerator<Line> {
  const decoder = new TextDecoder();
  const reader = input.getReader();
  let parts: Uint8Array[] = [];
  let size = 0;
  let dropping = false;
  const finish = (): Line => {
    const bytes = size;
    const joined = new Uint8Array(size);
    let at = 0;
    for (const p of parts) {
      joined.set(p, at);
      at += p.length;
    }
    parts = [];
    size = 0;
    if (dropping) {
      dropping = false;
      return { text: "", tooLong: true, bytes };
    }
    let text = decoder.decode(joined);
    if (text.endsWith("\r")) text = text.slice(0, -1);
    return { text, tooLong: false };
  };
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      let start = 0;
      while (start < value.length) {
        const nl = value.indexOf(10, start);
        const end = nl < 0 ? value.length : nl;
        const piece = value.subarray(start, end);
        if (!dropping) parts.push(piece.slice());
        size += piece.length;
        if (size > maxLineBytes && !dropping) {
          dropping = true;
          parts = [];
        }
        if (nl < 0) break;
        yield finish();
        start = nl + 1;
      }
    }
    if (size > 0 || parts.length > 0) yield finish();
  } finally {
    reader.releaseLock();
  }
}
