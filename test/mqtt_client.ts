/**
 * A test client of `bonsai serve`: publishes requests (JSON or CBOR, MQTT 5 or 3.1.1) and
 * gathers each request's replies until its final one. Used in process by the service tests and,
 * run as a script, as the separate client process of the end-to-end test:
 *
 *   deno run --allow-all test/mqtt_client.ts --url mqtt://127.0.0.1:PORT --node NAME [--prefix P] [--v3]
 *
 * The script waits for the node's retained online status, sends a mixed batch of requests at
 * once, checks every reply stream, prints one JSON summary line and exits 0 if all checks held.
 */
import { Buffer } from "node:buffer";
import mqtt, { type MqttClient } from "mqtt";
import { decode as cborDecode, encode as cborEncode } from "cbor-x";
import { parseArgs } from "node:util";

/** One reply message, decoded. */
export type Reply = Record<string, unknown> & {
  event: string;
  seq: number;
  _properties?: Record<string, unknown>;
  _encoding?: string;
};

/** How to publish one request. */
export interface SendOptions {
  encoding?: "json" | "cbor";
  /** MQTT 5 Response Topic (default: a fresh topic under the client's reply base); false: none. */
  responseTopic?: string | false;
  correlation?: string;
  /** MQTT 5 Message Expiry Interval, seconds. */
  expiry?: number;
  /** MQTT 5 Content Type (default from encoding; false: none). */
  contentType?: string | false;
  /** Put `reply_to` in the payload (MQTT 3.1.1 style) instead of the Response Topic. */
  replyToInPayload?: boolean;
}

/** A client connected to a test broker. */
export class TestClient {
  private readonly streams = new Map<string, { replies: Reply[]; waiters: (() => void)[] }>();
  private n = 0;
  /** Raw messages per topic for the topics {@link watch}ed. */
  readonly seen = new Map<string, { payload: Uint8Array; properties?: Record<string, unknown> }[]>();

  private constructor(readonly client: MqttClient, readonly version: 4 | 5, private readonly base: string) {}

  /**
   * Connects; replies are asked for under `{replyBase}/{random tag}/` (default under the node's
   * default reply namespace, bonsai/replies).
   */
  static async connect(url: string, version: 4 | 5 = 5, replyBase = "bonsai/replies"): Promise<TestClient> {
    const tag = crypto.randomUUID().slice(0, 8);
    const client = await mqtt.connectAsync(url, {
      protocolVersion: version,
      reconnectPeriod: 100,
      clientId: `test-${tag}`,
    });
    const c = new TestClient(client, version, `${replyBase}/${tag}`);
    client.on(
      "message",
      (topic, payload, packet) =>
        c.onMessage(topic, new Uint8Array(payload), packet.properties as Record<string, unknown> | undefined),
    );
    await client.subscribeAsync(`${replyBase}/${tag}/#`, { qos: 1 });
    return c;
  }

  /** Subscribes to `topic` and records what arrives (status messages). */
  async watch(topic: string): Promise<void> {
    this.seen.set(topic, this.seen.get(topic) ?? []);
    await this.client.subscribeAsync(topic, { qos: 1 });
  }

  /** Resolves with the first watched message on `topic` that `accept`s; throws after `timeoutMs`. */
  async waitFor(
    topic: string,
    accept: (v: Record<string, unknown>) => boolean,
    timeoutMs = 60_000,
  ): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      if (Date.now() > deadline) throw new Error(`no matching message on ${topic} within ${timeoutMs} ms`);
      for (const m of this.seen.get(topic) ?? []) {
        const v = JSON.parse(new TextDecoder().decode(m.payload));
        if (accept(v)) return v;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** A fresh reply topic of this client. */
  replyTopic(): string {
    return `${this.base}/${this.n++}`;
  }

  /**
   * Publishes `body` (an object to encode, or raw bytes) to `topic`; returns the reply topic,
   * whose replies {@link replies} gathers.
   */
  async send(topic: string, body: unknown, o: SendOptions = {}): Promise<string> {
    const encoding = o.encoding ?? "json";
    const replyTo = typeof o.responseTopic === "string" ? o.responseTopic : this.replyTopic();
    let value = body;
    if (o.replyToInPayload && typeof body === "object" && body !== null && !(body instanceof Uint8Array)) {
      value = { ...body, reply_to: replyTo };
    }
    const payload = value instanceof Uint8Array
      ? value
      : encoding === "json"
      ? new TextEncoder().encode(JSON.stringify(value))
      : cborEncode(value);
    const properties: Record<string, unknown> = {};
    if (this.version === 5) {
      if (o.responseTopic !== false && !o.replyToInPayload) properties.responseTopic = replyTo;
      if (o.correlation !== undefined) properties.correlationData = Buffer.from(o.correlation);
      if (o.expiry !== undefined) properties.messageExpiryInterval = o.expiry;
      if (o.contentType !== false) properties.contentType = o.contentType ?? `application/${encoding}`;
    }
    this.streams.set(replyTo, this.streams.get(replyTo) ?? { replies: [], waiters: [] });
    await this.client.publishAsync(topic, Buffer.from(payload), { qos: 1, properties });
    return replyTo;
  }

  /** Resolves with the replies on `replyTopic` up to and including the final one. */
  async replies(replyTopic: string): Promise<Reply[]> {
    const s = this.stream(replyTopic);
    while (!s.replies.some((r) => r.event !== "token")) await new Promise<void>((r) => s.waiters.push(r));
    return s.replies;
  }

  /** Resolves once `replyTopic` has at least `n` replies. */
  async firstReplies(replyTopic: string, n: number): Promise<Reply[]> {
    const s = this.stream(replyTopic);
    while (s.replies.length < n) await new Promise<void>((r) => s.waiters.push(r));
    return s.replies;
  }

  /** Properties of the last message received on a reply topic (MQTT 5). */
  lastProperties = new Map<string, Record<string, unknown> | undefined>();

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }

