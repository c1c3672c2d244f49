/**
 * Synthetic models for tests, generated once per test process into a temporary directory.
 */
import { synthesize, type SynthOptions } from "../tools/synth.ts";

const made = new Map<string, Promise<string>>();
let dir: string | undefined;

/** Path of a synthetic model (generated on first use; same options, same file). */
export function synthModel(opts: Omit<SynthOptions, "out"> = { shape: "tiny" }): Promise<string> {
  const key = JSON.stringify(opts);
  let path = made.get(key);
  if (!path) {
    path = (async () => {
      dir ??= await Deno.makeTempDir({ prefix: "bonsai-test-" });
      const out = `${dir}/model-${made.size}.gguf`;
      await synthesize({ ...opts, out });
      return out;
    })();
    made.set(key, path);
  }
  return path;
}

/** The default test model: tiny shape, Q1_0, seed 1. */
export function tinyModel(): Promise<string> {
  return synthModel({ shape: "tiny", seed: 1 });
}
