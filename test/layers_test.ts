/**
 * The import rules of the code base, checked on the real import graph:
 * - layers: kernels < runtime < adapters, devices < cli < mod.ts (the public API); nothing
 *   imports a layer above its own, and adapters/ and devices/ do not import each other;
 * - tools/ and bench/ (the tooling) may import anything below cli/, and each other (the
 *   benchmarks generate their models with tools/synth.ts); nothing else imports them except a
 *   cli/ command loading them lazily with a dynamic import();
 * - runtime/request.ts (the request vocabulary) imports nothing from runtime/;
 * - runtime/constrain/ imports nothing from runtime/ outside constrain/ except leaf modules
 *   (modules that import nothing from runtime/ themselves);
 * - product code (the layers) does not import test/ (the tooling may use its helpers);
 * - no import cycle (type-only imports count: they tie the modules' designs together).
 * Each problem names the importing and the imported file.
 */
import assert from "node:assert/strict";
import { dirname, join, normalize, relative } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
/** The product and tooling folders whose files are checked (test files excluded), and mod.ts. */
const SCANNED = ["kernels", "runtime", "adapters", "devices", "cli", "tools", "bench", "mod.ts", "internal.ts"];
/** Layer of each folder (and of mod.ts); the tooling is handled apart (see {@link edgeProblem}). */
const LAYER: Record<string, number> = {
  kernels: 0,
  runtime: 1,
  adapters: 2,
  devices: 2,
  cli: 3,
  "mod.ts": 4,
  "internal.ts": 4,
};
const TOOLING = new Set(["tools", "bench"]);

/**
 * Known violations in code other branches rework; each must say who removes it. An entry that
 * no longer matches an edge fails the test, so the list cannot rot.
 */
const ALLOWED: { from: string; to: string; why: string }[] = [];

/** One import of a file: the imported repository path and whether it is a dynamic import(). */
interface ImportEdge {
  to: string;
  dynamic: boolean;
}

/** Module graph: repository path to its local imports (npm:, node: and bare specifiers left out). */
type ImportGraph = Map<string, ImportEdge[]>;

/** Comments removed, so that imports quoted in JSDoc examples are not taken for imports. */
function stripComments(src: string): string {
  return src.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`\\])\/\/.*$/gm, "$1");
}

/** The relative specifiers `src` imports, re-exports or dynamically imports. */
function parseImports(src: string): { spec: string; dynamic: boolean }[] {
  const code = stripComments(src);
  const found: { spec: string; dynamic: boolean }[] = [];
  const statics = /(?:^|[;\n}])\s*(?:import|export)\s+(?:type\s+)?(?:[^;"'`]*?\s+from\s+)?["']([^"']+)["']/g;
  for (const m of code.matchAll(statics)) found.push({ spec: m[1], dynamic: false });
  for (const m of code.matchAll(/\bimport\s*\(\s*["']([^"']+)["']/g)) found.push({ spec: m[1], dynamic: true });
  return found.filter((i) => i.spec.startsWith("."));
}

async function* tsFiles(dir: string): AsyncGenerator<string> {
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory && entry.name !== "target" && entry.name !== "node_modules") yield* tsFiles(path);
    else if (entry.isFile && entry.name.endsWith(".ts") && !entry.name.endsWith("_test.ts")) yield path;
  }
}

/** The import graph of the scanned folders, paths relative to the repository root. */
async function repoGraph(): Promise<ImportGraph> {
  const graph: ImportGraph = new Map();
  for (const top of SCANNED) {
    const paths = top.endsWith(".ts") ? [join(ROOT, top)] : await Array.fromAsync(tsFiles(join(ROOT, top)));
    for (const path of paths) {
      const from = relative(ROOT, path);
      const edges = parseImports(await Deno.readTextFile(path)).map(({ spec, dynamic }) => ({
        to: normalize(join(dirname(from), spec)),
        dynamic,
      }));
      graph.set(from, edges);
    }
  }
  return graph;
}

const top = (path: string) => path.split("/")[0];
const inRuntime = (path: string) => top(path) === "runtime";
const inConstrain = (path: string) => path.startsWith("runtime/constrain/");

/** Whether a runtime module imports nothing from runtime/ (unknown modules are not leaves). */
function isRuntimeLeaf(graph: ImportGraph, path: string): boolean {
  const edges = graph.get(path);
  return edges !== undefined && !edges.some((e) => inRuntime(e.to));
}

