/**
 * Cost of constrained decoding per token, next to a decode step of the 1.7B shape.
 *
 * Mask cost: decoding with random logits over the real 151669-token Qwen3 vocabulary (the
 * model's own), each step timed twice on the same logits: the sampler alone, and the sampler
 * with the constraint (token trie lists in narrow states, lazy candidate checks in wide ones,
 * budget steering). The difference is the constraint's cost. Cold = a fresh matcher (its DFA
 * built as it goes), warm = the same schema again (transitions and lists cached), which is the
 * case of a controller sending the same schema every time.
 *
 * Decode step: unconstrained generation on the synthetic 1.7B model (all 28 layers by default,
 * `--layers N` for a cut-down file), ms per generated token.
 *
 * Usage: deno run -A bench/constrain.ts [--layers N] [--tokens N] [--threads N]
 */
import { parseArgs } from "node:util";
import { Model } from "../runtime/model.ts";
import { Scheduler } from "../runtime/scheduler.ts";
import { Sampler } from "../runtime/sampler.ts";
import { Rng } from "../runtime/rng.ts";
import type { Tokenizer } from "../runtime/tokenizer.ts";
import { jsonSchemaToGrammar } from "../runtime/constrain/json_schema.ts";
import { toolCallsGrammar } from "../runtime/constrain/tools.ts";
import { ByteMatcher } from "../runtime/constrain/matcher.ts";
import type { Grammar } from "../runtime/constrain/grammar.ts";
import { GrammarConstraint, tokenIndex } from "../runtime/constrain/token_constraint.ts";
import { TEST_SCHEMAS } from "../test/json_schema_validator.ts";
import { ensureModel } from "./models.ts";
import { synthesize } from "../tools/synth.ts";
import { SHAPES } from "../tools/synth_shapes.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    layers: { type: "string" },
    tokens: { type: "string", default: "32" },
    threads: { type: "string" },
  },
});

async function modelPath(): Promise<{ path: string; what: string }> {
  if (values.layers === undefined) return { path: await ensureModel("1.7b"), what: "1.7B shape, 28 layers" };
  const layers = Number(values.layers);
  const path = `models/bench-1.7b-${layers}l-q1_0.gguf`;
  try {
    await Deno.stat(path);
  } catch {
    await Deno.mkdir("models", { recursive: true });
    await synthesize({ shape: SHAPES["1.7b"], out: path, seed: 1, layers });
  }
  return { path, what: `1.7B shape cut to ${layers} layers` };
}

interface Costs {
  perToken: number[];
  baseline: number[];
  tokens: number;
}

/** Decodes one output with random logits; times the sampler with and without the constraint. */
function decodeTimed(tok: Tokenizer, matcher: ByteMatcher, seed: number, maxTokens: number, out: Costs): void {
  const c = new GrammarConstraint(matcher, tokenIndex(tok));
  const rng = new Rng(seed);
  const logits = new Float32Array(tok.vocabSize);
  const plain = new Sampler({ temperature: 0.5, topK: 20, topP: 0.85, seed });
  const constrained = new Sampler({ temperature: 0.5, topK: 20, topP: 0.85, seed });
  const ends = [tok.eosTokenId];
  for (let step = 0; step < maxTokens; step++) {
    for (let i = 0; i < logits.length; i++) logits[i] = rng.nextFloat() * 8;
    let t = performance.now();
    plain.sample(logits);
    out.baseline.push(performance.now() - t);
    t = performance.now();
    c.setRemaining(maxTokens - step);
    const listed = c.candidates();
    const only = listed && [...listed, ...(c.canEnd() ? ends : [])];
    const id = constrained.sample(logits, [], (id) => tok.isEndOfGeneration(id) ? c.canEnd() : c.allows(id), only);
    const done = tok.isEndOfGeneration(id);
    if (!done) c.accept(id);
    out.perToken.push(performance.now() - t);
    out.tokens++;
    if (done || c.isComplete()) return;
  }
}

