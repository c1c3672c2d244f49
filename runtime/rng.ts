/**
 * A small seeded PRNG (xoshiro128**, seeded through splitmix32): deterministic across runs and
 * platforms, fast enough to generate hundreds of MB of synthetic weights.
 */

/** splitmix32 step: a well-mixed 32-bit hash of `x` (used for seeding and deriving sub-seeds). */
export function mix32(x: number): number {
  let z = (x + 0x9e3779b9) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** Seeded xoshiro128** generator. */
export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /** `seed` is any number (its low 32 bits and, for large seeds, the high bits are mixed in). */
  constructor(seed: number) {
    if (!Number.isFinite(seed)) {
      throw new RangeError(`Rng seed must be a finite number, got ${seed}`);
    }
    const lo = seed >>> 0;
    const hi = Math.floor(Math.abs(seed) / 4294967296) >>> 0;
    let x = mix32(lo ^ mix32(hi));
    this.s0 = x = mix32(x);
    this.s1 = x = mix32(x);
    this.s2 = x = mix32(x);
    this.s3 = mix32(x);
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1; // all-zero state is a fixed point
  }

  /** A generator with the given raw xoshiro128** state (for known-answer tests; not all zero). */
  static fromState(s0: number, s1: number, s2: number, s3: number): Rng {
    if (((s0 | s1 | s2 | s3) >>> 0) === 0) {
      throw new RangeError("xoshiro128** state must not be all zero");
    }
    const r = new Rng(0);
    r.s0 = s0 | 0;
    r.s1 = s1 | 0;
    r.s2 = s2 | 0;
    r.s3 = s3 | 0;
    return r;
  }

  /** Next uniformly distributed 32-bit unsigned integer. */
  nextU32(): number {
    const s1 = this.s1;
    const result = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
    const t = s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Next float uniform in [0, 1) (24 random bits, so exactly representable as float32 too). */
  nextFloat(): number {
    return (this.nextU32() >>> 8) / 16777216;
  }

  /** Fills `out` with random 32-bit words (the fast path for bulk random data). */
  fillU32(out: Uint32Array): void {
    for (let i = 0; i < out.length; i++) out[i] = this.nextU32();
  }

  /** Fills `out` with random bytes (little-endian bytes of successive `nextU32()` words). */
  fillBytes(out: Uint8Array): void {
    const n = out.length;
    const whole = n & ~3;
    let i = 0;
    for (; i < whole; i += 4) {
      const r = this.nextU32();
      out[i] = r;
      out[i + 1] = r >>> 8;
      out[i + 2] = r >>> 16;
      out[i + 3] = r >>> 24;
    }
    if (i < n) {
      let r = this.nextU32();
      for (; i < n; i++, r >>>= 8) out[i] = r;
    }
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
