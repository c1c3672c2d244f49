/**
 * Server-side request defaults (serve --config): a request's own fields win; its own `messages`
 * replace a default `system`, its own `json_schema`, `grammar` or `tools` replace the default
 * constraint (a request carries one kind). Shared by every adapter.
 * @module
 */
import { RequestError } from "../runtime/request.ts";

/** A request's fields over the defaults (its own messages or constraint replace the default ones). */
export function withDefaults(
  defaults: Record<string, unknown>,
  fields: Record<string, unknown>,
): Record<string, unknown> {
  const d = { ...defaults };
  if ("messages" in fields) delete d.system;
  if (["json_schema", "grammar", "tools"].some((k) => k in fields)) {
    for (const k of ["json_schema", "grammar", "tools", "tool_choice"]) {
      delete d[k];
    }
  }
  return { ...d, ...fields };
}

/** Throws BAD_REQUEST when a request asks for more tokens than the node allows. */
export function checkMaxTokens(
  fields: Record<string, unknown>,
  limit: number | undefined,
): void {
  const m = fields.max_tokens;
  if (limit !== undefined && typeof m === "number" && m > limit) {
    throw new RequestError(
      "BAD_REQUEST",
      `max_tokens ${m} exceeds this node's limit of ${limit}`,
    );
  }
}
