/**
 * GGUF v3 writer. Tensor data can be given lazily (a producer called at write time) so that
 * multi-hundred-MB files are streamed to disk one tensor at a time.
 */
import { type GgufScalarTypeName, type GgufValue, GgufValueType, type GgufValueTypeName } from "./gguf.ts";
import { byteSizeOf, type WeightFormat } from "./ggml_types.ts";

interface KvEntry {
  key: string;
  value: GgufValue;
  type: GgufValueTypeName;
}

interface TensorEntry {
  name: string;
  dims: number[];
  format: WeightFormat;
  byteSize: number;
  relOffset: number;
  data: Uint8Array | (() => Uint8Array);
}

const INT_RANGES: Partial<Record<GgufScalarTypeName, [number, number]>> = {
  u8: [0, 0xff],
  i8: [-0x80, 0x7f],
  u16: [0, 0xffff],
  i16: [-0x8000, 0x7fff],
  u32: [0, 0xffffffff],
  i32: [-0x80000000, 0x7fffffff],
};

/** Builds a GGUF v3 file: metadata with `set`, tensors with `addTensor`, then `write`. */
export class GgufWriter {
  readonly alignment: number;
  private kv: KvEntry[] = [];
  private tensors: TensorEntry[] = [];
  private nextOffset = 0;

  /** `alignment` (default 32) must be a power of two; non-default values are recorded in the file. */
  constructor(opts: { alignment?: number } = {}) {
    const a = opts.alignment ?? 32;
    if (!Number.isInteger(a) || a <= 0 || (a & (a - 1)) !== 0) {
      throw new RangeError(
        `GgufWriter: alignment must be a power of two, got ${a}`,
      );
    }
    this.alignment = a;
    if (a !== 32) this.set("general.alignment", a, "u32");
  }

  /**
   * Sets a metadata key. Without `type`, it is inferred: string, bool, number -> u32 if a
   * non-negative integer (u64 above 2^32) else f32, bigint -> u64/i64, arrays by their elements.
   */
  set(key: string, value: GgufValue, type?: GgufValueTypeName): this {
    if (key === "general.alignment" && this.kv.some((e) => e.key === key)) {
      const cur = this.kv.find((e) => e.key === key)!;
      if (cur.value !== value) {
        throw new Error(
          `GgufWriter: general.alignment ${String(value)} conflicts with the writer's alignment ` +
            `${this.alignment}`,
        );
      }
      return this;
    }
    const t = type ?? inferType(value, key);
    checkValue(value, t, key);
    const existing = this.kv.findIndex((e) => e.key === key);
    if (existing >= 0) this.kv[existing] = { key, value, type: t };
    else this.kv.push({ key, value, type: t });
    return this;
  }

  /**
   * Adds a tensor (`dims` in ggml order, dims[0] = row length). `data` is the bytes or a
   * function producing them at write time; its length must be the format's size for `dims`.
   */
  addTensor(
    name: string,
    dims: number[],
    format: WeightFormat,
    data: Uint8Array | (() => Uint8Array),
  ): this {
    if (this.tensors.some((t) => t.name === name)) {
      throw new Error(`GgufWriter: tensor '${name}' added twice`);
    }
    if (
      dims.length < 1 || dims.length > 4 ||
      dims.some((d) => !Number.isSafeInteger(d) || d < 0)
    ) {
      throw new RangeError(
        `GgufWriter: tensor '${name}' has invalid dims [${dims.join(", ")}]`,
      );
    }
    if (dims[0] % format.blockSize !== 0) {
      throw new RangeError(
        `GgufWriter: tensor '${name}' row length ${dims[0]} is not a multiple of the ` +
          `${format.name} block size ${format.blockSize}`,
      );
    }
    const byteSize = byteSizeOf(format, dims.reduce((a, b) => a * b, 1));
    if (data instanceof Uint8Array && data.length !== byteSize) {
      throw new RangeError(
        `GgufWriter: tensor '${name}' data is ${data.length} bytes, expected ${byteSize}`,
      );
    }
    this.tensors.push({
      name,
      dims: [...dims],
      format,
      byteSize,
      relOffset: this.nextOffset,
      data,
    });
    this.nextOffset = alignUp(this.nextOffset + byteSize, this.alignment);
    return this;
  }

