/**
 * Token sampling: greedy, temperature, top-k, top-p, min-p and repetition penalties, driven by
 * its own seeded PRNG so that the same seed always picks the same tokens.
 */
import { Rng } from "./rng.ts";
import type { SamplingOptions } from "./request.ts";

// Re-exported where the sampler's users have always found it; the type lives in the request vocabulary.
export type { SamplingOptions };

/** Settings with every field resolved. */
export type ResolvedSampling = Required<SamplingOptions>;

/** Defaults when neither the request nor the model file says otherwise. */
export const DEFAULT_SAMPLING: ResolvedSampling = {
  temperature: 0,
  topK: 20,
  topP: 0.85,
  minP: 0,
  repeatPenalty: 1,
  presencePenalty: 0,
  frequencyPenalty: 0,
  repeatLastN: 64,
  seed: 0,
};

/** Checks ranges and fills defaults; throws a RangeError naming the bad field. */
export function resolveSampling(
  opts: SamplingOptions,
  defaults: ResolvedSampling = DEFAULT_SAMPLING,
): ResolvedSampling {
  const r = { ...defaults };
  for (const [key, value] of Object.entries(opts) as [keyof SamplingOptions, unknown][]) {
    if (value === undefined) continue;
    if (!(key in DEFAULT_SAMPLING)) throw new RangeError(`unknown sampling option '${key}'`);
    if (typeof value !== "number" || !Number.isFinite(value)) {
      throw new RangeError(`sampling option ${key} must be a finite number, got ${JSON.stringify(value)}`);
    }
    r[key] = value;
  }
  const check = (ok: boolean, what: string) => {
    if (!ok) throw new RangeError(what);
  };
  check(r.temperature >= 0, `temperature must be >= 0, got ${r.temperature}`);
  check(Number.isInteger(r.topK) && r.topK >= 0, `top_k must be an integer >= 0, got ${r.topK}`);
  check(r.topP > 0 && r.topP <= 1, `top_p must be in (0, 1], got ${r.topP}`);
  check(r.minP >= 0 && r.minP < 1, `min_p must be in [0, 1), got ${r.minP}`);
  check(r.repeatPenalty > 0, `repeat_penalty must be > 0, got ${r.repeatPenalty}`);
  check(
    Number.isInteger(r.repeatLastN) && r.repeatLastN >= 0,
    `repeat_last_n must be an integer >= 0, got ${r.repeatLastN}`,
  );
  check(
    Number.isInteger(r.seed) && r.seed >= 0 && r.seed <= 0xffffffff,
    `seed must be an integer in 0..2^32-1, got ${r.seed}`,
  );
  return r;
}

/** Picks tokens from logits; one per sequence (it keeps the PRNG state). */
export class Sampler {
  readonly options: ResolvedSampling;
  private readonly rng: Rng;
  private scratch?: Float32Array;

  /**
   * `vocabSize`: ids from this one on are never picked. Real models pad their embedding (and
   * so the logits) past the tokenizer's vocabulary; those rows have no token to decode.
   */
  constructor(opts: SamplingOptions = {}, defaults?: ResolvedSampling, private readonly vocabSize = Infinity) {
    this.options = resolveSampling(opts, defaults);
    this.rng = new Rng(this.options.seed);
  }

  /**
   * Picks the next token. `history` is the sequence so far (prompt and output), read by the
   * penalties. `allowed`, when given, masks out every token for which it returns false.
   * `only`, when given, lists the tokens to consider (the others are masked out): a constraint
   * that knows its few allowed tokens saves the scan of the whole vocabulary.
   */
  sample(
    logits: Float32Array,
    history: ArrayLike<number> = [],
    allowed?: (id: number) => boolean,
    only?: ArrayLike<number>,
  ): number {
    const o = this.options;
    const all = this.penalize(logits, history);
    // A view without the padding rows: neither the scans nor `only` can reach them.
    const scores = all.length > this.vocabSize ? all.subarray(0, this.vocabSize) : all;
    if (o.temperature === 0) return argmax(scores, allowed, only);

    const candidates = topCandidates(scores, o.topK, allowed, only);
    if (candidates.length === 0) throw new Error("no token is allowed at this point");
    // Probabilities in f64, in a fixed order (by logit, then id), so the draw is reproducible.
    const maxLogit = scores[candidates[0]];
    let probs = candidates.map((id) => Math.exp((scores[id] - maxLogit) / o.temperature));
    let total = probs.reduce((a, b) => a + b, 0);
    probs = probs.map((p) => p / total);
    let keep = candidates.length;
    if (o.minP > 0) {
      const floor = o.minP * probs[0];
      const firstBelow = probs.findIndex((p) => p < floor);
      if (firstBelow > 0) keep = firstBelow;
    }
    if (o.topP < 1) {
      let cum = 0;
      for (let i = 0; i < keep; i++) {
        cum += probs[i];
        if (cum >= o.topP) {
          keep = i + 1;
          break;
        }
      }
    }
    total = 0;
    for (let i = 0; i < keep; i++) total += probs[i];
    let u = this.rng.nextFloat() * total;
    for (let i = 0; i < keep; i++) {
      u -= probs[i];
      if (u < 0) return candidates[i];
    }
    return candidates[keep - 1];
  }

