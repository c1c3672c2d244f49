/**
 * TypeScript binding of the Rust kernel library (`kernels/src/ffi.rs`) through `Deno.dlopen`.
 * Every library error becomes a thrown {@link KernelError} carrying the library's message; buffer
 * sizes are checked here before each call (the C side trusts them).
 * @module
 */

import { findKernelLibrary } from "./locate.ts";

/** Weight format codes of the C ABI. */
export const Format = {
  F32: 0,
  F16: 1,
  Q8_0: 8,
  Q1_0: 41,
  Q2_0: 42,
  Q2_0_G64: 242,
} as const;
/** A weight format code. */
export type FormatCode = (typeof Format)[keyof typeof Format];

/**
 * KV cache element types of the C ABI (the only TS owner of these codes and of their byte sizes).
 * Q8: blocks of 32 elements, each an f16 scale `d = amax/127` then 32 int8 `round(x/d)` (34 bytes
 * per 32 elements; rows, strides and head_dim must be multiples of 32), encoded and decoded only
 * by the library. See {@link kvRowBytes}.
 */
export const KvType = { F32: 0, F16: 1, Q8: 2 } as const;
/** A KV cache element type code of the C ABI. */
export type KvTypeCode = (typeof KvType)[keyof typeof KvType];

/**
 * KV cache element type by name, as settings spell it: f16 halves the memory of f32 with no
 * visible quality cost; q8 nearly halves it again.
 */
export type KvTypeName = "f32" | "f16" | "q8";

/** The C ABI code of each {@link KvTypeName}. */
export const KV_TYPE_CODE: Readonly<Record<KvTypeName, KvTypeCode>> = {
  f32: KvType.F32,
  f16: KvType.F16,
  q8: KvType.Q8,
};

/** The code of a KV type name; throws a {@link KernelError} naming the known ones otherwise. */
export function kvTypeCode(name: string): KvTypeCode {
  if (!Object.hasOwn(KV_TYPE_CODE, name)) {
    throw new KernelError(`unknown KV cache type '${name}' (f32, f16 or q8)`);
  }
  return KV_TYPE_CODE[name as KvTypeName];
}

/** Bytes of `n` KV elements of `kvType` (q8: `n/32*34`, `n` a multiple of 32). */
export function kvRowBytes(kvType: number, n: number): number {
  if (kvType === KvType.F32) return 4 * n;
  if (kvType === KvType.F16) return 2 * n;
  if (kvType === KvType.Q8) {
    if (n % 32 !== 0) {
      throw new KernelError(
        `q8 KV rows need a multiple of 32 elements, got ${n}`,
      );
    }
    return (n / 32) * 34;
  }
  throw new KernelError(`unknown kv type ${kvType} (0 = f32, 1 = f16, 2 = q8)`);
}

/** ISA names, in bit order of `bk_isa_available`. */
export const ISA_NAMES = [
  "avx2",
  "avx512",
  "avx512_vnni",
  "neon",
  "neon_dotprod",
  "f16c",
  "avx_vnni",
] as const;
/** An instruction-set name. */
export type IsaName = (typeof ISA_NAMES)[number];

/** An error reported by the kernel library (or a bad argument caught before the call). */
export class KernelError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "KernelError";
  }
}

