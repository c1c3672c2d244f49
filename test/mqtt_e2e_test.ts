/**
 * End-to-end: `bonsai serve` in one process, the test client (test/mqtt_client.ts) in another,
 * a real broker between them (mosquitto for MQTT 5, aedes in this process for 3.1.1). The
 * client checks every streamed reply; SIGTERM then stops the node, which says offline.
 */
import assert from "node:assert/strict";
import { tinyModel } from "./fixtures.ts";
import { mosquittoPath, startAedes, startMosquitto, type TestBroker } from "./mqtt_brokers.ts";
import { TestClient } from "./mqtt_client.ts";

const CLI = new URL("../cli/main.ts", import.meta.url).pathname;
const CLIENT = new URL("./mqtt_client.ts", import.meta.url).pathname;

function deno(args: string[], stdout: "piped" | "null" = "piped") {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--no-check", ...args],
    stdin: "null",
    stdout,
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
}

interface Summary {
  status: { model: string; mqtt: string };
  finals: {
    id: string;
    event: string;
    finish_reason: string;
    text: string;
    encoding: string;
    correlation: string | null;
    tokens: number;
    error?: string;
  }[];
  problems: string[];
}

async function endToEnd(broker: TestBroker, v3: boolean): Promise<void> {
  const node = `e2e-${crypto.randomUUID().slice(0, 6)}`;
  const serve = deno([
    CLI,
    "serve",
    "--model",
    await tinyModel(),
    "--mqtt",
    broker.url,
    "--node",
    node,
    "--ctx",
    "256",
    "--parallel",
    "2",
    "-n",
    "16",
  ], "null");
  const watcher = await TestClient.connect(broker.url, v3 ? 4 : 5);
  try {
    const out = await deno([CLIENT, "--url", broker.url, "--node", node, ...(v3 ? ["--v3"] : [])]).output();
    const stdout = new TextDecoder().decode(out.stdout);
    assert.equal(out.code, 0, `client failed: ${stdout}\n${new TextDecoder().decode(out.stderr)}`);
    const summary: Summary = JSON.parse(stdout.trim().split("\n").at(-1)!);
    assert.deepEqual(summary.problems, []);
    assert.equal(summary.status.mqtt, v3 ? "3.1.1" : "5");
    const byId = Object.fromEntries(summary.finals.map((f) => [f.id, f]));
    assert.equal(byId.j1.event, "done");
    assert.ok(byId.j1.tokens >= 1);
    assert.equal(byId.j1.encoding, "json");
    assert.equal(byId.c1.encoding, "cbor");
    assert.equal(byId.c1.text, byId.j1.text, "same request in JSON and CBOR, same answer");
    assert.equal(byId.m1.event, "done");
    assert.equal(byId.n1.tokens, 0, "stream:false sends the final reply only");
    assert.equal(byId.bad.event, "error");
    assert.equal(byId.bad.error, "BAD_REQUEST");
    if (!v3) assert.equal(byId.j1.correlation, "corr-0");

    const status = `bonsai/${node}/status`;
    await watcher.watch(status);
    await watcher.waitFor(status, (s) => s.state === "online");
    serve.kill("SIGTERM");
    let timer: ReturnType<typeof setTimeout> | undefined;
    const exited = await Promise.race([
      serve.status,
      new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), 60_000))),
    ]);
    clearTimeout(timer);
    assert.ok(exited, "serve did not exit within 60 s of SIGTERM");
    assert.equal(exited.code, 0);
    await watcher.waitFor(status, (s) => s.state === "offline" && s.reason === "shutdown");
  } finally {
    try {
      serve.kill("SIGKILL");
    } catch {
      // exited
    }
    await serve.stderr.cancel();
    await serve.status;
    await watcher.close();
  }
}

Deno.test({
  name: "e2e MQTT 5 (mosquitto): a client process gets streamed JSON and CBOR replies; SIGTERM publishes offline",
  ignore: mosquittoPath() === undefined,
  fn: async () => {
    const broker = await startMosquitto();
    try {
      await endToEnd(broker, false);
    } finally {
      await broker.stop();
    }
  },
});

Deno.test("e2e MQTT 3.1.1 (aedes): reply_to and id in the payload, same checks", async () => {
  const broker = await startAedes();
  try {
    await endToEnd(broker, true);
  } finally {
    await broker.stop();
  }
});
