/**
 * `bonsai bench`: runs one of the benchmark programs under bench/ (they need the source tree:
 * they generate models and start child processes).
 */
import { UsageError } from "./args.ts";

export const BENCH_USAGE =
  `Usage: bonsai bench [--suite speed|concurrency|constrain|memory|fleet|http] [-- suite options]

Runs a benchmark on synthetic Bonsai-shaped models (generated once into models/) and prints a
table (and JSON). Figures are ratios within one run on this machine, not absolute promises.

Suites:
  speed        (default) prefill/decode tok/s, time to first token, load time, peak RSS for the
               1.7B and 4B shapes on 1 and all threads; memory-bandwidth roofline; FFI overhead;
               prefix-cache time to first token; attention alone. Options: --quick, --models 1.7b,4b,
               --type q1_0|q2_0|q2_0_g64 (weights; default q1_0), --threads 1,0, --prompt N,
               --decode N, --out PATH
  concurrency  aggregate tok/s with 1, 4, 16 and 50 requests at once (continuous batching)
  constrain    cost per token of the structured-output mask next to a decode step
  memory       peak RSS of a decode against the memory estimate (--shape 4b --ctx 4096)
  fleet        aggregate tok/s with 1, 2, 3 serve nodes in one MQTT share group (local
               mosquitto; the nodes share this machine's cores) and the broker overhead of a
               1-token request. Options: --nodes 1,2,3 --requests 24 --tokens 16 --shape tiny|1.7b
  http         HTTP adapter overhead per 1-token request against the scheduler alone, and the
               latency of each streamed chunk (--requests 200, --tokens 64, --model FILE)

Options:
  -s, --suite NAME   which benchmark (default speed)
  -h, --help         this text
Everything after the options (or after --) goes to the suite, e.g. 'bonsai bench -- --quick'.`;

const SUITES: Record<string, string> = {
  speed: "../bench/main.ts",
  concurrency: "../bench/concurrency.ts",
  constrain: "../bench/constrain.ts",
  memory: "../bench/memory_budget.ts",
  fleet: "../bench/fleet.ts",
  http: "../bench/http.ts",
};

/** Runs the command; returns the exit code. */
export async function benchCommand(args: string[]): Promise<number> {
  let rest = [...args];
  if (rest[0] === "-h" || rest[0] === "--help") {
    console.log(BENCH_USAGE);
    return 0;
  }
  let suite = "speed";
  if (rest[0] === "-s" || rest[0] === "--suite") {
    if (rest[1] === undefined) throw new UsageError("--suite needs a name");
    suite = rest[1];
    rest = rest.slice(2);
  } else if (rest[0]?.startsWith("--suite=")) {
    suite = rest[0].slice("--suite=".length);
    rest = rest.slice(1);
  }
  if (rest[0] === "--") rest = rest.slice(1);
  const script = SUITES[suite];
  if (!script) throw new UsageError(`--suite must be one of ${Object.keys(SUITES).join(", ")}, got '${suite}'`);
  const url = new URL(script, import.meta.url);
  if (url.protocol !== "file:") throw new Error("bench needs the source tree: run 'deno task bench' in a checkout");
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", url.pathname, ...rest],
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  });
  return (await child.output()).code;
}
