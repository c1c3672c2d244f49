/**
 * Topic names of one node. Everything lives under `{prefix}/{node}/`:
 * - `request`  (subscribed): generation requests;
 * - `cancel`   (subscribed): cancellation of running requests, by id or correlation data;
 * - `status`   (published, retained): presence, `online` with the model and capabilities, or
 *   `offline` (also the last will, so a crash or a lost link shows up too).
 */

/** The topics of one node. */
export interface NodeTopics {
  request: string;
  cancel: string;
  status: string;
}

/** The default topic prefix. */
export const DEFAULT_PREFIX = "bonsai";

/** Builds the topics; throws RangeError for a prefix or node name that cannot be a topic level. */
export function nodeTopics(prefix: string, node: string): NodeTopics {
  checkTopicName("prefix", prefix);
  checkTopicName("node", node);
  if (node.includes("/")) throw new RangeError(`node name '${node}' must be a single topic level (no '/')`);
  const base = `${prefix}/${node}`;
  return { request: `${base}/request`, cancel: `${base}/cancel`, status: `${base}/status` };
}

/**
 * Why `topic` cannot be published to (empty, wildcards, NUL, too long), or undefined when it
 * can. Used for reply topics, which come from clients.
 */
export function publishTopicProblem(topic: string): string | undefined {
  if (topic.length === 0) return "reply topic is empty";
  if (/[+#]/.test(topic)) return `reply topic '${topic}' contains a wildcard (+ or #)`;
  if (topic.includes("\u0000")) return "reply topic contains a NUL character";
  if (new TextEncoder().encode(topic).length > 65535) return "reply topic is longer than 65535 bytes";
  if (topic.startsWith("$")) return `reply topic '${topic}' is reserved (starts with $)`;
  return undefined;
}

function checkTopicName(what: string, value: string): void {
  if (value.length === 0) throw new RangeError(`${what} must not be empty`);
  // deno-lint-ignore no-control-regex -- NUL is one of the characters MQTT forbids in topics
  if (/[+#\u0000]/.test(value)) throw new RangeError(`${what} '${value}' must not contain +, # or NUL`);
  if (value.startsWith("$")) throw new RangeError(`${what} '${value}' must not start with $ (reserved topics)`);
  if (value.startsWith("/") || value.endsWith("/") || value.includes("//")) {
    throw new RangeError(`${what} '${value}' has an empty topic level`);
  }
}