/** What is wrong with the edge `from` -> `to`, if anything. */
function edgeProblem(graph: ImportGraph, from: string, edge: ImportEdge): string | undefined {
  const { to } = edge;
  const src = top(from);
  const dst = top(to);
  if (dst === "test") return TOOLING.has(src) ? undefined : "product code imports a test helper";
  if (from === "runtime/request.ts" && inRuntime(to)) return "the request vocabulary must import nothing from runtime/";
  if (inConstrain(from) && inRuntime(to) && !inConstrain(to) && !isRuntimeLeaf(graph, to)) {
    return "runtime/constrain/ may import only leaf modules from the rest of runtime/";
  }
  if (TOOLING.has(dst)) {
    if (TOOLING.has(src)) return undefined;
    if (src === "cli" && edge.dynamic) return undefined;
    return `${dst}/ may be loaded only lazily, by a cli/ command with import()`;
  }
  if (!(dst in LAYER)) return undefined; // package.json, node_modules data: not a layer
  if (TOOLING.has(src)) return LAYER[dst] >= LAYER.cli ? `${src}/ sits below cli/` : undefined;
  if (!(src in LAYER)) return undefined;
  if (LAYER[dst] > LAYER[src]) return `${src}/ imports the layer above it (${dst}/)`;
  if (LAYER[dst] === LAYER[src] && src !== dst) return `${src}/ and ${dst}/ are sibling layers`;
  return undefined;
}

