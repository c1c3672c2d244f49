/**
 * Per-token FFI and dispatch overhead of a real decode step (issue 3: under 3%), on the real model
 * shape, as the sum of three measured parts (timing each library call from JavaScript would
 * itself cost more than the calls):
 *
 * - host: the TypeScript forward pass with every library entry point replaced by a no-op, i.e.
 *   the JavaScript work and argument checks of a step;
 * - FFI: the number of library calls per step times the cost of one call that does nothing
 *   (`bk_threads`);
 * - dispatch: the thread-pool dispatches per step times the cost of one dispatch carrying almost
 *   no work (a 64-row matvec on all threads), an upper bound of the wake-up and join cost.
 *
 * Usage: deno run -A bench/overhead.ts --model PATH [--threads N] [--steps 32]
 */
import { parseArgs } from "node:util";
import { Model } from "../runtime/model.ts";
import { Forward } from "../runtime/forward.ts";
import { KvCache } from "../runtime/kv_cache.ts";
import { Format, type Kernels } from "../kernels/ffi.ts";

/** What the overhead measurement found. */
export interface Overhead {
  threads: number;
  stepMs: number;
  hostMs: number;
  callsPerStep: number;
  callUs: number;
  dispatchesPerStep: number;
  dispatchUs: number;
  overheadMs: number;
  fraction: number;
}

/** Entry points that run on the thread pool. */
const POOLED = new Set(["bk_matvec", "bk_matmul", "bk_matvec_multi"]);

type Lib = Record<string, (...a: unknown[]) => unknown>;

/** Replaces the library's symbols (counting wrappers, or no-ops); returns the call tallies. */
function swapLibrary(k: Kernels, mode: "count" | "noop") {
  const tally = { calls: 0, dispatches: 0 };
  const lib = k.lib as unknown as Lib;
  const swapped: Lib = {};
  for (const [name, fn] of Object.entries(lib)) {
    if (typeof fn !== "function") continue;
    swapped[name] = mode === "noop" ? () => 0 : (...args: unknown[]) => {
      tally.calls++;
      if (POOLED.has(name)) tally.dispatches++;
      return fn(...args);
    };
  }
  (k as unknown as { lib: Lib }).lib = swapped;
  return { tally, restore: () => ((k as unknown as { lib: Lib }).lib = lib) };
}

/** Cost of one library call that does nothing, in microseconds. */
function callCostUs(k: Kernels): number {
  for (let i = 0; i < 10000; i++) k.lib.bk_threads();
  const n = 200000;
  const start = performance.now();
  for (let i = 0; i < n; i++) k.lib.bk_threads();
  return ((performance.now() - start) / n) * 1000;
}

/** Cost of one pool dispatch carrying almost no work, in microseconds. */
function dispatchCostUs(k: Kernels): number {
  const ne0 = 128;
  const ne1 = 64;
  const bytes = new Uint8Array((ne0 / 128) * 18 * ne1);
  const t = k.tensorFromBytes(bytes, Format.Q1_0, ne0, ne1);
  const act = new Uint8Array(k.actBytes(ne0));
  k.quantizeAct(new Float32Array(ne0).fill(1), act);
  const out = new Float32Array(ne1);
  for (let i = 0; i < 1000; i++) k.matvec(t, act, out);
  const n = 20000;
  const start = performance.now();
  for (let i = 0; i < n; i++) k.matvec(t, act, out);
  const us = ((performance.now() - start) / n) * 1000;
  t.free();
  return us;
}

/** Measures the overhead of decode steps of the model at `path`. */
export async function measureOverhead(path: string, threads: number, steps = 32): Promise<Overhead> {
  const model = await Model.load(path, { threads });
  try {
    const k = model.kernels;
    const c = model.config;
    const fwd = new Forward(k, c, model.weights, 4 * steps + 16);
    const kv = new KvCache(c, 4 * steps + 16);
    for (let i = 0; i < 8; i++) fwd.step(1000 + i, kv);
    const run = () => {
      const start = performance.now();
      for (let i = 0; i < steps; i++) fwd.step(2000 + i, kv);
      return (performance.now() - start) / steps;
    };
    const stepMs = run();
    const counting = swapLibrary(k, "count");
    run();
    counting.restore();
    const noop = swapLibrary(k, "noop");
    run();
    const hostMs = run();
    noop.restore();
    const callsPerStep = counting.tally.calls / steps;
    const dispatchesPerStep = counting.tally.dispatches / steps;
    const callUs = callCostUs(k);
    const dispatchUs = dispatchCostUs(k);
    const overheadMs = hostMs + (callsPerStep * callUs + dispatchesPerStep * dispatchUs) / 1000;
    return {
      threads: k.threads(),
      stepMs,
      hostMs,
      callsPerStep,
      callUs,
      dispatchesPerStep,
      dispatchUs,
      overheadMs,
      fraction: overheadMs / stepMs,
    };
  } finally {
    model.close();
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      model: { type: "string" },
      threads: { type: "string", default: "0" },
      steps: { type: "string", default: "32" },
    },
  });
  if (!values.model) throw new Error("--model PATH is required");
  console.log(JSON.stringify(await measureOverhead(values.model, Number(values.threads), Number(values.steps))));
}
