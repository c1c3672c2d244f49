/**
 * `bonsai serve` over MQTT: requests arrive on `{prefix}/{node}/request` (and, in a share group,
 * on `{prefix}/group/{group}/request` through `$share/{group}/`), replies go to each request's
 * Response Topic (MQTT 5) or `reply_to` (payload field, MQTT 3.1.1), cancellations on the
 * `cancel` topics, presence on `{prefix}/{node}/status`, counters on `{prefix}/{node}/metrics`.
 * Requests run concurrently on the scheduler (continuous batching); past its queue limit a
 * request gets a BUSY reply.
 *
 * Safety choices (README, "Safe deployment"):
 * - retained requests never run: MQTT 5 subscriptions ask for no retained messages, and any
 *   request or cancel arriving with the retain flag is counted, logged and ignored;
 * - replies go only under the allowed reply prefixes and never to the node's own topics; a
 *   refused reply address is counted and logged (there is nowhere to answer);
 * - requests are known by (reply address, id) and (reply address, correlation data): a cancel
 *   reaches only its sender's requests; a second in-flight request with the same key gets
 *   DUPLICATE_ID, unless it is the broker redelivering it (DUP flag), which is ignored;
 * - another process announcing the same node (or taking over its MQTT session) ends this one
 *   with exit code 2 instead of a fight; a refused subscription ends it with exit code 1 before
 *   it announces `online`;
 * - while the broker is away (or too slow: more than `maxChunkBacklog` unacknowledged publishes)
 *   token chunks are dropped and counted, final replies are kept (QoS 0 ones too) and sent after
 *   the reconnection;
 * - in a share group a node takes at most `groupQueue` waiting group requests; more get BUSY at
 *   once, so that a busy node does not sit on work the broker could give to another node.
 */
import type { Model } from "../../runtime/model.ts";
import type { Scheduler } from "../../runtime/scheduler.ts";
import { RequestError } from "../../runtime/request.ts";
import { parseWireRequest, type WireRequest } from "../request.ts";
import { loadOf, Metrics, type Outcome } from "../metrics.ts";
import { checkMaxTokens, withDefaults } from "../request_defaults.ts";
import { decodePayload, detectEncoding, encodePayload, type Encoding } from "./codec.ts";
import { type NodeTopics, nodeTopics, publishTopicProblem, replyTopicRefusal } from "./topics.ts";
import mqtt, { type MqttClient } from "mqtt";
import { clientOptions, type MqttOptions, type ResolvedMqttOptions, resolveMqttOptions } from "./options.ts";
import { type IncomingMessage, MqttConnection, MqttFatalError, type Subscription } from "./connection.ts";
import { offlineStatus, onlineStatus } from "./presence.ts";
import { ReplyStream } from "./reply.ts";
import { metricsMessage } from "./metrics_message.ts";
import { longTimeout } from "../long_timeout.ts";

export { MqttFatalError } from "./connection.ts";

/** What the service needs of a scheduler (a real {@link Scheduler}, or a stand-in in tests). */
export type ServiceScheduler =
  & Pick<
    Scheduler,
    | "submit"
    | "parallel"
    | "contextSize"
    | "maxQueue"
    | "activeCount"
    | "queuedCount"
  >
  & { model: Pick<Model, "config" | "path"> };

/** Options of {@link MqttService}. */
export interface MqttServiceOptions extends MqttOptions {
  /** Receives one line per notable event (connections, dropped requests, failures). */
  log?: (line: string) => void;
  /** Called once if the service must end (exit code in the error): duplicate node, refused subscription. */
  onFatal?: (e: MqttFatalError) => void;
  /** Where counts and timings go (default: a fresh {@link Metrics}); give one to add the memory plan. */
  metrics?: Metrics;
  /** Seconds between metrics messages (default 60; 0 = only on connect). */
  metricsInterval?: number;
  /** Waiting group requests a node takes before answering BUSY (default: its parallel slots). */
  groupQueue?: number;
  /** How long the start-up probe waits for a twin's answer (default 1000 ms; 0 = no probe). */
  probeMs?: number;
  /** Unacknowledged publishes past which token chunks are dropped (default 256). */
  maxChunkBacklog?: number;
  /** Wire-request fields used when a request leaves them out (serve --config). */
  requestDefaults?: Record<string, unknown>;
  /** Most tokens a request may ask for (serve --config limits.max_tokens); also the default when it asks none. */
  maxTokensLimit?: number;
}

