/**
 * SIGHUP reloads the model of a running `bonsai serve`: a new file (written elsewhere, renamed
 * over the old: the safe update) serves the next requests; a broken file is refused and the old
 * model serves on; a request running during the reload finishes.
 */
import assert from "node:assert/strict";
import { synthModel, tinyModel } from "./fixtures.ts";
import { mosquittoPath, startMosquitto } from "./mqtt_brokers.ts";
import { TestClient } from "./mqtt_client.ts";

const CLI = new URL("../cli/main.ts", import.meta.url).pathname;

/** Reads a child's stderr lines into `lines` and wakes waiters. */
function lineWatcher(stream: ReadableStream<Uint8Array<ArrayBuffer>>) {
  const lines: string[] = [];
  let wake: (() => void) | undefined;
  (async () => {
    let rest = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      rest += chunk;
      const parts = rest.split("\n");
      rest = parts.pop()!;
      lines.push(...parts);
      wake?.();
    }
  })();
  return {
    lines,
    async until(re: RegExp, from = 0): Promise<number> {
      const deadline = Date.now() + 60_000;
      while (true) {
        const i = lines.findIndex((l, k) => k >= from && re.test(l));
        if (i >= 0) return i;
        if (Date.now() > deadline) throw new Error(`no log line matching ${re}:\n${lines.join("\n")}`);
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 200);
        });
      }
    },
  };
}

Deno.test({
  name: "SIGHUP: a new model file serves the next requests; a broken one is refused and the old model serves on",
  ignore: mosquittoPath() === undefined,
  async fn() {
    const broker = await startMosquitto();
    const dir = await Deno.makeTempDir();
    const path = `${dir}/model.gguf`;
    await Deno.copyFile(await tinyModel(), path);
    const other = await synthModel({ shape: "tiny", seed: 9 });
    const node = `reload-${crypto.randomUUID().slice(0, 6)}`;
    const serve = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-all",
        "--no-check",
        CLI,
        "serve",
        "-m",
        path,
        "--mqtt",
        broker.url,
        "--node",
        node,
        "--ctx",
        "256",
        "-P",
        "2",
      ],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    const log = lineWatcher(serve.stderr);
    const client = await TestClient.connect(broker.url, 5);
    const ask = async (prompt: string, maxTokens = 6) => {
      const replies = await client.replies(
        await client.send(`bonsai/${node}/request`, { prompt, max_tokens: maxTokens, temperature: 0 }),
      );
      return replies.at(-1)! as unknown as { event: string; text: string };
    };
    try {
      await log.until(/serving:/);
      const before = await ask("Status?");
      assert.equal(before.event, "done");

      // The safe update: the new file is written elsewhere and renamed over the old one.
      await Deno.copyFile(other, `${dir}/new.gguf`);
      await Deno.rename(`${dir}/new.gguf`, path);
      const running = client.send(`bonsai/${node}/request`, { prompt: "Talk", max_tokens: 40, temperature: 0 });
      serve.kill("SIGHUP");
      await log.until(/reload: .* serves new requests/);
      const during = (await client.replies(await running)).at(-1)!;
      assert.equal(during.event, "done", "the request running during the reload finishes");
      await log.until(/reload: the old model is closed/);
      const after = await ask("Status?");
      assert.equal(after.event, "done");
      assert.notEqual(after.text, before.text, "the new model (other weights) answers");

      // A broken file is refused; the model loaded last serves on.
      await Deno.writeFile(`${dir}/bad.gguf`, new TextEncoder().encode("GGUF but not really"));
      await Deno.rename(`${dir}/bad.gguf`, path);
      const mark = log.lines.length;
      serve.kill("SIGHUP");
      await log.until(/reload refused: .*still serving/, mark);
      const still = await ask("Status?");
      assert.equal(still.text, after.text);

      serve.kill("SIGTERM");
      assert.equal((await serve.status).code, 0);
    } finally {
      try {
        serve.kill("SIGKILL");
      } catch {
        // exited
      }
      await serve.status;
      await client.close();
      await broker.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("POST /admin/reload: the same reload over HTTP, only with the API key", async () => {
  const { freePort } = await import("./mqtt_brokers.ts");
  const dir = await Deno.makeTempDir();
  const path = `${dir}/model.gguf`;
  await Deno.copyFile(await tinyModel(), path);
  const port = freePort();
  const serve = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      "--no-check",
      CLI,
      "serve",
      "-m",
      path,
      "--http",
      `127.0.0.1:${port}`,
      "--api-key",
      "k1",
      "--ctx",
      "256",
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const log = lineWatcher(serve.stderr);
  const reload = (key?: string) =>
    fetch(`http://127.0.0.1:${port}/admin/reload`, {
      method: "POST",
      headers: key ? { authorization: `Bearer ${key}` } : {},
    })
      .then(async (r) => ({ status: r.status, body: await r.json() }));
  try {
    await log.until(/serving:/);
    assert.equal((await reload()).status, 401);
    assert.equal((await reload("wrong")).status, 401);
    await Deno.copyFile(await synthModel({ shape: "tiny", seed: 9 }), `${dir}/new.gguf`);
    await Deno.rename(`${dir}/new.gguf`, path);
    const ok = await reload("k1");
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.reloaded, true);
    await Deno.writeFile(path, new TextEncoder().encode("not a model"));
    const refused = await reload("k1");
    assert.equal(refused.status, 409);
    assert.match(refused.body.message, /reload refused: .*still serving/);
    const health = await fetch(`http://127.0.0.1:${port}/health`).then((r) => r.json());
    assert.equal(health.status, "ok");
    serve.kill("SIGTERM");
    assert.equal((await serve.status).code, 0);
  } finally {
    try {
      serve.kill("SIGKILL");
    } catch {
      // exited
    }
    await serve.status;
    await Deno.remove(dir, { recursive: true });
  }
});
