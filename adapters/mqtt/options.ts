/**
 * Settings of the MQTT service and their translation into mqtt.js client options: broker URL,
 * identity, credentials, TLS files, QoS, payload limit, protocol version and reconnect backoff.
 */
import { Buffer } from "node:buffer";
import type { IClientOptions } from "mqtt";
import { DEFAULT_PREFIX, DEFAULT_REPLY_LEVEL, replyPrefixes } from "./topics.ts";

/** MQTT protocol level: 5, or 4 (= MQTT 3.1.1). */
export type ProtocolVersion = 4 | 5;

/** What the service is told by its user (CLI flags or code). */
export interface MqttOptions {
  /** Broker URL: mqtt://host:port, mqtts://host:port (TLS), ws:// or wss://. */
  url: string;
  /** This node's name: one topic level. */
  node: string;
  /** First topic level(s) (default "bonsai"). */
  prefix?: string;
  /** MQTT client id (default "bonsai-{node}"). */
  clientId?: string;
  username?: string;
  password?: string;
  /** PEM file of the CA that signed the broker's certificate (mqtts/wss). */
  ca?: string;
  /** PEM client certificate file, for brokers that authenticate clients by certificate. */
  cert?: string;
  /** PEM private key file of `cert`. */
  key?: string;
  /** QoS of the request subscription and of replies (default 1). */
  qos?: 0 | 1 | 2;
  /** Largest accepted request payload in bytes (default 1 MiB); larger ones get TOO_LARGE. */
  maxPayload?: number;
  /** Force a protocol version; absent: MQTT 5, falling back to 3.1.1 if the broker refuses it. */
  protocolVersion?: ProtocolVersion;
  /** Keepalive in seconds (default 30): how soon a dead link is noticed. */
  keepalive?: number;
  /**
   * Persistent session: seconds the broker keeps this node's session (subscriptions and QoS 1/2
   * requests sent while it is down) after a disconnection; 0 (default) = clean start every time.
   * Needs a stable client id (the default `bonsai-{node}` is).
   */
  sessionExpiry?: number;
  /**
   * Topic levels replies may be published under (Response Topic / reply_to); default
   * `{prefix}/replies`. The node's own topics are refused whatever this says.
   */
  replyPrefixes?: string[];
  /** Share group: also take requests from `{prefix}/group/{group}/request` through `$share/{group}/`. */
  group?: string;
  /** Reconnect backoff bounds in ms (default 500 .. 30000). */
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** How long to wait for the broker's CONNACK (default 10000 ms). */
  connectTimeoutMs?: number;
}

/** Default largest request payload: 1 MiB, like the stdin adapter's longest line. */
export const DEFAULT_MAX_PAYLOAD = 1 << 20;

/** {@link MqttOptions} with every default filled in and the TLS files read. */
export interface ResolvedMqttOptions {
  url: string;
  node: string;
  prefix: string;
  clientId: string;
  username?: string;
  password?: string;
  ca?: Uint8Array;
  cert?: Uint8Array;
  key?: Uint8Array;
  qos: 0 | 1 | 2;
  maxPayload: number;
  protocolVersion?: ProtocolVersion;
  keepalive: number;
  sessionExpiry: number;
  replyPrefixes: string[];
  group?: string;
  backoffMinMs: number;
  backoffMaxMs: number;
  connectTimeoutMs: number;
}

