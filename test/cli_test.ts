/**
 * End-to-end: the `bonsai` CLI as a user runs it, in a child process, on a synthetic model.
 */
import assert from "node:assert/strict";
import { tinyModel } from "./fixtures.ts";

const CLI = new URL("../cli/main.ts", import.meta.url).pathname;

function bonsai(args: string[], stdin: "piped" | "null" = "piped") {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", CLI, ...args],
    stdin,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
}

async function runWithInput(args: string[], input: string) {
  const child = bonsai(args);
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(input));
  await w.close();
  const out = await child.output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

type Event = {
  event: string;
  id?: unknown;
  line?: number;
  text?: string;
  finish_reason?: string;
  error?: { code: string; message: string };
  usage?: { prompt_tokens: number; completion_tokens: number };
};

Deno.test("json mode: good, bad and over-long requests each get their own answer", async () => {
  const model = await tinyModel();
  const lines = [
    JSON.stringify({ id: 1, prompt: "Hello", max_tokens: 3, temperature: 0 }),
    "{not json",
    JSON.stringify({ id: 2, prompt: "x", colour: "red" }),
    JSON.stringify({ id: 3, prompt: "word ".repeat(200) }),
    JSON.stringify({ id: 4, prompt: "Hello", max_tokens: 3, temperature: 0, stream: false }),
  ];
  const r = await runWithInput(["run", "--model", model, "--json", "--ctx", "128"], lines.join("\n") + "\n");
  assert.equal(r.code, 0, r.stderr);
  const events: Event[] = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
  const finals = events.filter((e) => e.event !== "token");
  const final = (key: "id" | "line", value: number) => {
    const found = finals.filter((e) => (e as Record<string, unknown>)[key] === value);
    assert.equal(found.length, 1, `one final event for ${key} ${value}`);
    return found[0];
  };
  assert.equal(finals.length, 5);
  assert.equal(final("id", 1).event, "done");
  assert.equal(final("line", 2).error?.code, "BAD_JSON");
  assert.match(final("line", 3).error!.message, /unknown field: colour/);
  assert.equal(final("id", 3).error?.code, "PROMPT_TOO_LONG");
  assert.match(final("id", 3).error!.message, /context holds 128 \(raise --ctx or shorten the prompt\)$/);
  assert.equal(final("id", 4).event, "done");
  // Streaming: the token texts of request 1 add up to its final text; request 4 streamed nothing.
  const tokens1 = events.filter((e) => e.event === "token" && e.id === 1).map((e) => e.text).join("");
  assert.equal(tokens1, final("id", 1).text);
  assert.equal(events.filter((e) => e.event === "token" && e.id === 4).length, 0);
  assert.ok(final("id", 1).usage!.completion_tokens >= 1 && final("id", 1).usage!.completion_tokens <= 3);
  // Same request, same settings: same answer.
  assert.equal(final("id", 1).text, final("id", 4).text);
});

Deno.test("text mode: one answer line per prompt line, then a clean exit at end of input", async () => {
  const model = await tinyModel();
  const r = await runWithInput(["run", "-m", model, "-n", "4", "--temp", "0", "--quiet"], "Hi there\n\nWhat is 2+2?\n");
  assert.equal(r.code, 0, r.stderr);
  const answers = r.stdout.split("\n");
  assert.equal(answers.length, 3, JSON.stringify(r.stdout)); // two answers, each ended by "\n"
  assert.equal(answers[2], "");
});

Deno.test("Ctrl-C cancels the answer in progress and exits with 130", async () => {
  const model = await tinyModel();
  const child = bonsai(["run", "-m", model, "--json", "--ctx", "2048"]);
  const w = child.stdin.getWriter();
  await w.write(
    new TextEncoder().encode(JSON.stringify({ id: "long", prompt: "Go on", max_tokens: 1500, temperature: 0 }) + "\n"),
  );
  // Wait for the first streamed token, then interrupt.
  const reader = child.stdout.getReader();
  let seen = "";
  while (!seen.includes('"event":"token"')) {
    const { value, done } = await reader.read();
    if (done) break;
    seen += new TextDecoder().decode(value);
  }
  child.kill("SIGINT");
  while (true) {
    const { value, done } = await reader.read();
    if (done) break;
    seen += new TextDecoder().decode(value);
  }
  const status = await child.status;
  await child.stderr.cancel();
  await w.close().catch(() => {});
  const last: Event = JSON.parse(seen.trim().split("\n").at(-1)!);
  assert.equal(last.event, "done");
  assert.equal(last.finish_reason, "cancelled");
  assert.equal(status.code, 130);
});

Deno.test("usage errors exit 2 and name the flag; a bad model file exits 1 and names the problem", async () => {
  const r1 = await runWithInput(["run"], "");
  assert.equal(r1.code, 2);
  assert.match(r1.stderr, /--model FILE is required/);
  const r2 = await runWithInput(["run", "-m", "x.gguf", "--temp", "hot"], "");
  assert.equal(r2.code, 2);
  assert.match(r2.stderr, /--temp expects a number/);
  const bogus = await Deno.makeTempFile({ suffix: ".gguf" });
  await Deno.writeTextFile(bogus, "this is not a model file at all");
  const r3 = await runWithInput(["run", "-m", bogus], "");
  assert.equal(r3.code, 1);
  assert.match(r3.stderr, /magic/i);
  await Deno.remove(bogus);
});

Deno.test("--max-memory refuses a plan that does not fit, naming what it needs", async () => {
  const model = await tinyModel();
  const r = await runWithInput(["run", "-m", model, "--ctx", "2048", "--max-memory", "100M", "-q"], "hi\n");
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    /model needs \d+ MiB \(weights \d+ MiB, KV cache .*\) for ctx 2048 x 1 but the memory budget is 100 MiB; even a 256-token context does not fit/,
  );
  const ok = await runWithInput(["run", "-m", model, "--ctx", "256", "--max-memory", "1G", "-q", "-n", "2"], "hi\n");
  assert.equal(ok.code, 0, ok.stderr);
});

