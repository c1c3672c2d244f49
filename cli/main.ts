/**
 * `bonsai`: the command-line entry point. One sub-command per job; each has `--help`.
 * Exit codes: 0 success, 1 failure (message on stderr), 2 usage error, 130 interrupted.
 */
import { UsageError } from "./args.ts";

const USAGE = `bonsai: run PrismML Bonsai 1-bit models on small CPUs

Usage: bonsai <command> [options]

Commands:
  run     answer prompts from stdin (text or JSON lines), streaming tokens to stdout
  serve   answer requests over MQTT (JSON or CBOR, with presence) and/or HTTP (OpenAI API,
          kiosk page), streamed and concurrent
  synth   write a Bonsai-shaped test model (random 1-bit weights, real Qwen3 tokenizer)
  info    show this machine's CPU features and kernels, and a model file's header
  bench   measure speed, batching, structured-output cost or memory on generated models

Run 'bonsai <command> --help' for a command's options.`;

type Command = (args: string[]) => Promise<number>;

/** Each command's module is loaded only when that command runs, so a start loads one command. */
const COMMANDS: Record<string, () => Promise<Command>> = {
  run: async () => (await import("./run.ts")).runCommand,
  serve: async () => (await import("./serve.ts")).serveCommand,
  synth: async () => (await import("./synth.ts")).synthCommand,
  info: async () => (await import("./info.ts")).infoCommand,
  bench: async () => (await import("./bench.ts")).benchCommand,
};

/** Runs the CLI with `args`; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  if (
    name === undefined || name === "help" || name === "--help" || name === "-h"
  ) {
    console.log(USAGE);
    return name === undefined ? 2 : 0;
  }
  const load = COMMANDS[name];
  if (!load) {
    console.error(`bonsai: unknown command '${name}'\n\n${USAGE}`);
    return 2;
  }
  try {
    const command = await load();
    return await command(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(
        `bonsai ${name}: ${e.message}\nRun 'bonsai ${name} --help' for usage.`,
      );
      return 2;
    }
    console.error(
      `bonsai ${name}: ${e instanceof Error ? e.message : String(e)}`,
    );
    return 1;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