const SYMBOLS = {
  bk_version: { parameters: [], result: "u32" },
  bk_isa_available: { parameters: [], result: "u32" },
  bk_isa_active: { parameters: [], result: "u32" },
  bk_lut_enabled: { parameters: [], result: "u32" },
  bk_gemm_path: { parameters: [], result: "u32" },
  bk_force_isa: { parameters: ["u32"], result: "i32" },
  bk_set_threads: { parameters: ["u32"], result: "u32" },
  bk_threads: { parameters: [], result: "u32" },
  bk_last_error: { parameters: ["buffer", "usize"], result: "usize" },
  bk_map_open: { parameters: ["buffer", "usize"], result: "pointer" },
  bk_map_size: { parameters: ["pointer"], result: "u64" },
  bk_map_close: { parameters: ["pointer"], result: "void" },
  bk_tensor_new: {
    parameters: ["pointer", "u64", "u32", "u64", "u64"],
    result: "pointer",
  },
  bk_tensor_from_bytes: {
    parameters: ["buffer", "usize", "u32", "u64", "u64"],
    result: "pointer",
  },
  bk_tensor_free: { parameters: ["pointer"], result: "void" },
  bk_act_bytes: { parameters: ["u64"], result: "usize" },
  bk_quantize_act: { parameters: ["buffer", "u64", "buffer"], result: "i32" },
  bk_matvec: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  bk_matvec_ref: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  bk_matvec_multi: {
    parameters: ["buffer", "u32", "buffer", "buffer"],
    result: "i32",
  },
  bk_matmul: {
    parameters: ["pointer", "buffer", "u32", "usize", "buffer", "usize"],
    result: "i32",
  },
  bk_dequant_row: { parameters: ["pointer", "u64", "buffer"], result: "i32" },
  bk_rmsnorm: {
    parameters: ["buffer", "buffer", "buffer", "u32", "f32"],
    result: "i32",
  },
  bk_rmsnorm_heads: {
    parameters: ["buffer", "buffer", "u32", "u32", "f32"],
    result: "i32",
  },
  bk_rope_neox: {
    parameters: ["buffer", "u32", "u32", "u32", "u32", "f32", "f32", "u32"],
    result: "i32",
  },
  bk_softmax: { parameters: ["buffer", "u32"], result: "i32" },
  bk_silu_mul: {
    parameters: ["buffer", "buffer", "buffer", "u32"],
    result: "i32",
  },
  bk_add: { parameters: ["buffer", "buffer", "u32"], result: "i32" },
  bk_rmsnorm_quantize: {
    parameters: ["buffer", "buffer", "buffer", "u32", "f32", "buffer"],
    result: "i32",
  },
  bk_qk_rope_store: {
    parameters: [
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "u32",
      "u32",
      "u32",
      "f32",
      "u32",
      "f32",
      "f32",
      "u32",
      "buffer",
      "buffer",
      "u32",
    ],
    result: "i32",
  },
  bk_read_bandwidth: { parameters: ["u64", "u32"], result: "f64" },
  bk_store_kv: {
    parameters: ["buffer", "buffer", "u32", "u32"],
    result: "i32",
  },
  bk_kv_shift: {
    parameters: ["buffer", "u32", "u32", "u32", "u32", "i32", "f32", "f32", "u32"],
    result: "i32",
  },
  bk_attention: {
    parameters: [
      "buffer",
      "buffer",
      "buffer",
      "u32",
      "u32",
      "u32",
      "u32",
      "u32",
      "u32",
      "buffer",
      "buffer",
    ],
    result: "i32",
  },
  bk_attention_rows: {
    parameters: [
      "buffer",
      "buffer",
      "buffer",
      "u32",
      "u32",
      "u32",
      "u32",
      "u32",
      "u32",
      "u32",
      "buffer",
    ],
    result: "i32",
  },
} as const;

type Lib = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/**
 * Bytes of an act buffer for `n` elements: the TS side's one copy of `act_layout` (`src/act.rs`),
 * checked against the library's `bk_act_bytes` by `ffi_test.ts`.
 */
export function actBytes(n: number): number {
  const nb = Math.ceil(n / 32);
  const align32 = (x: number) => Math.ceil(x / 32) * 32;
  return align32(nb * 4) + nb * 32 + align32(nb * 4) + nb * 32;
}

/** A memory-mapped file (read-only). Tensors made from it keep the mapping alive after `close()`. */
export class MappedFile {
  #k: Kernels;
  #ptr: Deno.PointerValue;
  /** File size in bytes. */
  readonly size: number;
  /** The mapped path. */
  readonly path: string;

  constructor(k: Kernels, ptr: Deno.PointerObject, size: number, path: string) {
    this.#k = k;
    this.#ptr = ptr;
    this.size = size;
    this.path = path;
  }

