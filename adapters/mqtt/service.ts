/**
 * `bonsai serve` over MQTT: requests arrive on `{prefix}/{node}/request`, replies go to each
 * request's Response Topic (MQTT 5) or `reply_to` (payload field, MQTT 3.1.1), cancellations on
 * `{prefix}/{node}/cancel`, presence on `{prefix}/{node}/status`. Requests run concurrently on
 * the scheduler (continuous batching); past its queue limit a request gets a BUSY reply.
 *
 * Choices: a request without a reply address is logged and dropped (counted); a request whose
 * MQTT 5 Message Expiry passes before it produced output is cancelled with an EXPIRED reply;
 * while the broker is away, running requests go on, their token chunks are dropped and their
 * final replies are kept and published after the reconnection; a stop (SIGINT/SIGTERM) cancels
 * running requests (final replies "cancelled"), then publishes the retained offline status.
 */
import type { Model } from "../../runtime/model.ts";
import type { Scheduler } from "../../runtime/scheduler.ts";
import { RequestError } from "../../runtime/request.ts";
import { parseWireRequest, type WireRequest } from "../request.ts";
import { decodePayload, detectEncoding, type Encoding, encodePayload } from "./codec.ts";
import { type NodeTopics, nodeTopics, publishTopicProblem } from "./topics.ts";
import { type MqttOptions, type ResolvedMqttOptions, resolveMqttOptions } from "./options.ts";
import { type IncomingMessage, MqttConnection } from "./connection.ts";
import { offlineStatus, onlineStatus } from "./presence.ts";
import { ReplyStream } from "./reply.ts";
import { longTimeout } from "../long_timeout.ts";

/** What the service needs of a scheduler (a real {@link Scheduler}, or a stand-in in tests). */
export type ServiceScheduler =
  & Pick<Scheduler, "submit" | "parallel" | "contextSize" | "maxQueue" | "activeCount" | "queuedCount">
  & { model: Pick<Model, "config" | "path"> };

/** Options of {@link MqttService}. */
export interface MqttServiceOptions extends MqttOptions {
  /** Receives one line per notable event (connections, dropped requests, failures). */
  log?: (line: string) => void;
}

/** Counts since start, for logs and tests. */
export interface MqttServiceStats {
  received: number;
  completed: number;
  failed: number;
  cancelled: number;
  busy: number;
  expired: number;
  /** Requests with no reply address (no Response Topic and no reply_to): logged and dropped. */
  droppedNoReplyTo: number;
  /** Token chunks not sent while the broker was unreachable. */
  chunksDroppedOffline: number;
  cancelRequests: number;
}

interface Running {
  controller: AbortController;
  keys: string[];
  /** Why it was aborted, when the service aborted it. */
  abortReason?: "expired" | "cancel" | "shutdown";
}

/** The MQTT front of one scheduler. */
export class MqttService {
  readonly topics: NodeTopics;
  readonly options: ResolvedMqttOptions;
  readonly stats: MqttServiceStats = {
    received: 0, completed: 0, failed: 0, cancelled: 0, busy: 0, expired: 0,
    droppedNoReplyTo: 0, chunksDroppedOffline: 0, cancelRequests: 0,
  };
  private conn?: MqttConnection;
  private readonly running = new Map<string, Set<Running>>();
  private readonly tasks = new Set<Promise<void>>();
  private stopping = false;
  private readonly log: (line: string) => void;

  constructor(private readonly scheduler: ServiceScheduler, opts: MqttServiceOptions) {
    this.options = resolveMqttOptions(opts);
    this.topics = nodeTopics(this.options.prefix, this.options.node);
    this.log = opts.log ?? (() => {});
  }

  /** The connection's protocol version (after {@link start}). */
  get protocolVersion(): 4 | 5 | undefined {
    return this.conn?.version;
  }

  /** True while connected to the broker. */
  get connected(): boolean {
    return this.conn?.connected ?? false;
  }

  /** Requests being served (queued or running). */
  get inFlight(): number {
    return this.tasks.size;
  }

  /**
   * Connects (retrying while the broker is unreachable), subscribes and publishes the online
   * status. Rejects on refused credentials or when `signal` aborts before connecting.
   */
  async start(signal?: AbortSignal): Promise<void> {
    const o = this.options;
    const will = {
      topic: this.topics.status,
      payload: encodePayload(offlineStatus(o.node, "connection lost"), "json"),
      qos: o.qos,
    };
    this.conn = await MqttConnection.open(o, will, {
      log: this.log,
      onConnect: (conn) => this.onConnect(conn),
      onMessage: (msg) => this.onMessage(msg),
    }, signal);
  }