/** Counts since start, for logs and tests. */
export interface MqttServiceStats {
  received: number;
  completed: number;
  failed: number;
  cancelled: number;
  busy: number;
  expired: number;
  /** Requests with no usable reply address (no Response Topic and no reply_to): logged and dropped. */
  droppedNoReplyTo: number;
  /** Requests whose reply address is outside the allowed prefixes or a node topic: logged and dropped. */
  replyRefused: number;
  /** Requests and cancels that arrived retained: logged and ignored. */
  retainedIgnored: number;
  /** Requests refused with DUPLICATE_ID (same reply address and id as one in flight). */
  duplicates: number;
  /** Redeliveries (DUP flag) of a request in flight or recently answered: ignored. */
  redelivered: number;
  /** Token chunks not sent while the broker was unreachable or too slow. */
  chunksDroppedOffline: number;
  cancelRequests: number;
  /** Cancels without a reply address, which cannot be scoped to their sender: ignored. */
  cancelUnscoped: number;
}

interface Running {
  controller: AbortController;
  keys: string[];
  /** Why it was aborted, when the service aborted it. */
  abortReason?: "expired" | "cancel" | "shutdown";
}

/** How a stop treats running requests. */
export interface StopOptions {
  /** Longest wait for the broker's acknowledgements at each step (default 3000 ms). */
  graceMs?: number;
  /** "cancel" (default): running requests end now with "cancelled"; "finish": they may finish first. */
  drain?: "cancel" | "finish";
  /** With drain "finish": after this long, what still runs is cancelled (default 60000 ms). */
  drainTimeoutMs?: number;
}

/** Keys of recently answered requests remembered to spot redeliveries. */
const RECENT_KEYS = 4096;

/** The MQTT front of one scheduler. */
export class MqttService {
  readonly topics: NodeTopics;
  readonly options: ResolvedMqttOptions;
  readonly metrics: Metrics;
  /** This process's id in the status message (two processes for one node tell each other apart). */
  readonly instance: string = crypto.randomUUID();
  readonly stats: MqttServiceStats = {
    received: 0,
    completed: 0,
    failed: 0,
    cancelled: 0,
    busy: 0,
    expired: 0,
    droppedNoReplyTo: 0,
    replyRefused: 0,
    retainedIgnored: 0,
    duplicates: 0,
    redelivered: 0,
    chunksDroppedOffline: 0,
    cancelRequests: 0,
    cancelUnscoped: 0,
  };
  /** Set once the service ended on a fatal error. */
  fatal?: MqttFatalError;
  private conn?: MqttConnection;
  private readonly running = new Map<string, Running>();
  private readonly recent = new Set<string>();
  private readonly tasks = new Set<Promise<void>>();
  private stopping = false;
  private metricsTimer?: ReturnType<typeof setInterval>;
  private readonly since = new Date().toISOString();
  /** The online status payload last published (a live copy answers a newcomer's probe). */
  private online?: Uint8Array;
  private readonly log: (line: string) => void;
  private readonly groupQueue: number;
  private readonly maxChunkBacklog: number;
  private readonly metricsInterval: number;
  private readonly probeMs: number;

