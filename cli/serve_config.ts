/**
 * `bonsai serve --config FILE`: server-side defaults, so that robots can send bare prompts.
 *
 *   {
 *     "request": { "system": "You are the arm controller.", "temperature": 0.2, "max_tokens": 64,
 *                  "json_schema": { ... } },
 *     "limits":  { "max_tokens": 256 }
 *   }
 *
 * `request` holds wire-request fields (the same names a request uses) applied when a request
 * leaves them out; `limits.max_tokens` caps what a request may ask for (more: BAD_REQUEST). A
 * request's own `messages` replace the default `system`, and its own `json_schema`, `grammar` or
 * `tools` replace the default constraint.
 * @module
 */
import { parseWireRequest } from "../adapters/request.ts";
import { UsageError } from "./args.ts";

/** The checked contents of a config file. */
export interface ServeConfig {
  requestDefaults?: Record<string, unknown>;
  maxTokensLimit?: number;
}

/** Fields a config's `request` may not set: they name one request, not a default. */
const PER_REQUEST = ["id", "reply_to", "prompt", "messages"];

/** Reads and checks a config file; every problem is a {@link UsageError} naming the file and field. */
export function loadServeConfig(path: string): ServeConfig {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    throw new UsageError(
      `--config: cannot read '${path}': ${(e as Error).message}`,
    );
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new UsageError(
      `--config: '${path}' is not valid JSON: ${(e as Error).message}`,
    );
  }
  return checkServeConfig(v, path);
}

/** Checks a parsed config value. */
export function checkServeConfig(v: unknown, path = "config"): ServeConfig {
  const bad = (msg: string) => new UsageError(`--config ${path}: ${msg}`);
  if (!isObject(v)) throw bad("must be a JSON object");
  const unknown = Object.keys(v).filter((k) => k !== "request" && k !== "limits");
  if (unknown.length > 0) {
    throw bad(
      `unknown field(s): ${unknown.join(", ")} (expected request, limits)`,
    );
  }
  const out: ServeConfig = {};
  if (v.request !== undefined) {
    if (!isObject(v.request)) {
      throw bad("request must be an object of request fields");
    }
    const fixed = Object.keys(v.request).filter((k) => PER_REQUEST.includes(k));
    if (fixed.length > 0) {
      throw bad(
        `request must not set ${fixed.join(", ")} (they belong to each request)`,
      );
    }
    try {
      // Checked as a request would be, with a stand-in prompt.
      parseWireRequest({ ...v.request, prompt: "x" });
    } catch (e) {
      throw bad(`request: ${(e as Error).message}`);
    }
    out.requestDefaults = v.request;
  }
  if (v.limits !== undefined) {
    if (!isObject(v.limits)) throw bad("limits must be an object");
    const extra = Object.keys(v.limits).filter((k) => k !== "max_tokens");
    if (extra.length > 0) {
      throw bad(`unknown limit(s): ${extra.join(", ")} (expected max_tokens)`);
    }
    const m = v.limits.max_tokens;
    if (m !== undefined) {
      if (typeof m !== "number" || !Number.isInteger(m) || m < 1) {
        throw bad("limits.max_tokens must be a positive integer");
      }
      out.maxTokensLimit = m;
    }
  }
  const d = out.requestDefaults?.max_tokens;
  if (
    typeof d === "number" && out.maxTokensLimit !== undefined &&
    d > out.maxTokensLimit
  ) {
    throw bad(
      `request.max_tokens ${d} exceeds limits.max_tokens ${out.maxTokensLimit}`,
    );
  }
  return out;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
