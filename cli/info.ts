/**
 * `bonsai info`: what this machine offers (CPU features, kernel path, memory) and, with
 * `--model`, what a model file declares and needs.
 */
import { parseFlags, UsageError } from "./args.ts";
import { Kernels } from "../kernels/ffi.ts";
import { readGguf } from "../runtime/gguf.ts";
import { qwen3ConfigFromGguf } from "../runtime/config.ts";
import { KvCache } from "../runtime/kv_cache.ts";
import { chooseDevice, deviceSettings, footprintOf, profileThreads } from "../devices/settings.ts";
import { memoryBudget } from "../devices/budget.ts";
import { DEVICE_IDS } from "../devices/profiles.ts";

export const INFO_USAGE = `Usage: bonsai info [--model FILE] [--device NAME] [--json]

Prints the detected device and its profile (threads, default context, memory budget), the
CPU's SIMD features and the kernel path that will run, and with --model the file's
architecture, sizes, tensor types, KV cache bytes per token and the context that fits.

Options:
  -m, --model FILE   also describe this GGUF file (only its header is read)
      --device NAME  use this profile instead of detecting one: ${DEVICE_IDS.join(", ")}, auto
      --json         print one JSON object instead of text
  -h, --help         this text`;

/** Gathers the facts `bonsai info` prints. */
export async function collectInfo(modelPath?: string, deviceFlag?: string): Promise<Record<string, unknown>> {
  const choice = chooseDevice(deviceFlag);
  const d = choice.detection;
  const p = choice.profile;
  const kernels = Kernels.load();
  const available = kernels.isaAvailable();
  const info: Record<string, unknown> = {
    kernels: {
      library: kernels.path,
      available: kernels.isaAvailable(),
      active: kernels.isaActive(),
      lookup_tables: kernels.lutEnabled(),
      prompt_gemm: kernels.gemmPath(),
    },
    cpus: navigator.hardwareConcurrency,
    memory_bytes: Deno.systemMemoryInfo().total,
    os: `${Deno.build.os}-${Deno.build.arch}`,
    device: {
      profile: p.id,
      name: p.name,
      source: choice.source,
      reason: d.reason,
      board: d.model ?? null,
      cpu: d.cpu ?? null,
      logical_cpus: d.logicalCpus,
      physical_cores: d.physicalCores,
      memory_bytes: d.memoryBytes,
      threads: profileThreads(p, d),
      default_ctx: p.contextSize,
      default_parallel: p.parallel,
      memory_budget_bytes: memoryBudget(p, d.memoryBytes),
      profile_isa: p.isa,
      missing_isa: p.isa.filter((i) => !(available as string[]).includes(i)),
    },
  };
  if (modelPath) {
    const file = await readGguf(modelPath);
    const config = qwen3ConfigFromGguf(file);
    const types = new Map<string, number>();
    let weightBytes = 0;
    for (const t of file.tensors.values()) {
      types.set(t.format.name, (types.get(t.format.name) ?? 0) + 1);
      weightBytes += t.byteSize;
    }
    info.model = {
      path: modelPath,
      gguf_version: file.version,
      file_bytes: file.fileSize,
      weight_bytes: weightBytes,
      tensor_types: Object.fromEntries(types),
      config,
      kv_bytes_per_token_f16: KvCache.bytesPerToken(config, "f16"),
    };
    const plan = deviceSettings(choice, footprintOf(file, config)).plan;
    info.plan = {
      ctx: plan.contextSize,
      parallel: plan.parallel,
      needed_bytes: plan.neededBytes,
      budget_bytes: plan.budgetBytes,
      fits: plan.fits,
      notes: plan.notes,
    };
  }
  return info;
}