  /** The native handle (throws once closed). */
  get handle(): Deno.PointerObject {
    if (this.#ptr === null) {
      throw new KernelError(`mapping of ${this.path} is closed`);
    }
    return this.#ptr;
  }

  /** Releases this handle (idempotent). */
  close(): void {
    if (this.#ptr !== null) {
      this.#k.lib.bk_map_close(this.#ptr);
      this.#ptr = null;
    }
  }
}

/** A weight tensor of `ne1` rows of `ne0` weights. */
export class KTensor {
  #k: Kernels;
  #ptr: Deno.PointerValue;
  readonly format: FormatCode;
  readonly ne0: number;
  readonly ne1: number;
  /** Bytes of an act buffer that fits this tensor's rows. */
  readonly actBytes: number;

  constructor(
    k: Kernels,
    ptr: Deno.PointerObject,
    format: FormatCode,
    ne0: number,
    ne1: number,
  ) {
    this.#k = k;
    this.#ptr = ptr;
    this.format = format;
    this.ne0 = ne0;
    this.ne1 = ne1;
    this.actBytes = actBytes(ne0);
  }

  /** The native handle (throws once freed). */
  get handle(): Deno.PointerObject {
    if (this.#ptr === null) throw new KernelError("tensor was freed");
    return this.#ptr;
  }

  /** Frees the tensor (idempotent). */
  free(): void {
    if (this.#ptr !== null) {
      this.#k.lib.bk_tensor_free(this.#ptr);
      this.#ptr = null;
    }
  }
}

function checkShape(ne0: number, ne1: number): void {
  // formats and block multiples are checked by the library, whose messages name them
  if (!(Number.isInteger(ne0) && ne0 > 0 && Number.isInteger(ne1) && ne1 > 0)) {
    throw new KernelError(
      `tensor shape must be positive integers, got [${ne0} x ${ne1}]`,
    );
  }
}

/** The loaded kernel library. Create with {@link Kernels.load}. */
export class Kernels {
  /** Raw symbols (for callers that need an unlisted entry point). */
  readonly lib: Lib;
  /** Path the library was loaded from. */
  readonly path: string;
  #dl: Deno.DynamicLibrary<typeof SYMBOLS>;
  #errBuf = new Uint8Array(1024);

  private constructor(path: string) {
    this.path = path;
    try {
      this.#dl = Deno.dlopen(path, SYMBOLS);
    } catch (e) {
      throw new KernelError(
        `cannot load kernel library ${path}: ${(e as Error).message}`,
      );
    }
    this.lib = this.#dl.symbols;
  }

  /** Loads the library from `path` or from {@link findKernelLibrary}'s search. */
  static load(path?: string): Kernels {
    return new Kernels(path ?? findKernelLibrary());
  }

  /** Unloads the library (all handles become invalid). */
  close(): void {
    this.#dl.close();
  }

