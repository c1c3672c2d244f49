import assert from "node:assert/strict";
import { actBytes, Format, KernelError, Kernels, kvRowBytes, KvType, kvTypeCode } from "./ffi.ts";
import { findKernelLibrary, kernelLibraryCandidates } from "./locate.ts";

const k = Kernels.load();

/** Deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Random Q1_0 rows with scales 0x2000..0x2fff (about 0.008..0.1). */
function randomQ1(ne0: number, ne1: number, r: () => number): Uint8Array {
  const bytes = new Uint8Array((ne0 / 128) * 18 * ne1);
  for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(r() * 256);
  for (let b = 0; b < bytes.length / 18; b++) {
    const h = 0x2000 + Math.floor(r() * 0x1000);
    bytes[b * 18] = h & 0xff;
    bytes[b * 18 + 1] = h >> 8;
  }
  return bytes;
}

/** Reads the dequantised activation back out of an act buffer (layout documented in src/act.rs). */
function actValues(act: Uint8Array, n: number): Float64Array {
  const nb = Math.ceil(n / 32);
  const view = new DataView(act.buffer, act.byteOffset, act.byteLength);
  const offQ = Math.ceil((nb * 4) / 32) * 32;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const d = view.getFloat32(Math.floor(i / 32) * 4, true);
    out[i] = d * view.getInt8(offQ + i);
  }
  return out;
}

Deno.test("library loads and reports its ISAs", () => {
  assert.equal(k.version(), 1);
  const avail = k.isaAvailable();
  for (const isa of k.isaActive()) {
    assert.ok(avail.includes(isa), `${isa} active but not available`);
  }
  assert.ok(k.threads() >= 1);
});

Deno.test("the prompt GEMM path follows the active ISAs", () => {
  const best = k.isaAvailable();
  k.forceIsa([]);
  assert.equal(k.gemmPath(), null, "the scalar reference has no GEMM");
  k.forceIsa(best);
  // the environment can turn the GEMM off or ask for the AVX-VNNI variant (A/B runs)
  const off = !!Deno.env.get("BONSAI_NO_GEMM") && Deno.env.get("BONSAI_NO_GEMM") !== "0" ||
    Deno.env.get("BONSAI_GEMM") === "off";
  const ymm = Deno.env.get("BONSAI_GEMM") === "avx_vnni";
  const want = off
    ? null
    : best.includes("avx512_vnni") && !ymm
    ? "avx512_vnni"
    : best.includes("avx_vnni")
    ? "avx_vnni"
    : best.includes("neon_dotprod")
    ? "neon_dotprod"
    : null;
  assert.equal(k.gemmPath(), want);
  if (best.includes("avx_vnni")) {
    k.forceIsa(["avx2", "f16c", "avx_vnni"]);
    assert.equal(k.gemmPath(), off ? null : "avx_vnni");
    k.forceIsa(["avx2", "f16c"]);
    assert.equal(k.gemmPath(), null, "an AVX2-only machine runs the lookup tables");
  }
  k.forceIsa(best);
});

Deno.test("act layout size agrees with the library", () => {
  for (const n of [1, 31, 32, 33, 128, 2048, 2560, 9728, 12288]) {
    assert.equal(actBytes(n), Number(k.lib.bk_act_bytes(BigInt(n))), `n=${n}`);
  }
});

