/**
 * The node's retained status message (`{prefix}/{node}/status`, always JSON so that any MQTT tool
 * can read it): `online` after the model is loaded, with what a client needs to address the node;
 * `offline` on shutdown and as the last will.
 */
import pkg from "../../package.json" with { type: "json" };
import type { Qwen3Config } from "../../runtime/config.ts";
import type { NodeTopics } from "./topics.ts";

/** Runtime version reported in the status. */
export const RUNTIME_VERSION: string = pkg.version;

/** What the online status describes. */
export interface PresenceInfo {
  node: string;
  /** This process's random id: another process announcing the same node has a different one. */
  instance: string;
  /** When the service started (kept across reconnections). */
  since: string;
  /** The share group, when the node is in one. */
  group?: string;
  /** Topic levels replies may go to. */
  replyPrefixes: string[];
  topics: NodeTopics;
  model: { name: string; file: string; config: Qwen3Config };
  parallel: number;
  contextSize: number;
  maxQueue: number;
  maxPayload: number;
  protocolVersion: 4 | 5;
  /** Whether requests may carry a JSON schema (structured output). */
  jsonSchema: boolean;
}

/** The online status payload. */
export function onlineStatus(info: PresenceInfo) {
  const c = info.model.config;
  return {
    state: "online",
    node: info.node,
    instance: info.instance,
    version: RUNTIME_VERSION,
    since: info.since,
    ...(info.group !== undefined ? { group: info.group } : {}),
    reply_prefixes: info.replyPrefixes,
    model: {
      name: info.model.name,
      file: info.model.file,
      architecture: c.architecture,
      shape: {
        layers: c.nLayer,
        embedding: c.nEmbd,
        feed_forward: c.nFf,
        heads: c.nHead,
        kv_heads: c.nHeadKv,
        head_dim: c.headDim,
        vocab: c.nVocab,
        context: c.contextLength,
      },
    },
    capabilities: {
      encodings: ["application/json", "application/cbor"],
      chat: true,
      stream: true,
      cancel: true,
      json_schema: info.jsonSchema,
      mqtt_version: info.protocolVersion === 5 ? "5" : "3.1.1",
    },
    limits: {
      parallel: info.parallel,
      context: info.contextSize,
      max_queue: info.maxQueue,
      max_payload: info.maxPayload,
    },
    topics: info.topics,
  };
}

/** The offline status payload; `reason` is "shutdown" or, in the last will, "connection lost". */
export function offlineStatus(
  node: string,
  reason: "shutdown" | "connection lost",
) {
  return { state: "offline", node, version: RUNTIME_VERSION, reason };
}
