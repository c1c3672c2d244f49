/**
 * The two ceilings of decode on this machine: memory read bandwidth (weights must stream from RAM
 * once per token) and kernel compute rate (weights per second of the model's weight format with the
 * matrix in cache, where memory cannot be the limit). Decode can go no faster than the lower of the two.
 */
import { Format, type FormatCode, type Kernels } from "../kernels/ffi.ts";

/** Block geometry of the weight formats the bench models use. */
export const BENCH_FORMATS = {
  q1_0: { code: Format.Q1_0, blockLen: 128, blockBytes: 18 },
  q2_0: { code: Format.Q2_0, blockLen: 128, blockBytes: 34 },
  q2_0_g64: { code: Format.Q2_0_G64, blockLen: 64, blockBytes: 18 },
} as const satisfies Record<string, { code: FormatCode; blockLen: number; blockBytes: number }>;

/** A weight type of the bench models. */
export type BenchType = keyof typeof BENCH_FORMATS;

/** Measured ceilings for one thread count. */
export interface Ceilings {
  threads: number;
  /** Best streaming read rate, GB/s (1e9 B/s). */
  readGBs: number;
  /** Matvec rate of the weight format on a cache-resident 2048 x 2048 matrix, Gweights/s. */
  computeGWs: number;
}

/** Measures both ceilings with `threads` pool threads (restores nothing; callers set threads). */
export function measureCeilings(k: Kernels, threads: number, type: BenchType = "q1_0"): Ceilings {
  const n = k.setThreads(threads);
  const readGBs = k.readBandwidth(512 * 1024 * 1024, 4);
  const [ne0, ne1] = [2048, 2048];
  const fmt = BENCH_FORMATS[type];
  const bytes = new Uint8Array((ne0 / fmt.blockLen) * fmt.blockBytes * ne1);
  let s = 12345;
  for (let i = 0; i < bytes.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    bytes[i] = s >>> 24;
  }
  for (let b = 0; b < bytes.length; b += fmt.blockBytes) {
    bytes[b] = 0x00;
    bytes[b + 1] = 0x24; // scale 2^-6
  }
  const t = k.tensorFromBytes(bytes, fmt.code, ne0, ne1);
  try {
    const x = new Float32Array(ne0).map((_, i) => Math.sin(i));
    const act = new Uint8Array(k.actBytes(ne0));
    k.quantizeAct(x, act);
    const out = new Float32Array(ne1);
    let best = Infinity;
    for (let rep = 0; rep < 7; rep++) {
      const iters = 50;
      const t0 = performance.now();
      for (let i = 0; i < iters; i++) k.matvec(t, act, out);
      best = Math.min(best, (performance.now() - t0) / iters);
    }
    return {
      threads: n,
      readGBs,
      computeGWs: (ne0 * ne1) / (best / 1000) / 1e9,
    };
  } finally {
    t.free();
  }
}
