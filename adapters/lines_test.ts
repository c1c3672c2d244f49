import assert from "node:assert/strict";
import { type Line, readLines } from "./lines.ts";

function streamOf(chunks: (string | Uint8Array)[]): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  return ReadableStream.from(chunks.map((c) => typeof c === "string" ? enc.encode(c) : c));
}

async function collect(chunks: (string | Uint8Array)[], max?: number): Promise<Line[]> {
  const out: Line[] = [];
  for await (const l of readLines(streamOf(chunks), max)) out.push(l);
  return out;
}

Deno.test("lines split across chunks, CRLF, and a last line without newline", async () => {
  const lines = await collect(["hel", "lo\r\nwor", "ld\n\nlast"]);
  assert.deepEqual(lines.map((l) => l.text), ["hello", "world", "", "last"]);
});

Deno.test("a multi-byte character split across chunks survives", async () => {
  const bytes = new TextEncoder().encode("é🙂\n");
  const lines = await collect([bytes.slice(0, 1), bytes.slice(1, 3), bytes.slice(3)]);
  assert.deepEqual(lines.map((l) => l.text), ["é🙂"]);
});

Deno.test("an over-long line is reported and the next line still arrives", async () => {
  const lines = await collect(["x".repeat(50), "y".repeat(60) + "\nok\n"], 100);
  assert.equal(lines.length, 2);
  assert.equal(lines[0].tooLong, true);
  assert.deepEqual(lines[1], { text: "ok", tooLong: false });
});