/** Checks the options and reads the TLS files; throws an Error naming the bad option. */
export function resolveMqttOptions(o: MqttOptions): ResolvedMqttOptions {
  let url: URL;
  try {
    url = new URL(o.url);
  } catch {
    throw new Error(
      `MQTT broker URL '${o.url}' is not a URL (expected e.g. mqtt://127.0.0.1:1883)`,
    );
  }
  const schemes = ["mqtt:", "mqtts:", "tcp:", "tls:", "ssl:", "ws:", "wss:"];
  if (!schemes.includes(url.protocol)) {
    throw new Error(
      `MQTT broker URL '${o.url}' has scheme '${url.protocol}'; use mqtt://, mqtts://, ws:// or wss://`,
    );
  }
  if (o.qos !== undefined && o.qos !== 0 && o.qos !== 1 && o.qos !== 2) {
    throw new Error(`qos must be 0, 1 or 2, got ${o.qos}`);
  }
  const maxPayload = o.maxPayload ?? DEFAULT_MAX_PAYLOAD;
  if (!Number.isInteger(maxPayload) || maxPayload < 64) {
    throw new Error(
      `max payload must be an integer >= 64 bytes, got ${maxPayload}`,
    );
  }
  if (
    o.protocolVersion !== undefined && o.protocolVersion !== 4 &&
    o.protocolVersion !== 5
  ) {
    throw new Error(
      `protocol version must be 4 (3.1.1) or 5, got ${o.protocolVersion}`,
    );
  }
  const prefix = o.prefix ?? DEFAULT_PREFIX;
  let prefixes: string[];
  try {
    prefixes = replyPrefixes(
      o.replyPrefixes?.length ? o.replyPrefixes : [`${prefix}/${DEFAULT_REPLY_LEVEL}`],
    );
  } catch (e) {
    throw new Error(`--reply-prefix: ${(e as Error).message}`);
  }
  const expiry = o.sessionExpiry ?? 0;
  if (!Number.isInteger(expiry) || expiry < 0 || expiry > 0xffffffff) {
    throw new Error(
      `session expiry must be an integer number of seconds in 0..4294967295, got ${expiry}`,
    );
  }
  if ((o.cert === undefined) !== (o.key === undefined)) {
    throw new Error("a client certificate needs both --cert and --key");
  }
  const read = (what: string, path?: string) => {
    if (path === undefined) return undefined;
    try {
      return Deno.readFileSync(path);
    } catch (e) {
      throw new Error(
        `cannot read the ${what} file '${path}': ${(e as Error).message}`,
      );
    }
  };
  return {
    url: o.url,
    node: o.node,
    prefix,
    clientId: o.clientId ?? `bonsai-${o.node}`,
    username: o.username,
    password: o.password,
    ca: read("CA certificate", o.ca),
    cert: read("client certificate", o.cert),
    key: read("client key", o.key),
    qos: o.qos ?? 1,
    maxPayload,
    protocolVersion: o.protocolVersion,
    keepalive: o.keepalive ?? 30,
    sessionExpiry: o.sessionExpiry ?? 0,
    replyPrefixes: prefixes,
    group: o.group,
    backoffMinMs: o.backoffMinMs ?? 500,
    backoffMaxMs: o.backoffMaxMs ?? 30_000,
    connectTimeoutMs: o.connectTimeoutMs ?? 10_000,
  };
}

/** The last will: the retained offline status the broker publishes if this node vanishes. */
export interface WillMessage {
  topic: string;
  payload: Uint8Array;
  qos: 0 | 1 | 2;
}

/** mqtt.js options for one protocol version. Reconnects are driven by the service's backoff. */
export function clientOptions(
  o: ResolvedMqttOptions,
  version: ProtocolVersion,
  will: WillMessage,
): IClientOptions {
  const opts: IClientOptions = {
    protocolVersion: version,
    clientId: o.clientId,
    // Persistent session: the broker keeps our subscriptions and queues QoS 1/2 requests while we are away.
    clean: o.sessionExpiry === 0,
    keepalive: o.keepalive,
    connectTimeout: o.connectTimeoutMs,
    reconnectPeriod: o.backoffMinMs,
    resubscribe: true,
    // Token chunks are transient; only QoS>0 replies wait for a lost link to come back.
    queueQoSZero: false,
    will: {
      topic: will.topic,
      payload: toBuffer(will.payload),
      qos: will.qos,
      retain: true,
    },
  };
  if (o.username !== undefined) opts.username = o.username;
  if (o.password !== undefined) opts.password = o.password;
  if (o.ca) opts.ca = toBuffer(o.ca);
  if (o.cert) opts.cert = toBuffer(o.cert);
  if (o.key) opts.key = toBuffer(o.key);
  if (version === 5) {
    // Let the broker drop (rather than send) packets far above the payload limit; those just
    // above it still arrive and get a TOO_LARGE reply.
    opts.properties = {
      maximumPacketSize: Math.min(
        0xfffffff,
        Math.max(o.maxPayload * 4, o.maxPayload + 65536),
      ),
      ...(o.sessionExpiry > 0 ? { sessionExpiryInterval: o.sessionExpiry } : {}),
    };
  }
  return opts;
}

/** mqtt.js (and node:tls) want Node Buffers for binary options. */
export function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