  /** The library's last error message on this thread. */
  lastError(): string {
    let n = Number(
      this.lib.bk_last_error(this.#errBuf, BigInt(this.#errBuf.length)),
    );
    if (n > this.#errBuf.length) {
      this.#errBuf = new Uint8Array(n);
      n = Number(
        this.lib.bk_last_error(this.#errBuf, BigInt(this.#errBuf.length)),
      );
    }
    return new TextDecoder().decode(this.#errBuf.subarray(0, n));
  }

  #check(rc: number): void {
    if (rc !== 0) {
      throw new KernelError(this.lastError() || "kernel call failed");
    }
  }

  version(): number {
    return this.lib.bk_version();
  }

  /** ISAs the CPU (and this build) offer, e.g. `["avx2", "f16c"]`. */
  isaAvailable(): IsaName[] {
    return isaNames(this.lib.bk_isa_available());
  }

  /** ISAs the active kernels use (`[]` = scalar reference). */
  isaActive(): IsaName[] {
    return isaNames(this.lib.bk_isa_active());
  }

  /**
   * Whether Q1_0 / Q2_0 tensors created now are packed for the lookup-table kernels (the fast
   * path): the CPU supports them and `BONSAI_NO_LUT` is not set.
   */
  lutEnabled(): boolean {
    return this.lib.bk_lut_enabled() === 1;
  }

  /**
   * The GEMM kernels prompt chunks of Q1_0 tensors run on now (`null`: the lookup-table kernels,
   * because the CPU has no VNNI, `BONSAI_NO_GEMM` is set or a lower ISA was forced).
   */
  gemmPath(): "avx512_vnni" | "avx_vnni" | "neon_dotprod" | null {
    const code = this.lib.bk_gemm_path();
    return code === 1 ? "avx512_vnni" : code === 2 ? "avx_vnni" : code === 3 ? "neon_dotprod" : null;
  }

  /** Restricts dispatch to `names` (`[]` = scalar reference); throws if one is unavailable. */
  forceIsa(names: readonly string[]): void {
    let mask = 0;
    for (const n of names) {
      const i = (ISA_NAMES as readonly string[]).indexOf(n);
      if (!(i >= 0)) {
        throw new KernelError(
          `unknown ISA name ${JSON.stringify(n)} (known: ${ISA_NAMES.join(", ")})`,
        );
      }
      mask |= 1 << i;
    }
    this.#check(this.lib.bk_force_isa(mask));
  }

  /** (Re)starts the thread pool with `n` threads (0 = one per CPU); returns the count. */
  setThreads(n: number): number {
    return this.lib.bk_set_threads(n);
  }

  /** Threads in use. */
  threads(): number {
    return this.lib.bk_threads();
  }

  /** Maps `path` read-only. */
  openMap(path: string): MappedFile {
    const bytes = new TextEncoder().encode(path);
    const p = this.lib.bk_map_open(bytes, BigInt(bytes.length));
    if (p === null) throw new KernelError(this.lastError());
    return new MappedFile(this, p, Number(this.lib.bk_map_size(p)), path);
  }

  /** A tensor over `map` bytes starting at `offsetBytes` (no copy). */
  tensor(
    map: MappedFile,
    offsetBytes: number,
    format: FormatCode | number,
    ne0: number,
    ne1: number,
  ): KTensor {
    checkShape(ne0, ne1);
    if (!(Number.isInteger(offsetBytes) && offsetBytes >= 0)) {
      throw new KernelError(
        `offset must be a non-negative integer, got ${offsetBytes}`,
      );
    }
    const p = this.lib.bk_tensor_new(
      map.handle,
      BigInt(offsetBytes),
      format,
      BigInt(ne0),
      BigInt(ne1),
    );
    if (p === null) throw new KernelError(this.lastError());
    return new KTensor(this, p, format as FormatCode, ne0, ne1);
  }

  /** A tensor owning a copy of `bytes` (exactly the tensor's size). */
  tensorFromBytes(
    bytes: Uint8Array,
    format: FormatCode | number,
    ne0: number,
    ne1: number,
  ): KTensor {
    checkShape(ne0, ne1);
    const p = this.lib.bk_tensor_from_bytes(
      bytes,
      BigInt(bytes.byteLength),
      format,
      BigInt(ne0),
      BigInt(ne1),
    );
    if (p === null) throw new KernelError(this.lastError());
    return new KTensor(this, p, format as FormatCode, ne0, ne1);
  }

  /** Bytes of an act buffer for `n` elements. */
  actBytes(n: number): number {
    return actBytes(n);
  }

  /** Quantises all of `x` into `act` (at least `actBytes(x.length)` bytes). */
  quantizeAct(x: Float32Array, act: Uint8Array): void {
    if (!(act.byteLength >= actBytes(x.length))) {
      throw new KernelError(
        `act buffer has ${act.byteLength} bytes, ${x.length} elements need ${actBytes(x.length)}`,
      );
    }
    this.#check(this.lib.bk_quantize_act(x, BigInt(x.length), act));
  }

  #mv(t: KTensor, act: Uint8Array, out: Float32Array): void {
    if (!(act.byteLength >= t.actBytes)) {
      throw new KernelError(
        `act buffer has ${act.byteLength} bytes, tensor rows of ${t.ne0} need ${t.actBytes}`,
      );
    }
    if (!(out.length >= t.ne1)) {
      throw new KernelError(
        `output has ${out.length} floats, tensor has ${t.ne1} rows`,
      );
    }
  }

  /** `out[r] = row_r · act` with the active kernels on the thread pool. */
  matvec(t: KTensor, act: Uint8Array, out: Float32Array): void {
    this.#mv(t, act, out);
    this.#check(this.lib.bk_matvec(t.handle, act, out));
  }

  /** Scalar reference matvec on the calling thread (for tests). */
  matvecRef(t: KTensor, act: Uint8Array, out: Float32Array): void {
    this.#mv(t, act, out);
    this.#check(this.lib.bk_matvec_ref(t.handle, act, out));
  }

  /** Several matvecs sharing one activation (same `ne0`) in a single pool dispatch. */
  matvecMulti(
    ts: readonly KTensor[],
    act: Uint8Array,
    outs: readonly Float32Array[],
  ): void {
    if (!(ts.length === outs.length)) {
      throw new KernelError(`${ts.length} tensors but ${outs.length} outputs`);
    }
    const tp = new BigUint64Array(ts.length);
    const op = new BigUint64Array(ts.length);
    for (let i = 0; i < ts.length; i++) {
      this.#mv(ts[i], act, outs[i]);
      tp[i] = BigInt(Deno.UnsafePointer.value(ts[i].handle));
      op[i] = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(outs[i])));
    }
    this.#check(this.lib.bk_matvec_multi(tp, ts.length, act, op));
  }

