/**
 * Errors in the OpenAI shape (`{"error": {"message", "type", "param", "code"}}`) with the HTTP
 * status each runtime error code stands for, so that an OpenAI SDK raises its usual error class
 * (BadRequestError, RateLimitError...) and retries what it should (429, 503).
 *
 * @module
 */
import { RequestError } from "../../runtime/request.ts";
import { wireError } from "../request.ts";

/** An error answered before or instead of a generation, with its HTTP status. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Extra response headers (Retry-After, WWW-Authenticate, Allow). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "HttpError";
  }
}

/** HTTP status of each runtime error code; anything else is a bug (500). */
const STATUS: Record<string, number> = {
  BAD_REQUEST: 400,
  BAD_JSON: 400,
  PROMPT_TOO_LONG: 400,
  CONTEXT_FULL: 400,
  UNAUTHORIZED: 401,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  TIMEOUT: 408,
  TOO_LARGE: 413,
  BUSY: 429,
  LOADING: 503,
  INTERNAL: 500,
};

/** The OpenAI `error.type` of each status class. */
function errorType(status: number): string {
  if (status === 401) return "authentication_error";
  if (status === 404) return "not_found_error";
  if (status === 429) return "rate_limit_error";
  if (status === 503) return "unavailable_error";
  if (status >= 500) return "server_error";
  return "invalid_request_error";
}

/** Seconds a client should wait before retrying a BUSY request (one slot turn is short). */
export const BUSY_RETRY_AFTER_S = 1;

/** Status, headers and OpenAI-shaped body of any error (RequestError, HttpError or a bug). */
export function describeError(e: unknown): { status: number; headers: Record<string, string>; body: unknown } {
  let status: number;
  let code: string;
  let message: string;
  let headers: Record<string, string> = {};
  if (e instanceof HttpError) {
    ({ status, code, message, headers } = e);
  } else {
    ({ code, message } = wireError(e));
    status = e instanceof RequestError ? STATUS[code] ?? 400 : 500;
  }
  if (status === 429 && !headers["retry-after"]) headers = { ...headers, "retry-after": String(BUSY_RETRY_AFTER_S) };
  if (status === 503 && !headers["retry-after"]) headers = { ...headers, "retry-after": "5" };
  return { status, headers, body: { error: { message, type: errorType(status), param: null, code } } };
}

/** The error as a JSON response. */
export function errorResponse(e: unknown): Response {
  const { status, headers, body } = describeError(e);
  return Response.json(body, { status, headers });
}
