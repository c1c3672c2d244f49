/**
 * The fleet-safety behaviour of the MQTT service (issue 11), one test per fixed problem, against
 * real mosquitto on 127.0.0.1 (ports picked at run time) and the tiny synthetic model:
 * retained requests, the reply namespace, ids scoped to their sender, two nodes with one name,
 * a refused subscription, persistent sessions, keepalive and bounded chunks, QoS 0 finals and a
 * stable `since`, then metrics, share groups, draining and server-side defaults.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { Model } from "../../runtime/model.ts";
import { Scheduler, type SchedulerOptions } from "../../runtime/scheduler.ts";
import { tinyModel } from "../../test/fixtures.ts";
import { mosquittoPath, startAedes, startMosquitto, startProxy, type TestBroker } from "../../test/mqtt_brokers.ts";
import { checkStream, type Reply, TestClient } from "../../test/mqtt_client.ts";
import { MqttFatalError, MqttService, type MqttServiceOptions } from "./service.ts";
import type { IncomingMessage } from "./connection.ts";

const ignore = mosquittoPath() === undefined;
const final = (replies: Reply[]) => replies.at(-1)!;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(
  cond: () => boolean,
  what: string,
  ms = 30_000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await sleep(10);
  }
}

/** A model, a broker and helpers to start nodes and clients; everything is closed at the end. */
async function withBroker(
  body: (h: {
    model: Model;
    broker: TestBroker;
    node: (
      opts?: Partial<MqttServiceOptions> & {
        scheduler?: SchedulerOptions;
        url?: string;
      },
    ) => Promise<MqttService>;
    client: (version?: 4 | 5) => Promise<TestClient>;
    logs: string[];
  }) => Promise<void>,
  brokerOpts: { acl?: string } = {},
): Promise<void> {
  const broker = await startMosquitto(brokerOpts);
  const model = await Model.load(await tinyModel(), { threads: 1 });
  const services: MqttService[] = [];
  const clients: TestClient[] = [];
  const logs: string[] = [];
  const name = `n${crypto.randomUUID().slice(0, 6)}`;
  try {
    await body({
      model,
      broker,
      logs,
      node: async (opts = {}) => {
        const scheduler = new Scheduler(model, {
          contextSize: 512,
          maxTokens: 16,
          ...opts.scheduler,
        });
        const s = new MqttService(scheduler, {
          url: opts.url ?? broker.url,
          node: name,
          backoffMinMs: 50,
          backoffMaxMs: 400,
          metricsInterval: 0,
          probeMs: 0,
          log: (l) => logs.push(l),
          ...opts,
        });
        services.push(s);
        await s.start();
        return s;
      },
      client: async (version = 5) => {
        const c = await TestClient.connect(broker.url, version);
        clients.push(c);
        return c;
      },
    });
  } finally {
    for (const s of services) await s.stop(500);
    for (const c of clients) await c.close();
    await broker.stop();
    model.close();
  }
}

/** Messages on `topic` seen by a fresh raw subscriber, after `ms`. */
async function collect(
  c: TestClient,
  topic: string,
  ms: number,
): Promise<number> {
  let n = 0;
  c.client.on("message", (t) => {
    if (t.startsWith(topic.replace("#", ""))) n++;
  });
  await c.client.subscribeAsync(topic, { qos: 1 });
  await sleep(ms);
  return n;
}

Deno.test({
  name: "2. retained requests are never run: MQTT 5 asks for none; a 3.1.1 node drops those flagged retained (counted)",
  ignore,
  fn: () =>
    withBroker(async ({ node, client }) => {
      const c = await client();
      const probe = await node({ protocolVersion: 5 });
      const base = `bonsai/${probe.options.node}`;
      await probe.stop(500);
      // "open the gripper", left retained on the request topic
      const t = c.replyTopic();
      await c.client.publishAsync(
        `${base}/request`,
        JSON.stringify({ id: "grip", prompt: "open", max_tokens: 2 }),
        {
          qos: 1,
          retain: true,
          properties: { responseTopic: t },
        },
      );
      const v5 = await node({ protocolVersion: 5, clientId: "v5" });
      const v3 = await node({
        protocolVersion: 4,
        clientId: "v3",
        node: `${probe.options.node}`,
      });
      await until(
        () => v3.stats.retainedIgnored === 1,
        "the 3.1.1 node to drop the retained request",
      );
      await sleep(300);
      assert.equal(
        v5.stats.received + v3.stats.received,
        0,
        "the retained request never ran",
      );
      assert.equal(
        v5.stats.retainedIgnored,
        0,
        "MQTT 5: the broker did not even send it (retain handling 2)",
      );
      assert.equal(v3.metrics.requests.refused, 1);
    }),
});

