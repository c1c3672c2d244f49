/**
 * The fuzz harness's random choices: one seeded stream per case, derived from the run's seed
 * and the case's index, so any case is replayed alone with `--seed S --case I`.
 *
 * @module
 */
import { mix32, Rng } from "../runtime/rng.ts";

/** Random helpers over the project's seeded PRNG. */
export class FuzzRng {
  private readonly rng: Rng;

  constructor(seed: number, index: number) {
    this.rng = new Rng(mix32(seed >>> 0) ^ mix32((index + 0x9e3779b9) >>> 0));
  }

  /** Uniform in [0, 1). */
  float(): number {
    return this.rng.nextFloat();
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.rng.nextFloat() * n);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.rng.nextFloat() < p;
  }

  /** One element of `items`. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
}
