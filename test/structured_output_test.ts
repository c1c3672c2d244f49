/**
 * Structured output through the wire: parseWireRequest (shared by stdin and MQTT) and the
 * `bonsai run --json` CLI end to end in a child process.
 */
import assert from "node:assert/strict";
import { tinyModel } from "./fixtures.ts";
import { parseWireRequest } from "../adapters/request.ts";
import { validate } from "./json_schema_validator.ts";

const CLI = new URL("../cli/main.ts", import.meta.url).pathname;

Deno.test("wire: json_schema, grammar, tools and tool_choice are parsed and checked", () => {
  const r = parseWireRequest({
    prompt: "x",
    tools: [{ type: "function", function: { name: "stop", description: "d", parameters: { type: "object" } } }],
    tool_choice: { type: "function", function: { name: "stop" } },
  });
  assert.deepEqual(r.request.tools, [{ name: "stop", description: "d", parameters: { type: "object" } }]);
  assert.deepEqual(r.request.toolChoice, { name: "stop" });
  assert.deepEqual(parseWireRequest({ prompt: "x", json_schema: { type: "integer" } }).request.jsonSchema, {
    type: "integer",
  });
  assert.equal(parseWireRequest({ prompt: "x", grammar: 'root ::= "a"' }).request.grammar, 'root ::= "a"');
  const bad: [unknown, RegExp][] = [
    [{ prompt: "x", json_schema: "int" }, /json_schema must be a JSON-schema object/],
    [{ prompt: "x", grammar: 3 }, /grammar must be a string/],
    [{ prompt: "x", tools: [] }, /tools must be a non-empty array/],
    [{ prompt: "x", tools: [{ name: "a b" }] }, /tools\[0\]\.name/],
    [{ prompt: "x", tools: [{ name: "a" }, { name: "a" }] }, /listed twice/],
    [{ prompt: "x", tools: [{ name: "a", parameters: { type: "string" } }] }, /type "object"/],
    [{ prompt: "x", tools: [{ name: "a" }], tool_choice: "always" }, /tool_choice must be/],
    [{ prompt: "x", tools: [{ name: "a" }], tool_choice: { name: "b" } }, /'b', which is not in tools/],
    [{ prompt: "x", tool_choice: "required" }, /tool_choice needs tools/],
  ];
  for (const [req, re] of bad) {
    assert.throws(
      () => parseWireRequest(req),
      (e: Error & { code?: string }) => e.code === "BAD_REQUEST" && re.test(e.message),
      re.source,
    );
  }
});

Deno.test("stdin --json: json_schema and tools requests give valid JSON and tool_calls; a bad schema an error", async () => {
  const model = await tinyModel();
  const schema = {
    type: "object",
    properties: { cmd: { enum: ["go", "halt"] }, speed: { type: "number" }, note: { type: "string", maxLength: 8 } },
    required: ["cmd", "speed"],
  };
  const tools = [{
    name: "set_speed",
    parameters: { type: "object", properties: { mps: { type: "number" } }, required: ["mps"] },
  }];
  const lines = [
    { id: "a", prompt: "drive", json_schema: schema, max_tokens: 40, temperature: 1, seed: 1, stream: false },
    { id: "b", prompt: "drive", json_schema: schema, max_tokens: 24, temperature: 1.5, seed: 2 },
    {
      id: "c",
      prompt: "drive",
      tools,
      tool_choice: "required",
      max_tokens: 60,
      temperature: 1,
      seed: 3,
      stream: false,
    },
    { id: "d", prompt: "drive", json_schema: { type: "string", pattern: "x" } },
  ];
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", CLI, "run", "--model", model, "--json", "--ctx", "512", "--quiet"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(lines.map((l) => JSON.stringify(l)).join("\n") + "\n"));
  await w.close();
  const out = await child.output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  const events = new TextDecoder().decode(out.stdout).trim().split("\n").map((l) => JSON.parse(l));
  const final = (id: string) => events.find((e) => e.id === id && e.event !== "token");
  for (const id of ["a", "b"]) {
    const done = final(id);
    assert.equal(done.event, "done", JSON.stringify(done));
    assert.equal(done.finish_reason, "stop");
    assert.deepEqual(validate(JSON.parse(done.text), schema), [], done.text);
  }
  // Streamed tokens add up to the final text.
  assert.equal(events.filter((e) => e.id === "b" && e.event === "token").map((e) => e.text).join(""), final("b").text);
  const c = final("c");
  assert.equal(c.event, "done", JSON.stringify(c));
  assert.ok(c.tool_calls.length >= 1);
  for (const call of c.tool_calls) {
    assert.equal(call.name, "set_speed");
    assert.deepEqual(validate(call.arguments, tools[0].parameters), []);
  }
  const d = final("d");
  assert.equal(d.event, "error");
  assert.equal(d.error.code, "BAD_REQUEST");
  assert.match(d.error.message, /unsupported JSON-schema keyword 'pattern'/);
});
