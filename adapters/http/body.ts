/**
 * Reading a request body with a size limit and a time limit: a body announced larger than the
 * limit is refused before any of it is read, one that grows past it (chunked) is cut off, and
 * one that trickles in slower than the deadline (slowloris) is dropped.
 *
 * @module
 */
import { HttpError } from "./errors.ts";

/** Limits of one body. */
export interface BodyLimits {
  maxBytes: number;
  /** Whole body within this time from the request's arrival. */
  timeoutMs: number;
}

/**
 * Reads and parses a JSON body (whatever its content-type says: `curl -d` sends form encoding);
 * throws HttpError 413, 408 or 400 BAD_JSON.
 */
export async function readJsonBody(req: Request, limits: BodyLimits): Promise<unknown> {
  const text = await readBody(req, limits);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new HttpError(400, "BAD_JSON", `request body is not valid JSON: ${(e as Error).message}`);
  }
}

/** The body as text, within the limits. */
export async function readBody(req: Request, limits: BodyLimits): Promise<string> {
  const declared = req.headers.get("content-length");
  if (declared !== null && Number(declared) > limits.maxBytes) throw tooLarge(limits.maxBytes);
  if (!req.body) return "";
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new HttpError(408, "TIMEOUT", `request body not received within ${limits.timeoutMs} ms`)),
      limits.timeoutMs,
    );
  });
  try {
    while (true) {
      const { done, value } = await Promise.race([reader.read(), deadline]);
      if (done) break;
      size += value.byteLength;
      if (size > limits.maxBytes) throw tooLarge(limits.maxBytes);
      chunks.push(value);
    }
  } catch (e) {
    // Stop reading what is left (the connection is closed after the error response).
    reader.cancel().catch(() => {});
    throw e;
  } finally {
    clearTimeout(timer);
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.byteLength;
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(all);
  } catch {
    throw new HttpError(400, "BAD_JSON", "request body is not valid UTF-8");
  }
}

function tooLarge(max: number): HttpError {
  return new HttpError(413, "TOO_LARGE", `request body larger than ${max} bytes`, { connection: "close" });
}
