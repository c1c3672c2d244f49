/**
 * The hostile-input fuzz harness (issue 15): mutated model files through the loader, mutated
 * wire requests (JSON and CBOR) through the request parser and the scheduler, random grammars
 * and schemas through the constraint compiler and matcher, all in process on the micro model.
 * A case fails on a crash (an error that is not a specific, clean one), an INTERNAL error, or
 * going over the per-case time or memory limit. Seeded and bounded by count and time: the same
 * seed runs the same cases, and `--case I` replays one.
 *
 *   deno task fuzz [--seed N] [--cases N] [--time SECONDS] [--family gguf,wire,grammar]
 *                  [--case I] [--save DIR]
 *
 * A failing case is printed and, with `--save`, written as a fixture (JSON) that
 * tools/fuzz_test.ts replays from test/fuzz/ once copied there.
 *
 * A case that never returns (an endless synchronous loop) cannot be stopped in process: the
 * run then hangs, which the test runner's or CI's timeout reports.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { Model } from "../runtime/model.ts";
import { Scheduler } from "../runtime/scheduler.ts";
import { type GenerationRequest, RequestError } from "../runtime/request.ts";
import type { Tokenizer } from "../runtime/tokenizer.ts";
import { requestConstraint } from "../runtime/constrain/request.ts";
import { decodePayload, detectEncoding } from "../adapters/mqtt/codec.ts";
import { parseWireRequest } from "../adapters/request.ts";
import { microGguf } from "./micro_model.ts";
import { FuzzRng } from "./fuzz_rng.ts";
import { mutatedGguf } from "./fuzz_gguf.ts";
import { mutatedWire } from "./fuzz_wire.ts";
import { type ConstraintInput, randomConstraint } from "./fuzz_grammar.ts";

/** The kinds of input fuzzed. */
export type Family = "gguf" | "wire" | "grammar";
/** All families, in the order a run interleaves them. */
export const FAMILIES: readonly Family[] = ["gguf", "wire", "grammar"];

/** One input, replayable: how a fixture file stores it. */
export type FuzzInput =
  | { family: "gguf"; base64: string }
  | { family: "wire"; base64: string; contentType?: string }
  /** A wire payload given as UTF-8 text (fixtures are easier to read and edit so). */
  | { family: "wire"; text: string; contentType?: string }
  /** `follow`: a text whose tokens are fed to the constraint instead of random allowed ones. */
  | ({ family: "grammar"; follow?: string } & ConstraintInput);

/** Limits of one case. */
export const CASE_TIME_MS = 5000;
export const CASE_HEAP_BYTES = 512 * 1024 * 1024;

/** Options of {@link runFuzz}. */
export interface FuzzOptions {
  seed: number;
  /** Most cases to run. */
  cases: number;
  /** Stop starting new cases after this long. */
  timeMs: number;
  families?: readonly Family[];
  /** Run only this case index. */
  only?: number;
  log?: (line: string) => void;
}

/** A failed case. */
export interface FuzzFailure {
  index: number;
  problem: string;
  input: FuzzInput;
}

/** What a run did. */
export interface FuzzReport {
  seed: number;
  ran: Record<Family, number>;
  failures: FuzzFailure[];
  /** True when the time bound, not the count, ended the run. */
  outOfTime: boolean;
}

const b64 = (bytes: Uint8Array) => btoa(Array.from(bytes, (b) => String.fromCharCode(b)).join(""));
const unb64 = (text: string) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));

/** Shared state of a run: the micro model, loaded once, and a scratch file for mutants. */
export class FuzzContext {
  private constructor(
    readonly base: Uint8Array,
    readonly model: Model,
    readonly scheduler: Scheduler,
    readonly scratch: string,
  ) {}

  static async open(): Promise<FuzzContext> {
    const base = await microGguf();
    const scratch = await Deno.makeTempFile({ prefix: "bonsai-fuzz-", suffix: ".gguf" });
    await Deno.writeFile(scratch, base);
    const model = await Model.load(scratch);
    return new FuzzContext(base, model, new Scheduler(model, { contextSize: 128, parallel: 2 }), scratch);
  }

  get tokenizer(): Tokenizer {
    return this.model.tokenizer;
  }

  async close(): Promise<void> {
    this.model.close();
    await Deno.remove(this.scratch).catch(() => {});
  }
}