  /**
   * Graceful stop: no new requests, running ones cancelled (each gets its final reply), the
   * retained offline status published, then a clean disconnect. Waits at most `graceMs` for
   * replies to be acknowledged.
   */
  async stop(graceMs = 3000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    const conn = this.conn;
    if (!conn) return;
    if (conn.connected) await withTimeout(conn.unsubscribe([this.topics.request, this.topics.cancel]), graceMs);
    for (const set of this.running.values()) {
      for (const r of set) this.abort(r, "shutdown");
    }
    await withTimeout(Promise.all(this.tasks), graceMs);
    if (conn.connected) {
      await withTimeout(
        conn.publish(this.topics.status, encodePayload(offlineStatus(this.options.node, "shutdown"), "json"), {
          qos: this.options.qos,
          retain: true,
        }),
        graceMs,
      );
    }
    await conn.close(!conn.connected);
    this.log("stopped");
  }

  private async onConnect(conn: MqttConnection): Promise<void> {
    const ok = await conn.subscribe([this.topics.request, this.topics.cancel], this.options.qos);
    if (!ok) this.log(`the broker refused the subscription to ${this.topics.request}`);
    const c = this.scheduler.model.config;
    const status = onlineStatus({
      node: this.options.node,
      topics: this.topics,
      model: { name: c.name, file: this.scheduler.model.path.split("/").pop() ?? "", config: c },
      parallel: this.scheduler.parallel,
      contextSize: this.scheduler.contextSize,
      maxQueue: this.scheduler.maxQueue,
      maxPayload: this.options.maxPayload,
      protocolVersion: conn.version,
      jsonSchema: true, // parseWireRequest takes json_schema (and grammar, tools)
    });
    // Not awaited: QoS 1 acknowledgement must not hold up serving.
    void conn.publish(this.topics.status, encodePayload(status, "json"), { qos: this.options.qos, retain: true });
  }

  private onMessage(msg: IncomingMessage): void {
    if (this.stopping) return;
    if (msg.topic === this.topics.request) {
      const task = this.serve(msg).catch((e) => this.log(`internal error serving a request: ${(e as Error).message}`));
      this.tasks.add(task);
      task.finally(() => this.tasks.delete(task));
    } else if (msg.topic === this.topics.cancel) {
      this.cancel(msg);
    }
  }

  /** Serves one request message to its final reply. */
  private async serve(msg: IncomingMessage): Promise<void> {
    this.stats.received++;
    const conn = this.conn!;
    const props = msg.packet.properties ?? {};
    const correlationData = props.correlationData ? new Uint8Array(props.correlationData) : undefined;
    let encoding: Encoding = "json";
    let value: unknown;
    let problem: unknown;
    try {
      encoding = detectEncoding(msg.payload, props.contentType);
      if (msg.payload.length > this.options.maxPayload) {
        throw new RequestError(
          "TOO_LARGE",
          `request payload of ${msg.payload.length} bytes exceeds the limit of ${this.options.maxPayload} bytes`,
        );
      }
      value = decodePayload(msg.payload, encoding);
    } catch (e) {
      problem = e;
    }
    // The MQTT-only fields ride beside the request: reply_to (3.1.1) is taken out before the
    // strict request check; id is echoed even when the rest is bad.
    const fields = isObject(value) ? { ...value } : undefined;
    let replyTo = props.responseTopic;
    if (fields && "reply_to" in fields) {
      const r = fields.reply_to;
      delete fields.reply_to;
      if (typeof r !== "string") problem ??= new RequestError("BAD_REQUEST", "reply_to must be a string (a topic)");
      else replyTo ??= r;
    }
    const id = fields && (typeof fields.id === "string" || typeof fields.id === "number") ? fields.id : undefined;
    if (replyTo === undefined) {
      this.stats.droppedNoReplyTo++;
      this.log(
        `dropped a request${id !== undefined ? ` (id ${JSON.stringify(id)})` : ""}: no Response Topic and no reply_to, ` +
          `so no way to answer (${this.stats.droppedNoReplyTo} so far)`,
      );
      return;
    }
    const topicProblem = publishTopicProblem(replyTo);
    if (topicProblem) {
      this.stats.droppedNoReplyTo++;
      this.log(`dropped a request: ${topicProblem}`);
      return;
    }
    const reply = new ReplyStream(conn, { topic: replyTo, encoding, id, correlationData }, this.options.qos, this.stats);
    let wire: WireRequest;
    try {
      if (problem) throw problem;
      wire = parseWireRequest(fields);
    } catch (e) {
      this.stats.failed++;
      await reply.error(e);
      return;
    }
    await this.generate(wire, reply, { id, correlationData, expirySeconds: props.messageExpiryInterval });
  }