Deno.test({
  name:
    "3. replies go only under the allowed prefixes, never to actuator topics or the node's own topics (refused, counted)",
  ignore,
  fn: () =>
    withBroker(async ({ node, client }) => {
      const s = await node();
      const base = `bonsai/${s.options.node}`;
      const c = await client();
      const spy = await client();
      const seen = collect(spy, "plant/#", 800);
      const own = collect(await client(), `${base}/status`, 800);
      await c.send(`${base}/request`, { id: 1, prompt: "x", max_tokens: 2 }, {
        responseTopic: "plant/gripper/open",
      });
      await c.send(`${base}/request`, {
        id: 2,
        prompt: "x",
        max_tokens: 2,
        reply_to: "plant/valve",
      }, { responseTopic: false });
      await c.send(`${base}/request`, { id: 3, prompt: "x", max_tokens: 2 }, {
        responseTopic: `${base}/status`,
      });
      await until(() => s.stats.replyRefused === 3, "three refusals");
      assert.equal(await seen, 0, "nothing published on plant/#");
      assert.equal(
        await own,
        1,
        "the status topic holds only the node's own retained status",
      );
      assert.equal(s.stats.received, 3);
      assert.equal(s.metrics.requests.refused, 3);
      // Allowed: under the default reply namespace.
      const ok = await c.replies(
        await c.send(`${base}/request`, { id: 4, prompt: "x", max_tokens: 2 }),
      );
      assert.equal(final(ok).event, "done");
      // --reply-prefix widens it.
      const s2 = await node({ node: "other", replyPrefixes: ["robots/r1"] });
      const r = await client();
      await r.client.subscribeAsync("robots/r1/#", { qos: 1 });
      const got = new Promise<string>((resolve) => r.client.on("message", (t) => resolve(t)));
      await r.client.publishAsync(
        "bonsai/other/request",
        JSON.stringify({ prompt: "x", max_tokens: 1 }),
        {
          qos: 1,
          properties: { responseTopic: "robots/r1/answers" },
        },
      );
      assert.equal(await got, "robots/r1/answers");
      assert.equal(s2.stats.replyRefused, 0);
    }),
});

Deno.test({
  name:
    "4. ids are scoped to their sender: a cancel reaches only its own request; a duplicate in-flight id gets DUPLICATE_ID",
  ignore,
  fn: () =>
    withBroker(async ({ node, client }) => {
      const s = await node({ scheduler: { parallel: 2, contextSize: 2048 } });
      const base = `bonsai/${s.options.node}`;
      const [a, b] = [await client(), await client()];
      const long = { id: "x", prompt: "Go", max_tokens: 1500, temperature: 0 };
      const ta = await a.send(`${base}/request`, long);
      const tb = await b.send(`${base}/request`, long);
      await Promise.all([a.firstReplies(ta, 1), b.firstReplies(tb, 1)]);
      // Same id again from A while the first runs: refused.
      const dup = await a.replies(
        await a.send(`${base}/request`, long, { responseTopic: ta }).then(() => ta),
      );
      const dupError = dup.find((r) =>
        r.event === "error" &&
        (r.error as { code: string }).code === "DUPLICATE_ID"
      );
      assert.ok(dupError, "DUPLICATE_ID reply");
      assert.match(
        (dupError!.error as { message: string }).message,
        /id "x" from .* is still running/,
      );
      assert.equal(s.stats.duplicates, 1);
    }),
});

