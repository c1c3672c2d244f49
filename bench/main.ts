/**
 * `deno task bench`: decode / prefill speed of the 1.7B and 4B Bonsai shapes (synthetic Q1_0
 * weights, generated once into models/), on 1 and all threads, against this machine's ceilings
 * (memory-bandwidth roofline and in-cache kernel rate), plus the per-token FFI/dispatch overhead
 * and the prefix-cache time to first token, and attention over the KV cache alone. Each model configuration runs in its own process
 * (bench/measure.ts) so load time and peak RSS are its own. Prints a table; writes JSON to
 * bench/results/latest.json.
 *
 * Options: --quick (1.7B only, 64-token prompt, 32 decode tokens), --models 1.7b,4b,
 * --type q1_0|q2_0|q2_0_g64 (weight format of the models, default q1_0), --threads 1,0
 * (0 = all CPUs), --prompt N, --decode N, --out PATH.
 */
import { parseArgs } from "node:util";
import { Kernels } from "../kernels/ffi.ts";
import { ensureModel } from "./models.ts";
import type { Measurement } from "./measure.ts";
import { BENCH_FORMATS, type BenchType, type Ceilings, measureCeilings } from "./roofline.ts";
import { fmt, table } from "./report.ts";
import { measureMemory } from "./memory_budget.ts";
import type { Overhead } from "./overhead.ts";
import { benchAttention } from "./attention.ts";
import { BENCH_SHAPES } from "./models.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    quick: { type: "boolean", default: false },
    models: { type: "string" },
    type: { type: "string", default: "q1_0" },
    threads: { type: "string", default: "1,0" },
    prompt: { type: "string" },
    decode: { type: "string" },
    out: { type: "string", default: "bench/results/latest.json" },
  },
});
const quick = values.quick;
if (!(values.type in BENCH_FORMATS)) {
  console.error(`bench: unknown --type '${values.type}' (${Object.keys(BENCH_FORMATS).join(", ")})`);
  Deno.exit(2);
}
const type = values.type as BenchType;
const models = (values.models ?? (quick ? "1.7b" : "1.7b,4b")).split(",");
const nPrompt = Number(values.prompt ?? (quick ? 64 : 512));
const nDecode = Number(values.decode ?? (quick ? 32 : 128));
const cpus = navigator.hardwareConcurrency;
const threadCounts = [
  ...new Set(
    values.threads.split(",").map((t) => (Number(t) === 0 ? cpus : Number(t))),
  ),
];

/** Runs bench/measure.ts in a child process and parses its JSON line. */
async function child(args: string[], env: Record<string, string> = {}): Promise<Measurement> {
  const cmd = new Deno.Command(Deno.execPath(), {
    // --allow-all: Deno reads /proc/<pid>/status (peak RSS) only with all permissions
    args: [
      "run",
      "--allow-all",
      new URL("./measure.ts", import.meta.url).pathname,
      ...args,
    ],
    stdout: "piped",
    stderr: "inherit",
    env,
  });
  const out = await cmd.output();
  const text = new TextDecoder().decode(out.stdout).trim();
  if (!out.success) {
    throw new Error(`bench child failed (${args.join(" ")}): ${text}`);
  }
  return JSON.parse(text.split("\n").pop()!);
}

const k = Kernels.load();
const ceilings: Ceilings[] = threadCounts.map((t) => measureCeilings(k, t, type));
k.close();