  /**
   * Prepares {@link matvecMulti} for fixed tensors and outputs: the pointer arrays are built once,
   * so each `run(act)` is one FFI call without allocation (the decode hot path).
   */
  prepareMatvecMulti(
    ts: readonly KTensor[],
    outs: readonly Float32Array[],
  ): (act: Uint8Array) => void {
    if (!(ts.length === outs.length && ts.length > 0)) {
      throw new KernelError(`${ts.length} tensors but ${outs.length} outputs`);
    }
    const tp = new BigUint64Array(ts.length);
    const op = new BigUint64Array(ts.length);
    const ne0 = ts[0].ne0;
    for (let i = 0; i < ts.length; i++) {
      if (ts[i].ne0 !== ne0) {
        throw new KernelError(
          `tensor ${i} has ne0 ${ts[i].ne0}, tensor 0 has ${ne0}`,
        );
      }
      if (!(outs[i].length >= ts[i].ne1)) {
        throw new KernelError(
          `output ${i} has ${outs[i].length} floats, tensor has ${ts[i].ne1} rows`,
        );
      }
      tp[i] = BigInt(Deno.UnsafePointer.value(ts[i].handle));
      op[i] = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(outs[i])));
    }
    const need = ts[0].actBytes;
    const n = ts.length;
    return (act: Uint8Array) => {
      if (!(act.byteLength >= need)) {
        throw new KernelError(
          `act buffer has ${act.byteLength} bytes, needs ${need}`,
        );
      }
      this.#check(this.lib.bk_matvec_multi(tp, n, act, op));
    };
  }

  /**
   * Best memory read bandwidth of this machine in GB/s (1e9 B/s): `reps` passes over a `bytes`
   * buffer on the current thread pool.
   */
  readBandwidth(bytes = 256 * 1024 * 1024, reps = 5): number {
    const v = this.lib.bk_read_bandwidth(BigInt(bytes), reps);
    if (v < 0) throw new KernelError(this.lastError());
    return v;
  }

  /** `out[tok * outStride + r] = row_r · act_tok` for `nTok` acts `actStride` bytes apart. */
  matmul(
    t: KTensor,
    act: Uint8Array,
    nTok: number,
    actStride: number,
    out: Float32Array,
    outStride: number,
  ): void {
    if (nTok === 0) return;
    if (!(actStride >= t.actBytes)) {
      throw new KernelError(
        `act stride ${actStride} is smaller than one act (${t.actBytes} bytes)`,
      );
    }
    if (!(act.byteLength >= actStride * (nTok - 1) + t.actBytes)) {
      throw new KernelError(
        `act buffer has ${act.byteLength} bytes, ${nTok} tokens need ${actStride * (nTok - 1) + t.actBytes}`,
      );
    }
    if (!(outStride >= t.ne1)) {
      throw new KernelError(
        `output stride ${outStride} is smaller than the ${t.ne1} rows`,
      );
    }
    if (!(out.length >= outStride * (nTok - 1) + t.ne1)) {
      throw new KernelError(
        `output has ${out.length} floats, ${nTok} tokens need ${outStride * (nTok - 1) + t.ne1}`,
      );
    }
    this.#check(
      this.lib.bk_matmul(
        t.handle,
        act,
        nTok,
        BigInt(actStride),
        out,
        BigInt(outStride),
      ),
    );
  }

  /** Dequantises row `row` into `out` (`ne0` floats), e.g. an embedding lookup. */
  dequantRow(t: KTensor, row: number, out: Float32Array): void {
    if (!(out.length >= t.ne0)) {
      throw new KernelError(
        `output has ${out.length} floats, a row has ${t.ne0}`,
      );
    }
    if (!(Number.isInteger(row) && row >= 0)) {
      throw new KernelError(`row must be a non-negative integer, got ${row}`);
    }
    this.#check(this.lib.bk_dequant_row(t.handle, BigInt(row), out));
  }

  /** `out = x / sqrt(mean(x²) + eps) * w` over `x.length` elements (`w` null = no weight). */
  rmsnorm(
    x: Float32Array,
    w: Float32Array | null,
    out: Float32Array,
    eps: number,
  ): void {
    if (!(out.length >= x.length && (w === null || w.length >= x.length))) {
      throw new KernelError("rmsnorm: w and out must be at least as long as x");
    }
    this.#check(this.lib.bk_rmsnorm(x, w, out, x.length, eps));
  }

  /** Per-head RMS norm in place over `nHeads` heads of `headDim`, times `w[headDim]`. */
  rmsnormHeads(
    x: Float32Array,
    w: Float32Array,
    nHeads: number,
    headDim: number,
    eps: number,
  ): void {
    if (!(x.length >= nHeads * headDim && w.length >= headDim)) {
      throw new KernelError(
        `rmsnormHeads: x needs ${nHeads * headDim} floats and w ${headDim}`,
      );
    }
    this.#check(this.lib.bk_rmsnorm_heads(x, w, nHeads, headDim, eps));
  }

  /** NEOX RoPE in place at position `pos`; `yarnFactor` > 1 enables YaRN with `yarnOrigCtx`. */
  ropeNeox(
    x: Float32Array,
    nHeads: number,
    headDim: number,
    nRot: number,
    pos: number,
    base: number,
    yarnFactor = 1,
    yarnOrigCtx = 0,
  ): void {
    if (!(x.length >= nHeads * headDim)) {
      throw new KernelError(
        `ropeNeox: x needs ${nHeads * headDim} floats, has ${x.length}`,
      );
    }
    this.#check(
      this.lib.bk_rope_neox(
        x,
        nHeads,
        headDim,
        nRot,
        pos,
        base,
        yarnFactor,
        yarnOrigCtx,
      ),
    );
  }

  /** Softmax in place over the first `n` elements (default all). */
  softmax(x: Float32Array, n: number = x.length): void {
    if (!(n <= x.length)) {
      throw new KernelError(
        `softmax of ${n} elements on an array of ${x.length}`,
      );
    }
    this.#check(this.lib.bk_softmax(x, n));
  }

  /** `out = rmsnorm(x) * w` then `act = quantize(out)`, in one call (same bits as the two ops). */
  rmsnormQuantize(x: Float32Array, w: Float32Array | null, out: Float32Array, eps: number, act: Uint8Array): void {
    if (!(out.length >= x.length && (w === null || w.length >= x.length) && act.byteLength >= actBytes(x.length))) {
      throw new KernelError(
        `rmsnormQuantize: out and weights need ${x.length} floats, act ${actBytes(x.length)} bytes`,
      );
    }
    this.#check(this.lib.bk_rmsnorm_quantize(x, w, out, x.length, eps, act));
  }

  /**
   * One token's q/k head norms, RoPE at `pos`, and k/v stored into their cache slots, in one call
   * (same bits as rmsnormHeads x2, ropeNeox x2, storeKv x2).
   */
  qkRopeStore(
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    qNorm: Float32Array,
    kNorm: Float32Array,
    nHead: number,
    nHeadKv: number,
    headDim: number,
    eps: number,
    pos: number,
    base: number,
    yarnFactor: number,
    yarnOrigCtx: number,
    kDst: Uint8Array,
    vDst: Uint8Array,
    kvType: number,
  ): void {
    const kvDim = nHeadKv * headDim;
    const slot = kvRowBytes(kvType, kvDim);
    if (
      !(q.length >= nHead * headDim && k.length >= kvDim && v.length >= kvDim &&
        qNorm.length >= headDim && kNorm.length >= headDim && kDst.byteLength >= slot && vDst.byteLength >= slot)
    ) {
      throw new KernelError(`qkRopeStore: buffers too small for ${nHead}/${nHeadKv} heads of ${headDim}`);
    }
    this.#check(
      this.lib.bk_qk_rope_store(
        q,
        k,
        v,
        qNorm,
        kNorm,
        nHead,
        nHeadKv,
        headDim,
        eps,
        pos,
        base,
        yarnFactor,
        yarnOrigCtx,
        kDst,
        vDst,
        kvType,
      ),
    );
  }

  /** `out = silu(g) * u` over `out.length` elements (`out` may be `g`). */
  siluMul(g: Float32Array, u: Float32Array, out: Float32Array): void {
    if (!(g.length >= out.length && u.length >= out.length)) {
      throw new KernelError(
        "siluMul: gate and up must be at least as long as out",
      );
    }
    this.#check(this.lib.bk_silu_mul(g, u, out, out.length));
  }

  /** `x += y` over `x.length` elements. */
  add(x: Float32Array, y: Float32Array): void {
    if (!(y.length >= x.length)) {
      throw new KernelError(`add: y has ${y.length} floats, x has ${x.length}`);
    }
    this.#check(this.lib.bk_add(x, y, x.length));
  }

  /** Stores `src` into `dst` as f32 (kvType 0), f16 (1) or q8 (2) at `dst`'s start. */
  storeKv(src: Float32Array, dst: Uint8Array, kvType: number): void {
    const need = kvRowBytes(kvType, src.length);
    if (!(dst.byteLength >= need)) {
      throw new KernelError(
        `storeKv: dst has ${dst.byteLength} bytes, needs ${need}`,
      );
    }
    this.#check(this.lib.bk_store_kv(src, dst, kvType, src.length));
  }

  /**
   * Context sliding: re-ropes the first `nPos` cached key rows of `keys` (one layer, rows of
   * `nHeadKv * headDim` elements of `kvType`, position after position) in place by `delta`
   * positions, with the RoPE of {@link qkRopeStore} (same frequencies, YaRN when `yarnFactor` > 1)
   * and the library's KV codec. YaRN's magnitude factor is already in the keys: only the angle
   * moves. Moving the rows themselves is the caller's.
   */
  kvShift(
    keys: Uint8Array,
    kvType: number,
    nHeadKv: number,
    headDim: number,
    nPos: number,
    delta: number,
    base: number,
    yarnFactor: number,
    yarnOrigCtx: number,
  ): void {
    if (!(Number.isInteger(nPos) && nPos >= 0 && Number.isInteger(delta) && Math.abs(delta) < 2 ** 31)) {
      throw new KernelError(
        `kvShift: nPos (${nPos}) must be a non-negative integer and delta (${delta}) a 32-bit integer`,
      );
    }
    const need = nPos * kvRowBytes(kvType, nHeadKv * headDim);
    if (!(keys.byteLength >= need)) {
      throw new KernelError(`kvShift: keys have ${keys.byteLength} bytes, ${nPos} positions need ${need}`);
    }
    this.#check(this.lib.bk_kv_shift(keys, kvType, nHeadKv, headDim, nPos, delta, base, yarnFactor, yarnOrigCtx));
  }

  /**
   * Attention of one query (all heads) over positions 0..nKv-1 of the K/V caches (`kvStride`
   * elements between positions); grouped-query. `scratch` holds 2 * nKv floats (the scores of
   * the two query heads that share a KV head).
   */
  attention(
    q: Float32Array,
    k: Uint8Array,
    v: Uint8Array,
    kvType: number,
    nHead: number,
    nHeadKv: number,
    headDim: number,
    nKv: number,
    kvStride: number,
    out: Float32Array,
    scratch: Float32Array,
  ): void {
    this.#checkAttention("attention", q, k, v, kvType, nHead, nHeadKv, headDim, 1, nKv, kvStride, out);
    if (!(scratch.length >= 2 * nKv)) {
      throw new KernelError(
        `attention: scratch needs ${2 * nKv} floats, has ${scratch.length}`,
      );
    }
    this.#check(
      this.lib.bk_attention(q, k, v, kvType, nHead, nHeadKv, headDim, nKv, kvStride, out, scratch),
    );
  }

  /**
   * Causal attention of `nRows` consecutive query rows of one sequence (a prompt chunk; rows
   * `nHead * headDim` floats apart in `q` and `out`): the last row sees positions 0..nKv-1, each
   * earlier row one fewer. Same results as {@link attention} row by row, with each block of the
   * cache read once for the whole chunk.
   */
  attentionRows(
    q: Float32Array,
    k: Uint8Array,
    v: Uint8Array,
    kvType: number,
    nHead: number,
    nHeadKv: number,
    headDim: number,
    nRows: number,
    nKv: number,
    kvStride: number,
    out: Float32Array,
  ): void {
    this.#checkAttention("attentionRows", q, k, v, kvType, nHead, nHeadKv, headDim, nRows, nKv, kvStride, out);
    this.#check(
      this.lib.bk_attention_rows(q, k, v, kvType, nHead, nHeadKv, headDim, nRows, nKv, kvStride, out),
    );
  }

  /** Buffer sizes of an attention call, checked before the library reads or writes them. */
  #checkAttention(
    what: string,
    q: Float32Array,
    k: Uint8Array,
    v: Uint8Array,
    kvType: number,
    nHead: number,
    nHeadKv: number,
    headDim: number,
    nRows: number,
    nKv: number,
    kvStride: number,
    out: Float32Array,
  ): void {
    if (kvType === KvType.Q8 && (headDim % 32 !== 0 || kvStride % 32 !== 0)) {
      throw new KernelError(
        `${what}: q8 KV needs head_dim (${headDim}) and kvStride (${kvStride}) multiples of 32`,
      );
    }
    const kvLen = nKv <= 0 ? 0 : kvRowBytes(kvType, (nKv - 1) * kvStride + nHeadKv * headDim);
    const floats = nRows * nHead * headDim;
    if (!(q.length >= floats && out.length >= floats)) {
      throw new KernelError(`${what}: q and out need ${floats} floats`);
    }
    if (!(nKv <= 0 || (k.byteLength >= kvLen && v.byteLength >= kvLen))) {
      throw new KernelError(
        `${what}: k and v caches need ${kvLen} bytes for ${nKv} positions`,
      );
    }
  }
}

function isaNames(mask: number): IsaName[] {
  return ISA_NAMES.filter((_, i) => (mask & (1 << i)) !== 0);
}