/**
 * How a case ended: `code` is "ok", a RequestError code, or "REFUSED" (a model file refused at
 * load with a clean error); `problem` is set when the code under test misbehaved.
 */
export interface Outcome {
  code: string;
  problem?: string;
}

const OK: Outcome = { code: "ok" };

/** The outcome of an error thrown for bad input: fine when it is a specific RequestError. */
function requestOutcome(e: unknown): Outcome {
  if (e instanceof RequestError) {
    return e.code === "INTERNAL" ? { code: e.code, problem: `INTERNAL: ${e.message}` } : { code: e.code };
  }
  return { code: "crash", problem: `crash: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}` };
}

/** Runs a request on the micro model (at most 4 tokens). */
async function runRequest(ctx: FuzzContext, req: GenerationRequest): Promise<Outcome> {
  try {
    req.maxTokens = Math.min(req.maxTokens ?? 2, 4);
    for await (const _ of ctx.scheduler.submit(req)) { /* drain */ }
    return OK;
  } catch (e) {
    return requestOutcome(e);
  }
}

async function checkGguf(ctx: FuzzContext, bytes: Uint8Array): Promise<Outcome> {
  const path = `${ctx.scratch}.case`;
  await Deno.writeFile(path, bytes);
  try {
    let model: Model;
    try {
      model = await Model.load(path);
    } catch (e) {
      const err = e as Error;
      if ((err.name === "GgufError" || err.name === "ModelConfigError") && err.message.includes(path)) {
        return { code: "REFUSED" };
      }
      return {
        code: "crash",
        problem: `load failed without a clean error naming the file: ${err.name}: ${err.message}`,
      };
    }
    // It loaded: then it must serve (a broken model must fail at load, not in every request).
    try {
      const s = new Scheduler(model, { contextSize: 64, parallel: 1 });
      for await (const _ of s.submit({ prompt: "hello", maxTokens: 2 })) { /* drain */ }
      return OK;
    } catch (e) {
      return { code: "crash", problem: `loaded, then a request failed: ${(e as Error).name}: ${(e as Error).message}` };
    } finally {
      model.close();
    }
  } finally {
    await Deno.remove(path).catch(() => {});
  }
}

async function checkWire(ctx: FuzzContext, payload: Uint8Array, contentType?: string): Promise<Outcome> {
  let req: GenerationRequest;
  try {
    const value = decodePayload(payload, detectEncoding(payload, contentType));
    req = parseWireRequest(value).request;
  } catch (e) {
    return requestOutcome(e);
  }
  return await runRequest(ctx, req);
}

/** Compiles a constraint, then follows up to 24 random allowed tokens through it. */
function checkConstraint(ctx: FuzzContext, input: ConstraintInput, rng: FuzzRng, follow?: string): Outcome {
  try {
    const make = requestConstraint(input);
    if (!make) return { code: "crash", problem: "no constraint was built" };
    const c = make(ctx.tokenizer);
    if (follow !== undefined) {
      for (const id of ctx.tokenizer.encode(follow)) {
        if (!c.allows(id)) return OK; // the text leaves the grammar: nothing more to check
        c.accept(id);
      }
      return OK;
    }
    const n = ctx.tokenizer.vocabSize;
    for (let step = 0; step < 24; step++) {
      const listed = c.candidates?.();
      const allowed = listed ? Array.from(listed) : [];
      if (!listed) {
        for (let id = 0; id < n; id++) if (!ctx.tokenizer.isEndOfGeneration(id) && c.allows(id)) allowed.push(id);
      }
      if (allowed.length === 0) {
        return c.canEnd()
          ? OK
          : { code: "crash", problem: "dead end: no token allowed and the output is not complete" };
      }
      if (c.canEnd() && rng.chance(0.2)) return OK;
      c.accept(rng.pick(allowed));
      if (c.isComplete?.()) return OK;
    }
    return OK;
  } catch (e) {
    return requestOutcome(e);
  }
}

/** Checks one input. */
export async function checkInput(ctx: FuzzContext, input: FuzzInput, rng = new FuzzRng(0, 0)): Promise<Outcome> {
  if (input.family === "gguf") return await checkGguf(ctx, unb64(input.base64));
  if (input.family === "wire") {
    const payload = "text" in input ? new TextEncoder().encode(input.text) : unb64(input.base64);
    return await checkWire(ctx, payload, input.contentType);
  }
  const constraint: ConstraintInput = "grammar" in input
    ? { grammar: input.grammar }
    : { jsonSchema: input.jsonSchema };
  return checkConstraint(ctx, constraint, rng, input.follow);
}

