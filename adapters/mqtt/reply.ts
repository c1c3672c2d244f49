/**
 * The replies of one request: where they go (Response Topic or `reply_to`), how (the request's
 * encoding, its Correlation Data echoed on MQTT 5, its `id` in every payload), and their order
 * (`seq` counts every reply of the request from 0; the final one is the last).
 */
import { Buffer } from "node:buffer";
import type { GenerationEvent } from "../../runtime/request.ts";
import { doneEvent, tokenEvent, wireError } from "../request.ts";
import { CONTENT_TYPES, encodePayload, type Encoding } from "./codec.ts";
import type { MqttConnection } from "./connection.ts";

/** Where and how one request is answered. */
export interface ReplyAddress {
  topic: string;
  encoding: Encoding;
  id?: string | number;
  correlationData?: Uint8Array;
  /** The answering node, put in every reply of a share-group request (so its client knows whom to watch). */
  node?: string;
}

/** Counters shared by all replies of a service. */
export interface ReplyCounters {
  /** Token chunks not sent because the broker was unreachable (the final reply has the text). */
  chunksDroppedOffline: number;
}

/** Sends the replies of one request. */
export class ReplyStream {
  private seq = 0;
  /** Text streamed so far (reported with an error that ends a request midway). */
  private partial = "";

  constructor(
    private readonly conn: MqttConnection,
    private readonly address: ReplyAddress,
    private readonly qos: 0 | 1 | 2,
    private readonly counters: ReplyCounters,
    /** Unacknowledged publishes past which chunks are dropped: a frozen broker must not fill memory. */
    private readonly maxBacklog = 256,
  ) {}

  /**
   * One streamed chunk. Skipped while offline or while the broker is behind on acknowledgements:
   * chunks are transient, the final reply is not.
   */
  token(ev: Extract<GenerationEvent, { type: "token" }>): void {
    this.partial += ev.text;
    const seq = this.seq++;
    if (!this.conn.connected || this.conn.backlog >= this.maxBacklog) {
      this.counters.chunksDroppedOffline++;
      return;
    }
    const { event, id, ...rest } = tokenEvent(this.address.id, ev);
    this.send({ event, ...(id !== undefined ? { id } : {}), seq, ...rest });
  }

  /** The final reply of a finished generation (full text, usage, timings, finish reason). */
  done(ev: Extract<GenerationEvent, { type: "done" }>): Promise<boolean> {
    const { event, id, ...rest } = doneEvent(this.address.id, ev);
    return this.send({
      event,
      ...(id !== undefined ? { id } : {}),
      seq: this.seq++,
      ...rest,
    }, true);
  }

  /** The final reply of a failed request. */
  error(e: unknown): Promise<boolean> {
    return this.send({
      event: "error",
      ...this.idField(),
      seq: this.seq++,
      finish_reason: "error",
      text: this.partial,
      error: wireError(e),
    }, true);
  }

  private idField() {
    return this.address.id !== undefined ? { id: this.address.id } : {};
  }

  /** `final`: kept while offline even at QoS 0. */
  private send(
    value: Record<string, unknown>,
    final = false,
  ): Promise<boolean> {
    const a = this.address;
    if (a.node !== undefined) value.node = a.node;
    const properties = this.conn.version === 5
      ? {
        contentType: CONTENT_TYPES[a.encoding],
        ...(a.correlationData ? { correlationData: Buffer.from(a.correlationData) } : {}),
      }
      : undefined;
    return this.conn.publish(a.topic, encodePayload(value, a.encoding), {
      qos: this.qos,
      ...(properties ? { properties } : {}),
    }, final);
  }
}
