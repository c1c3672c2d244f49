/**
 * Finding the compiled kernel library (`libbonsai_kernels.so` / `.dylib` / `bonsai_kernels.dll`).
 *
 * Order: `$BONSAI_KERNELS`; next to the executable (plain name, then the arch-suffixed name that
 * `deno task compile` writes into `dist/`); in a compiled executable, the copy embedded with
 * `--include`, extracted to a cache directory; otherwise `kernels/target/release/` of this checkout.
 * @module
 */

import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Env, extractKernelLibrary, kernelCacheDir } from "./extract.ts";

/** Options for {@link kernelLibraryCandidates}; each defaults to the running process's value. */
export interface LocateOptions {
  /** Path of the running executable (default `Deno.execPath()`). */
  execPath?: string;
  /** URL of this module (default `import.meta.url`); `target/release/` is resolved against it. */
  moduleUrl?: string;
  /** Environment (default `Deno.env`); `BONSAI_KERNELS` names an explicit library file. */
  env?: Env;
  /** Operating system (default `Deno.build.os`), which picks the file name. */
  os?: typeof Deno.build.os;
  /** CPU architecture (default `Deno.build.arch`), which picks the embedded and suffixed names. */
  arch?: string;
  /** Running as a `deno compile` executable (default `Deno.build.standalone`). */
  standalone?: boolean;
}

/** The library's file name on `os`. */
export function kernelLibraryFileName(
  os: typeof Deno.build.os = Deno.build.os,
): string {
  if (os === "darwin") return "libbonsai_kernels.dylib";
  if (os === "windows") return "bonsai_kernels.dll";
  return "libbonsai_kernels.so";
}

/** `libbonsai_kernels.so` -> `libbonsai_kernels-aarch64.so`: the name used beside a per-arch binary. */
export function archLibraryFileName(os: typeof Deno.build.os, arch: string): string {
  const name = kernelLibraryFileName(os);
  const dot = name.lastIndexOf(".");
  return `${name.slice(0, dot)}-${arch}${name.slice(dot)}`;
}

/**
 * Where `deno task compile` stages the library it embeds, relative to the repository root
 * (one directory per target, so cross builds never overwrite each other's copy).
 */
export function embeddedLibraryRelPath(os: typeof Deno.build.os, arch: string): string {
  return `dist/embed/${os}-${arch}/${kernelLibraryFileName(os)}`;
}

function envGet(opts: LocateOptions, key: string): string | undefined {
  if (opts.env) return opts.env[key];
  try {
    return Deno.env.get(key);
  } catch {
    return undefined; // no --allow-env: behave as if unset
  }
}

function execPathOf(opts: LocateOptions): string | undefined {
  if (opts.execPath !== undefined) return opts.execPath;
  try {
    return Deno.execPath();
  } catch {
    return undefined;
  }
}

function isStandalone(opts: LocateOptions): boolean {
  return opts.standalone ?? (Deno.build as { standalone?: boolean }).standalone ?? false;
}

/**
 * Real files to try, in order: `$BONSAI_KERNELS` (an explicit file), next to the executable
 * (plain, then arch-suffixed name), then `kernels/target/release/` of this checkout (not in a
 * compiled executable, whose module files live in a virtual file system).
 */
export function kernelLibraryCandidates(opts: LocateOptions = {}): string[] {
  const os = opts.os ?? Deno.build.os;
  const name = kernelLibraryFileName(os);
  const out: string[] = [];
  const explicit = envGet(opts, "BONSAI_KERNELS");
  if (explicit) out.push(explicit);
  const exec = execPathOf(opts);
  if (exec) {
    out.push(join(dirname(exec), name));
    out.push(join(dirname(exec), archLibraryFileName(os, opts.arch ?? Deno.build.arch)));
  }
  const moduleUrl = opts.moduleUrl ?? import.meta.url;
  if (moduleUrl.startsWith("file:") && !isStandalone(opts)) {
    out.push(fileURLToPath(new URL(`./target/release/${name}`, moduleUrl)));
  }
  return out;
}

/** Path of the copy a compiled executable embeds (meaningful only when standalone). */
export function embeddedLibraryPath(opts: LocateOptions = {}): string | undefined {
  const moduleUrl = opts.moduleUrl ?? import.meta.url;
  if (!moduleUrl.startsWith("file:")) return undefined;
  const rel = embeddedLibraryRelPath(opts.os ?? Deno.build.os, opts.arch ?? Deno.build.arch);
  return fileURLToPath(new URL(`../${rel}`, moduleUrl));
}

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/**
 * The first candidate that exists; in a compiled executable without one, the embedded copy
 * extracted to the cache directory; otherwise an error listing every path tried. A
 * `BONSAI_KERNELS` that names a missing file is an error of its own (an explicit choice must not
 * silently fall back).
 */
export function findKernelLibrary(opts: LocateOptions = {}): string {
  const explicit = envGet(opts, "BONSAI_KERNELS");
  if (explicit && !isFile(explicit)) {
    throw new Error(`BONSAI_KERNELS names ${explicit}, which is not a file`);
  }
  const tried = kernelLibraryCandidates(opts);
  const found = tried.find(isFile);
  if (found) return found;
  if (isStandalone(opts)) {
    const embedded = embeddedLibraryPath(opts);
    let bytes: Uint8Array | undefined;
    try {
      if (embedded) bytes = Deno.readFileSync(embedded);
    } catch {
      bytes = undefined; // this build embeds none
    }
    if (bytes) {
      const env = opts.env ?? undefined;
      return extractKernelLibrary(bytes, {
        cacheDir: kernelCacheDir(env),
        baseName: kernelLibraryFileName(opts.os ?? Deno.build.os),
      });
    }
    tried.push(`${embedded ?? "(embedded copy)"} (not embedded in this build)`);
  }
  throw new Error(
    `kernel library not found; tried:\n  ${tried.join("\n  ")}\n` +
      (isStandalone(opts)
        ? "place libbonsai_kernels.so next to the executable (or set BONSAI_KERNELS to the library file)"
        : "run `deno task build` (or set BONSAI_KERNELS to the library file)"),
  );
}