Deno.test({
  name: "4b. a cancel by id from another client does not touch this client's request",
  ignore,
  fn: () =>
    withBroker(async ({ node, client }) => {
      const s = await node({ scheduler: { parallel: 2, contextSize: 2048 } });
      const base = `bonsai/${s.options.node}`;
      const [a, b] = [await client(), await client()];
      const long = { id: "x", prompt: "Go", max_tokens: 300, temperature: 0 };
      const ta = await a.send(`${base}/request`, long);
      const tb = await b.send(`${base}/request`, { ...long, max_tokens: 1500 });
      await Promise.all([a.firstReplies(ta, 1), b.firstReplies(tb, 1)]);
      await b.client.publishAsync(
        `${base}/cancel`,
        JSON.stringify({ id: "x" }),
        { qos: 1, properties: { responseTopic: tb } },
      );
      assert.equal(final(await b.replies(tb)).finish_reason, "cancelled");
      const ra = await a.replies(ta);
      assert.equal(final(ra).event, "done");
      assert.equal(
        final(ra).finish_reason,
        "length",
        "A's request ran to its end",
      );
      // A cancel without a reply address cannot be scoped: ignored.
      await b.client.publishAsync(
        `${base}/cancel`,
        JSON.stringify({ id: "x" }),
        { qos: 1 },
      );
      await until(() => s.stats.cancelUnscoped === 1, "the unscoped cancel");
    }),
});

Deno.test({
  name:
    "5. a second process with the same --node does not start (exit code 2); the running one keeps serving, no flapping",
  ignore,
  fn: () =>
    withBroker(async ({ node, client }) => {
      const a = await node({ probeMs: 500 });
      const base = `bonsai/${a.options.node}`;
      // Same client id (the default bonsai-NODE): it would take over a's session; the probe stops it first.
      await assert.rejects(
        () => node({ node: a.options.node, probeMs: 500 }),
        (e: unknown) => {
          assert.ok(e instanceof MqttFatalError);
          assert.equal(e.exitCode, 2);
          assert.match(e.message, /already serves node/);
          return true;
        },
      );
      await sleep(300);
      assert.ok(a.connected);
      assert.equal(a.connects, 1, "the running node was never kicked");
      const c = await client();
      assert.equal(
        final(
          await c.replies(
            await c.send(`${base}/request`, { prompt: "Hi", max_tokens: 2 }),
          ),
        ).event,
        "done",
      );
      // Two processes started with the probe off and different client ids: the live online
      // status of the second gives it away to the first.
      let fatal: MqttFatalError | undefined;
      const t1 = await node({
        node: "twin",
        clientId: "twin-1",
        probeMs: 0,
        onFatal: (e) => fatal = e,
      });
      await node({ node: "twin", clientId: "twin-2", probeMs: 0 });
      await until(() => fatal !== undefined, "the first twin to give up");
      assert.equal(fatal!.exitCode, 2);
      assert.match(fatal!.message, /announced itself as node 'twin'/);
      assert.equal(t1.fatal, fatal);
    }),
});

Deno.test("6. a refused subscription: start fails (exit code 1) naming the topic, and the node never says online", async () => {
  const broker = await startAedes({
    refuseSubscriptions: ["bonsai/locked/request"],
  });
  const model = await Model.load(await tinyModel(), { threads: 1 });
  const watcher = await TestClient.connect(broker.url, 4);
  try {
    await watcher.watch("bonsai/+/status");
    const s = new MqttService(new Scheduler(model, { contextSize: 256 }), {
      url: broker.url,
      node: "locked",
      metricsInterval: 0,
    });
    await assert.rejects(() => s.start(), (e: unknown) => {
      assert.ok(e instanceof MqttFatalError);
      assert.equal(e.exitCode, 1);
      assert.match(
        e.message,
        /refused the subscription to bonsai\/locked\/request/,
      );
      return true;
    });
    await sleep(300);
    assert.equal(
      watcher.seen.get("bonsai/+/status")?.length ?? 0,
      0,
      "no online status",
    );
  } finally {
    await watcher.close();
    await broker.stop();
    model.close();
  }
});