Deno.test("Q1_0 matvec matches a TypeScript reference", () => {
  const r = rng(42);
  const [ne0, ne1] = [512, 37];
  const bytes = randomQ1(ne0, ne1, r);
  const t = k.tensorFromBytes(bytes, Format.Q1_0, ne0, ne1);
  const x = new Float32Array(ne0).map(() => r() * 2 - 1);
  const act = new Uint8Array(k.actBytes(ne0));
  k.quantizeAct(x, act);
  const xq = actValues(act, ne0);
  for (let i = 0; i < ne0; i++) {
    assert.ok(
      Math.abs(xq[i] - x[i]) < 0.01,
      "activation quantisation error too large",
    );
  }
  const out = new Float32Array(ne1);
  const ref = new Float32Array(ne1);
  k.matvec(t, act, out);
  k.matvecRef(t, act, ref);
  assert.deepEqual(
    out,
    ref,
    "SIMD/threaded matvec must equal the scalar reference bit for bit",
  );
  for (let row = 0; row < ne1; row++) {
    let want = 0, mag = 0;
    for (let j = 0; j < ne0; j++) {
      const blk = row * (ne0 / 128) * 18 + Math.floor(j / 128) * 18;
      const d = halfToFloat(bytes[blk] | (bytes[blk + 1] << 8));
      const bit = (bytes[blk + 2 + Math.floor((j % 128) / 8)] >> (j % 8)) & 1;
      const p = (bit ? d : -d) * xq[j];
      want += p;
      mag += Math.abs(p);
    }
    assert.ok(
      Math.abs(out[row] - want) <= 1e-5 * mag + 1e-6,
      `row ${row}: ${out[row]} vs ${want}`,
    );
  }
  // the scalar path, forced, gives the same bits; then restore the best ISA
  const best = k.isaAvailable();
  k.forceIsa([]);
  assert.deepEqual(k.isaActive(), []);
  const scalar = new Float32Array(ne1);
  k.matvec(t, act, scalar);
  k.forceIsa(best);
  assert.deepEqual(scalar, ref);
  // matmul of two tokens == two matvecs; matvecMulti == separate matvecs
  const acts = new Uint8Array(2 * t.actBytes);
  acts.set(act, 0);
  acts.set(act, t.actBytes);
  const mm = new Float32Array(2 * ne1);
  k.matmul(t, acts, 2, t.actBytes, mm, ne1);
  assert.deepEqual(mm.subarray(0, ne1), ref);
  assert.deepEqual(mm.subarray(ne1), ref);
  const a = new Float32Array(ne1), b = new Float32Array(ne1);
  k.matvecMulti([t, t], act, [a, b]);
  assert.deepEqual(a, ref);
  assert.deepEqual(b, ref);
  const pa = new Float32Array(ne1), pb = new Float32Array(ne1);
  const prepared = k.prepareMatvecMulti([t, t], [pa, pb]);
  prepared(act);
  assert.deepEqual(pa, ref);
  assert.deepEqual(pb, ref);
  assert.throws(() => prepared(new Uint8Array(8)), /act buffer has 8 bytes/);
  // embedding lookup
  const row0 = new Float32Array(ne0);
  k.dequantRow(t, 0, row0);
  assert.equal(Math.abs(row0[0]), halfToFloat(bytes[0] | (bytes[1] << 8)));
  t.free();
  assert.throws(() => k.matvec(t, act, out), KernelError);
});

Deno.test("bad format and bad shape give KernelErrors naming the problem", () => {
  assert.throws(
    () => k.tensorFromBytes(new Uint8Array(18), 7, 128, 1),
    (e: unknown) => e instanceof KernelError && /format code 7/.test(e.message),
  );
  assert.throws(
    () => k.tensorFromBytes(new Uint8Array(18), Format.Q1_0, 100, 1),
    (e: unknown) =>
      e instanceof KernelError &&
      /multiple of the Q1_0 block size 128/.test(e.message),
  );
  assert.throws(() => k.forceIsa(["sse9"]), KernelError);
  assert.throws(
    () => k.ropeNeox(new Float32Array(8), 1, 8, 3, 0, 1e6),
    (e: unknown) => e instanceof KernelError && /n_rot/.test(e.message),
  );
});

Deno.test("mapping a file; a tensor beyond its end is a clear error", () => {
  const path = Deno.makeTempFileSync({ suffix: ".bin" });
  try {
    const data = randomQ1(256, 4, rng(5));
    const file = new Uint8Array(64 + data.length);
    file.set(data, 64);
    Deno.writeFileSync(path, file);
    const map = k.openMap(path);
    assert.equal(map.size, file.length);
    const t = k.tensor(map, 64, Format.Q1_0, 256, 4);
    const copy = k.tensorFromBytes(data, Format.Q1_0, 256, 4);
    const x = new Float32Array(256).map((_, i) => Math.sin(i));
    const act = new Uint8Array(actBytes(256));
    k.quantizeAct(x, act);
    const o1 = new Float32Array(4), o2 = new Float32Array(4);
    k.matvec(t, act, o1);
    k.matvec(copy, act, o2);
    assert.deepEqual(o1, o2);
    assert.throws(
      () => k.tensor(map, 65, Format.Q1_0, 256, 4),
      (e: unknown) =>
        e instanceof KernelError && /beyond the end/.test(e.message) &&
        e.message.includes(path),
    );
    map.close();
    k.matvec(t, act, o1); // the tensor keeps the mapping alive
    assert.deepEqual(o1, o2);
    t.free();
    copy.free();
  } finally {
    Deno.removeSync(path);
  }
  assert.throws(
    () => k.openMap("/nonexistent/dir/model.gguf"),
    (e: unknown) =>
      e instanceof KernelError &&
      e.message.includes("/nonexistent/dir/model.gguf"),
  );
});

