/**
 * `bonsai info`: what this machine offers (CPU features, kernel path, memory) and, with
 * `--model`, what a model file declares and needs.
 */
import { parseFlags } from "./args.ts";
import { Kernels } from "../kernels/ffi.ts";
import { readGguf } from "../runtime/gguf.ts";
import { qwen3ConfigFromGguf } from "../runtime/config.ts";
import { KvCache } from "../runtime/kv_cache.ts";

export const INFO_USAGE = `Usage: bonsai info [--model FILE] [--json]

Prints the CPU's SIMD features, the kernel path that will run, the thread count and memory,
and with --model the file's architecture, sizes, tensor types and KV cache bytes per token.

Options:
  -m, --model FILE   also describe this GGUF file (only its header is read)
      --json         print one JSON object instead of text
  -h, --help         this text`;

/** Gathers the facts `bonsai info` prints. */
export async function collectInfo(modelPath?: string): Promise<Record<string, unknown>> {
  const kernels = Kernels.load();
  const info: Record<string, unknown> = {
    kernels: {
      library: kernels.path,
      available: kernels.isaAvailable(),
      active: kernels.isaActive(),
    },
    cpus: navigator.hardwareConcurrency,
    memory_bytes: Deno.systemMemoryInfo().total,
    os: `${Deno.build.os}-${Deno.build.arch}`,
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
  }
  return info;
}

/** Runs the command; returns the exit code. */
export async function infoCommand(args: string[]): Promise<number> {
  const { values } = parseFlags(args, {
    model: { type: "string", short: "m" },
    json: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) {
    console.log(INFO_USAGE);
    return 0;
  }
  const info = await collectInfo(values.model);
  if (values.json) {
    console.log(JSON.stringify(info, null, 2));
    return 0;
  }
  const k = info.kernels as { library: string; available: string[]; active: string[] };
  console.log(`os:        ${info.os}, ${info.cpus} CPUs, ${gib(info.memory_bytes as number)} memory`);
  console.log(`kernels:   ${k.library}`);
  console.log(`  available SIMD: ${k.available.join(", ") || "none"}`);
  console.log(`  will run:       ${k.active.join("+") || "scalar reference"}`);
  const m = info.model as Record<string, unknown> | undefined;
  if (m) {
    const c = m.config as Record<string, unknown>;
    console.log(`model:     ${m.path} (GGUF v${m.gguf_version}, ${mib(m.file_bytes as number)})`);
    console.log(`  ${c.name}: ${c.nLayer} layers, embedding ${c.nEmbd}, ffn ${c.nFf}, heads ${c.nHead}/${c.nHeadKv} x ${c.headDim}`);
    console.log(`  vocab ${c.nVocab}, context ${c.contextLength}, rope base ${c.ropeBase}, scaling ${(c.ropeScaling as { type: string }).type}`);
    console.log(`  tensors: ${Object.entries(m.tensor_types as Record<string, number>).map(([t, n]) => `${n} ${t}`).join(", ")}`);
    console.log(`  KV cache: ${((m.kv_bytes_per_token_f16 as number) / 1024).toFixed(0)} KiB per token (f16)`);
  }
  return 0;
}

function gib(n: number): string {
  return `${(n / 2 ** 30).toFixed(1)} GiB`;
}

function mib(n: number): string {
  return `${(n / 2 ** 20).toFixed(1)} MiB`;
}