  /** The header (magic through the padding before the data section). */
  headerBytes(): Uint8Array {
    const s = new ByteSink();
    s.bytes([0x47, 0x47, 0x55, 0x46]); // "GGUF"
    s.u32(3);
    s.u64(this.tensors.length);
    s.u64(this.kv.length);
    for (const e of this.kv) {
      s.str(e.key);
      writeValue(s, e.value, e.type, true);
    }
    for (const t of this.tensors) {
      s.str(t.name);
      s.u32(t.dims.length);
      for (const d of t.dims) s.u64(d);
      s.u32(t.format.ggmlType);
      s.u64(t.relOffset);
    }
    s.pad(this.alignment);
    return s.result();
  }

  /** Writes the file: header, then each tensor's data padded to the alignment. */
  async write(path: string): Promise<void> {
    const file = await Deno.open(path, {
      write: true,
      create: true,
      truncate: true,
    });
    try {
      await writeAll(file, this.headerBytes());
      const zeros = new Uint8Array(this.alignment);
      for (const t of this.tensors) {
        const data = typeof t.data === "function" ? t.data() : t.data;
        if (data.length !== t.byteSize) {
          throw new RangeError(
            `GgufWriter: producer of tensor '${t.name}' returned ${data.length} bytes, ` +
              `expected ${t.byteSize}`,
          );
        }
        await writeAll(file, data);
        const pad = alignUp(t.byteSize, this.alignment) - t.byteSize;
        if (pad > 0) await writeAll(file, zeros.subarray(0, pad));
      }
    } finally {
      file.close();
    }
  }
}

async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  let pos = 0;
  while (pos < data.length) pos += await file.write(data.subarray(pos));
}

function alignUp(x: number, a: number): number {
  return Math.ceil(x / a) * a;
}

function inferScalar(v: GgufValue, key: string): GgufValueTypeName {
  if (typeof v === "string") return "string";
  if (typeof v === "boolean") return "bool";
  if (typeof v === "bigint") return v >= 0n ? "u64" : "i64";
  if (typeof v === "number") {
    if (Number.isInteger(v) && v >= 0) return v <= 0xffffffff ? "u32" : "u64";
    return "f32";
  }
  if (Array.isArray(v)) return inferType(v, key);
  throw new TypeError(
    `GgufWriter: key '${key}' has an unsupported value ${String(v)}`,
  );
}

function inferType(value: GgufValue, key: string): GgufValueTypeName {
  if (!Array.isArray(value)) return inferScalar(value, key);
  if (value.length === 0) return "array:u32";
  if (value.every((e) => typeof e === "string")) return "array:string";
  if (value.every((e) => typeof e === "boolean")) return "array:bool";
  if (value.every((e) => typeof e === "number")) {
    const nums = value as number[];
    if (nums.every((x) => Number.isInteger(x) && x >= 0 && x <= 0xffffffff)) {
      return "array:u32";
    }
    if (
      nums.every((x) => Number.isInteger(x) && x >= -0x80000000 && x <= 0x7fffffff)
    ) {
      return "array:i32";
    }
    return "array:f32";
  }
  if (value.every((e) => Array.isArray(e))) {
    return `array:${inferType(value[0], key)}`;
  }
  throw new TypeError(
    `GgufWriter: key '${key}' is an array of mixed element types`,
  );
}

