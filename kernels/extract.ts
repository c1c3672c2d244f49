/**
 * Extraction of a kernel library embedded in a compiled `bonsai` executable. Files embedded with
 * `deno compile --include` live in a virtual file system that `dlopen` cannot see, so the bytes
 * are written once to a real file in a cache directory, named by content hash (two versions never
 * clash, a re-run reuses the file), with an atomic temp-file-then-rename write (a crash or a
 * concurrent start never leaves a half-written library under the final name).
 * @module
 */

import { createHash } from "node:crypto";
import { join } from "node:path";

/** Environment lookups; defaults to `Deno.env` (missing permission reads as unset). */
export type Env = Record<string, string | undefined>;

function envGet(env: Env | undefined, key: string): string | undefined {
  if (env) return env[key];
  try {
    return Deno.env.get(key);
  } catch {
    return undefined;
  }
}

/**
 * The cache directory: `$BONSAI_CACHE_DIR`, else `$XDG_CACHE_HOME/bonsai`, else
 * `$HOME/.cache/bonsai`. Throws if none of them is set.
 */
export function kernelCacheDir(env?: Env): string {
  const explicit = envGet(env, "BONSAI_CACHE_DIR");
  if (explicit) return explicit;
  const xdg = envGet(env, "XDG_CACHE_HOME");
  if (xdg) return join(xdg, "bonsai");
  const home = envGet(env, "HOME");
  if (home) return join(home, ".cache", "bonsai");
  throw new Error(
    "no cache directory to extract the kernel library to: set BONSAI_CACHE_DIR (or XDG_CACHE_HOME or HOME), " +
      "or place the library next to the executable",
  );
}

/** First 16 hex digits of the SHA-256 of `bytes`. */
export function contentHash(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex").slice(0, 16);
}

/** `libbonsai_kernels.so` + hash -> `libbonsai_kernels-<hash>.so`. */
export function extractedFileName(baseName: string, hash: string): string {
  const dot = baseName.lastIndexOf(".");
  return dot > 0 ? `${baseName.slice(0, dot)}-${hash}${baseName.slice(dot)}` : `${baseName}-${hash}`;
}

function sameContent(path: string, bytes: Uint8Array, hash: string): boolean {
  try {
    const existing = Deno.readFileSync(path);
    return existing.length === bytes.length && contentHash(existing) === hash;
  } catch {
    return false;
  }
}

/**
 * Writes `bytes` (a library) to `cacheDir` under a content-hashed name and returns the path; an
 * existing identical file is reused. Errors name the directory and how to fix it.
 */
export function extractKernelLibrary(
  bytes: Uint8Array,
  opts: { cacheDir: string; baseName: string },
): string {
  const hash = contentHash(bytes);
  const target = join(opts.cacheDir, extractedFileName(opts.baseName, hash));
  if (sameContent(target, bytes, hash)) return target;
  const fail = (what: string, e: unknown): never => {
    throw new Error(
      `cannot extract the embedded kernel library: ${what} ${opts.cacheDir} (${(e as Error).message}); ` +
        "set BONSAI_CACHE_DIR to a writable directory, or place the library next to the executable",
    );
  };
  try {
    Deno.mkdirSync(opts.cacheDir, { recursive: true, mode: 0o700 });
  } catch (e) {
    fail("cannot create the cache directory", e);
  }
  const temp = `${target}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  try {
    Deno.writeFileSync(temp, bytes, { mode: 0o755 });
    Deno.renameSync(temp, target);
  } catch (e) {
    try {
      Deno.removeSync(temp);
    } catch { /* never created */ }
    fail("cannot write to the cache directory", e);
  }
  return target;
}