  /**
   * The logits with the repetition penalties applied to the recently seen tokens: the logits
   * themselves when no penalty is on, else a copy (kept between calls to avoid allocating).
   */
  private penalize(logits: Float32Array, history: ArrayLike<number>): Float32Array {
    const o = this.options;
    if (o.repeatLastN === 0 || (o.repeatPenalty === 1 && o.presencePenalty === 0 && o.frequencyPenalty === 0)) {
      return logits;
    }
    if (this.scratch?.length !== logits.length) this.scratch = new Float32Array(logits.length);
    const out = this.scratch;
    out.set(logits);
    const counts = new Map<number, number>();
    for (let i = Math.max(0, history.length - o.repeatLastN); i < history.length; i++) {
      counts.set(history[i], (counts.get(history[i]) ?? 0) + 1);
    }
    for (const [id, count] of counts) {
      if (id < 0 || id >= logits.length) continue;
      let l = logits[id];
      l = l > 0 ? l / o.repeatPenalty : l * o.repeatPenalty;
      l -= o.presencePenalty + o.frequencyPenalty * count;
      out[id] = l;
    }
    return out;
  }
}

/** Most likely allowed token; the lowest id wins a tie. */
function argmax(scores: Float32Array, allowed?: (id: number) => boolean, only?: ArrayLike<number>): number {
  let best = -1;
  let bestLogit = -Infinity;
  const n = only ? only.length : scores.length;
  for (let i = 0; i < n; i++) {
    const id = only ? only[i] : i;
    if (id >= scores.length) continue;
    const l = scores[id];
    if ((l > bestLogit || (l === bestLogit && id < best)) && (!allowed || allowed(id))) {
      best = id;
      bestLogit = l;
    }
  }
  if (best < 0) throw new Error("no token is allowed at this point");
  return best;
}

/** Allowed token ids sorted by logit (descending, ties by id); at most k of them when k > 0. */
function topCandidates(
  scores: Float32Array,
  k: number,
  allowed?: (id: number) => boolean,
  only?: ArrayLike<number>,
): number[] {
  const better = (a: number, b: number) => scores[a] > scores[b] || (scores[a] === scores[b] && a < b);
  const n = only ? only.length : scores.length;
  if (k === 0 || k >= scores.length) {
    const ids: number[] = [];
    for (let i = 0; i < n; i++) {
      const id = only ? only[i] : i;
      if (id < scores.length && (!allowed || allowed(id))) ids.push(id);
    }
    return ids.sort((a, b) => (better(a, b) ? -1 : better(b, a) ? 1 : 0));
  }
  // Insertion into a short sorted list; the k-th logit rejects almost every token with one
  // comparison, which keeps a full-vocabulary scan well under a millisecond.
  const top: number[] = [];
  let floor = -Infinity;
  for (let j = 0; j < n; j++) {
    const id = only ? only[j] : j;
    if (id >= scores.length) continue;
    const l = scores[id];
    if (l < floor) continue;
    if (top.length === k && !better(id, top[k - 1])) continue;
    if (allowed && !allowed(id)) continue;
    let i = top.length === k ? k - 1 : top.length;
    while (i > 0 && better(id, top[i - 1])) {
      top[i] = top[i - 1];
      i--;
    }
    top[i] = id;
    if (top.length === k) floor = scores[top[k - 1]];
  }
  return top;
}