Deno.test("json mode: concurrent requests interleave by id, and a cancel line stops one", async () => {
  const model = await tinyModel();
  const child = bonsai(["run", "-m", model, "--json", "--parallel", "2", "--ctx", "1024"]);
  const w = child.stdin.getWriter();
  const send = (obj: unknown) => w.write(new TextEncoder().encode(JSON.stringify(obj) + "\n"));
  await send({ id: "long", prompt: "Go on", max_tokens: 900, temperature: 0 });
  await send({ id: "short", prompt: "Hi", max_tokens: 4, temperature: 0 });
  const reader = child.stdout.getReader();
  let seen = "";
  const finals = () =>
    seen.trim().split("\n").filter((l) => l.includes('"event":"done"') || l.includes('"event":"error"'));
  while (!finals().some((l) => l.includes('"id":"short"'))) {
    const { value, done } = await reader.read();
    if (done) break;
    seen += new TextDecoder().decode(value);
  }
  await send({ cancel: "long" });
  await send({ cancel: "nobody" });
  await w.close();
  while (true) {
    const { value, done } = await reader.read();
    if (done) break;
    seen += new TextDecoder().decode(value);
  }
  await child.stderr.cancel();
  assert.equal((await child.status).code, 0);
  const events: Event[] = finals().map((l) => JSON.parse(l));
  const byId = (id: string) => events.find((e) => e.id === id)!;
  assert.equal(byId("short").event, "done");
  assert.equal(byId("long").finish_reason, "cancelled");
  assert.ok(byId("long").usage!.completion_tokens < 900);
  assert.equal(byId("nobody").error?.code, "UNKNOWN_ID");
});

Deno.test("every command has --help (exit 0); an unknown command is a usage error", async () => {
  for (const command of ["run", "serve", "synth", "info", "bench"]) {
    const r = await runWithInput([command, "--help"], "");
    assert.equal(r.code, 0, `${command}: ${r.stderr}`);
    assert.match(r.stdout, new RegExp(`^Usage: bonsai ${command} `), command);
  }
  const r = await runWithInput(["fly"], "");
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown command 'fly'/);
});

Deno.test("serve: broker flags are checked before the model is read (exit 2), and the memory plan applies", async () => {
  // The model path does not exist: a bad URL or node name must be reported first, as a usage error.
  const missing = "/nonexistent/model.gguf";
  const badUrl = await runWithInput(["serve", "-m", missing, "--mqtt", "http://broker", "--node", "a"], "");
  assert.equal(badUrl.code, 2, badUrl.stderr);
  assert.match(badUrl.stderr, /MQTT broker URL 'http:\/\/broker' has scheme 'http:'/);
  const badNode = await runWithInput(["serve", "-m", missing, "--mqtt", "mqtt://127.0.0.1:1", "--node", "a/b"], "");
  assert.equal(badNode.code, 2, badNode.stderr);
  assert.match(badNode.stderr, /node name 'a\/b' must be a single topic level/);
  const badKeepalive = await runWithInput([
    "serve",
    "-m",
    missing,
    "--mqtt",
    "mqtt://127.0.0.1:1",
    "--node",
    "a",
    "--keepalive",
    "0",
  ], "");
  assert.equal(badKeepalive.code, 2);
  assert.match(badKeepalive.stderr, /--keepalive must be >= 1/);
  // serve shares run's setup path: the device profile and the memory budget refuse a plan that does not fit.
  const model = await tinyModel();
  const r = await runWithInput([
    "serve",
    "-m",
    model,
    "--mqtt",
    "mqtt://127.0.0.1:1",
    "--node",
    "a",
    "--device",
    "pi4",
    "--max-memory",
    "100M",
  ], "");
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /device pi4 \(--device\): \d+ threads, ctx \d+ x 1, memory budget 100 MiB/);
  assert.match(r.stderr, /memory budget is 100 MiB; even a 256-token context does not fit/);
});

Deno.test("the model file truncated and rewritten while running (a careless update) does not crash the node", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/model.gguf`;
  await Deno.copyFile(await tinyModel(), path);
  const child = bonsai(["run", "-m", path, "--json", "-q"]);
  const w = child.stdin.getWriter();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  const nextDone = async () => {
    while (true) {
      const nl = buffered.indexOf("\n");
      if (nl >= 0) {
        const ev = JSON.parse(buffered.slice(0, nl)) as Event;
        buffered = buffered.slice(nl + 1);
        if (ev.event !== "token") return ev;
        continue;
      }
      const { value, done } = await lines.read();
      if (done) throw new Error("output ended before a final event");
      buffered += value;
    }
  };
  try {
    const ask = (id: number) =>
      w.write(new TextEncoder().encode(JSON.stringify({ id, prompt: "Status?", max_tokens: 4 }) + "\n"));
    await ask(1);
    assert.equal((await nextDone()).event, "done");
    // What `cp new.gguf model.gguf` does: truncate, then write other bytes.
    await Deno.writeFile(path, new Uint8Array(1000).fill(0x5a));
    await ask(2);
    const second = await nextDone();
    assert.equal(second.event, "done", JSON.stringify(second));
    await w.close();
    const status = await child.status;
    assert.equal(status.code, 0);
    assert.equal(status.signal, null);
  } finally {
    lines.releaseLock();
    await child.stdout.cancel().catch(() => {});
    await child.stderr.cancel();
    await Deno.remove(dir, { recursive: true });
  }
});
