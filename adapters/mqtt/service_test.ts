/**
 * The MQTT service against real brokers (mosquitto for MQTT 5, aedes for 3.1.1), on the tiny
 * synthetic model: replies, encodings, bad input, busy, cancel, expiry, presence, and a broker
 * or link that drops and comes back.
 */
import assert from "node:assert/strict";
import { Model } from "../../runtime/model.ts";
import { Scheduler, type SchedulerOptions } from "../../runtime/scheduler.ts";
import type { GenerationRequest } from "../../runtime/request.ts";
import { tinyModel } from "../../test/fixtures.ts";
import { mosquittoPath, startAedes, startMosquitto, startProxy, type TestBroker } from "../../test/mqtt_brokers.ts";
import { checkStream, type Reply, TestClient } from "../../test/mqtt_client.ts";
import { MqttService, type MqttServiceOptions } from "./service.ts";

const HAVE_MOSQUITTO = mosquittoPath() !== undefined;
if (!HAVE_MOSQUITTO) console.log("mosquitto not installed (apt-get install mosquitto): MQTT 5 tests skipped");

interface Setup {
  model: Model;
  scheduler: Scheduler;
  service: MqttService;
  client: TestClient;
  broker: TestBroker;
  base: string;
  logs: string[];
}

/** Runs `body` with a broker, a model, a scheduler, a started service and a test client. */
async function withService(
  opts: {
    broker?: "mosquitto" | "aedes";
    scheduler?: SchedulerOptions;
    service?: Partial<MqttServiceOptions>;
    clientVersion?: 4 | 5;
    proxy?: boolean;
  },
  body: (s: Setup) => Promise<void>,
): Promise<void> {
  const broker = opts.broker === "aedes" ? await startAedes() : await startMosquitto();
  const proxy = opts.proxy ? await startProxy(broker.port) : undefined;
  const model = await Model.load(await tinyModel(), { threads: 1 });
  const logs: string[] = [];
  let service: MqttService | undefined;
  let client: TestClient | undefined;
  try {
    const scheduler = new Scheduler(model, { contextSize: 256, maxTokens: 16, ...opts.scheduler });
    const node = `node-${crypto.randomUUID().slice(0, 6)}`;
    service = new MqttService(scheduler, {
      url: (proxy ?? broker).url,
      node,
      backoffMinMs: 50,
      backoffMaxMs: 400,
      log: (l) => logs.push(l),
      ...opts.service,
    });
    await service.start();
    client = await TestClient.connect(broker.url, opts.clientVersion ?? 5);
    await body({ model, scheduler, service, client, broker: proxy ?? broker, base: `bonsai/${node}`, logs });
  } finally {
    await service?.stop(1000);
    await client?.close();
    await proxy?.stop();
    await broker.stop();
    model.close();
  }
}