  private stream(topic: string) {
    let s = this.streams.get(topic);
    if (!s) this.streams.set(topic, s = { replies: [], waiters: [] });
    return s;
  }

  private onMessage(topic: string, payload: Uint8Array, properties?: Record<string, unknown>): void {
    const watched = this.seen.get(topic);
    if (watched) {
      watched.push({ payload, properties });
      return;
    }
    const cbor = properties?.contentType === "application/cbor" ||
      (properties?.contentType === undefined && payload[0] >= 0xa0 && payload[0] <= 0xbf);
    const reply = (cbor ? cborDecode(payload) : JSON.parse(new TextDecoder().decode(payload))) as Reply;
    if (properties) reply._properties = properties;
    reply._encoding = cbor ? "cbor" : "json";
    this.lastProperties.set(topic, properties);
    const s = this.stream(topic);
    s.replies.push(reply);
    for (const w of s.waiters.splice(0)) w();
  }
}

/** Problems with one request's reply stream (empty when it is well-formed). */
export function checkStream(replies: Reply[]): string[] {
  const problems: string[] = [];
  const seqs = replies.map((r) => r.seq);
  if (seqs.some((s, i) => s !== i)) problems.push(`seq not 0..n-1 in order: ${seqs.join(",")}`);
  const finals = replies.filter((r) => r.event !== "token");
  if (finals.length !== 1 || replies.at(-1)?.event === "token") problems.push("not exactly one final reply, last");
  const final = finals[0];
  const tokens = replies.filter((r) => r.event === "token");
  if (final?.event === "done" && tokens.length > 0) {
    const streamed = tokens.map((r) => r.text).join("");
    if (streamed !== final.text) {
      problems.push(`streamed text ${JSON.stringify(streamed)} != final ${JSON.stringify(final.text)}`);
    }
  }
  return problems;
}

async function script(): Promise<number> {
  const { values: v } = parseArgs({
    args: Deno.args,
    options: { url: { type: "string" }, node: { type: "string" }, prefix: { type: "string" }, v3: { type: "boolean" } },
  });
  if (!v.url || !v.node) {
    console.error("usage: mqtt_client.ts --url URL --node NAME [--prefix P] [--v3]");
    return 2;
  }
  const base = `${v.prefix ?? "bonsai"}/${v.node}`;
  // A lost reply must fail the run, not hang it.
  const deadline = setTimeout(() => {
    console.log(JSON.stringify({ problems: ["timed out waiting for the node or its replies"] }));
    Deno.exit(1);
  }, 120_000);
  const client = await TestClient.connect(v.url, v.v3 ? 4 : 5, `${v.prefix ?? "bonsai"}/replies`);
  try {
    await client.watch(`${base}/status`);
    const status = await client.waitFor(`${base}/status`, (s) => s.state === "online");
    const v3 = v.v3 ?? false;
    const jobs = [
      { body: { id: "j1", prompt: "Hello", max_tokens: 5, temperature: 0 }, o: { encoding: "json" as const } },
      { body: { id: "c1", prompt: "Hello", max_tokens: 5, temperature: 0 }, o: { encoding: "cbor" as const } },
      {
        body: { id: "m1", messages: [{ role: "user", content: "Status?" }], max_tokens: 4, seed: 7, temperature: 0.7 },
        o: {},
      },
      { body: { id: "n1", prompt: "Quiet", max_tokens: 3, stream: false }, o: {} },
      { body: { id: "bad", prompt: 42 }, o: {} },
    ];
    const topics = await Promise.all(
      jobs.map((j, i) =>
        client.send(`${base}/request`, j.body, { ...j.o, replyToInPayload: v3, correlation: `corr-${i}` })
      ),
    );
    const results = await Promise.all(topics.map((t) => client.replies(t)));
    const problems: string[] = [];
    results.forEach((r, i) => problems.push(...checkStream(r).map((p) => `${jobs[i].body.id}: ${p}`)));
    const finals = results.map((r) => r.at(-1)!);
    const summary = {
      status: {
        model: (status.model as Record<string, unknown>).name,
        mqtt: (status.capabilities as Record<string, unknown>).mqtt_version,
      },
      finals: finals.map((f) => ({
        id: f.id,
        event: f.event,
        finish_reason: f.finish_reason,
        text: f.text,
        encoding: f._encoding,
        correlation: f._properties?.correlationData
          ? new TextDecoder().decode(f._properties.correlationData as Uint8Array)
          : null,
        tokens: results[finals.indexOf(f)].filter((r) => r.event === "token").length,
        error: (f.error as { code?: string } | undefined)?.code,
      })),
      problems,
    };
    console.log(JSON.stringify(summary));
    return problems.length === 0 ? 0 : 1;
  } finally {
    clearTimeout(deadline);
    await client.close();
  }
}

if (import.meta.main) Deno.exit(await script());