  constructor(
    private readonly scheduler: ServiceScheduler,
    private readonly opts: MqttServiceOptions,
  ) {
    this.options = resolveMqttOptions(opts);
    this.topics = nodeTopics(
      this.options.prefix,
      this.options.node,
      this.options.group,
    );
    this.log = opts.log ?? (() => {});
    this.metrics = opts.metrics ?? new Metrics();
    this.groupQueue = opts.groupQueue ?? scheduler.parallel;
    this.maxChunkBacklog = opts.maxChunkBacklog ?? 256;
    this.metricsInterval = opts.metricsInterval ?? 60;
    this.probeMs = opts.probeMs ?? 1000;
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

  /** Successful connections so far (the first included). */
  get connects(): number {
    return this.conn?.connects ?? 0;
  }

  /**
   * Connects (retrying while the broker is unreachable), subscribes and publishes the online
   * status. Rejects on refused credentials, a refused subscription ({@link MqttFatalError}), or
   * when `signal` aborts before connecting.
   */
  async start(signal?: AbortSignal): Promise<void> {
    const o = this.options;
    if (this.probeMs > 0) await this.probeForTwin(this.probeMs);
    const will = {
      topic: this.topics.status,
      payload: encodePayload(offlineStatus(o.node, "connection lost"), "json"),
      qos: o.qos,
    };
    this.conn = await MqttConnection.open(o, will, {
      log: this.log,
      onConnect: (conn) => this.onConnect(conn),
      onMessage: (msg) => this.onMessage(msg),
      onFatal: (e) => this.onFatal(e),
    }, signal);
    if (this.metricsInterval > 0) {
      const timer = setInterval(
        () => void this.publishMetrics(),
        this.metricsInterval * 1000,
      );
      Deno.unrefTimer(timer);
      this.metricsTimer = timer;
    }
  }

  /** The metrics now (also what the metrics message carries). */
  snapshot(): Record<string, unknown> {
    const s = this.metrics.snapshot(loadOf(this.scheduler));
    const st = this.stats;
    return metricsMessage(this.options.node, s, {
      retainedIgnored: st.retainedIgnored,
      replyRefused: st.replyRefused,
      duplicates: st.duplicates,
      redelivered: st.redelivered,
      chunksDropped: st.chunksDroppedOffline,
      reconnects: Math.max(0, (this.conn?.connects ?? 0) - 1),
    });
  }

  /** Publishes the retained metrics message now. */
  async publishMetrics(): Promise<boolean> {
    const conn = this.conn;
    if (!conn?.connected || this.fatal) return false;
    return await conn.publish(
      this.topics.metrics,
      encodePayload(this.snapshot(), "json"),
      { qos: 0, retain: true },
    );
  }

  /**
   * Graceful stop: no new requests (the subscriptions are dropped first; a request that still
   * arrives gets BUSY), running ones cancelled or, with `drain: "finish"`, allowed to finish
   * (each gets its final reply), the retained offline status published, then a clean
   * disconnect.
   */
  async stop(o: StopOptions | number = {}): Promise<void> {
    const { graceMs = 3000, drain = "cancel", drainTimeoutMs = 60_000 } = typeof o === "number" ? { graceMs: o } : o;
    if (this.stopping) return;
    this.stopping = true;
    clearInterval(this.metricsTimer);
    const conn = this.conn;
    if (!conn) return;
    if (this.fatal) {
      await conn.close(true);
      return;
    }
    // A persistent session keeps its subscriptions, so that the broker queues the requests sent
    // while the node restarts; without one, unsubscribing stops the flow at once.
    if (conn.connected && this.options.sessionExpiry === 0) {
      await withTimeout(conn.unsubscribe(this.requestTopics()), graceMs);
    }
    if (drain === "finish" && this.tasks.size > 0) {
      this.log(
        `draining: ${this.tasks.size} request(s) may finish (at most ${drainTimeoutMs} ms)`,
      );
      await withTimeout(Promise.all(this.tasks), drainTimeoutMs);
    }
    for (const r of this.running.values()) this.abort(r, "shutdown");
    await withTimeout(Promise.all(this.tasks), graceMs);
    if (conn.connected) {
      await withTimeout(this.publishMetrics(), graceMs);
      await withTimeout(
        conn.publish(
          this.topics.status,
          encodePayload(offlineStatus(this.options.node, "shutdown"), "json"),
          {
            qos: this.options.qos,
            retain: true,
          },
        ),
        graceMs,
      );
    }
    await conn.close(!conn.connected);
    this.log("stopped");
  }

  /** Every subscribed topic filter that brings requests or cancels. */
  private requestTopics(): string[] {
    const t = this.topics;
    const topics = [t.request, t.cancel];
    if (t.groupRequest) {
      topics.push(`$share/${this.options.group}/${t.groupRequest}`);
    }
    if (t.groupCancel) topics.push(t.groupCancel);
    return topics;
  }

  private onFatal(e: MqttFatalError): void {
    if (this.fatal) return;
    this.fatal = e;
    clearInterval(this.metricsTimer);
    for (const r of this.running.values()) this.abort(r, "shutdown");
    this.opts.onFatal?.(e);
  }

  private async onConnect(conn: MqttConnection): Promise<void> {
    // A resumed session can deliver queued requests before open() resolves.
    this.conn = conn;
    const qos = this.options.qos;
    // rh 2: the broker must not hand us retained requests (MQTT 5); 3.1.1 ones are dropped in onMessage.
    const subs: Subscription[] = this.requestTopics().map((topic) => ({
      topic,
      qos,
      rh: 2,
    }));
    // Our own status, to notice another process announcing the same node.
    subs.push({ topic: this.topics.status, qos: 0, rh: 2 });
    const refused = await conn.subscribe(subs);
    if (refused.length > 0) {
      throw new MqttFatalError(
        `the broker refused the subscription to ${refused.join("; ")}: check the broker's ACL for this user; ` +
          `not announcing online`,
        1,
        "subscribe",
      );
    }
    const c = this.scheduler.model.config;
    const status = onlineStatus({
      node: this.options.node,
      instance: this.instance,
      since: this.since,
      group: this.options.group,
      replyPrefixes: this.options.replyPrefixes,
      topics: this.topics,
      model: {
        name: c.name,
        file: this.scheduler.model.path.split("/").pop() ?? "",
        config: c,
      },
      parallel: this.scheduler.parallel,
      contextSize: this.scheduler.contextSize,
      maxQueue: this.scheduler.maxQueue,
      maxPayload: this.options.maxPayload,
      protocolVersion: conn.version,
      jsonSchema: true, // parseWireRequest takes json_schema (and grammar, tools)
    });
    this.online = encodePayload(status, "json");
    // Not awaited: QoS 1 acknowledgement must not hold up serving.
    void conn.publish(this.topics.status, this.online, { qos, retain: true });
    void this.publishMetrics();
  }

  private onMessage(msg: IncomingMessage): void {
    if (this.fatal) return;
    const t = this.topics;
    if (msg.topic === t.status) return this.onStatus(msg);
    const isRequest = msg.topic === t.request || msg.topic === t.groupRequest;
    const isCancel = msg.topic === t.cancel || msg.topic === t.groupCancel;
    if (!isRequest && !isCancel) return;
    if (msg.packet.retain) {
      // A retained request would run again on every (re)connection ("open the gripper" replayed).
      this.stats.retainedIgnored++;
      this.metrics.count("refused");
      this.log(
        `ignored a retained ${isRequest ? "request" : "cancel"} on ${msg.topic} (${this.stats.retainedIgnored} so far)`,
      );
      return;
    }
    if (isCancel) return this.cancel(msg);
    const task = this.serve(msg, msg.topic === t.groupRequest).catch((e) =>
      this.log(`internal error serving a request: ${(e as Error).message}`)
    );
    this.tasks.add(task);
    task.finally(() => this.tasks.delete(task));
  }

  /**
   * Our node's status from another process. A newcomer's `probe` (see {@link probeForTwin}) gets
   * a live copy of our online status. A live online status of another instance means two
   * processes run one node with different client ids, and both would answer: conflict. Retained
   * ones are ignored: they may be stale (a predecessor the broker kept over a power cut).
   */
  private onStatus(msg: IncomingMessage): void {
    let v: unknown;
    try {
      v = JSON.parse(new TextDecoder().decode(msg.payload));
    } catch {
      return;
    }
    if (!isObject(v) || v.instance === this.instance || msg.packet.retain) {
      return;
    }
    if (v.state === "probe" && this.online && this.conn?.connected) {
      void this.conn.publish(this.topics.status, this.online, {
        qos: 0,
        retain: false,
      });
    } else if (v.state === "online") {
      this.conflict(
        `another process (instance ${String(v.instance)}) announced itself as node '${this.options.node}'`,
      );
    }
  }

  /**
   * Before taking the node's client id (which would take over a running twin's MQTT session,
   * and then each would take it back, forever), asks on a throwaway connection whether a live
   * process already serves this node: it answers a `probe` on the status topic with its online
   * status. A stale retained status does not answer. Skipped when the broker is unreachable.
   */
  private async probeForTwin(waitMs: number): Promise<void> {
    const o = this.options;
    let client: MqttClient;
    try {
      const { will: _, ...base } = clientOptions(o, o.protocolVersion ?? 5, {
        topic: this.topics.status,
        payload: new Uint8Array(),
        qos: 0,
      });
      client = await mqtt.connectAsync(o.url, {
        ...base,
        clientId: `${o.clientId}-probe-${this.instance.slice(0, 8)}`,
        clean: true,
        reconnectPeriod: 0,
        connectTimeout: Math.min(o.connectTimeoutMs, 5000),
        properties: undefined,
      }, false);
    } catch {
      return; // the real connection will retry and report
    }
    try {
      let other: string | undefined;
      client.on("message", (_t, payload, packet) => {
        try {
          const v = JSON.parse(new TextDecoder().decode(payload));
          if (!packet.retain && isObject(v) && v.state === "online") {
            other ??= String(v.instance);
          }
        } catch {
          // not a status
        }
      });
      await client.subscribeAsync(this.topics.status, { qos: 0 });
      const probe = { state: "probe", node: o.node, instance: this.instance };
      await client.publishAsync(this.topics.status, JSON.stringify(probe), {
        qos: 0,
        retain: false,
      });
      for (
        let waited = 0;
        waited < waitMs && other === undefined;
        waited += 20
      ) await sleep(20);
      if (other !== undefined) {
        throw new MqttFatalError(
          `another process (instance ${other}) already serves node '${o.node}' on ${o.url}: ` +
            `two nodes must not share a --node name; not starting`,
          2,
          "conflict",
        );
      }
    } finally {
      await client.endAsync(true).catch(() => {});
    }
  }

  private conflict(what: string): void {
    const e = new MqttFatalError(
      `${what}: two nodes must not share a --node name (or client id); exiting instead of fighting over it`,
      2,
      "conflict",
    );
    this.log(e.message);
    // A clean disconnect without our offline status: the other node is online.
    void this.conn?.close(true);
    this.onFatal(e);
  }

  private count(outcome: Outcome): void {
    this.metrics.count(outcome);
  }

  /** Serves one request message to its final reply. */
  private async serve(msg: IncomingMessage, viaGroup: boolean): Promise<void> {
    const received = performance.now();
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
      if (typeof r !== "string") {
        problem ??= new RequestError(
          "BAD_REQUEST",
          "reply_to must be a string (a topic)",
        );
      } else replyTo ??= r;
    }
    const id = fields && (typeof fields.id === "string" || typeof fields.id === "number") ? fields.id : undefined;
    const idText = id !== undefined ? ` (id ${JSON.stringify(id)})` : "";
    if (replyTo === undefined) {
      this.stats.droppedNoReplyTo++;
      this.count("refused");
      this.log(
        `dropped a request${idText}: no Response Topic and no reply_to, ` +
          `so no way to answer (${this.stats.droppedNoReplyTo} so far)`,
      );
      return;
    }
    const topicProblem = publishTopicProblem(replyTo);
    if (topicProblem) {
      this.stats.droppedNoReplyTo++;
      this.count("refused");
      this.log(`dropped a request${idText}: ${topicProblem}`);
      return;
    }
    const refusal = replyTopicRefusal(
      replyTo,
      this.options.replyPrefixes,
      this.options.prefix,
      this.options.node,
    );
    if (refusal) {
      this.stats.replyRefused++;
      this.count("refused");
      this.log(
        `refused a request${idText}: ${refusal} (${this.stats.replyRefused} so far)`,
      );
      return;
    }
    const keys = requestKeys(replyTo, id, correlationData);
    const reply = new ReplyStream(
      conn,
      {
        topic: replyTo,
        encoding,
        id,
        correlationData,
        node: viaGroup ? this.options.node : undefined,
      },
      this.options.qos,
      this.stats,
      this.maxChunkBacklog,
    );
    const inFlight = keys.some((k) => this.running.has(k));
    if (msg.packet.dup && (inFlight || keys.some((k) => this.recent.has(k)))) {
      // The broker sent it again (after a reconnection): it is running or answered already.
      this.stats.redelivered++;
      this.count("refused");
      this.log(
        `ignored a redelivered request${idText}: already ${inFlight ? "running" : "answered"}`,
      );
      return;
    }
    let wire: WireRequest;
    try {
      if (problem) throw problem;
      if (inFlight) {
        this.stats.duplicates++;
        throw new RequestError(
          "DUPLICATE_ID",
          `a request with ${id !== undefined ? `id ${JSON.stringify(id)}` : "this correlation data"} ` +
            `from ${replyTo} is still running`,
        );
      }
      const merged = this.opts.requestDefaults && fields ? withDefaults(this.opts.requestDefaults, fields) : fields;
      if (merged) checkMaxTokens(merged, this.opts.maxTokensLimit);
      wire = parseWireRequest(merged);
      if (this.opts.maxTokensLimit !== undefined) {
        wire.request.maxTokens ??= this.opts.maxTokensLimit;
      }
    } catch (e) {
      this.stats.failed++;
      this.count("failed");
      await reply.error(e);
      return;
    }
    if (this.stopping) {
      this.stats.busy++;
      this.count("busy");
      await reply.error(
        new RequestError(
          "BUSY",
          "this node is shutting down; send the request again (another node may take it)",
        ),
      );
      return;
    }
    if (viaGroup && this.scheduler.queuedCount >= this.groupQueue) {
      this.stats.busy++;
      this.count("busy");
      await reply.error(
        new RequestError(
          "BUSY",
          `busy: node ${this.options.node} has ${this.scheduler.queuedCount} group requests waiting ` +
            `(limit ${this.groupQueue}); retry (the group may place it on another node)`,
        ),
      );
      return;
    }
    await this.generate(wire, reply, {
      keys,
      received,
      expirySeconds: props.messageExpiryInterval,
    });
  }