Deno.test("small ops", () => {
  const x = new Float32Array([1, -2, 3, 4]);
  const out = new Float32Array(4);
  k.rmsnorm(x, null, out, 0);
  const rms = Math.sqrt((1 + 4 + 9 + 16) / 4);
  out.forEach((v, i) => assert.ok(Math.abs(v - x[i] / rms) < 1e-6));
  const s = new Float32Array([0, Math.log(3)]);
  k.softmax(s);
  assert.ok(Math.abs(s[0] - 0.25) < 1e-6 && Math.abs(s[1] - 0.75) < 1e-6);
  const sum = new Float32Array([1, 2]);
  k.add(sum, new Float32Array([3, 4]));
  assert.deepEqual(sum, new Float32Array([4, 6]));
  // one position: attention returns v exactly (softmax weight 1)
  const q = new Float32Array(8).fill(0.5);
  const kv = new Uint8Array(8 * 4);
  k.storeKv(new Float32Array([1, 2, 3, 4, 5, 6, 7, 8]), kv, 0);
  const att = new Float32Array(8);
  k.attention(q, kv, kv, 0, 1, 1, 8, 1, 8, att, new Float32Array(2));
  assert.deepEqual(att, new Float32Array([1, 2, 3, 4, 5, 6, 7, 8]));
  // 2 heads of 8 need 16 floats of q and out: the size check must refuse this call
  assert.throws(
    () => k.attention(q, kv, kv, 0, 2, 1, 8, 1, 8, att, new Float32Array(2)),
    KernelError,
  );
  // n_head not a multiple of n_head_kv: the library's own check
  assert.throws(
    () =>
      k.attention(
        new Float32Array(24),
        new Uint8Array(64),
        new Uint8Array(64),
        0,
        3,
        2,
        8,
        1,
        16,
        new Float32Array(24),
        new Float32Array(2),
      ),
    /n_head_kv/,
  );
});

Deno.test("kernelLibraryCandidates order and findKernelLibrary error", () => {
  const c = kernelLibraryCandidates({
    execPath: "/opt/bonsai/bin/bonsai",
    moduleUrl: "file:///src/repo/kernels/ffi.ts",
    env: { BONSAI_KERNELS: "/custom/libk.so" },
    os: "linux",
  });
  assert.deepEqual(c, [
    "/custom/libk.so",
    "/opt/bonsai/bin/libbonsai_kernels.so",
    `/opt/bonsai/bin/libbonsai_kernels-${Deno.build.arch}.so`,
    "/src/repo/kernels/target/release/libbonsai_kernels.so",
  ]);
  const mac = kernelLibraryCandidates({
    execPath: "/a/b",
    moduleUrl: "file:///r/kernels/locate.ts",
    env: {},
    os: "darwin",
  });
  assert.deepEqual(mac, [
    "/a/libbonsai_kernels.dylib",
    `/a/libbonsai_kernels-${Deno.build.arch}.dylib`,
    "/r/kernels/target/release/libbonsai_kernels.dylib",
  ]);
  assert.throws(
    () =>
      findKernelLibrary({
        execPath: "/nowhere/x",
        moduleUrl: "file:///nowhere/kernels/locate.ts",
        env: {},
      }),
    (e: unknown) =>
      e instanceof Error &&
      e.message.includes("/nowhere/libbonsai_kernels.so") &&
      e.message.includes("deno task build"),
  );
  assert.throws(
    () => findKernelLibrary({ env: { BONSAI_KERNELS: "/nope.so" } }),
    /BONSAI_KERNELS names \/nope.so/,
  );
  assert.ok(findKernelLibrary().endsWith("libbonsai_kernels.so"));
});