Deno.test({
  name:
    "7. persistent session: QoS 1 requests sent while the node is down are answered after it returns; a redelivery is not run twice",
  ignore,
  fn: () =>
    withBroker(async ({ node, client }) => {
      const first = await node({ sessionExpiry: 60 });
      const name = first.options.node;
      await first.stop(500);
      const c = await client();
      const topics = await Promise.all(
        [1, 2, 3].map((i) => c.send(`bonsai/${name}/request`, { id: i, prompt: "Hi", max_tokens: 2 })),
      );
      await sleep(200);
      const again = await node({ node: name, sessionExpiry: 60 });
      const replies = await Promise.all(topics.map((t) => c.replies(t)));
      for (const r of replies) assert.equal(final(r).event, "done");
      assert.equal(again.stats.received, 3);
      // A redelivery (DUP flag) of a request in flight or just answered is ignored.
      const t = await c.send(`bonsai/${name}/request`, {
        id: "once",
        prompt: "Go",
        max_tokens: 200,
      });
      await c.firstReplies(t, 1);
      const inject = (again as unknown as { onMessage(m: IncomingMessage): void }).onMessage
        .bind(again);
      const redelivery = (): IncomingMessage => ({
        topic: `bonsai/${name}/request`,
        payload: new TextEncoder().encode(
          JSON.stringify({ id: "once", prompt: "Go", max_tokens: 200 }),
        ),
        packet: {
          cmd: "publish",
          topic: `bonsai/${name}/request`,
          payload: Buffer.from(""),
          qos: 1,
          dup: true,
          retain: false,
          properties: { responseTopic: t },
        },
      });
      inject(redelivery());
      await c.replies(t);
      inject(redelivery());
      await until(
        () => again.stats.redelivered === 2,
        "both redeliveries to be ignored",
      );
      assert.equal(again.stats.completed, 4);
    }),
});

Deno.test({
  name:
    "8. --keepalive: a frozen broker is noticed within ~1.5 keepalives; chunks pile up to the backlog bound only, the final arrives",
  ignore,
  fn: () =>
    withBroker(async ({ node, client, broker }) => {
      const link = await startProxy(broker.port);
      try {
        const s = await node({
          url: link.url,
          keepalive: 1,
          maxChunkBacklog: 8,
          scheduler: { contextSize: 2048 },
        });
        const c = await client();
        const t = await c.send(`bonsai/${s.options.node}/request`, {
          id: "f",
          prompt: "Go",
          max_tokens: 1200,
          temperature: 0,
        });
        await c.firstReplies(t, 1);
        link.freeze();
        const frozeAt = Date.now();
        await until(
          () => !s.connected,
          "the node to notice the frozen broker",
          10_000,
        );
        const noticed = Date.now() - frozeAt;
        assert.ok(noticed < 4000, `noticed after ${noticed} ms`);
        link.thaw();
        const r = await c.replies(t);
        assert.equal(final(r).event, "done");
        assert.ok(
          s.stats.chunksDroppedOffline > 0,
          "chunks were dropped, not queued without bound",
        );
      } finally {
        await link.stop();
      }
    }),
});

Deno.test({
  name:
    "10. --qos 0: a final reply produced during an outage arrives after the reconnection; status 'since' survives reconnects",
  ignore,
  fn: () =>
    withBroker(async ({ node, client, broker }) => {
      const link = await startProxy(broker.port);
      try {
        const s = await node({
          url: link.url,
          qos: 0,
          scheduler: { contextSize: 2048 },
        });
        const c = await client();
        const status = `bonsai/${s.options.node}/status`;
        await c.watch(status);
        const online1 = await c.waitFor(status, (v) => v.state === "online");
        const t = await c.send(`bonsai/${s.options.node}/request`, {
          id: "q0",
          prompt: "Go",
          max_tokens: 400,
          temperature: 0,
        });
        await c.firstReplies(t, 1);
        await link.stop();
        await until(
          () => s.stats.completed === 1,
          "the request to finish offline",
        );
        await link.start();
        const r = await c.replies(t);
        assert.equal(final(r).event, "done");
        assert.equal(final(r).seq, 400);
        await until(() => s.connects === 2, "the reconnection");
        const online2 = await c.waitFor(status, (v) =>
          v.state === "online" && v !== online1 &&
          c.seen.get(status)!.length >= 3);
        assert.equal(online2.since, online1.since);
        assert.equal(online2.instance, online1.instance);
      } finally {
        await link.stop();
      }
    }),
});