/** The import cycles of `graph` (strongly connected components of more than one module, or self-imports). */
function importCycles(graph: ImportGraph): string[][] {
  // Tarjan's algorithm, recursive: the graph has a few hundred modules.
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const visit = (v: string) => {
    index.set(v, counter);
    low.set(v, counter++);
    stack.push(v);
    onStack.add(v);
    for (const { to } of graph.get(v) ?? []) {
      if (!graph.has(to)) continue;
      if (!index.has(to)) {
        visit(to);
        low.set(v, Math.min(low.get(v)!, low.get(to)!));
      } else if (onStack.has(to)) {
        low.set(v, Math.min(low.get(v)!, index.get(to)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      const selfLoop = (graph.get(v) ?? []).some((e) => e.to === v);
      if (scc.length > 1 || selfLoop) cycles.push(scc.sort());
    }
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);
  return cycles;
}

/** Every broken rule of `graph`, one line each, naming the files. */
function layerProblems(graph: ImportGraph, allowed = ALLOWED): string[] {
  const problems: string[] = [];
  const used = new Set<number>();
  for (const [from, edges] of graph) {
    for (const edge of edges) {
      const problem = edgeProblem(graph, from, edge);
      if (!problem) continue;
      const allow = allowed.findIndex((a) => a.from === from && a.to === edge.to);
      if (allow >= 0) {
        used.add(allow);
        continue;
      }
      problems.push(`${from} -> ${edge.to}: ${problem}`);
    }
  }
  allowed.forEach((a, i) => {
    if (!used.has(i)) problems.push(`allow-list entry ${a.from} -> ${a.to} matches no broken rule: remove it`);
  });
  for (const cycle of importCycles(graph)) problems.push(`import cycle: ${cycle.join(" <-> ")}`);
  return problems.sort();
}

function graphOf(edges: Record<string, (string | [string, "dynamic"])[]>): ImportGraph {
  const graph: ImportGraph = new Map();
  for (const [from, tos] of Object.entries(edges)) {
    graph.set(from, tos.map((t) => typeof t === "string" ? { to: t, dynamic: false } : { to: t[0], dynamic: true }));
  }
  return graph;
}

Deno.test("parseImports finds static, type-only, multi-line, re-export and dynamic imports, not comments", () => {
  const src = `/** import { x } from "./in_doc.ts"; */
import { a } from "./a.ts";
import type { B } from "../b.ts";
import {
  c,
  type D,
} from "./c/d.ts";
export { e } from "./e.ts";
export type { F } from "./f.ts";
import "./side_effect.ts";
import { parseArgs } from "node:util";
// import { g } from "./commented.ts";
const url = "https://example.com"; // a comment after a string with //
const m = await import("../lazy.ts");
`;
  assert.deepEqual(parseImports(src), [
    { spec: "./a.ts", dynamic: false },
    { spec: "../b.ts", dynamic: false },
    { spec: "./c/d.ts", dynamic: false },
    { spec: "./e.ts", dynamic: false },
    { spec: "./f.ts", dynamic: false },
    { spec: "./side_effect.ts", dynamic: false },
    { spec: "../lazy.ts", dynamic: true },
  ]);
});

Deno.test("layerProblems names each offending edge and cycle", () => {
  const graph = graphOf({
    "kernels/ffi.ts": [],
    "runtime/request.ts": ["runtime/rng.ts"],
    "runtime/rng.ts": [],
    "runtime/model.ts": ["kernels/ffi.ts", "adapters/stdin.ts", "runtime/request.ts"],
    "runtime/a.ts": ["runtime/b.ts"],
    "runtime/b.ts": ["runtime/a.ts"],
    "runtime/constrain/x.ts": ["runtime/rng.ts", "runtime/request.ts", "runtime/model.ts", "runtime/constrain/y.ts"],
    "runtime/constrain/y.ts": [],
    "adapters/stdin.ts": ["runtime/model.ts", "devices/budget.ts", "test/fixtures.ts"],
    "devices/budget.ts": ["runtime/rng.ts"],
    "cli/main.ts": ["adapters/stdin.ts", "tools/synth.ts", ["bench/main.ts", "dynamic"]],
    "cli/bench.ts": [["bench/main.ts", "dynamic"]],
    "tools/synth.ts": ["runtime/rng.ts", "tools/shapes.ts"],
    "tools/shapes.ts": [],
    "tools/demo.ts": ["cli/main.ts", "tools/synth.ts"],
    "bench/main.ts": ["tools/synth.ts", "test/json_schema_validator.ts", "runtime/rng.ts", "mod.ts"],
    "mod.ts": ["runtime/request.ts", "tools/synth.ts"],
  });
  assert.deepEqual(layerProblems(graph, [{ from: "tools/gone.ts", to: "cli/main.ts", why: "test" }]), [
    "adapters/stdin.ts -> devices/budget.ts: adapters/ and devices/ are sibling layers",
    "adapters/stdin.ts -> test/fixtures.ts: product code imports a test helper",
    "allow-list entry tools/gone.ts -> cli/main.ts matches no broken rule: remove it",
    "bench/main.ts -> mod.ts: bench/ sits below cli/",
    "cli/main.ts -> tools/synth.ts: tools/ may be loaded only lazily, by a cli/ command with import()",
    "import cycle: adapters/stdin.ts <-> runtime/model.ts",
    "import cycle: runtime/a.ts <-> runtime/b.ts",
    "mod.ts -> tools/synth.ts: tools/ may be loaded only lazily, by a cli/ command with import()",
    "runtime/constrain/x.ts -> runtime/model.ts: runtime/constrain/ may import only leaf modules from the rest of runtime/",
    "runtime/constrain/x.ts -> runtime/request.ts: runtime/constrain/ may import only leaf modules from the rest of runtime/",
    "runtime/model.ts -> adapters/stdin.ts: runtime/ imports the layer above it (adapters/)",
    "runtime/request.ts -> runtime/rng.ts: the request vocabulary must import nothing from runtime/",
    "tools/demo.ts -> cli/main.ts: tools/ sits below cli/",
  ]);
});

Deno.test("the code base keeps its layers and has no import cycle", async () => {
  const graph = await repoGraph();
  // The walk and the parser really see the code: a known edge of each kind is there.
  assert.ok(graph.get("runtime/sequence.ts")?.some((e) => e.to === "runtime/request.ts"));
  assert.ok(graph.get("runtime/constrain/request.ts")?.some((e) => e.to === "runtime/request.ts"));
  assert.ok(graph.get("cli/run.ts")?.some((e) => e.to === "adapters/stdin.ts"));
  assert.ok(graph.get("mod.ts")?.some((e) => e.to === "runtime/request.ts"));
  assert.ok(graph.get("bench/memory_budget.ts")?.some((e) => e.to === "runtime/model.ts" && e.dynamic));
  assert.equal(graph.has("runtime/request.ts"), true);
  assert.deepEqual(graph.get("runtime/request.ts"), []);
  assert.deepEqual(layerProblems(graph), []);
});