/** The final text of `request` run alone on a fresh scheduler: what the service must answer. */
async function directText(model: Model, request: GenerationRequest): Promise<string> {
  const s = new Scheduler(model, { contextSize: 256, maxTokens: 16 });
  for await (const ev of s.submit(request)) if (ev.type === "done") return ev.text;
  throw new Error("no done event");
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; !cond(); i++) {
    if (i > 6000) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const final = (replies: Reply[]) => replies.at(-1)!;

Deno.test({
  name: "MQTT 5: JSON and CBOR requests stream on the Response Topic with Correlation Data; answers match a direct run",
  ignore: !HAVE_MOSQUITTO,
  fn: () =>
    withService({ scheduler: { parallel: 2 } }, async ({ model, service, client, base }) => {
      assert.equal(service.protocolVersion, 5);
      const a = { id: "a", prompt: "Hello", max_tokens: 6, temperature: 0 };
      const b = { id: 7, messages: [{ role: "user", content: "Status?" }], max_tokens: 5, temperature: 0.8, seed: 3 };
      const c = { prompt: "Quiet", max_tokens: 4, temperature: 0, stream: false };
      const [ta, tb, tc] = await Promise.all([
        client.send(`${base}/request`, a, { encoding: "json", correlation: "corr-a" }),
        client.send(`${base}/request`, b, { encoding: "cbor", correlation: "corr-b" }),
        client.send(`${base}/request`, c, { encoding: "json" }),
      ]);
      const [ra, rb, rc] = await Promise.all([client.replies(ta), client.replies(tb), client.replies(tc)]);
      for (const r of [ra, rb, rc]) assert.deepEqual(checkStream(r), []);
      assert.equal(final(ra).event, "done");
      assert.equal(final(ra).id, "a");
      assert.equal(final(rb).id, 7);
      assert.equal(final(rc).id, undefined);
      // Replies use the request's encoding and echo its correlation data.
      assert.ok(ra.every((r) => r._encoding === "json" && r._properties?.contentType === "application/json"));
      assert.ok(rb.every((r) => r._encoding === "cbor" && r._properties?.contentType === "application/cbor"));
      assert.equal(new TextDecoder().decode(final(ra)._properties!.correlationData as Uint8Array), "corr-a");
      assert.equal(new TextDecoder().decode(final(rb)._properties!.correlationData as Uint8Array), "corr-b");
      // stream:false sends only the final reply.
      assert.equal(rc.length, 1);
      // Same text as the scheduler gives directly (so batching and transport changed nothing).
      assert.equal(
        final(ra).text,
        await directText(model, { prompt: "Hello", maxTokens: 6, sampling: { temperature: 0 } }),
      );
      assert.equal(
        final(rb).text,
        await directText(model, {
          messages: [{ role: "user", content: "Status?" }],
          maxTokens: 5,
          sampling: { temperature: 0.8, seed: 3 },
        }),
      );
      const usage = final(ra).usage as { prompt_tokens: number; completion_tokens: number };
      assert.ok(usage.prompt_tokens > 0 && usage.completion_tokens >= 1 && usage.completion_tokens <= 6);
      assert.ok(["stop", "length"].includes(final(ra).finish_reason as string));
      assert.ok(typeof (final(ra).timings as Record<string, number>).predicted_per_second === "number");
      assert.equal(service.stats.completed, 3);
    }),
});

Deno.test({
  name:
    "bad requests each get an error reply naming the problem; a request with no reply address is dropped; the node keeps serving",
  ignore: !HAVE_MOSQUITTO,
  fn: () =>
    withService(
      { scheduler: { contextSize: 128 }, service: { maxPayload: 4096 } },
      async ({ service, client, base }) => {
        const topic = `${base}/request`;
        const te = new TextEncoder();
        const cases: [string, unknown, Parameters<TestClient["send"]>[2], string, RegExp][] = [
          ["malformed JSON", te.encode("{not json"), {}, "BAD_JSON", /not valid JSON/],
          ["malformed CBOR", new Uint8Array([0xa1, 0x63, 0x61]), { encoding: "cbor" }, "BAD_CBOR", /not valid CBOR/],
          ["unknown field", { id: 1, prompt: "x", colour: "red" }, {}, "BAD_REQUEST", /unknown field: colour/],
          [
            "wrong type",
            { id: 2, prompt: "x", max_tokens: "ten" },
            {},
            "BAD_REQUEST",
            /max_tokens must be a positive integer/,
          ],
          ["missing prompt", { id: 3, temperature: 0.5 }, { encoding: "cbor" }, "BAD_REQUEST", /no prompt/],
          ["over-long prompt", { id: 4, prompt: "word ".repeat(200) }, {}, "PROMPT_TOO_LONG", /context holds 128/],
          ["huge payload", { id: 5, prompt: "y".repeat(10_000) }, {}, "TOO_LARGE", /exceeds the limit of 4096 bytes/],
          [
            "unsupported content type",
            { prompt: "x" },
            { contentType: "text/plain" },
            "UNSUPPORTED_CONTENT_TYPE",
            /text\/plain/,
          ],
          ["not an object", [1, 2], {}, "BAD_REQUEST", /must be an object/],
        ];
        const topics = await Promise.all(cases.map(([, body, o]) => client.send(topic, body, o)));
        const replies = await Promise.all(topics.map((t) => client.replies(t)));
        for (const [i, [what, , o, code, message]] of cases.entries()) {
          const r = replies[i];
          assert.equal(r.length, 1, what);
          assert.equal(r[0].event, "error", what);
          assert.equal(r[0].finish_reason, "error", what);
          const err = r[0].error as { code: string; message: string };
          assert.equal(err.code, code, `${what}: ${err.message}`);
          assert.match(err.message, message, what);
          assert.equal(r[0]._encoding, o?.encoding ?? "json", `${what}: reply in the request's encoding`);
        }
        // The id is echoed even when the rest of the request is bad.
        assert.equal(replies[2][0].id, 1);
        // A payload far past the limit (dropped by the broker or by us) crashes nothing.
        await client.send(topic, { prompt: "z".repeat(200_000) }, {});
        // No Response Topic and no reply_to: logged, counted, dropped.
        await client.send(topic, { prompt: "x" }, { responseTopic: false });
        await until(() => service.stats.droppedNoReplyTo === 1, "the drop to be counted");
        // Still serving.
        const ok = await client.replies(await client.send(topic, { id: "ok", prompt: "Hi", max_tokens: 3 }));
        assert.equal(final(ok).event, "done");
        assert.deepEqual(checkStream(ok), []);
      },
    ),
});

Deno.test({
  name:
    "past the queue limit a request gets BUSY; a cancel by id or correlation data ends a running request with 'cancelled'",
  ignore: !HAVE_MOSQUITTO,
  fn: () =>
    withService({ scheduler: { parallel: 1, maxQueue: 1, contextSize: 2048 } }, async ({ service, client, base }) => {
      const topic = `${base}/request`;
      // A long request occupies the only slot...
      const long = await client.send(topic, { id: "long", prompt: "Go", max_tokens: 1800, temperature: 0 }, {
        correlation: "L",
      });
      await client.firstReplies(long, 1);
      // ...the next waits in the queue, the one after is refused.
      const queued = await client.send(topic, { id: "queued", prompt: "Hi", max_tokens: 2 });
      const refused = await client.send(topic, { id: "refused", prompt: "Hi", max_tokens: 2 });
      const busy = await client.replies(refused);
      assert.equal(final(busy).event, "error");
      assert.equal((final(busy).error as { code: string }).code, "BUSY");
      assert.match((final(busy).error as { message: string }).message, /queue limit 1/);
      // Cancel the long one by its correlation data (MQTT 5 property only, empty payload).
      await client.client.publishAsync(`${base}/cancel`, "", {
        qos: 1,
        properties: { correlationData: new TextEncoder().encode("L") as never, responseTopic: long },
      });
      const longReplies = await client.replies(long);
      assert.equal(final(longReplies).finish_reason, "cancelled");
      assert.deepEqual(checkStream(longReplies), []);
      assert.ok((final(longReplies).usage as { completion_tokens: number }).completion_tokens < 1800);
      // The queued one then runs to completion.
      assert.equal(final(await client.replies(queued)).event, "done");
      // A cancel by id (JSON payload).
      const second = await client.send(topic, { id: "second", prompt: "Go", max_tokens: 1800, temperature: 0 });
      await client.firstReplies(second, 1);
      await client.client.publishAsync(`${base}/cancel`, JSON.stringify({ id: "second", reply_to: second }), {
        qos: 1,
      });
      assert.equal(final(await client.replies(second)).finish_reason, "cancelled");
      assert.equal(service.stats.busy, 1);
      assert.equal(service.stats.cancelled, 2);
    }),
});

Deno.test({
  name: "a request whose message expiry passes while it waits for a slot is dropped with an EXPIRED reply",
  ignore: !HAVE_MOSQUITTO,
  fn: () =>
    withService({ scheduler: { parallel: 1, contextSize: 2048 } }, async ({ service, client, base }) => {
      const topic = `${base}/request`;
      const long = await client.send(topic, { id: "long", prompt: "Go", max_tokens: 1800, temperature: 0 });
      await client.firstReplies(long, 1);
      const expiring = await client.send(topic, { id: "soon", prompt: "Hi", max_tokens: 2 }, { expiry: 1 });
      const r = await client.replies(expiring);
      await client.client.publishAsync(`${base}/cancel`, JSON.stringify({ id: "long", reply_to: long }), { qos: 1 });
      await client.replies(long);
      assert.equal(r.length, 1);
      assert.equal(final(r).id, "soon");
      assert.equal((final(r).error as { code: string }).code, "EXPIRED");
      assert.equal(service.stats.expired, 1);
    }),
});

Deno.test("MQTT 3.1.1 broker (aedes): falls back from MQTT 5; reply_to and id ride in the payload; presence online then offline", async () => {
  await withService({ broker: "aedes", clientVersion: 4 }, async ({ service, client, base }) => {
    assert.equal(service.protocolVersion, 4);
    await client.watch(`${base}/status`);
    const online = await client.waitFor(`${base}/status`, (s) => s.state === "online");
    assert.equal((online.capabilities as Record<string, unknown>).mqtt_version, "3.1.1");
    assert.equal((online.model as { shape: { layers: number } }).shape.layers, 2);
    assert.equal((online.limits as { parallel: number }).parallel, 1);
    const topics = await Promise.all([
      client.send(`${base}/request`, { id: "j", prompt: "Hello", max_tokens: 4 }, { replyToInPayload: true }),
      client.send(`${base}/request`, { id: "c", prompt: "Hello", max_tokens: 4 }, {
        replyToInPayload: true,
        encoding: "cbor",
      }),
      client.send(`${base}/request`, { id: "bad", prompt: "x", reply_to: 5 } as unknown, {}),
    ]);
    const [j, c] = await Promise.all(topics.slice(0, 2).map((t) => client.replies(t)));
    assert.deepEqual(checkStream(j), []);
    assert.deepEqual(checkStream(c), []);
    assert.ok(j.every((r) => r.id === "j" && r._encoding === "json"));
    assert.ok(c.every((r) => r.id === "c" && r._encoding === "cbor"));
    assert.equal(final(j).text, final(c).text); // same request, same default seed
    // reply_to of the wrong type: no usable address, so dropped and counted.
    await until(() => service.stats.droppedNoReplyTo === 1, "the bad reply_to to be dropped");
    await service.stop(1000);
    await client.waitFor(`${base}/status`, (s) => s.state === "offline" && s.reason === "shutdown");
  });
});

Deno.test({
  name: "broker killed and restarted: the node reconnects, resubscribes, says online again and serves",
  ignore: !HAVE_MOSQUITTO,
  fn: () =>
    withService({}, async ({ service, client, broker, base }) => {
      await broker.stop();
      await until(() => !service.connected, "the node to notice");
      await broker.start();
      await until(() => service.connected, "the node to reconnect");
      // The retained status is gone with the broker; the node publishes it again after subscribing.
      await client.watch(`${base}/status`);
      await client.waitFor(`${base}/status`, (s) => s.state === "online");
      const r = await client.replies(
        await client.send(`${base}/request`, { id: "after", prompt: "Hi", max_tokens: 3 }),
      );
      assert.equal(final(r).event, "done");
    }),
});

Deno.test({
  name:
    "link cut with a request in flight: the will says offline, the request finishes, its final reply arrives after the reconnection",
  ignore: !HAVE_MOSQUITTO,
  fn: () =>
    withService(
      { proxy: true, scheduler: { contextSize: 2048 } },
      async ({ service, scheduler, client, broker: link, base }) => {
        await client.watch(`${base}/status`);
        await client.waitFor(`${base}/status`, (s) => s.state === "online");
        const t = await client.send(`${base}/request`, {
          id: "inflight",
          prompt: "Go",
          max_tokens: 600,
          temperature: 0,
        });
        await client.firstReplies(t, 1);
        await link.stop();
        await client.waitFor(`${base}/status`, (s) => s.state === "offline" && s.reason === "connection lost");
        await until(() => scheduler.activeCount === 0, "the request to finish offline");
        assert.equal(service.connected, false);
        await link.start();
        const r = await client.replies(t);
        const f = final(r);
        assert.equal(f.event, "done");
        assert.equal(f.finish_reason, "length");
        assert.equal((f.usage as { completion_tokens: number }).completion_tokens, 600);
        assert.ok(service.stats.chunksDroppedOffline > 0);
        // QoS 1 is at-least-once: chunks unacknowledged at the cut come again after the reconnection.
        // Told apart by seq, what arrived is in order, with a gap where the link was down.
        const seqs = [...new Set(r.map((x) => x.seq))];
        assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
        assert.ok(seqs.length < 601);
        assert.equal(f.seq, 600);
      },
    ),
});
