/**
 * Topic names of one node. Its own topics live under `{prefix}/{node}/`:
 * - `request`  (subscribed): generation requests;
 * - `cancel`   (subscribed): cancellation of running requests, by id or correlation data;
 * - `status`   (published, retained): presence, `online` with the model and capabilities, or
 *   `offline` (also the last will, so a crash or a lost link shows up too);
 * - `metrics`  (published, retained, periodic): counters and gauges (adapters/metrics.ts).
 * A node in a share group also takes requests from `{prefix}/group/{group}/request` (an MQTT 5
 * shared subscription, so the broker gives each request to one node of the group) and cancels
 * from `{prefix}/group/{group}/cancel` (every node of the group sees them). Replies go only to
 * topics under an allowed reply prefix (default `{prefix}/replies`), never to the node's own.
 */

/** The topics of one node. */
export interface NodeTopics {
  request: string;
  cancel: string;
  status: string;
  metrics: string;
  /** The share group's request topic (the subscription is `$share/{group}/` + this). */
  groupRequest?: string;
  groupCancel?: string;
}

/** The default reply namespace under the prefix: `{prefix}/replies/...`. */
export const DEFAULT_REPLY_LEVEL = "replies";

/** The default topic prefix. */
export const DEFAULT_PREFIX = "bonsai";

/** Builds the topics; throws RangeError for a prefix or node name that cannot be a topic level. */
export function nodeTopics(
  prefix: string,
  node: string,
  group?: string,
): NodeTopics {
  checkTopicName("prefix", prefix);
  checkTopicName("node", node);
  if (node.includes("/")) {
    throw new RangeError(
      `node name '${node}' must be a single topic level (no '/')`,
    );
  }
  if (node === "group" || node === DEFAULT_REPLY_LEVEL) {
    throw new RangeError(
      `node name '${node}' is reserved (${prefix}/${node}/ holds share groups or replies)`,
    );
  }
  const base = `${prefix}/${node}`;
  const topics: NodeTopics = {
    request: `${base}/request`,
    cancel: `${base}/cancel`,
    status: `${base}/status`,
    metrics: `${base}/metrics`,
  };
  if (group !== undefined) {
    checkTopicName("group", group);
    if (group.includes("/")) {
      throw new RangeError(
        `group name '${group}' must be a single topic level (no '/')`,
      );
    }
    topics.groupRequest = `${prefix}/group/${group}/request`;
    topics.groupCancel = `${prefix}/group/${group}/cancel`;
  }
  return topics;
}

/** Checks and normalizes reply prefixes (topic levels, e.g. "bonsai/replies"; a trailing "/" or "/#" is dropped). */
export function replyPrefixes(prefixes: string[]): string[] {
  return prefixes.map((p) => {
    const level = p.replace(/\/#$/, "").replace(/\/$/, "");
    checkTopicName("reply prefix", level);
    return level;
  });
}

/**
 * Why the node refuses to publish a reply to `topic` (outside every allowed prefix, or one of
 * the node's or group's own topics), or undefined when it may. A client must not make the node
 * publish onto an actuator topic or forge its status.
 */
export function replyTopicRefusal(
  topic: string,
  allowed: string[],
  prefix: string,
  node: string,
): string | undefined {
  const under = (t: string, p: string) => t === p || t.startsWith(`${p}/`);
  if (under(topic, `${prefix}/${node}`) || under(topic, `${prefix}/group`)) {
    return `reply topic '${topic}' is one of this node's own topics`;
  }
  if (!allowed.some((p) => under(topic, p))) {
    return `reply topic '${topic}' is outside the allowed reply prefixes (${allowed.join(", ")})`;
  }
  return undefined;
}

/**
 * Why `topic` cannot be published to (empty, wildcards, NUL, too long), or undefined when it
 * can. Used for reply topics, which come from clients.
 */
export function publishTopicProblem(topic: string): string | undefined {
  if (topic.length === 0) return "reply topic is empty";
  if (/[+#]/.test(topic)) {
    return `reply topic '${topic}' contains a wildcard (+ or #)`;
  }
  if (topic.includes("\u0000")) return "reply topic contains a NUL character";
  if (new TextEncoder().encode(topic).length > 65535) {
    return "reply topic is longer than 65535 bytes";
  }
  if (topic.startsWith("$")) {
    return `reply topic '${topic}' is reserved (starts with $)`;
  }
  return undefined;
}

function checkTopicName(what: string, value: string): void {
  if (value.length === 0) throw new RangeError(`${what} must not be empty`);
  // deno-lint-ignore no-control-regex -- NUL is one of the characters MQTT forbids in topics
  if (/[+#\u0000]/.test(value)) {
    throw new RangeError(`${what} '${value}' must not contain +, # or NUL`);
  }
  if (value.startsWith("$")) {
    throw new RangeError(
      `${what} '${value}' must not start with $ (reserved topics)`,
    );
  }
  if (value.startsWith("/") || value.endsWith("/") || value.includes("//")) {
    throw new RangeError(`${what} '${value}' has an empty topic level`);
  }
}