Deno.test("q8 KV cache: 34 bytes per 32 elements, attention close to f32, errors named", () => {
  const r = rng(7);
  const [nHead, nHeadKv, headDim, nKv] = [4, 2, 64, 19];
  const kvDim = nHeadKv * headDim;
  assert.equal(kvRowBytes(KvType.Q8, kvDim), (kvDim / 32) * 34);
  assert.throws(() => kvRowBytes(KvType.Q8, 33), /multiple of 32/);
  const q = new Float32Array(nHead * headDim).map(() => r() * 2 - 1);
  const kf = new Float32Array(nKv * kvDim).map(() => r() * 2 - 1);
  const vf = new Float32Array(nKv * kvDim).map(() => r() * 2 - 1);
  const run = (type: number) => {
    const rb = kvRowBytes(type, kvDim);
    const kb = new Uint8Array(nKv * rb), vb = new Uint8Array(nKv * rb);
    for (let p = 0; p < nKv; p++) {
      k.storeKv(
        kf.subarray(p * kvDim, (p + 1) * kvDim),
        kb.subarray(p * rb),
        type,
      );
      k.storeKv(
        vf.subarray(p * kvDim, (p + 1) * kvDim),
        vb.subarray(p * rb),
        type,
      );
    }
    const out = new Float32Array(nHead * headDim);
    k.attention(
      q,
      kb,
      vb,
      type,
      nHead,
      nHeadKv,
      headDim,
      nKv,
      kvDim,
      out,
      new Float32Array(2 * nKv),
    );
    return out;
  };
  const exact = run(KvType.F32);
  const q8 = run(KvType.Q8);
  let maxErr = 0;
  for (let i = 0; i < exact.length; i++) {
    maxErr = Math.max(maxErr, Math.abs(exact[i] - q8[i]));
  }
  assert.ok(maxErr < 0.02, `q8 attention error ${maxErr}`);
  assert.ok(maxErr > 0, "q8 must actually quantise");
  const dst = new Uint8Array(34);
  assert.throws(
    () => k.storeKv(new Float32Array(20), dst, KvType.Q8),
    /multiple of 32/,
  );
  assert.throws(
    () =>
      k.attention(
        q,
        dst,
        dst,
        KvType.Q8,
        1,
        1,
        48,
        1,
        48,
        new Float32Array(48),
        new Float32Array(1),
      ),
    /multiples of 32/,
  );
});

Deno.test("read bandwidth probe gives a positive rate", () => {
  const gbs = k.readBandwidth(8 << 20, 2);
  assert.ok(gbs > 0 && Number.isFinite(gbs));
});

Deno.test("fused decode ops give the same bits as the single ops they replace", () => {
  const k = Kernels.load();
  let seed = 7;
  const rand = (n: number) =>
    Float32Array.from({ length: n }, () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 4 - 2);
  const [nHead, nHeadKv, headDim, pos] = [8, 2, 64, 37];
  const kvDim = nHeadKv * headDim;
  for (const kvType of [0, 1, 2]) {
    const q = rand(nHead * headDim), kk = rand(kvDim), v = rand(kvDim);
    const qNorm = rand(headDim), kNorm = rand(headDim);
    const slot = kvRowBytes(kvType, kvDim);
    // One by one.
    const q1 = q.slice(), k1 = kk.slice(), kd1 = new Uint8Array(slot), vd1 = new Uint8Array(slot);
    k.rmsnormHeads(q1, qNorm, nHead, headDim, 1e-6);
    k.rmsnormHeads(k1, kNorm, nHeadKv, headDim, 1e-6);
    k.ropeNeox(q1, nHead, headDim, headDim, pos, 1e6, 4, 8192);
    k.ropeNeox(k1, nHeadKv, headDim, headDim, pos, 1e6, 4, 8192);
    k.storeKv(k1, kd1, kvType);
    k.storeKv(v, vd1, kvType);
    // Fused.
    const q2 = q.slice(), k2 = kk.slice(), kd2 = new Uint8Array(slot), vd2 = new Uint8Array(slot);
    k.qkRopeStore(q2, k2, v, qNorm, kNorm, nHead, nHeadKv, headDim, 1e-6, pos, 1e6, 4, 8192, kd2, vd2, kvType);
    assert.deepEqual(q2, q1);
    assert.deepEqual(kd2, kd1);
    assert.deepEqual(vd2, vd1);
  }
  const x = rand(512), w = rand(512);
  const h1 = new Float32Array(512), a1 = new Uint8Array(k.actBytes(512));
  k.rmsnorm(x, w, h1, 1e-6);
  k.quantizeAct(h1, a1);
  const h2 = new Float32Array(512), a2 = new Uint8Array(k.actBytes(512));
  k.rmsnormQuantize(x, w, h2, 1e-6, a2);
  assert.deepEqual(h2, h1);
  assert.deepEqual(a2, a1);
  assert.throws(() => k.rmsnormQuantize(x, w, new Float32Array(10), 1e-6, a2), /rmsnormQuantize/);
  k.close();
});

