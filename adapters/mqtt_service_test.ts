/**
 * The MQTT service against real brokers (mosquitto for MQTT 5, aedes for 3.1.1), on the tiny
 * synthetic model: replies, encodings, bad input, busy, cancel, expiry, presence, and a broker
 * or link that drops and comes back.
 */
import assert from "node:assert/strict";
import { Model } from "../runtime/model.ts";
import { Scheduler, type SchedulerOptions } from "../runtime/scheduler.ts";
import type { GenerationRequest } from "../runtime/generate.ts";
import { tinyModel } from "../test/fixtures.ts";
import { mosquittoPath, startAedes, startMosquitto, startProxy, type TestBroker } from "../test/mqtt_brokers.ts";
import { checkStream, type Reply, TestClient } from "../test/mqtt_client.ts";
import { MqttService, type MqttServiceOptions } from "./mqtt_service.ts";

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
  opts: { broker?: "mosquitto" | "aedes"; scheduler?: SchedulerOptions; service?: Partial<MqttServiceOptions>; clientVersion?: 4 | 5; proxy?: boolean },
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
    if (i > 1000) throw new Error(`gave up waiting for ${what}`);
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
      assert.equal(final(ra).text, await directText(model, { prompt: "Hello", maxTokens: 6, sampling: { temperature: 0 } }));
      assert.equal(
        final(rb).text,
        await directText(model, { messages: [{ role: "user", content: "Status?" }], maxTokens: 5, sampling: { temperature: 0.8, seed: 3 } }),
      );
      const usage = final(ra).usage as { prompt_tokens: number; completion_tokens: number };
      assert.ok(usage.prompt_tokens > 0 && usage.completion_tokens >= 1 && usage.completion_tokens <= 6);
      assert.ok(["stop", "length"].includes(final(ra).finish_reason as string));
      assert.ok(typeof (final(ra).timings as Record<string, number>).predicted_per_second === "number");
      assert.equal(service.stats.completed, 3);
    }),
});
