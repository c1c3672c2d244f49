/**
 * One MQTT connection that stays up: MQTT 5 with a fallback to 3.1.1 when the broker refuses
 * version 5, reconnection with exponential backoff (mqtt.js reconnects; the delay before each
 * attempt is set from {@link Backoff}), a hook run on every (re)connection (subscribe, publish
 * presence), and publishes that never throw (a failed publish is logged and counted).
 */
import mqtt, { type IClientPublishOptions, type IPublishPacket, type MqttClient } from "mqtt";
import { Backoff } from "./backoff.ts";
import {
  clientOptions,
  type ProtocolVersion,
  type ResolvedMqttOptions,
  toBuffer,
  type WillMessage,
} from "./options.ts";

/** Most QoS 0 final replies held while offline; the oldest is dropped past this. */
const MAX_HELD = 1024;
/** CONNACK codes meaning "this protocol version is not spoken here" (3.1.1: 1; MQTT 5: 132). */
const UNSUPPORTED_VERSION = new Set([1, 132]);
/** CONNACK codes meaning retrying with the same settings cannot help (credentials, identity, ban). */
const FATAL_REFUSALS = new Set([2, 4, 5, 133, 134, 135, 138, 140]);

/** MQTT 5 DISCONNECT reason "Session taken over": another client connected with our client id. */
const SESSION_TAKEN_OVER = 142;

/** A failure that ends the service: retrying cannot help. `exitCode` is the process's. */
export class MqttFatalError extends Error {
  constructor(
    message: string,
    readonly exitCode: 1 | 2,
    readonly reason: "conflict" | "subscribe",
  ) {
    super(message);
    this.name = "MqttFatalError";
  }
}

/** One subscription: topic filter and, on MQTT 5, retain handling (2 = never send retained messages). */
export interface Subscription {
  topic: string;
  qos: 0 | 1 | 2;
  /** MQTT 5 retain handling; ignored on 3.1.1 (the service then drops retained requests itself). */
  rh?: 0 | 1 | 2;
}

/** A received message. */
export interface IncomingMessage {
  topic: string;
  payload: Uint8Array;
  packet: IPublishPacket;
}

/** Hooks of a connection. */
export interface ConnectionHandlers {
  /** Runs after every successful (re)connection, before messages are handled. */
  onConnect: (conn: MqttConnection) => Promise<void> | void;
  onMessage: (msg: IncomingMessage) => void;
  log: (line: string) => void;
  /** Called once when the connection is given up for good (e.g. the session was taken over). */
  onFatal?: (e: MqttFatalError) => void;
}

/** A connected MQTT client with reconnects and safe publishes. */
export class MqttConnection {
  /** Publishes that failed (after the client gave up on them). */
  publishFailures = 0;
  /** Successful connections, the first included. */
  connects = 0;
  /** Publishes handed to mqtt.js and not yet sent (QoS 0) or acknowledged (QoS 1/2). */
  backlog = 0;
  /** Final replies (QoS 0) held while offline, sent after the reconnection. */
  private readonly held: {
    topic: string;
    payload: Uint8Array;
    opts: IClientPublishOptions;
    resolve: (ok: boolean) => void;
  }[] = [];
  private closing = false;
  /** Whether the last CONNACK said the broker kept our session (persistent sessions). */
  sessionPresent = false;

  private constructor(
    private readonly client: MqttClient,
    private readonly backoff: Backoff,
  ) {}

