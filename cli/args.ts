/**
 * Flag parsing shared by the CLI commands (node:util parseArgs, since JSR's @std/cli is not
 * reachable from here), with errors that say which flag is wrong.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { KV_TYPE_CODE, type KvTypeName } from "../kernels/ffi.ts";

/** A mistake on the command line: printed with the command's usage, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Parses `args` strictly (unknown flags are errors). */
export function parseFlags<T extends NonNullable<ParseArgsConfig["options"]>>(
  args: string[],
  options: T,
  allowPositionals = false,
) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/** A flag's value as a number within bounds, or undefined when absent. */
export function numberFlag(
  name: string,
  value: string | undefined,
  opts: { integer?: boolean; min?: number; max?: number } = {},
): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (
    value.trim() === "" || !Number.isFinite(n) ||
    (opts.integer && !Number.isInteger(n))
  ) {
    throw new UsageError(
      `--${name} expects ${opts.integer ? "an integer" : "a number"}, got '${value}'`,
    );
  }
  if (opts.min !== undefined && n < opts.min) {
    throw new UsageError(`--${name} must be >= ${opts.min}, got ${n}`);
  }
  if (opts.max !== undefined && n > opts.max) {
    throw new UsageError(`--${name} must be <= ${opts.max}, got ${n}`);
  }
  return n;
}

/** `--kv-type`: f16 (default), f32 or q8 (the names the kernel binding owns). */
export function kvTypeFlag(value: string | undefined): KvTypeName {
  const t = value ?? "f16";
  if (!Object.hasOwn(KV_TYPE_CODE, t)) {
    throw new UsageError(`--kv-type must be ${Object.keys(KV_TYPE_CODE).join(", ")}; got '${t}'`);
  }
  return t as KvTypeName;
}

/** `--overflow`: what a full KV slot does, error (default) or slide. */
export function overflowFlag(value: string | undefined): "error" | "slide" {
  const o = value ?? "error";
  if (o !== "error" && o !== "slide") {
    throw new UsageError(`--overflow must be error or slide, got '${o}'`);
  }
  return o;
}

/** Parses a size such as `1.5G`, `800M`, `512MiB` or a plain byte count. */
export function parseByteSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$/i.exec(text);
  if (!m) {
    throw new RangeError(
      `not a size: '${text}' (use e.g. 512M, 1.5G or a byte count)`,
    );
  }
  const scale = {
    "": 1,
    k: 2 ** 10,
    m: 2 ** 20,
    g: 2 ** 30,
    t: 2 ** 40,
  }[m[2].toLowerCase() as "" | "k" | "m" | "g" | "t"];
  return Math.round(Number(m[1]) * scale);
}

/** A size flag (`--max-memory 1.5G`) in bytes, or undefined when absent. */
export function byteSizeFlag(
  name: string,
  value: string | undefined,
): number | undefined {
  if (value === undefined) return undefined;
  try {
    return parseByteSize(value);
  } catch (e) {
    throw new UsageError(`--${name}: ${(e as Error).message}`);
  }
}