function checkValue(v: GgufValue, type: GgufValueTypeName, key: string): void {
  const bad = (why: string) => new TypeError(`GgufWriter: key '${key}': ${why}`);
  if (type.startsWith("array:")) {
    if (!Array.isArray(v)) {
      throw bad(`type ${type} needs an array, got ${typeof v}`);
    }
    const elem = type.slice(6) as GgufValueTypeName;
    for (const e of v) checkValue(e, elem, key);
    return;
  }
  if (!(type in GgufValueType) || (type as string) === "array") {
    throw bad(`unknown value type '${type}'`);
  }
  switch (type) {
    case "string":
      if (typeof v !== "string") {
        throw bad(`type string needs a string, got ${typeof v}`);
      }
      return;
    case "bool":
      if (typeof v !== "boolean") {
        throw bad(`type bool needs a boolean, got ${typeof v}`);
      }
      return;
    case "f32":
    case "f64":
      if (typeof v !== "number") {
        throw bad(`type ${type} needs a number, got ${typeof v}`);
      }
      return;
    case "u64":
    case "i64": {
      if (typeof v !== "number" && typeof v !== "bigint") {
        throw bad(`type ${type} needs a number or bigint, got ${typeof v}`);
      }
      const b = typeof v === "bigint" ? v : Number.isSafeInteger(v) ? BigInt(v) : undefined;
      if (b === undefined) throw bad(`${v} is not an exact integer`);
      const ok = type === "u64" ? b >= 0n && b < 1n << 64n : b >= -(1n << 63n) && b < 1n << 63n;
      if (!ok) throw bad(`${v} is out of range for ${type}`);
      return;
    }
    default: {
      const [lo, hi] = INT_RANGES[type as GgufScalarTypeName]!;
      if (typeof v !== "number" || !Number.isInteger(v) || v < lo || v > hi) {
        throw bad(
          `${String(v)} is not a valid ${type} (integer in ${lo}..${hi})`,
        );
      }
    }
  }
}

function writeValue(
  s: ByteSink,
  v: GgufValue,
  type: GgufValueTypeName,
  withTag: boolean,
): void {
  if (type.startsWith("array:")) {
    const elem = type.slice(6) as GgufValueTypeName;
    if (withTag) s.u32(GgufValueType.array);
    s.u32(
      elem.startsWith("array:") ? GgufValueType.array : GgufValueType[elem as GgufScalarTypeName],
    );
    const arr = v as GgufValue[];
    s.u64(arr.length);
    for (const e of arr) writeValue(s, e, elem, false);
    return;
  }
  const t = type as GgufScalarTypeName;
  if (withTag) s.u32(GgufValueType[t]);
  switch (t) {
    case "string":
      return s.str(v as string);
    case "bool":
      return s.u8(v ? 1 : 0);
    case "u8":
      return s.u8(v as number);
    case "i8":
      return s.scalar(1, (dv, p) => dv.setInt8(p, v as number));
    case "u16":
      return s.scalar(2, (dv, p) => dv.setUint16(p, v as number, true));
    case "i16":
      return s.scalar(2, (dv, p) => dv.setInt16(p, v as number, true));
    case "u32":
      return s.u32(v as number);
    case "i32":
      return s.scalar(4, (dv, p) => dv.setInt32(p, v as number, true));
    case "f32":
      return s.scalar(4, (dv, p) => dv.setFloat32(p, v as number, true));
    case "f64":
      return s.scalar(8, (dv, p) => dv.setFloat64(p, v as number, true));
    case "u64":
      return s.scalar(
        8,
        (dv, p) => dv.setBigUint64(p, BigInt(v as number | bigint), true),
      );
    case "i64":
      return s.scalar(
        8,
        (dv, p) => dv.setBigInt64(p, BigInt(v as number | bigint), true),
      );
  }
}

const encoder = new TextEncoder();

/** A growable little-endian byte buffer. */
class ByteSink {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  private pos = 0;

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.buf.subarray(0, this.pos));
    this.buf = grown;
    this.view = new DataView(grown.buffer);
  }
  bytes(b: ArrayLike<number>): void {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
  u8(x: number): void {
    this.ensure(1);
    this.buf[this.pos++] = x;
  }
  u32(x: number): void {
    this.ensure(4);
    this.view.setUint32(this.pos, x, true);
    this.pos += 4;
  }
  u64(x: number): void {
    this.ensure(8);
    this.view.setUint32(this.pos, x % 4294967296, true);
    this.view.setUint32(this.pos + 4, Math.floor(x / 4294967296), true);
    this.pos += 8;
  }
  scalar(size: number, put: (dv: DataView, p: number) => void): void {
    this.ensure(size);
    put(this.view, this.pos);
    this.pos += size;
  }
  str(s: string): void {
    this.ensure(8 + s.length * 3); // UTF-8 needs at most 3 bytes per UTF-16 unit
    const { written } = encoder.encodeInto(s, this.buf.subarray(this.pos + 8));
    this.u64(written);
    this.pos += written;
  }
  pad(alignment: number): void {
    const target = alignUp(this.pos, alignment);
    this.ensure(target - this.pos);
    this.buf.fill(0, this.pos, target);
    this.pos = target;
  }
  result(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }
}
