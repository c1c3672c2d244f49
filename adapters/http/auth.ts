/**
 * Bearer-token authentication (`Authorization: Bearer KEY`, the header OpenAI SDKs send).
 *
 * @module
 */
import { HttpError } from "./errors.ts";

/** Throws HttpError 401 unless the request carries `key` (no check when `key` is undefined). */
export function checkBearer(req: Request, key: string | undefined): void {
  if (key === undefined) return;
  const header = req.headers.get("authorization") ?? "";
  const m = /^Bearer\s+(.+)$/i.exec(header);
  if (!m || !equalTimingSafe(m[1].trim(), key)) {
    throw new HttpError(
      401,
      "UNAUTHORIZED",
      m ? "invalid API key" : "missing API key (send the header 'Authorization: Bearer KEY')",
      { "www-authenticate": 'Bearer realm="bonsai"' },
    );
  }
}

/** Compares without an early exit, so the time taken does not tell how much of a guess matched. */
function equalTimingSafe(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}