function stats(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  return { mean, p50: s[Math.floor(s.length / 2)], p95: s[Math.floor(s.length * 0.95)], max: s[s.length - 1] };
}

const { path, what } = await modelPath();
const model = await Model.load(path, { threads: values.threads ? Number(values.threads) : undefined });
const tok = model.tokenizer;
let t0 = performance.now();
tokenIndex(tok);
console.log(
  `token index + trie for ${tok.vocabSize} tokens: ${(performance.now() - t0).toFixed(0)} ms (once per process)`,
);

const grammars: [string, () => Grammar][] = [
  ...Object.entries(TEST_SCHEMAS).map(([name, s]) =>
    [`schema ${name}`, () => jsonSchemaToGrammar(s)] as [string, () => Grammar]
  ),
  [
    "tool calls",
    () =>
      toolCallsGrammar([{
        name: "set_speed",
        parameters: { type: "object", properties: { mps: { type: "number" } }, required: ["mps"] },
      }, { name: "stop" }]),
  ],
];
console.log("\nconstraint cost per token (ms; sampler time with the constraint minus without, same logits):");
console.log("(negative: in narrow states the sampler scans the trie's short list instead of the vocabulary)");
console.log(
  "grammar              run   tokens  mean   p50    p95    max    | with constraint mean, p95 | sampler alone mean",
);
const overall: number[] = [];
const overallWith: number[] = [];
const overallPlain: number[] = [];
for (const [name, make] of grammars) {
  t0 = performance.now();
  const matcher = new ByteMatcher(make());
  const compileMs = performance.now() - t0;
  for (const run of ["cold", "warm"]) {
    const costs: Costs = { perToken: [], baseline: [], tokens: 0 };
    for (let seed = 1; seed <= 3; seed++) decodeTimed(tok, matcher, seed, 120, costs);
    const extra = costs.perToken.map((t, i) => t - costs.baseline[i]);
    if (run === "warm") {
      overall.push(...extra);
      overallWith.push(...costs.perToken);
      overallPlain.push(...costs.baseline);
    }
    const s = stats(extra);
    const w = stats(costs.perToken);
    console.log(
      `${name.padEnd(20)} ${run}  ${String(costs.tokens).padStart(6)}  ${s.mean.toFixed(2).padStart(5)}  ${
        s.p50.toFixed(2).padStart(5)
      }  ` +
        `${s.p95.toFixed(2).padStart(5)}  ${s.max.toFixed(2).padStart(5)}  | ${w.mean.toFixed(2)}, ${
          w.p95.toFixed(2)
        } | ` +
        `${stats(costs.baseline).mean.toFixed(2)}` +
        (run === "cold" ? `   (compile ${compileMs.toFixed(1)} ms)` : ""),
    );
  }
}

const nTokens = Number(values.tokens);
const scheduler = new Scheduler(model, { contextSize: 256 });
let decodeMs = 0;
for await (
  const ev of scheduler.submit({ prompt: "Describe the route.", maxTokens: nTokens, sampling: { temperature: 0 } })
) {
  if (ev.type === "done") decodeMs = ev.stats.decodeMs / Math.max(1, ev.stats.completionTokens - 1);
}
const warm = stats(overall);
const withC = stats(overallWith);
console.log(
  `\ndecode step (${what}, ${model.kernels.threads()} threads, unconstrained): ${decodeMs.toFixed(1)} ms/token`,
);
console.log(
  `constrained pick (sampler + constraint), warm, all grammars: mean ${withC.mean.toFixed(2)} ms, p95 ${
    withC.p95.toFixed(2)
  } ms ` +
    `= ${(100 * withC.mean / decodeMs).toFixed(1)}% of a decode step; sampler alone ${
      stats(overallPlain).mean.toFixed(2)
    } ms; ` +
    `constraint minus sampler alone: mean ${warm.mean.toFixed(2)} ms, p95 ${warm.p95.toFixed(2)} ms`,
);
model.close();
