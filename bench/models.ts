/**
 * Bench models: synthetic files with the real Bonsai geometries, generated once into `models/`
 * (gitignored) and reused. Weights are random, so the timings are those of a real model of that
 * shape; the text they produce is meaningless.
 */
import { synthesize } from "../tools/synth.ts";
import { SHAPES, type SynthShape } from "../tools/synth_shapes.ts";
import type { SynthType } from "../tools/synth.ts";

/** Shapes the bench knows: the two Bonsai sizes. */
export const BENCH_SHAPES: Record<string, SynthShape> = {
  "1.7b": SHAPES["1.7b"],
  "4b": SHAPES["4b"],
};

/** Path of the bench model for `shape` with `type` weights, synthesizing it first if missing. */
export async function ensureModel(
  shape: string,
  dir = "models",
  type: SynthType = "q1_0",
): Promise<string> {
  const s = BENCH_SHAPES[shape];
  if (!s) {
    throw new Error(
      `unknown bench shape '${shape}' (${Object.keys(BENCH_SHAPES).join(", ")})`,
    );
  }
  const path = `${dir}/bench-${shape}-${type}.gguf`;
  try {
    await Deno.stat(path);
    return path;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  await Deno.mkdir(dir, { recursive: true });
  const tmp = `${path}.tmp`;
  const t0 = performance.now();
  await synthesize({ shape: s, out: tmp, seed: 1, type });
  await Deno.rename(tmp, path);
  console.error(
    `generated ${path} in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
  return path;
}