const runs: (Measurement & { shape: string; prefillNoGemmTokS?: number })[] = [];
for (const shape of models) {
  const path = await ensureModel(shape, "models", type);
  for (const t of threadCounts) {
    // the prefix-cache line runs once per model, on all threads
    const prefix = t === Math.max(...threadCounts) ? ["--prefix", quick ? "100" : "400"] : [];
    const m = await child([
      "--model",
      path,
      "--threads",
      String(t),
      "--prompt",
      String(nPrompt),
      "--decode",
      String(nDecode),
      ...prefix,
    ]);
    // The same prefill without the prompt GEMM (issue 16: the new path against the old one).
    const noGemm = m.gemm
      ? await child(["--model", path, "--threads", String(t), "--prompt", String(nPrompt), "--decode", "1"], {
        BONSAI_NO_GEMM: "1",
      })
      : undefined;
    runs.push({ shape, ...m, prefillNoGemmTokS: noGemm?.prefillTokS });
    console.error(
      `${shape} x${t}: decode ${fmt(m.decodeTokS)} tok/s, prefill ${fmt(m.prefillTokS)} tok/s${
        noGemm ? ` (${fmt(noGemm.prefillTokS)} without the ${m.gemm} GEMM)` : ""
      }`,
    );
  }
}

// Overhead (issue 3: under 3% of a decode step): host JavaScript work + FFI transitions + pool
// dispatches of a real 1.7B decode step, measured in its own process (bench/overhead.ts).
const tAll = Math.max(...threadCounts);
/** bench/overhead.ts on the first model with all threads, in its own process (`env` added). */
async function overheadRun(env: Record<string, string>): Promise<Overhead> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      new URL("./overhead.ts", import.meta.url).pathname,
      "--model",
      await ensureModel(models[0], "models", type),
      "--threads",
      String(tAll),
    ],
    stdout: "piped",
    stderr: "inherit",
    env,
  }).output();
  if (!out.success) throw new Error("overhead measurement failed");
  return JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").pop()!);
}
const ovh = await overheadRun({ BONSAI_NO_LUT: "" });
// The same short-context decode step on the row kernels: the evidence for the lookup-table path on
// a CPU where it has not been timed before (ARM boards).
const rowKernels = await overheadRun({ BONSAI_NO_LUT: "1" });

// Attention alone (the part of a decode step that grows with the context), on the first model's
// geometry with a per-layer f16 cache, in this process.
const attShape = BENCH_SHAPES[models[0]];
const attKernels = Kernels.load();
const attention = benchAttention(
  attKernels,
  { layers: attShape.blockCount, heads: attShape.nHead, kvHeads: attShape.nHeadKv, headDim: attShape.headDim },
  quick ? [64, 600] : [64, 600, 2000],
  threadCounts,
);
attKernels.close();

const rows = runs.map((r) => {
  const c = ceilings.find((x) => x.threads === r.threads)!;
  const bwRoof = (c.readGBs * 1e9) / r.weightBytesPerToken;
  const fmt = BENCH_FORMATS[type];
  const weightsPerToken = (r.weightBytesPerToken / fmt.blockBytes) * fmt.blockLen;
  const computeRoof = (c.computeGWs * 1e9) / weightsPerToken;
  const roof = Math.min(bwRoof, computeRoof);
  const stepTokS = 1000 / r.decodeStepMs;
  return {
    ...r,
    bandwidthRooflineTokS: bwRoof,
    computeRooflineTokS: computeRoof,
    binds: bwRoof < computeRoof ? "bandwidth" : "compute",
    fractionOfRoofline: stepTokS / roof,
    fractionOfBandwidthRoofline: stepTokS / bwRoof,
  };
});