  private async generate(
    wire: WireRequest,
    reply: ReplyStream,
    meta: { keys: string[]; received: number; expirySeconds?: number },
  ): Promise<void> {
    const running: Running = {
      controller: new AbortController(),
      keys: meta.keys,
    };
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
      const events = this.scheduler.submit(
        wire.request,
        running.controller.signal,
      );
      for await (const ev of events) {
        if (!started) {
          started = true;
          cancelExpiry();
          if (ev.type === "token") {
            this.metrics.addTtft(performance.now() - meta.received);
          }
        }
        if (ev.type === "token") {
          if (ev.token >= 0) this.metrics.addTokens(1);
          if (wire.stream) reply.token(ev);
          continue;
        }
        if (running.abortReason === "expired") {
          this.stats.expired++;
          this.count("expired");
          await reply.error(
            new RequestError(
              "EXPIRED",
              `request expired: its message expiry of ${meta.expirySeconds} s passed before generation started (node busy)`,
            ),
          );
        } else {
          this.metrics.addGeneration(ev.stats);
          if (ev.finishReason === "cancelled") {
            this.stats.cancelled++;
            this.count("cancelled");
          } else {
            this.stats.completed++;
            this.count("served");
          }
          await reply.done(ev);
        }
      }
    } catch (e) {
      if (e instanceof RequestError && e.code === "BUSY") {
        this.stats.busy++;
        this.count("busy");
      } else {
        this.stats.failed++;
        this.count("failed");
      }
      await reply.error(e);
    } finally {
      cancelExpiry();
      this.unregister(running);
    }
  }

  /**
   * Cancels the sender's running requests named by `id` in the payload or by the Correlation
   * Data (MQTT 5). The sender is its reply address (Response Topic or reply_to), which scopes
   * the ids: one client cannot cancel another's request by guessing its id.
   */
  private cancel(msg: IncomingMessage): void {
    this.stats.cancelRequests++;
    const props = msg.packet.properties ?? {};
    let id: unknown;
    let replyTo = props.responseTopic;
    if (
      msg.payload.length > 0 && msg.payload.length <= this.options.maxPayload
    ) {
      try {
        const value = decodePayload(
          msg.payload,
          detectEncoding(msg.payload, props.contentType),
        );
        if (isObject(value)) {
          id = value.id;
          if (typeof value.reply_to === "string") replyTo ??= value.reply_to;
        } else if (typeof value === "string" || typeof value === "number") {
          id = value;
        }
      } catch {
        // a cancel may carry only Correlation Data
      }
    }
    if (replyTo === undefined) {
      this.stats.cancelUnscoped++;
      this.log(
        "ignored a cancel without a reply address (Response Topic or reply_to): it cannot name its sender's request",
      );
      return;
    }
    const keys = requestKeys(
      replyTo,
      typeof id === "string" || typeof id === "number" ? id : undefined,
      props.correlationData ? new Uint8Array(props.correlationData) : undefined,
    );
    let n = 0;
    for (const key of keys) {
      const r = this.running.get(key);
      if (!r) continue;
      if (!r.controller.signal.aborted) n++;
      this.abort(r, "cancel");
    }
    this.log(
      n > 0 ? `cancelled ${n} request(s)` : `cancel matched no running request (${keys.join(", ") || "no id"})`,
    );
  }

  private abort(r: Running, reason: NonNullable<Running["abortReason"]>): void {
    if (r.controller.signal.aborted) return;
    r.abortReason = reason;
    r.controller.abort();
  }

  private register(r: Running): void {
    for (const k of r.keys) this.running.set(k, r);
    if (r.keys.length === 0) this.running.set(`anon:${crypto.randomUUID()}`, r);
  }

  private unregister(r: Running): void {
    for (const [k, v] of this.running) if (v === r) this.running.delete(k);
    for (const k of r.keys) {
      this.recent.delete(k);
      this.recent.add(k);
    }
    // A Set iterates in insertion order: the first keys are the oldest.
    for (const k of this.recent) {
      if (this.recent.size <= RECENT_KEYS) break;
      this.recent.delete(k);
    }
  }
}

/** Keys a request is known by: its reply address with its id, and with its correlation data. */
function requestKeys(
  replyTo: string,
  id: string | number | undefined,
  correlationData: Uint8Array | undefined,
): string[] {
  const keys: string[] = [];
  if (id !== undefined) keys.push(`${replyTo}\u0000id:${typeof id}:${id}`);
  if (correlationData) {
    keys.push(
      `${replyTo}\u0000corr:${
        Array.from(correlationData, (b) => b.toString(16).padStart(2, "0"))
          .join("")
      }`,
    );
  }
  return keys;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

async function withTimeout<T>(
  p: Promise<T>,
  ms: number,
): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<undefined>((r) => timer = setTimeout(() => r(undefined), ms)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