/** The input of case `index` of a run with `seed`. */
export async function makeInput(ctx: FuzzContext, family: Family, rng: FuzzRng): Promise<FuzzInput> {
  if (family === "gguf") return { family, base64: b64(await mutatedGguf(rng, ctx.base)) };
  if (family === "wire") {
    const w = mutatedWire(rng);
    return { family, base64: b64(w.payload), ...(w.contentType !== undefined ? { contentType: w.contentType } : {}) };
  }
  return { family, ...randomConstraint(rng) };
}

/** Runs one case under the time and memory limits. */
export async function runCase(ctx: FuzzContext, input: FuzzInput, rng = new FuzzRng(0, 0)): Promise<Outcome> {
  // Heap and array buffers (the matcher's transition tables are typed arrays).
  const used = () => {
    const m = Deno.memoryUsage();
    return m.heapUsed + m.external;
  };
  const heapBefore = used();
  const started = performance.now();
  const outcome = await checkInput(ctx, input, rng);
  const ms = performance.now() - started;
  if (outcome.problem) return outcome;
  if (ms > CASE_TIME_MS) {
    return { ...outcome, problem: `over the time limit: ${ms.toFixed(0)} ms (limit ${CASE_TIME_MS} ms)` };
  }
  const grown = used() - heapBefore;
  if (grown > CASE_HEAP_BYTES) {
    return { ...outcome, problem: `over the memory limit: memory grew ${(grown / 2 ** 20).toFixed(0)} MiB` };
  }
  return outcome;
}

/** Runs a seeded, bounded fuzz campaign. */
export async function runFuzz(opts: FuzzOptions): Promise<FuzzReport> {
  const families = opts.families ?? FAMILIES;
  const report: FuzzReport = { seed: opts.seed, ran: { gguf: 0, wire: 0, grammar: 0 }, failures: [], outOfTime: false };
  const ctx = await FuzzContext.open();
  const deadline = performance.now() + opts.timeMs;
  try {
    for (let index = 0; index < opts.cases; index++) {
      if (opts.only !== undefined && index !== opts.only) continue;
      if (performance.now() > deadline) {
        report.outOfTime = true;
        break;
      }
      const family = families[index % families.length];
      const rng = new FuzzRng(opts.seed, index);
      const input = await makeInput(ctx, family, rng);
      const { problem } = await runCase(ctx, input, rng);
      report.ran[family]++;
      if (problem) {
        report.failures.push({ index, problem, input });
        opts.log?.(`FAIL case ${index} (${family}): ${problem}`);
      }
    }
  } finally {
    await ctx.close();
  }
  return report;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      seed: { type: "string", default: "1" },
      cases: { type: "string", default: "3000" },
      time: { type: "string", default: "600" },
      family: { type: "string" },
      case: { type: "string" },
      save: { type: "string" },
    },
  });
  const families = values.family ? values.family.split(",") as Family[] : FAMILIES;
  for (const f of families) {
    if (!FAMILIES.includes(f)) throw new Error(`unknown family '${f}' (${FAMILIES.join(", ")})`);
  }
  const report = await runFuzz({
    seed: Number(values.seed),
    cases: Number(values.cases),
    timeMs: Number(values.time) * 1000,
    families,
    only: values.case === undefined ? undefined : Number(values.case),
    log: (line) => console.log(line),
  });
  if (values.save) {
    await Deno.mkdir(values.save, { recursive: true });
    for (const f of report.failures) {
      const file = `${values.save}/${f.input.family}-seed${report.seed}-case${f.index}.json`;
      await Deno.writeTextFile(file, JSON.stringify({ problem: f.problem, input: f.input }, null, 2) + "\n");
    }
  }
  const ran = Object.entries(report.ran).map(([k, v]) => `${k} ${v}`).join(", ");
  console.log(`fuzz seed ${report.seed}: ${ran}${report.outOfTime ? " (time bound reached)" : ""}`);
  console.log(
    `${
      Object.values(report.ran).reduce((a, b) => a + b, 0) - report.failures.length
    } passed, ${report.failures.length} failed`,
  );
  Deno.exit(report.failures.length > 0 ? 1 : 0);
}
