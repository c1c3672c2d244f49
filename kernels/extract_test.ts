import assert from "node:assert/strict";
import { join } from "node:path";
import { contentHash, extractedFileName, extractKernelLibrary, kernelCacheDir } from "./extract.ts";
import { embeddedLibraryPath, embeddedLibraryRelPath, findKernelLibrary, kernelLibraryCandidates } from "./locate.ts";
import { Kernels } from "./ffi.ts";
import { pathToFileURL } from "node:url";

const realLibrary = findKernelLibrary({ standalone: false });

Deno.test("cache dir: BONSAI_CACHE_DIR, then XDG_CACHE_HOME/bonsai, then ~/.cache/bonsai", () => {
  assert.equal(kernelCacheDir({ BONSAI_CACHE_DIR: "/c", XDG_CACHE_HOME: "/x", HOME: "/h" }), "/c");
  assert.equal(kernelCacheDir({ XDG_CACHE_HOME: "/x", HOME: "/h" }), "/x/bonsai");
  assert.equal(kernelCacheDir({ HOME: "/h" }), "/h/.cache/bonsai");
  assert.throws(() => kernelCacheDir({}), /set BONSAI_CACHE_DIR/);
});

Deno.test("extract: content-hashed name, reused when identical, a new file for new bytes", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const a = new Uint8Array([1, 2, 3]);
    const p1 = extractKernelLibrary(a, { cacheDir: join(dir, "deep", "cache"), baseName: "libk.so" });
    assert.equal(p1, join(dir, "deep", "cache", extractedFileName("libk.so", contentHash(a))));
    assert.match(p1, /libk-[0-9a-f]{16}\.so$/);
    assert.deepEqual(Deno.readFileSync(p1), a);
    const mtime = Deno.statSync(p1).mtime;
    assert.equal(extractKernelLibrary(a, { cacheDir: join(dir, "deep", "cache"), baseName: "libk.so" }), p1);
    assert.deepEqual(Deno.statSync(p1).mtime, mtime, "identical bytes are not rewritten");
    const p2 = extractKernelLibrary(new Uint8Array([1, 2, 4]), {
      cacheDir: join(dir, "deep", "cache"),
      baseName: "libk.so",
    });
    assert.notEqual(p2, p1);
    // no temp files left behind
    assert.deepEqual(
      [...Deno.readDirSync(join(dir, "deep", "cache"))].map((e) => e.name).sort(),
      [
        p1.split("/").pop(),
        p2.split("/").pop(),
      ].sort(),
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("extract: a corrupted cached copy is replaced", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const bytes = new Uint8Array([9, 8, 7, 6]);
    const p = extractKernelLibrary(bytes, { cacheDir: dir, baseName: "libk.so" });
    Deno.writeFileSync(p, new Uint8Array([9, 8]));
    assert.equal(extractKernelLibrary(bytes, { cacheDir: dir, baseName: "libk.so" }), p);
    assert.deepEqual(Deno.readFileSync(p), bytes);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("extract: an unwritable cache dir is a clear error naming it", () => {
  // Tests run as root, where chmod does not stop writes: a directory under a regular file cannot exist.
  const dir = Deno.makeTempDirSync();
  try {
    const file = join(dir, "not-a-dir");
    Deno.writeTextFileSync(file, "x");
    const cacheDir = join(file, "cache");
    assert.throws(
      () => extractKernelLibrary(new Uint8Array([1]), { cacheDir, baseName: "libk.so" }),
      (e: unknown) =>
        e instanceof Error && e.message.includes(cacheDir) && e.message.includes("BONSAI_CACHE_DIR") &&
        e.message.includes("next to the executable"),
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

/** A fake compiled layout: `<root>/kernels/locate.ts` and `<root>/dist/embed/<os>-<arch>/lib...`. */
function fakeCompiledTree(withEmbedded: boolean): { root: string; moduleUrl: string; execPath: string } {
  const root = Deno.makeTempDirSync();
  Deno.mkdirSync(join(root, "kernels"));
  Deno.mkdirSync(join(root, "bin"));
  if (withEmbedded) {
    const rel = embeddedLibraryRelPath(Deno.build.os, Deno.build.arch);
    Deno.mkdirSync(join(root, rel, ".."), { recursive: true });
    Deno.copyFileSync(realLibrary, join(root, rel));
  }
  return {
    root,
    moduleUrl: pathToFileURL(join(root, "kernels", "locate.ts")).href,
    execPath: join(root, "bin", "bonsai"),
  };
}

Deno.test("locate: a compiled executable extracts its embedded library, which then loads and runs", () => {
  const t = fakeCompiledTree(true);
  try {
    const cache = join(t.root, "cache");
    const opts = { standalone: true, moduleUrl: t.moduleUrl, execPath: t.execPath, env: { BONSAI_CACHE_DIR: cache } };
    assert.ok(!kernelLibraryCandidates(opts).some((p) => p.includes("target/release")));
    assert.equal(embeddedLibraryPath(opts), join(t.root, embeddedLibraryRelPath(Deno.build.os, Deno.build.arch)));
    const path = findKernelLibrary(opts);
    assert.ok(path.startsWith(cache + "/"), path);
    const k = Kernels.load(path);
    try {
      assert.ok(k.version() > 0);
      assert.ok(k.setThreads(1) === 1);
    } finally {
      k.close();
    }
    assert.equal(findKernelLibrary(opts), path, "second start reuses the extracted file");
  } finally {
    Deno.removeSync(t.root, { recursive: true });
  }
});

Deno.test("locate: a library next to the executable wins over the embedded copy", () => {
  const t = fakeCompiledTree(true);
  try {
    const beside = join(t.root, "bin", `libbonsai_kernels-${Deno.build.arch}.so`);
    Deno.copyFileSync(realLibrary, beside);
    // the cache dir is unusable: proving nothing is extracted
    const env = { BONSAI_CACHE_DIR: join(t.execPath, "nope") };
    assert.equal(findKernelLibrary({ standalone: true, moduleUrl: t.moduleUrl, execPath: t.execPath, env }), beside);
    const plain = join(t.root, "bin", "libbonsai_kernels.so");
    Deno.copyFileSync(realLibrary, plain);
    assert.equal(findKernelLibrary({ standalone: true, moduleUrl: t.moduleUrl, execPath: t.execPath, env }), plain);
  } finally {
    Deno.removeSync(t.root, { recursive: true });
  }
});

Deno.test("locate: read-only root with no writable cache is a clear error; no embedded copy says so", () => {
  const t = fakeCompiledTree(true);
  try {
    const blocker = join(t.root, "file");
    Deno.writeTextFileSync(blocker, "");
    const env = { BONSAI_CACHE_DIR: join(blocker, "bonsai") };
    assert.throws(
      () => findKernelLibrary({ standalone: true, moduleUrl: t.moduleUrl, execPath: t.execPath, env }),
      new RegExp(`cannot extract the embedded kernel library: .*${join(blocker, "bonsai")}`),
    );
  } finally {
    Deno.removeSync(t.root, { recursive: true });
  }
  const bare = fakeCompiledTree(false);
  try {
    assert.throws(
      () => findKernelLibrary({ standalone: true, moduleUrl: bare.moduleUrl, execPath: bare.execPath, env: {} }),
      /not embedded in this build[\s\S]*next to the executable/,
    );
  } finally {
    Deno.removeSync(bare.root, { recursive: true });
  }
});
