import assert from "node:assert/strict";
import { AttentionOps, type AttentionShape } from "./attention_ops.ts";
import { KernelError, Kernels, kvRowBytes, KvType } from "./ffi.ts";

const k = Kernels.load();

function random(n: number, seed: number): Float32Array {
  let a = seed >>> 0;
  return new Float32Array(n).map(() => {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    return a / 2 ** 31 - 1;
  });
}

const shape: AttentionShape = {
  nHead: 4,
  nHeadKv: 2,
  headDim: 64,
  rmsEps: 1e-6,
  ropeBase: 1e6,
  yarnFactor: 4,
  yarnOrigCtx: 4096,
  maxContext: 8,
};

Deno.test("bound attention ops give the bits of the positional kernel calls", () => {
  const ops = new AttentionOps(k, shape);
  const { nHead, nHeadKv, headDim, rmsEps, ropeBase, yarnFactor, yarnOrigCtx } = shape;
  assert.deepEqual([ops.qDim, ops.kvDim], [nHead * headDim, nHeadKv * headDim]);
  const norms = { qNorm: random(headDim, 1), kNorm: random(headDim, 2) };
  for (const type of [KvType.F32, KvType.F16, KvType.Q8]) {
    const row = kvRowBytes(type, ops.kvDim);
    const layers = 2;
    const cache = () => ({
      keys: Array.from({ length: layers }, () => new Uint8Array(shape.maxContext * row)),
      values: Array.from({ length: layers }, () => new Uint8Array(shape.maxContext * row)),
      typeCode: type,
    });
    const [bound, direct] = [cache(), cache()];
    const nPos = 5;
    const qs: Float32Array[] = [];
    for (let p = 0; p < nPos; p++) {
      const [q, kk, v] = [random(ops.qDim, 10 + p), random(ops.kvDim, 20 + p), random(ops.kvDim, 30 + p)];
      const [q2, k2] = [q.slice(), kk.slice()];
      ops.qkRopeStore(q, kk, v, norms, bound, 1, p);
      k.qkRopeStore(
        q2,
        k2,
        v,
        norms.qNorm,
        norms.kNorm,
        nHead,
        nHeadKv,
        headDim,
        rmsEps,
        p,
        ropeBase,
        yarnFactor,
        yarnOrigCtx,
        direct.keys[1].subarray(p * row),
        direct.values[1].subarray(p * row),
        type,
      );
      assert.deepEqual(q, q2);
      qs.push(q);
    }
    assert.deepEqual(bound, direct);
    assert.ok(bound.keys[0].every((b) => b === 0), "only the given layer is written");

    const one = new Float32Array(ops.qDim);
    ops.attend(qs[nPos - 1], bound, 1, 1, nPos, one);
    const want = new Float32Array(ops.qDim);
    k.attention(
      qs[nPos - 1],
      direct.keys[1],
      direct.values[1],
      type,
      nHead,
      nHeadKv,
      headDim,
      nPos,
      ops.kvDim,
      want,
      new Float32Array(2 * nPos),
    );
    assert.deepEqual(one, want);
    const chunk = new Float32Array(3 * ops.qDim);
    ops.attend(Float32Array.from(qs.slice(2).flatMap((q) => [...q])), bound, 1, 3, nPos, chunk);
    assert.deepEqual(chunk.subarray(2 * ops.qDim), want, "the chunk's last row is the single-row result");
  }
});

Deno.test("bound attention ops name bad shapes and over-long contexts", () => {
  assert.throws(() => new AttentionOps(k, { ...shape, headDim: 0 }), /headDim must be a positive integer, got 0/);
  assert.throws(() => new AttentionOps(k, { ...shape, maxContext: 1.5 }), /maxContext/);
  const ops = new AttentionOps(k, shape);
  const row = kvRowBytes(KvType.F32, ops.kvDim);
  const kv = { keys: [new Uint8Array(16 * row)], values: [new Uint8Array(16 * row)], typeCode: KvType.F32 };
  const q = new Float32Array(ops.qDim);
  assert.throws(() => ops.attend(q, kv, 0, 1, 9, new Float32Array(ops.qDim)), KernelError);
  assert.throws(() => ops.attend(q, kv, 0, 1, 9, new Float32Array(ops.qDim)), /at most 8/);
});