  /**
   * Connects, retrying with backoff while the broker is unreachable, and resolves once
   * connected. Rejects if the broker refuses the credentials or client id on the first
   * attempt, or if `signal` aborts first.
   */
  static open(
    opts: ResolvedMqttOptions,
    will: WillMessage,
    handlers: ConnectionHandlers,
    signal?: AbortSignal,
  ): Promise<MqttConnection> {
    const auto = opts.protocolVersion === undefined;
    const backoff = new Backoff(opts.backoffMinMs, opts.backoffMaxMs);
    const client = mqtt.connect(opts.url, {
      ...clientOptions(opts, opts.protocolVersion ?? 5, will),
      reconnectOnConnackError: true,
      resubscribe: false, // subscriptions are made again by onConnect
    });
    const conn = new MqttConnection(client, backoff);
    const log = handlers.log;
    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (e: Error) => {
        if (settled) return;
        settled = true;
        conn.closing = true;
        client.end(true);
        reject(e);
      };
      signal?.addEventListener(
        "abort",
        () => fail(new Error("interrupted while connecting to the MQTT broker")),
        { once: true },
      );
      const fatal = (e: MqttFatalError) => {
        if (!settled) return fail(e);
        if (conn.closing) return;
        conn.closing = true;
        log(e.message);
        // A clean DISCONNECT: the broker does not publish our will (the other node is online).
        client.end(false, { reasonCode: 0 });
        handlers.onFatal?.(e);
      };
      client.on("connect", (packet) => {
        // Small request/reply messages must not wait for Nagle's algorithm (~40 ms per hop).
        (client.stream as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
        backoff.reset();
        client.options.reconnectPeriod = opts.backoffMinMs;
        conn.connects++;
        conn.sessionPresent = packet.sessionPresent ?? false;
        log(
          `connected to ${opts.url} (MQTT ${conn.version === 5 ? "5" : "3.1.1"}` +
            `${conn.sessionPresent ? ", session resumed" : ""})`,
        );
        conn.flushHeld();
        Promise.resolve(handlers.onConnect(conn)).then(
          () => {
            if (!settled) {
              settled = true;
              resolve(conn);
            }
          },
          (e) => {
            if (e instanceof MqttFatalError) fatal(e);
            else log(`error after connecting: ${(e as Error).message}`);
          },
        );
      });
      client.on("disconnect", (packet) => {
        if (packet.reasonCode === SESSION_TAKEN_OVER) {
          fatal(
            new MqttFatalError(
              `another client connected with client id '${opts.clientId}' and took over this node's session: ` +
                `is a second node running with --node ${opts.node}? Exiting instead of fighting over the session`,
              2,
              "conflict",
            ),
          );
        } else {
          log(
            `the broker disconnected this node (reason code ${packet.reasonCode ?? 0})`,
          );
        }
      });
      client.on("message", (topic, payload, packet) => {
        try {
          handlers.onMessage({
            topic,
            payload: new Uint8Array(
              payload.buffer,
              payload.byteOffset,
              payload.byteLength,
            ),
            packet,
          });
        } catch (e) {
          log(`error handling a message on ${topic}: ${(e as Error).message}`);
        }
      });
      client.on("error", (e: Error & { code?: unknown }) => {
        const code = typeof e.code === "number" ? e.code : undefined;
        if (
          code !== undefined && UNSUPPORTED_VERSION.has(code) && auto &&
          client.options.protocolVersion === 5
        ) {
          log("broker refused MQTT 5; falling back to MQTT 3.1.1");
          // mqtt.js retries after a refused CONNACK (reconnectOnConnackError) with these options.
          client.options.protocolVersion = 4;
          delete client.options.properties;
          return;
        }
        if (
          code !== undefined && FATAL_REFUSALS.has(code) && conn.connects === 0
        ) {
          fail(
            new Error(
              `MQTT broker ${opts.url} refused the connection: ${e.message}`,
            ),
          );
          return;
        }
        log(`MQTT error: ${e.message}`);
      });
      client.on("reconnect", () => {
        // Sets the wait after this attempt, should it fail.
        client.options.reconnectPeriod = backoff.next();
      });
      client.on("offline", () => {
        if (!conn.closing) {
          log(
            `lost the broker; reconnecting with backoff (${opts.backoffMinMs}..${opts.backoffMaxMs} ms)`,
          );
        }
      });
    });
  }

  /** True while connected to the broker. */
  get connected(): boolean {
    return this.client.connected;
  }

  /** The protocol version in use. */
  get version(): ProtocolVersion {
    return this.client.options.protocolVersion === 5 ? 5 : 4;
  }

  /**
   * Subscribes; resolves with a description of each refused subscription (empty when all were
   * granted), from the SUBACK reason codes.
   */
  async subscribe(subs: Subscription[]): Promise<string[]> {
    const map: Record<string, { qos: 0 | 1 | 2; rh?: number }> = {};
    for (const s of subs) {
      map[s.topic] = this.version === 5 && s.rh !== undefined ? { qos: s.qos, rh: s.rh } : { qos: s.qos };
    }
    try {
      const granted = await this.client.subscribeAsync(map);
      return granted.filter((g) => (g.qos & 0x80) !== 0).map((g) => `${g.topic} (reason code ${g.qos})`);
    } catch (e) {
      return [
        `${subs.map((s) => s.topic).join(", ")}: ${(e as Error).message}`,
      ];
    }
  }

  /** Unsubscribes, ignoring failures (used on shutdown). */
  async unsubscribe(topics: string[]): Promise<void> {
    try {
      await this.client.unsubscribeAsync(topics);
    } catch {
      // shutting down anyway
    }
  }

  /**
   * Publishes; resolves true once sent (QoS 0) or acknowledged (QoS 1/2), false on failure.
   * While disconnected, QoS 1/2 messages wait in mqtt.js's outgoing store and go out after the
   * reconnection; QoS 0 messages are dropped (false).
   */
  publish(
    topic: string,
    payload: Uint8Array,
    opts: IClientPublishOptions,
    keep = false,
  ): Promise<boolean> {
    if (!this.client.connected && (opts.qos ?? 0) === 0) {
      if (!keep || this.closing) return Promise.resolve(false);
      // A QoS 0 final reply waits here for the reconnection (mqtt.js would drop it).
      if (this.held.length >= MAX_HELD) this.held.shift()!.resolve(false);
      return new Promise((resolve) => this.held.push({ topic, payload, opts, resolve }));
    }
    this.backlog++;
    return new Promise((resolve) => {
      try {
        this.client.publish(topic, toBuffer(payload), opts, (err) => {
          this.backlog--;
          if (err) this.publishFailures++;
          resolve(!err);
        });
      } catch {
        this.backlog--;
        this.publishFailures++;
        resolve(false);
      }
    });
  }

  private flushHeld(): void {
    for (const h of this.held.splice(0)) {
      void this.publish(h.topic, h.payload, h.opts, true).then(h.resolve);
    }
  }

  /** True once {@link close} was called or the connection was given up. */
  get closed(): boolean {
    return this.closing;
  }

  /** Disconnects cleanly (the will is not sent); `force` skips waiting for in-flight acks. */
  async close(force = false): Promise<void> {
    this.closing = true;
    for (const h of this.held.splice(0)) h.resolve(false);
    try {
      await this.client.endAsync(force);
    } catch {
      // already gone
    }
  }
}