  private async generate(
    wire: WireRequest,
    reply: ReplyStream,
    meta: { id?: string | number; correlationData?: Uint8Array; expirySeconds?: number },
  ): Promise<void> {
    const running: Running = { controller: new AbortController(), keys: cancelKeys(meta.id, meta.correlationData) };
    let cancelExpiry = () => {};
    let started = false;
    if (meta.expirySeconds !== undefined) {
      // Up to 4294967295 s: past setTimeout's 32-bit range, which would fire at once.
      cancelExpiry = longTimeout(() => {
        if (!started) this.abort(running, "expired");
      }, meta.expirySeconds * 1000);
    }
    this.register(running);
    try {
      const events = this.scheduler.submit(wire.request, running.controller.signal);
      for await (const ev of events) {
        started = true;
        cancelExpiry();
        if (ev.type === "token") {
          if (wire.stream) reply.token(ev);
          continue;
        }
        if (running.abortReason === "expired") {
          this.stats.expired++;
          await reply.error(new RequestError(
            "EXPIRED",
            `request expired: its message expiry of ${meta.expirySeconds} s passed before generation started (node busy)`,
          ));
        } else {
          if (ev.finishReason === "cancelled") this.stats.cancelled++;
          else this.stats.completed++;
          await reply.done(ev);
        }
      }
    } catch (e) {
      if (e instanceof RequestError && e.code === "BUSY") this.stats.busy++;
      else this.stats.failed++;
      await reply.error(e);
    } finally {
      cancelExpiry();
      this.unregister(running);
    }
  }

  /** Cancels running requests named by `id` in the payload or by the Correlation Data (MQTT 5). */
  private cancel(msg: IncomingMessage): void {
    this.stats.cancelRequests++;
    const props = msg.packet.properties ?? {};
    let id: unknown;
    if (msg.payload.length > 0 && msg.payload.length <= this.options.maxPayload) {
      try {
        const value = decodePayload(msg.payload, detectEncoding(msg.payload, props.contentType));
        if (isObject(value)) id = value.id;
        else if (typeof value === "string" || typeof value === "number") id = value;
      } catch {
        // a cancel may carry only Correlation Data
      }
    }
    const keys = cancelKeys(
      typeof id === "string" || typeof id === "number" ? id : undefined,
      props.correlationData ? new Uint8Array(props.correlationData) : undefined,
    );
    let n = 0;
    for (const key of keys) {
      for (const r of this.running.get(key) ?? []) {
        if (!r.controller.signal.aborted) n++;
        this.abort(r, "cancel");
      }
    }
    this.log(n > 0 ? `cancelled ${n} request(s)` : `cancel matched no running request (${keys.join(", ") || "no id"})`);
  }

  private abort(r: Running, reason: NonNullable<Running["abortReason"]>): void {
    if (r.controller.signal.aborted) return;
    r.abortReason = reason;
    r.controller.abort();
  }

  private register(r: Running): void {
    for (const k of r.keys) {
      let set = this.running.get(k);
      if (!set) this.running.set(k, set = new Set());
      set.add(r);
    }
    if (r.keys.length === 0) this.running.set(`anon:${crypto.randomUUID()}`, new Set([r]));
  }

  private unregister(r: Running): void {
    for (const [k, set] of this.running) {
      if (!set.delete(r)) continue;
      if (set.size === 0) this.running.delete(k);
    }
  }
}

/** Keys a cancel can name a request by. */
function cancelKeys(id: string | number | undefined, correlationData: Uint8Array | undefined): string[] {
  const keys: string[] = [];
  if (id !== undefined) keys.push(`id:${typeof id}:${id}`);
  if (correlationData) keys.push(`corr:${Array.from(correlationData, (b) => b.toString(16).padStart(2, "0")).join("")}`);
  return keys;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([p, new Promise<undefined>((r) => timer = setTimeout(() => r(undefined), ms))]);
  } finally {
    clearTimeout(timer);
  }
}
