/**
 * Finding the compiled kernel library (`libbonsai_kernels.so` / `.dylib` / `bonsai_kernels.dll`).
 * @module
 */

import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** Options for {@link kernelLibraryCandidates}; each defaults to the running process's value. */
export interface LocateOptions {
  /** Path of the running executable (default `Deno.execPath()`). */
  execPath?: string;
  /** URL of this module (default `import.meta.url`); `target/release/` is resolved against it. */
  moduleUrl?: string;
  /** Environment (default `Deno.env`); `BONSAI_KERNELS` names an explicit library file. */
  env?: Record<string, string | undefined>;
  /** Operating system (default `Deno.build.os`), which picks the file name. */
  os?: typeof Deno.build.os;
}

/** The library's file name on `os`. */
export function kernelLibraryFileName(
  os: typeof Deno.build.os = Deno.build.os,
): string {
  if (os === "darwin") return "libbonsai_kernels.dylib";
  if (os === "windows") return "bonsai_kernels.dll";
  return "libbonsai_kernels.so";
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

/**
 * Where to look for the library, in order: `$BONSAI_KERNELS` (an explicit file), next to the
 * executable (for compiled single-binary deployments), then `kernels/target/release/` of this checkout.
 */
export function kernelLibraryCandidates(opts: LocateOptions = {}): string[] {
  const name = kernelLibraryFileName(opts.os ?? Deno.build.os);
  const out: string[] = [];
  const explicit = envGet(opts, "BONSAI_KERNELS");
  if (explicit) out.push(explicit);
  const exec = execPathOf(opts);
  if (exec) out.push(join(dirname(exec), name));
  const moduleUrl = opts.moduleUrl ?? import.meta.url;
  if (moduleUrl.startsWith("file:")) {
    out.push(fileURLToPath(new URL(`./target/release/${name}`, moduleUrl)));
  }
  return out;
}

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/**
 * The first candidate that exists; otherwise an error listing every path tried. A `BONSAI_KERNELS`
 * that names a missing file is an error of its own (an explicit choice must not silently fall back).
 */
export function findKernelLibrary(opts: LocateOptions = {}): string {
  const explicit = envGet(opts, "BONSAI_KERNELS");
  if (explicit && !isFile(explicit)) {
    throw new Error(`BONSAI_KERNELS names ${explicit}, which is not a file`);
  }
  const tried = kernelLibraryCandidates(opts);
  const found = tried.find(isFile);
  if (found) return found;
  throw new Error(
    `kernel library not found; tried:\n  ${tried.join("\n  ")}\n` +
      "run `deno task build` (or set BONSAI_KERNELS to the library file)",
  );
}
