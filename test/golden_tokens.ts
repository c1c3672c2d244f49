/**
 * Greedy and sampled token streams of the synthetic models under a fixed set of requests and
 * scheduler settings: the cases that `golden_tokens_test.ts` compares against the streams
 * recorded in `test/golden/tokens.json` (written by `deno run -A test/golden_tokens.ts --write`
 * before a refactor, so "behaviour unchanged" is checked bit for bit afterwards).
 */
import { Model } from "../runtime/model.ts";
import { Scheduler, type SchedulerOptions } from "../runtime/scheduler.ts";
import type { GenerationRequest } from "../runtime/request.ts";
import { synthModel } from "./fixtures.ts";
import type { SynthOptions } from "../tools/synth.ts";

/** One recorded case: a model, scheduler settings and requests run one after another. */
interface GoldenCase {
  name: string;
  model: Omit<SynthOptions, "out">;
  scheduler: SchedulerOptions;
  requests: GenerationRequest[];
}

const PROMPTS: GenerationRequest[] = [
  {
    prompt: "Report the battery level.",
    maxTokens: 24,
    sampling: { temperature: 0 },
  },
  {
    prompt: "Plan a path to the door.",
    maxTokens: 24,
    sampling: { temperature: 0.8, topK: 40, topP: 0.9, seed: 77 },
  },
  {
    system: "You are a robot arm.",
    prompt: "Open the gripper",
    maxTokens: 16,
    sampling: { temperature: 0.6, minP: 0.05, repeatPenalty: 1.3, seed: 3 },
  },
];

const CONSTRAINED: GenerationRequest[] = [
  {
    prompt: "Give the pose as JSON.",
    maxTokens: 48,
    sampling: { temperature: 0.7, seed: 5 },
    jsonSchema: {
      type: "object",
      properties: { x: { type: "number" }, ok: { type: "boolean" } },
      required: ["x", "ok"],
    },
  },
  {
    prompt: "yes or no?",
    maxTokens: 8,
    sampling: { temperature: 1, seed: 9 },
    grammar: 'root ::= "yes" | "no"',
  },
  {
    prompt: "Stop the robot.",
    maxTokens: 64,
    sampling: { temperature: 0.5, seed: 11 },
    tools: [{
      name: "stop",
      description: "stop all motors",
      parameters: {
        type: "object",
        properties: { now: { type: "boolean" } },
        required: ["now"],
      },
    }],
    toolChoice: "required",
  },
];

/** Every recorded case. */
export const GOLDEN_CASES: GoldenCase[] = [
  {
    name: "q1_0 f16",
    model: { shape: "tiny", seed: 1 },
    scheduler: { parallel: 2, contextSize: 256 },
    requests: PROMPTS,
  },
  {
    name: "q1_0 constrained",
    model: { shape: "tiny", seed: 1 },
    scheduler: { parallel: 2, contextSize: 256 },
    requests: CONSTRAINED,
  },
  {
    name: "q1_0 q8 kv",
    model: { shape: "tiny", seed: 1 },
    scheduler: { parallel: 1, contextSize: 256, kvType: "q8" },
    requests: PROMPTS,
  },
  {
    name: "q1_0 f32 kv",
    model: { shape: "tiny", seed: 1 },
    scheduler: { parallel: 1, contextSize: 256, kvType: "f32" },
    requests: PROMPTS,
  },
  {
    name: "q1_0 slide",
    model: { shape: "tiny", seed: 1 },
    scheduler: { parallel: 1, contextSize: 48, overflow: "slide", keep: 8 },
    requests: [{
      prompt: "Count the steps.",
      maxTokens: 100,
      sampling: { temperature: 0.9, seed: 21 },
    }],
  },
  {
    name: "q1_0 yarn slide",
    model: { shape: "tiny", seed: 4, yarn: 4 },
    scheduler: {
      parallel: 1,
      contextSize: 48,
      overflow: "slide",
      keep: 8,
      kvType: "q8",
    },
    requests: [{
      prompt: "Count the steps.",
      maxTokens: 100,
      sampling: { temperature: 0.9, seed: 21 },
    }],
  },
  {
    name: "q2_0",
    model: { shape: "tiny", seed: 2, type: "q2_0" },
    scheduler: { parallel: 2, contextSize: 256 },
    requests: PROMPTS,
  },
  {
    name: "q2_0_g64",
    model: { shape: "tiny", seed: 3, type: "q2_0_g64" },
    scheduler: { parallel: 2, contextSize: 256 },
    requests: PROMPTS,
  },
];

/** Runs one case: the token ids of each request, in order. */
export async function runGoldenCase(c: GoldenCase): Promise<number[][]> {
  const model = await Model.load(await synthModel(c.model), { threads: 2 });
  try {
    const scheduler = new Scheduler(model, c.scheduler);
    const streams: number[][] = [];
    for (const req of c.requests) {
      const tokens: number[] = [];
      for await (const ev of scheduler.submit(req)) {
        if (ev.type === "token" && ev.token >= 0) tokens.push(ev.token);
      }
      streams.push(tokens);
    }
    return streams;
  } finally {
    model.close();
  }
}

/** Where the recorded streams live. */
export const GOLDEN_FILE = new URL("./golden/tokens.json", import.meta.url);

if (import.meta.main) {
  const out: Record<string, number[][]> = {};
  for (const c of GOLDEN_CASES) {
    out[c.name] = await runGoldenCase(c);
    console.log(c.name, out[c.name].map((s) => s.length).join(","));
  }
  if (Deno.args.includes("--write")) {
    await Deno.writeTextFile(
      GOLDEN_FILE,
      JSON.stringify(out, null, 0).replaceAll("],[", "],\n[") + "\n",
    );
  } else console.log(JSON.stringify(out));
}