Deno.test({
  name: "metrics: the retained metrics message counts outcomes, tokens, TTFT and carries RSS, load and thermal fields",
  ignore,
  fn: () =>
    withBroker(async ({ node, client }) => {
      const s = await node();
      const c = await client();
      const base = `bonsai/${s.options.node}`;
      await c.replies(
        await c.send(`${base}/request`, { prompt: "Hi", max_tokens: 4 }),
      );
      await c.replies(await c.send(`${base}/request`, { prompt: 42 }));
      await s.publishMetrics();
      await c.watch(`${base}/metrics`);
      const m = await c.waitFor(`${base}/metrics`, (v) => (v.requests as Record<string, number>).served === 1);
      assert.deepEqual(m.requests, {
        served: 1,
        failed: 1,
        busy: 0,
        expired: 0,
        cancelled: 0,
        refused: 0,
        rejected: 0,
      });
      assert.ok((m.tokens as number) >= 1);
      assert.ok((m.prompt_tokens as number) >= 1);
      assert.ok(typeof (m.ttft_ms as { p50: number }).p50 === "number");
      assert.equal((m.ttft_ms as { count: number }).count, 1);
      assert.equal(m.slots, 1);
      assert.equal(m.queue_depth, 0);
      assert.ok((m.memory as { rss_bytes: number }).rss_bytes > 1e6);
      assert.ok("max_celsius" in (m.thermal as object));
      assert.ok(typeof m.uptime_s === "number");
    }),
});

Deno.test({
  name: "share group: requests to the group topic are spread over its nodes, each answered once, replies name the node",
  ignore,
  fn: () =>
    withBroker(async ({ node, client }) => {
      const a = await node({ node: "ga", group: "arms" });
      const b = await node({ node: "gb", group: "arms" });
      const c = await client();
      const topics = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          c.send("bonsai/group/arms/request", {
            id: i,
            prompt: "Hi",
            max_tokens: 2,
          })),
      );
      const replies = await Promise.all(topics.map((t) => c.replies(t)));
      for (const r of replies) {
        assert.deepEqual(checkStream(r), []);
        assert.ok(["ga", "gb"].includes(final(r).node as string));
      }
      await sleep(200);
      assert.equal(
        a.stats.received + b.stats.received,
        8,
        "each request went to exactly one node",
      );
      assert.ok(
        a.stats.received > 0 && b.stats.received > 0,
        "both nodes served some",
      );
    }),
});

Deno.test({
  name:
    "share group: a busy node answers BUSY past its group queue instead of hoarding; drain 'finish' lets a running request end",
  ignore,
  fn: () =>
    withBroker(async ({ node, client }) => {
      const s = await node({
        group: "g",
        groupQueue: 1,
        scheduler: { contextSize: 2048 },
      });
      const c = await client();
      const long = await c.send("bonsai/group/g/request", {
        id: "long",
        prompt: "Go",
        max_tokens: 300,
      });
      await c.firstReplies(long, 1);
      const waiting = await c.send("bonsai/group/g/request", {
        id: "w",
        prompt: "Hi",
        max_tokens: 2,
      });
      await until(() => s.inFlight === 2, "the second to queue");
      const refused = await c.replies(
        await c.send("bonsai/group/g/request", {
          id: "r",
          prompt: "Hi",
          max_tokens: 2,
        }),
      );
      assert.equal((final(refused).error as { code: string }).code, "BUSY");
      await s.stop({ drain: "finish", drainTimeoutMs: 30_000 });
      assert.equal(final(await c.replies(long)).finish_reason, "length");
      assert.equal(final(await c.replies(waiting)).event, "done");
    }),
});

Deno.test({
  name:
    "--config defaults: a bare prompt gets the default system prompt and max_tokens; a request over the limit is refused",
  ignore,
  fn: () =>
    withBroker(async ({ node, client }) => {
      const s = await node({
        requestDefaults: { max_tokens: 3, temperature: 0 },
        maxTokensLimit: 5,
      });
      const c = await client();
      const base = `bonsai/${s.options.node}`;
      const r = await c.replies(
        await c.send(`${base}/request`, { prompt: "Hi" }),
      );
      assert.ok(
        (final(r).usage as { completion_tokens: number }).completion_tokens <=
          3,
      );
      const over = await c.replies(
        await c.send(`${base}/request`, { prompt: "Hi", max_tokens: 50 }),
      );
      assert.match(
        (final(over).error as { message: string }).message,
        /exceeds this node's limit of 5/,
      );
    }),
});