Deno.test("attentionRows: a prompt chunk gives each row's single-row attention bits; bad calls named", () => {
  const [nHead, nHeadKv, headDim, nKv, nRows] = [4, 2, 64, 90, 23];
  const kvDim = nHeadKv * headDim;
  const next = rng(77);
  const cache = (): Uint8Array => {
    const bytes = new Uint8Array(nKv * kvDim * 2);
    const row = new Float32Array(kvDim);
    for (let p = 0; p < nKv; p++) {
      for (let i = 0; i < kvDim; i++) row[i] = next() * 2 - 1;
      k.storeKv(row, bytes.subarray(p * kvDim * 2, (p + 1) * kvDim * 2), KvType.F16);
    }
    return bytes;
  };
  const [kc, vc] = [cache(), cache()];
  const qDim = nHead * headDim;
  const q = Float32Array.from({ length: nRows * qDim }, () => next() * 2 - 1);
  const want = new Float32Array(nRows * qDim);
  const scratch = new Float32Array(2 * nKv);
  for (let r = 0; r < nRows; r++) {
    k.attention(
      q.subarray(r * qDim, (r + 1) * qDim),
      kc,
      vc,
      KvType.F16,
      nHead,
      nHeadKv,
      headDim,
      nKv - (nRows - 1 - r),
      kvDim,
      want.subarray(r * qDim, (r + 1) * qDim),
      scratch,
    );
  }
  const got = new Float32Array(nRows * qDim);
  k.attentionRows(q, kc, vc, KvType.F16, nHead, nHeadKv, headDim, nRows, nKv, kvDim, got);
  assert.deepEqual(new Uint32Array(got.buffer), new Uint32Array(want.buffer));
  assert.throws(
    () => k.attentionRows(q, kc, vc, KvType.F16, nHead, nHeadKv, headDim, nRows + 1, nKv, kvDim, got),
    /attentionRows: q and out need/,
  );
  assert.throws(
    () => k.attentionRows(q.subarray(0, 3 * qDim), kc, vc, KvType.F16, nHead, nHeadKv, headDim, 3, 2, kvDim, got),
    /3 query rows cannot end at position 2/,
  );
});

Deno.test("kvShift moves roped keys to their new position (f32, f16, YaRN); names bad input", () => {
  const r = rng(11);
  const [nHeadKv, headDim, nPos, base] = [2, 64, 3, 1e6];
  const kvDim = nHeadKv * headDim;
  const x = new Float32Array(nPos * kvDim).map(() => r() * 2 - 1);
  for (const [yarnFactor, origCtx] of [[1, 0], [4, 4096]]) {
    const roped = (pos: number) => {
      const y = x.slice();
      for (let p = 0; p < nPos; p++) {
        k.ropeNeox(y.subarray(p * kvDim, (p + 1) * kvDim), nHeadKv, headDim, headDim, pos, base, yarnFactor, origCtx);
      }
      return y;
    };
    for (const [type, tol] of [[KvType.F32, 1e-5], [KvType.F16, 2e-3]]) {
      const rb = kvRowBytes(type, kvDim);
      const keys = new Uint8Array(nPos * rb);
      const at40 = roped(40);
      for (let p = 0; p < nPos; p++) k.storeKv(at40.subarray(p * kvDim, (p + 1) * kvDim), keys.subarray(p * rb), type);
      k.kvShift(keys, type, nHeadKv, headDim, nPos, -17, base, yarnFactor, origCtx);
      const got = type === KvType.F32
        ? new Float32Array(keys.buffer)
        : Float32Array.from(new Float16Array(keys.buffer));
      const want = roped(23);
      let worst = 0;
      for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
      assert.ok(worst < tol, `type ${type} yarn ${yarnFactor}: off by ${worst}`);
    }
  }
  const keys = new Uint8Array(nPos * kvRowBytes(KvType.F32, kvDim));
  assert.throws(() => k.kvShift(keys, KvType.F32, nHeadKv, headDim, nPos + 1, 1, base, 1, 0), /kvShift: keys have/);
  assert.throws(() => k.kvShift(keys, KvType.F32, nHeadKv, 63, 1, 1, base, 1, 0), /head_dim = 63/);
  assert.throws(() => k.kvShift(keys, KvType.F32, nHeadKv, headDim, 1, 1, base, 4, 0), /YaRN/);
  assert.throws(() => k.kvShift(keys, 7, nHeadKv, headDim, 1, 1, base, 1, 0), /unknown kv type 7/);
  assert.throws(() => k.kvShift(keys, KvType.F32, nHeadKv, headDim, 1, 0.5, base, 1, 0), KernelError);
});

Deno.test("KV type names map to the C ABI codes; unknown names are named", () => {
  assert.deepEqual(["f32", "f16", "q8"].map(kvTypeCode), [KvType.F32, KvType.F16, KvType.Q8]);
  assert.throws(() => kvTypeCode("q4"), /unknown KV cache type 'q4' \(f32, f16 or q8\)/);
  assert.throws(() => kvTypeCode("toString"), /unknown KV cache type/);
});