console.log(
  `\nbonsai bench: ${type} weights, ${nPrompt}-token prompt, ${nDecode} decode tokens, kernels ${
    runs[0]?.isa.join("+") || "scalar"
  }, ${cpus} CPUs\n`,
);
console.log(table(
  [
    "model",
    "thr",
    "load ms",
    "prefill tok/s",
    "TTFT ms",
    "decode tok/s",
    "step ms (med)",
    "peak RSS MB",
    "roofline tok/s (bw / compute)",
    "binds",
    "of roofline",
  ],
  rows.map((r) => [
    r.shape,
    r.threads,
    fmt(r.loadMs, 0),
    fmt(r.prefillTokS),
    fmt(r.ttftMs, 0),
    fmt(r.decodeTokS),
    fmt(r.decodeStepMs, 2),
    fmt(r.peakRssMB, 0),
    `${fmt(r.bandwidthRooflineTokS)} / ${fmt(r.computeRooflineTokS)}`,
    r.binds,
    `${fmt(100 * r.fractionOfRoofline, 0)}%`,
  ]),
));
console.log(
  "\n" + table(
    ["threads", "read GB/s", `${type} kernel Gweights/s (in cache)`],
    ceilings.map((c) => [c.threads, fmt(c.readGBs), fmt(c.computeGWs)]),
  ),
);
console.log(
  `\nper-token overhead (${models[0]}, ${ovh.threads} threads): ${fmt(ovh.overheadMs, 3)} ms = ` +
    `${fmt(100 * ovh.fraction, 2)}% of a ${fmt(ovh.stepMs, 1)} ms decode step ` +
    `(host JS ${fmt(ovh.hostMs, 3)} ms, ${fmt(ovh.callsPerStep, 0)} FFI calls x ${fmt(ovh.callUs, 3)} us, ` +
    `${fmt(ovh.dispatchesPerStep, 0)} pool dispatches x ${fmt(ovh.dispatchUs, 2)} us)`,
);
console.log(
  `${type} path (${models[0]}, ${ovh.threads} threads, short context): lookup tables ${
    fmt(ovh.stepMs, 1)
  } ms per decode step, ` +
    `row kernels (BONSAI_NO_LUT=1) ${fmt(rowKernels.stepMs, 1)} ms`,
);
for (const r of rows) {
  console.log(
    `prefill path (${r.shape}, ${r.threads} thr): ${r.gemm ? `${r.gemm} GEMM` : "lookup tables / row kernels"} ` +
      `${fmt(r.prefillTokS)} tok/s` +
      (r.prefillNoGemmTokS
        ? `, lookup tables (BONSAI_NO_GEMM=1) ${fmt(r.prefillNoGemmTokS)} tok/s (GEMM ${
          fmt(r.prefillTokS / r.prefillNoGemmTokS, 2)
        }x)`
        : "") +
      `; prefill / decode ${fmt(r.prefillTokS / r.decodeTokS, 2)}x`,
  );
}
for (const r of runs) {
  if (r.prefix) {
    console.log(
      `prefix cache (${r.shape}, ${r.threads} thr): ${r.prefix.promptTokens}-token prompt, TTFT cold ${
        fmt(r.prefix.coldTtftMs, 0)
      } ms, ` +
        `repeated ${fmt(r.prefix.warmTtftMs, 0)} ms (${r.prefix.warmCachedTokens} tokens from cache)`,
    );
  }
}

console.log(
  `attention alone (${models[0]}, f16 cache), ms per token: ` +
    attention.map((a) => `${a.positions} positions ${a.threads} thr ${fmt(a.msPerToken, 2)}`).join(", "),
);

// Memory budget (issue 4): peak RSS of a decode with a full-size KV cache against the figure
// the runtime computes before loading, for the largest model of this run.
const memoryShape = models.includes("4b") ? "4b" : models[models.length - 1];
const memory = await measureMemory(memoryShape, quick ? 1024 : 4096, quick ? 8 : 32, type);
console.log(
  `memory (${memory.shape} ${memory.type}, ctx ${memory.contextSize}): estimated ${
    fmt(memory.estimatedBytes / 2 ** 20, 0)
  } MiB, ` +
    `peak RSS ${fmt(memory.peakRssBytes / 2 ** 20, 0)} MiB (${fmt(100 * memory.error, 1)}%)`,
);

const result = {
  date: new Date().toISOString(),
  type,
  memory,
  cpus,
  promptTokens: nPrompt,
  decodeTokens: nDecode,
  ceilings,
  runs: rows,
  overhead: ovh,
  rowKernelStepMs: rowKernels.stepMs,
  attention,
};
await Deno.mkdir(new URL(".", `file://${Deno.cwd()}/${values.out}`).pathname, {
  recursive: true,
});
await Deno.writeTextFile(values.out, JSON.stringify(result, null, 2) + "\n");
console.log(`\nJSON: ${values.out}`);