/** Runs the command; returns the exit code. */
export async function infoCommand(args: string[]): Promise<number> {
  const { values } = parseFlags(args, {
    model: { type: "string", short: "m" },
    device: { type: "string" },
    json: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) {
    console.log(INFO_USAGE);
    return 0;
  }
  if (
    values.device !== undefined && values.device !== "auto" &&
    !(DEVICE_IDS as readonly string[]).includes(values.device)
  ) {
    throw new UsageError(`--device must be one of ${DEVICE_IDS.join(", ")}, auto; got '${values.device}'`);
  }
  const info = await collectInfo(values.model, values.device);
  if (values.json) {
    console.log(JSON.stringify(info, null, 2));
    return 0;
  }
  const k = info.kernels as {
    library: string;
    available: string[];
    active: string[];
    lookup_tables: boolean;
    prompt_gemm: string | null;
  };
  console.log(`os:        ${info.os}, ${info.cpus} CPUs, ${gib(info.memory_bytes as number)} memory`);
  const dv = info.device as Record<string, unknown>;
  console.log(
    `device:    ${dv.name} [${dv.profile}] (${dv.source === "detected" ? `detected: ${dv.reason}` : "--device"})`,
  );
  console.log(
    `  cpu:     ${dv.cpu ?? "unknown"}, ${dv.logical_cpus} CPUs / ${dv.physical_cores} cores${
      dv.board ? `, board '${dv.board}'` : ""
    }`,
  );
  console.log(
    `  profile: ${dv.threads} threads, ctx ${dv.default_ctx} x ${dv.default_parallel}, ` +
      `memory budget ${mib(dv.memory_budget_bytes as number)} of ${gib(dv.memory_bytes as number)}`,
  );
  const missing = dv.missing_isa as string[];
  console.log(
    `  kernel path expected: ${(dv.profile_isa as string[]).join("+") || "any"}` +
      (missing.length ? ` (this CPU or build lacks ${missing.join(", ")})` : ""),
  );
  console.log(`kernels:   ${k.library}`);
  console.log(`  available SIMD: ${k.available.join(", ") || "none"}`);
  console.log(`  will run:       ${k.active.join("+") || "scalar reference"}`);
  console.log(
    `  Q1_0/Q2_0 path: ${
      k.lookup_tables ? "lookup tables (packed at load; BONSAI_NO_LUT=1 for the row kernels)" : "row kernels"
    }${Deno.env.get("BONSAI_NO_LUT") ? " (BONSAI_NO_LUT is set)" : ""}`,
  );
  console.log(
    `  prompt chunks:  ${
      k.prompt_gemm && k.lookup_tables
        ? `${k.prompt_gemm} GEMM for Q1_0 (BONSAI_NO_GEMM=1 for the lookup tables)`
        : "same path as decode"
    }${Deno.env.get("BONSAI_NO_GEMM") ? " (BONSAI_NO_GEMM is set)" : ""}`,
  );
  const m = info.model as Record<string, unknown> | undefined;
  if (m) {
    const c = m.config as Record<string, unknown>;
    console.log(`model:     ${m.path} (GGUF v${m.gguf_version}, ${mib(m.file_bytes as number)})`);
    console.log(
      `  ${c.name}: ${c.nLayer} layers, embedding ${c.nEmbd}, ffn ${c.nFf}, heads ${c.nHead}/${c.nHeadKv} x ${c.headDim}`,
    );
    console.log(
      `  vocab ${c.nVocab}, context ${c.contextLength}, rope base ${c.ropeBase}, scaling ${
        (c.ropeScaling as { type: string }).type
      }`,
    );
    console.log(
      `  tensors: ${Object.entries(m.tensor_types as Record<string, number>).map(([t, n]) => `${n} ${t}`).join(", ")}`,
    );
    console.log(`  KV cache: ${((m.kv_bytes_per_token_f16 as number) / 1024).toFixed(0)} KiB per token (f16)`);
    const plan = info.plan as { ctx: number; parallel: number; needed_bytes: number; fits: boolean; notes: string[] };
    console.log(
      `  on this device: ctx ${plan.ctx} x ${plan.parallel}, needs ${mib(plan.needed_bytes)}` +
        (plan.fits ? " (fits the budget)" : " (does NOT fit the budget)"),
    );
    for (const note of plan.notes) console.log(`  note: ${note}`);
  }
  return 0;
}

function gib(n: number): string {
  return `${(n / 2 ** 30).toFixed(1)} GiB`;
}

function mib(n: number): string {
  return `${(n / 2 ** 20).toFixed(1)} MiB`;
}
