/**
 * The README's first command: generate (once) a 1.7B-shaped model and answer a prompt with it,
 * showing load time and speed. `deno task demo [--shape tiny|1.7b|4b]`. Runs `bonsai run` as a
 * child process, as a user would.
 */
import { parseArgs } from "node:util";
import { synthesize } from "./synth.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    shape: { type: "string", default: "1.7b" },
    prompt: { type: "string" },
  },
});
const path = `models/bonsai-${values.shape}-synthetic.gguf`;
try {
  await Deno.stat(path);
  console.error(`using ${path}`);
} catch {
  await Deno.mkdir("models", { recursive: true });
  console.error(`generating ${path} ...`);
  await synthesize({ shape: values.shape!, out: path, seed: 1 });
}
const prompt = values.prompt ??
  "A robot arm reports joint 3 at 45 degrees. What should it do next?";
console.error(`prompt: ${prompt}`);
// The CLI runs as its own process, as a user would start it (tools/ sit below cli/: no import).
const cli = new URL("../cli/main.ts", import.meta.url).pathname;
const run = new Deno.Command(Deno.execPath(), {
  args: ["run", "--allow-all", cli, "run", "--model", path, "--prompt", prompt, "--max-tokens", "48", "--verbose"],
  stdin: "null",
  stdout: "inherit",
  stderr: "inherit",
});
Deno.exit((await run.output()).code);
