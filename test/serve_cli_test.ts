/**
 * `bonsai serve` as a process: the fleet flags are checked before the model loads (exit 2), and
 * a second process for a --node that is already served exits 2 while the first keeps serving.
 */
import assert from "node:assert/strict";
import { tinyModel } from "./fixtures.ts";
import { mosquittoPath, startMosquitto } from "./mqtt_brokers.ts";
import { TestClient } from "./mqtt_client.ts";

const CLI = new URL("../cli/main.ts", import.meta.url).pathname;

function serve(args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--no-check", CLI, "serve", ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
}

async function run(args: string[]) {
  const out = await serve(args).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test("serve: fleet flags and --config are checked before the model is read (exit 2, naming the problem)", async () => {
  const missing = "/no/such/model.gguf";
  const base = ["-m", missing, "--mqtt", "mqtt://127.0.0.1:1", "--node", "a"];
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/bad.json`, JSON.stringify({ request: { temperature: "hot" } }));
    await Deno.writeTextFile(`${dir}/extra.json`, JSON.stringify({ request: {}, colour: 1 }));
    const cases: [string[], RegExp][] = [
      [["--reply-prefix", "a/+/b"], /--reply-prefix: reply prefix 'a\/\+\/b' must not contain/],
      [["--group", "a/b"], /group name 'a\/b' must be a single topic level/],
      [["--session-expiry", "-1"], /session-expiry/],
      [["--drain", "later"], /--drain must be finish or cancel/],
      [["--config", `${dir}/bad.json`], /--config .*bad.json: request: temperature/],
      [["--config", `${dir}/extra.json`], /unknown field\(s\): colour/],
      [["--config", `${dir}/none.json`], /cannot read/],
    ];
    for (const [extra, message] of cases) {
      const r = await run([...base, ...extra]);
      assert.equal(r.code, 2, `${extra.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.doesNotMatch(r.stderr, /no\/such\/model/, "checked before the model");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "serve: a second process for a node already served exits 2; the first keeps its session",
  ignore: mosquittoPath() === undefined,
  fn: async () => {
    const broker = await startMosquitto();
    const model = await tinyModel();
    const args = [
      "-m",
      model,
      "--mqtt",
      broker.url,
      "--node",
      "dup",
      "--ctx",
      "128",
      "-n",
      "4",
      "--metrics-interval",
      "0",
    ];
    const first = serve(args);
    const firstLog = new Response(first.stderr).text();
    await first.stdout.cancel();
    const watcher = await TestClient.connect(broker.url);
    try {
      await watcher.watch("bonsai/dup/status");
      await watcher.waitFor("bonsai/dup/status", (s) => s.state === "online");
      const second = await run(args);
      assert.equal(second.code, 2, second.stderr);
      assert.match(second.stderr, /already serves node 'dup'/);
      const r = await watcher.replies(await watcher.send("bonsai/dup/request", { prompt: "Hi", max_tokens: 2 }));
      assert.equal(r.at(-1)!.event, "done", "the first node still serves");
      first.kill("SIGTERM");
      assert.equal((await first.status).code, 0);
      const log = await firstLog;
      assert.match(log, /served 1,/);
      assert.doesNotMatch(log, /lost the broker/, "the second process never took the first one's session");
    } finally {
      try {
        first.kill("SIGKILL");
      } catch {
        // exited
      }
      await first.status;
      await firstLog.catch(() => {});
      await watcher.close();
      await broker.stop();
    }
  },
});
