/**
 * GGUF (v2/v3) reader: parses the header (metadata and tensor infos) and locates every tensor's
 * data in the file, without reading the data itself.
 *
 * Layout (little-endian): magic "GGUF", u32 version, u64 tensor count, u64 KV count, KV pairs,
 * tensor infos (name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset), padding to
 * `general.alignment`, then the data section that the tensor offsets are relative to.
 */
import { formatOfGgmlType, FORMATS, GgmlType, SUPPORTED_TYPES_TEXT, type WeightFormat } from "./ggml_types.ts";

/** Why a GGUF file was rejected. */
export type GgufErrorCode =
  | "BAD_MAGIC"
  | "BAD_VERSION"
  | "TRUNCATED"
  | "UNKNOWN_TENSOR_TYPE"
  | "UNKNOWN_VALUE_TYPE"
  | "MISSING_KEY"
  | "WRONG_KEY_TYPE"
  | "OUT_OF_BOUNDS"
  | "BAD_TENSOR";

/** A GGUF file that cannot be used, with a machine-readable `code` and a message naming the file. */
export class GgufError extends Error {
  readonly code: GgufErrorCode;
  /**
   * Set when parsing ran out of a header window shorter than the file: reading more may succeed.
   * The value is an estimate of how many header bytes are needed (0 if unknown).
   */
  readonly needBytes?: number;
  constructor(code: GgufErrorCode, message: string, needBytes?: number) {
    super(message);
    this.name = "GgufError";
    this.code = code;
    this.needBytes = needBytes;
  }
}

/** A metadata value. 64-bit integers are numbers when exactly representable, else bigints. */
export type GgufValue = number | bigint | boolean | string | GgufValue[];

/** GGUF value type ids. */
export const GgufValueType = {
  u8: 0,
  i8: 1,
  u16: 2,
  i16: 3,
  u32: 4,
  i32: 5,
  f32: 6,
  bool: 7,
  string: 8,
  array: 9,
  u64: 10,
  i64: 11,
  f64: 12,
} as const;

/** Scalar value type names. */
export type GgufScalarTypeName = Exclude<keyof typeof GgufValueType, "array">;
/** A value type name: a scalar, or `array:<element type>` (nested: `array:array:u32`). */
export type GgufValueTypeName = GgufScalarTypeName | `array:${string}`;

const TYPE_NAMES: readonly string[] = Object.keys(GgufValueType);
/** Bytes per scalar of each fixed-size value type id (strings and arrays: minimum encoded size). */
const MIN_SIZE = [1, 1, 2, 2, 4, 4, 4, 1, 8, 12, 8, 8, 8];

/** Where one tensor is and how it is stored. */
export interface GgufTensorInfo {
  name: string;
  /** ne[], in ggml order: dims[0] is the row length (the axis quant blocks run along). */
  dims: number[];
  ggmlType: number;
  /** The storage layout (for ggml type 42, decided from the tensor's byte extent). */
  format: WeightFormat;
  /** Absolute byte offset of the data in the file. */
  offset: number;
  byteSize: number;
  nElements: number;
}

/** A parsed GGUF header. */
export interface GgufFile {
  path?: string;
  version: number;
  alignment: number;
  fileSize: number;
  /** Absolute offset of the data section. */
  dataOffset: number;
  metadata: Map<string, GgufValue>;
  /** The value type each key was stored with. */
  valueTypes: Map<string, GgufValueTypeName>;
  /** Insertion order is file order. */
  tensors: Map<string, GgufTensorInfo>;
  getNumber(key: string): number;
  getNumberOr(key: string, fallback: number): number;
  getString(key: string): string;
  getStringOr(key: string, fallback: string): string;
  getStringArray(key: string): string[];
  getNumberArray(key: string): number[];
  has(key: string): boolean;
  tensor(name: string): GgufTensorInfo;
}

const MAX_TENSORS = 1_000_000;
const MAX_KV = 1_000_000;
const MAX_DIMS = 4;
const DEFAULT_ALIGNMENT = 32;

class GgufFileImpl implements GgufFile {
  path?: string;
  constructor(
    readonly label: string,
    public version: number,
    public alignment: number,
    public fileSize: number,
    public dataOffset: number,
    public metadata: Map<string, GgufValue>,
    public valueTypes: Map<string, GgufValueTypeName>,
    public tensors: Map<string, GgufTensorInfo>,
  ) {}

  private value(key: string): GgufValue {
    const v = this.metadata.get(key);
    if (v === undefined) {
      throw new GgufError(
        "MISSING_KEY",
        `${this.label}: required metadata key '${key}' is missing`,
      );
    }
    return v;
  }

  private wrongType(key: string, want: string): GgufError {
    const type = this.valueTypes.get(key) ?? typeof this.metadata.get(key);
    return new GgufError(
      "WRONG_KEY_TYPE",
      `${this.label}: metadata key '${key}' should be ${want} but is stored as ${type}`,
    );
  }

  has(key: string): boolean {
    return this.metadata.has(key);
  }

  getNumber(key: string): number {
    const v = this.value(key);
    if (typeof v !== "number") throw this.wrongType(key, "a number");
    return v;
  }

  getNumberOr(key: string, fallback: number): number {
    return this.metadata.has(key) ? this.getNumber(key) : fallback;
  }

  getString(key: string): string {
    const v = this.value(key);
    if (typeof v !== "string") throw this.wrongType(key, "a string");
    return v;
  }

  getStringOr(key: string, fallback: string): string {
    return this.metadata.has(key) ? this.getString(key) : fallback;
  }

  getStringArray(key: string): string[] {
    const v = this.value(key);
    if (!Array.isArray(v) || (v.length > 0 && typeof v[0] !== "string")) {
      throw this.wrongType(key, "an array of strings");
    }
    return v as string[];
  }

  getNumberArray(key: string): number[] {
    const v = this.value(key);
    if (!Array.isArray(v) || v.some((e) => typeof e !== "number")) {
      throw this.wrongType(key, "an array of numbers");
    }
    return v as number[];
  }

  tensor(name: string): GgufTensorInfo {
    const t = this.tensors.get(name);
    if (!t) {
      throw new GgufError(
        "MISSING_KEY",
        `${this.label}: tensor '${name}' not in file`,
      );
    }
    return t;
  }
}

// ignoreBOM: a token may legitimately start with U+FEFF; the default decoder would drop it.
const utf8 = new TextDecoder("utf-8", { ignoreBOM: true });
const utf8Fatal = new TextDecoder("utf-8", { ignoreBOM: true, fatal: true });

/** Sequential little-endian reader over the header bytes, with bounds checks that name the file. */
class Cursor {
  pos = 0;
  readonly view: DataView;
  constructor(
    readonly bytes: Uint8Array,
    readonly fileSize: number,
    readonly label: string,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Throws TRUNCATED unless `n` more bytes are available. */
  need(n: number, what: string, needHint = 0): void {
    if (this.pos + n <= this.bytes.length) return;
    if (this.bytes.length < this.fileSize && this.pos + n <= this.fileSize) {
      throw new GgufError(
        "TRUNCATED",
        `${this.label}: header window of ${this.bytes.length} bytes ends inside ${what}`,
        Math.max(needHint, this.pos + n),
      );
    }
    throw new GgufError(
      "TRUNCATED",
      `${this.label}: file is truncated: ${what} at byte ${this.pos} needs ${n} bytes, ` +
        `file has ${this.fileSize}`,
    );
  }

  /** Rejects a count whose minimum encoding cannot fit in the rest of the file (absurd counts). */
  checkCount(count: number, minBytesEach: number, what: string): void {
    if (count * minBytesEach > this.fileSize - this.pos) {
      throw new GgufError(
        "TRUNCATED",
        `${this.label}: ${what} claims ${count} entries at byte ${this.pos}, which cannot fit in ` +
          `a file of ${this.fileSize} bytes (corrupt or truncated file)`,
      );
    }
  }

  u8(what: string): number {
    this.need(1, what);
    return this.bytes[this.pos++];
  }
  u32(what: string): number {
    this.need(4, what);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  /** A u64 that must be an exact JS number (counts, lengths, offsets, dims). */
  u64n(what: string, needHint = 0): number {
    this.need(8, what, needHint);
    const lo = this.view.getUint32(this.pos, true);
    const hi = this.view.getUint32(this.pos + 4, true);
    if (hi >= 0x200000) {
      throw new GgufError(
        "TRUNCATED",
        `${this.label}: ${what} at byte ${this.pos} is an absurd 64-bit value ` +
          `(${(BigInt(hi) << 32n) | BigInt(lo)}); the file is corrupt`,
      );
    }
    this.pos += 8;
    return hi * 4294967296 + lo;
  }
  str(what: string, needHint = 0): string {
    const len = this.u64n(`length of ${what}`);
    if (len > this.fileSize) {
      throw new GgufError(
        "TRUNCATED",
        `${this.label}: ${what} claims a length of ${len} bytes, more than the whole file ` +
          `(${this.fileSize}); the file is corrupt`,
      );
    }
    this.need(len, what, needHint);
    const start = this.pos;
    this.pos += len;
    return decodeUtf8(this.bytes, start, len);
  }
}

/** Decodes UTF-8; short pure-ASCII strings (most tokens) skip the TextDecoder call overhead. */
function decodeUtf8(bytes: Uint8Array, start: number, len: number): string {
  if (len <= 16) {
    let ascii = true;
    for (let i = 0; i < len; i++) {
      if (bytes[start + i] >= 0x80) {
        ascii = false;
        break;
      }
    }
    if (ascii) {
      let s = "";
      for (let i = 0; i < len; i++) s += String.fromCharCode(bytes[start + i]);
      return s;
    }
  }
  return utf8.decode(bytes.subarray(start, start + len));
}

/**
 * Reads `count` strings. Token and merge lists hold ~150k strings each, so instead of one
 * TextDecoder call per string they are joined (NUL-separated, so no UTF-8 sequence can span two
 * strings) and decoded at once, then cut by their UTF-16 lengths counted from the bytes. Invalid
 * UTF-8 falls back to decoding each string on its own (with replacement characters).
 */
function readStringArray(c: Cursor, count: number, what: string): string[] {
  const starts = new Float64Array(count);
  const lens = new Float64Array(count);
  const first = c.pos;
  let total = 0;
  for (let i = 0; i < count; i++) {
    // On running out, estimate the bytes this array still needs from its average entry so far.
    const hint = i > 0 ? Math.ceil(c.pos + ((c.pos - first) / i) * (count - i) * 1.1) : 0;
    const len = c.u64n(`length of ${what}[${i}]`, hint);
    if (len > c.fileSize) {
      throw new GgufError(
        "TRUNCATED",
        `${c.label}: ${what}[${i}] claims a length of ${len} bytes, more than the whole file ` +
          `(${c.fileSize}); the file is corrupt`,
      );
    }
    c.need(len, `${what}[${i}]`, hint);
    starts[i] = c.pos;
    lens[i] = len;
    c.pos += len;
    total += len + 1;
  }
  const bytes = c.bytes;
  const joined = new Uint8Array(total);
  const units = new Uint32Array(count); // UTF-16 length of each string, if valid UTF-8
  let q = 0;
  for (let i = 0; i < count; i++) {
    let n = 0;
    for (let p = starts[i], end = p + lens[i]; p < end; p++) {
      const b = bytes[p];
      joined[q++] = b;
      // Every byte but continuation bytes starts a code point; 4-byte ones need two UTF-16 units.
      if ((b & 0xc0) !== 0x80) n += b >= 0xf0 ? 2 : 1;
    }
    units[i] = n;
    joined[q++] = 0;
  }
  const out: string[] = new Array(count);
  let all: string;
  try {
    all = utf8Fatal.decode(joined);
  } catch {
    for (let i = 0; i < count; i++) {
      out[i] = decodeUtf8(bytes, starts[i], lens[i]);
    }
    return out;
  }
  let u = 0;
  for (let i = 0; i < count; i++) {
    out[i] = all.substring(u, u + units[i]);
    u += units[i] + 1;
  }
  return out;
}

/**
 * The shortest decimal that is the same float32 as `x`: a stored 0.85f reads back as 0.85, not
 * 0.8500000238418579 (so CLI output and comparisons with published values look right).
 */
function shortestF32(x: number): number {
  if (!Number.isFinite(x)) return x;
  for (let p = 1; p < 10; p++) {
    const y = Number(x.toPrecision(p));
    if (Math.fround(y) === x) return y;
  }
  return x;
}

interface ReadValue {
  value: GgufValue;
  type: GgufValueTypeName;
}

function readScalar(
  c: Cursor,
  type: number,
  what: string,
): number | bigint | boolean {
  const size = MIN_SIZE[type];
  c.need(size, what);
  const p = c.pos;
  c.pos += size;
  const v = c.view;
  switch (type) {
    case 0:
      return v.getUint8(p);
    case 1:
      return v.getInt8(p);
    case 2:
      return v.getUint16(p, true);
    case 3:
      return v.getInt16(p, true);
    case 4:
      return v.getUint32(p, true);
    case 5:
      return v.getInt32(p, true);
    case 6:
      return v.getFloat32(p, true);
    case 7: {
      const b = v.getUint8(p);
      if (b > 1) {
        throw new GgufError(
          "WRONG_KEY_TYPE",
          `${c.label}: ${what} is a bool with invalid byte value ${b}`,
        );
      }
      return b === 1;
    }
    case 10: {
      const x = v.getBigUint64(p, true);
      return x <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(x) : x;
    }
    case 11: {
      const x = v.getBigInt64(p, true);
      return x <= BigInt(Number.MAX_SAFE_INTEGER) &&
          x >= BigInt(Number.MIN_SAFE_INTEGER)
        ? Number(x)
        : x;
    }
    case 12:
      return v.getFloat64(p, true);
    default:
      throw new Error(`unreachable scalar type ${type}`);
  }
}

function checkValueType(c: Cursor, type: number, what: string): void {
  if (!(type >= 0 && type <= 12)) {
    throw new GgufError(
      "UNKNOWN_VALUE_TYPE",
      `${c.label}: ${what} has unknown value type ${type} (known: 0..12 = ${TYPE_NAMES.join(", ")})`,
    );
  }
}

function readValue(
  c: Cursor,
  type: number,
  what: string,
  depth: number,
): ReadValue {
  checkValueType(c, type, what);
  if (type === GgufValueType.string) {
    return { value: c.str(what), type: "string" };
  }
  if (type !== GgufValueType.array) {
    const v = readScalar(c, type, what);
    return {
      value: type === GgufValueType.f32 ? shortestF32(v as number) : v,
      type: TYPE_NAMES[type] as GgufScalarTypeName,
    };
  }
  if (depth > 8) {
    throw new GgufError(
      "UNKNOWN_VALUE_TYPE",
      `${c.label}: ${what} nests arrays too deeply`,
    );
  }
  const elemType = c.u32(`element type of ${what}`);
  checkValueType(c, elemType, `elements of ${what}`);
  const count = c.u64n(`length of ${what}`);
  c.checkCount(count, MIN_SIZE[elemType], what);
  const out: GgufValue[] = new Array(count);
  if (elemType === GgufValueType.string) {
    return { value: readStringArray(c, count, what), type: "array:string" };
  }
  if (elemType === GgufValueType.array) {
    let inner: GgufValueTypeName = "array:u8";
    for (let i = 0; i < count; i++) {
      const r = readValue(c, GgufValueType.array, `${what}[${i}]`, depth + 1);
      out[i] = r.value;
      if (i === 0) inner = r.type;
    }
    return { value: out, type: `array:${inner}` };
  }
  const size = MIN_SIZE[elemType];
  c.need(count * size, what);
  const v = c.view;
  const p = c.pos;
  if (elemType === GgufValueType.i32) {
    for (let i = 0; i < count; i++) out[i] = v.getInt32(p + 4 * i, true);
    c.pos += 4 * count;
  } else if (elemType === GgufValueType.u32) {
    for (let i = 0; i < count; i++) out[i] = v.getUint32(p + 4 * i, true);
    c.pos += 4 * count;
  } else {
    for (let i = 0; i < count; i++) out[i] = readScalar(c, elemType, what);
  }
  return { value: out, type: `array:${TYPE_NAMES[elemType]}` };
}

/**
 * Parses a GGUF header from its first bytes. `header` may be the whole file or a prefix of it
 * (`fileSize` is the whole file's size, used for bounds checks); if the prefix is too short the
 * error is TRUNCATED with `needBytes` set. `label` names the file in error messages.
 */
export function parseGguf(
  header: Uint8Array,
  fileSize: number,
  label = "GGUF data",
): GgufFile {
  const c = new Cursor(header, fileSize, label);
  if (fileSize < 4 || header.length < 4) {
    throw new GgufError(
      "TRUNCATED",
      `${label}: file is ${fileSize} bytes, too short to be GGUF`,
    );
  }
  const magic = header.subarray(0, 4);
  if (
    !(magic[0] === 0x47 && magic[1] === 0x47 && magic[2] === 0x55 &&
      magic[3] === 0x46)
  ) {
    const shown = Array.from(
      magic,
      (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : "."),
    )
      .join("");
    const hex = Array.from(magic, (b) => b.toString(16).padStart(2, "0")).join(
      " ",
    );
    throw new GgufError(
      "BAD_MAGIC",
      `${label}: not a GGUF file: magic is "${shown}" (${hex}), expected "GGUF"`,
    );
  }
  c.pos = 4;
  const version = c.u32("version");
  if (version !== 2 && version !== 3) {
    const hint = version === 1
      ? " (GGUF v1 is obsolete: re-convert the model with a current llama.cpp)"
      : version >= 0x01000000
      ? " (looks like a big-endian GGUF file; only little-endian is supported)"
      : "";
    throw new GgufError(
      "BAD_VERSION",
      `${label}: unsupported GGUF version ${version}; supported: 2, 3${hint}`,
    );
  }
  const nTensors = c.u64n("tensor count");
  if (nTensors > MAX_TENSORS) {
    throw new GgufError(
      "TRUNCATED",
      `${label}: tensor count ${nTensors} is absurd (limit ${MAX_TENSORS}); the file is corrupt`,
    );
  }
  const nKv = c.u64n("metadata count");
  if (nKv > MAX_KV) {
    throw new GgufError(
      "TRUNCATED",
      `${label}: metadata count ${nKv} is absurd (limit ${MAX_KV}); the file is corrupt`,
    );
  }
  c.checkCount(nKv, 8 + 1 + 4, "metadata");
  const metadata = new Map<string, GgufValue>();
  const valueTypes = new Map<string, GgufValueTypeName>();
  for (let i = 0; i < nKv; i++) {
    const key = c.str(`key of metadata entry ${i}`);
    const type = c.u32(`value type of '${key}'`);
    const r = readValue(c, type, `value of '${key}'`, 0);
    metadata.set(key, r.value);
    valueTypes.set(key, r.type);
  }

  let alignment = DEFAULT_ALIGNMENT;
  if (metadata.has("general.alignment")) {
    const a = metadata.get("general.alignment");
    if (
      typeof a !== "number" || a <= 0 || !Number.isInteger(a) ||
      (a & (a - 1)) !== 0
    ) {
      throw new GgufError(
        "WRONG_KEY_TYPE",
        `${label}: general.alignment must be a power of two, got ${String(a)}`,
      );
    }
    alignment = a;
  }

  interface RawTensor {
    name: string;
    dims: number[];
    nElements: number;
    ggmlType: number;
    relOffset: number;
  }
  c.checkCount(nTensors, 8 + 4 + 4 + 8, "tensor info list");
  const raw: RawTensor[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < nTensors; i++) {
    const name = c.str(`name of tensor ${i}`);
    if (seen.has(name)) {
      throw new GgufError(
        "BAD_TENSOR",
        `${label}: tensor '${name}' appears twice`,
      );
    }
    seen.add(name);
    const nDims = c.u32(`dimension count of tensor '${name}'`);
    if (nDims < 1 || nDims > MAX_DIMS) {
      throw new GgufError(
        "BAD_TENSOR",
        `${label}: tensor '${name}' has ${nDims} dimensions (supported: 1..${MAX_DIMS})`,
      );
    }
    const dims: number[] = [];
    let nElements = 1;
    for (let d = 0; d < nDims; d++) {
      const ne = c.u64n(`dimension ${d} of tensor '${name}'`);
      dims.push(ne);
      nElements *= ne;
    }
    if (!Number.isSafeInteger(nElements)) {
      throw new GgufError(
        "BAD_TENSOR",
        `${label}: tensor '${name}' has absurd dimensions [${dims.join(", ")}]`,
      );
    }
    const ggmlType = c.u32(`type of tensor '${name}'`);
    const relOffset = c.u64n(`offset of tensor '${name}'`);
    raw.push({ name, dims, nElements, ggmlType, relOffset });
  }
  const dataOffset = alignUp(c.pos, alignment);

  // Byte extent of each tensor: the gap to the next tensor's data, or to the end of the file.
  const starts = [...new Set(raw.map((t) => t.relOffset))].sort((a, b) => a - b);
  const extentOf = (rel: number): number => {
    const k = starts.indexOf(rel);
    const next = k + 1 < starts.length ? starts[k + 1] + dataOffset : fileSize;
    return next - (rel + dataOffset);
  };

  const tensors = new Map<string, GgufTensorInfo>();
  const pendingQ2: RawTensor[] = [];
  const q2Vote = { g128: 0, g64: 0 };
  const add = (t: RawTensor, format: WeightFormat) => {
    const byteSize = (t.nElements / format.blockSize) * format.blockBytes;
    const offset = dataOffset + t.relOffset;
    if (offset + byteSize > fileSize) {
      throw new GgufError(
        "OUT_OF_BOUNDS",
        `${label}: tensor '${t.name}' (${format.name} [${t.dims.join(", ")}]) occupies bytes ` +
          `${offset}..${offset + byteSize}, past the end of the file (${fileSize} bytes): ` +
          `the file is truncated`,
      );
    }
    tensors.set(t.name, {
      name: t.name,
      dims: t.dims,
      ggmlType: t.ggmlType,
      format,
      offset,
      byteSize,
      nElements: t.nElements,
    });
  };
  const checkRow = (t: RawTensor, format: WeightFormat) => {
    if (t.dims[0] % format.blockSize !== 0) {
      throw new GgufError(
        "BAD_TENSOR",
        `${label}: tensor '${t.name}' has rows of ${t.dims[0]} elements, not a multiple of the ` +
          `${format.name} block size ${format.blockSize}`,
      );
    }
  };
  for (const t of raw) {
    const format = formatOfGgmlType(t.ggmlType);
    if (!format) {
      throw new GgufError(
        "UNKNOWN_TENSOR_TYPE",
        `${label}: tensor '${t.name}' has ggml type ${t.ggmlType}, which is not supported ` +
          `(supported: ${SUPPORTED_TYPES_TEXT})`,
      );
    }
    if (t.relOffset % alignment !== 0) {
      throw new GgufError(
        "BAD_TENSOR",
        `${label}: tensor '${t.name}' data offset ${t.relOffset} is not a multiple of the ` +
          `alignment ${alignment}`,
      );
    }
    if (t.ggmlType !== GgmlType.Q2_0) {
      checkRow(t, format);
      add(t, format);
      continue;
    }
    const guess = q2BlockSizeFromExtent(t, extentOf(t.relOffset), alignment);
    if (guess === "bad") {
      throw new GgufError(
        "OUT_OF_BOUNDS",
        `${label}: Q2_0 tensor '${t.name}' [${t.dims.join(", ")}] has only ` +
          `${extentOf(t.relOffset)} bytes before the next tensor or end of file; it needs ` +
          `${(t.nElements / 128) * 34} (block 128) or ${(t.nElements / 64) * 18} (block 64)`,
      );
    }
    if (guess === "ambiguous") {
      pendingQ2.push(t);
      continue;
    }
    if (guess === 128) q2Vote.g128++;
    else q2Vote.g64++;
    const fmt = guess === 128 ? FORMATS.Q2_0 : FORMATS.Q2_0_g64;
    checkRow(t, fmt);
    add(t, fmt);
  }
  // Small Q2_0 tensors whose extent fits both block sizes follow the rest of the file
  // (PrismML's 128-block layout if nothing decides).
  const fileChoice = q2Vote.g64 > q2Vote.g128 ? FORMATS.Q2_0_g64 : FORMATS.Q2_0;
  for (const t of pendingQ2) {
    const fmt = t.dims[0] % fileChoice.blockSize === 0 ? fileChoice : FORMATS.Q2_0_g64;
    checkRow(t, fmt);
    add(t, fmt);
  }
  // Keep file order even if ambiguous Q2_0 tensors were resolved last.
  const ordered = new Map<string, GgufTensorInfo>();
  for (const t of raw) ordered.set(t.name, tensors.get(t.name)!);
  checkNoOverlap(ordered, label);

  return new GgufFileImpl(
    label,
    version,
    alignment,
    fileSize,
    dataOffset,
    metadata,
    valueTypes,
    ordered,
  );
}

/**
 * Two tensors sharing bytes would each be read as the other's weights: a corrupted or hostile
 * file. (Exact duplicates are not used by writers either.)
 */
function checkNoOverlap(tensors: Map<string, GgufTensorInfo>, label: string): void {
  const byOffset = [...tensors.values()].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < byOffset.length; i++) {
    const a = byOffset[i - 1];
    const b = byOffset[i];
    if (a.offset + a.byteSize > b.offset) {
      throw new GgufError(
        "BAD_TENSOR",
        `${label}: tensors '${a.name}' (bytes ${a.offset}..${a.offset + a.byteSize}) and '${b.name}' ` +
          `(bytes ${b.offset}..${b.offset + b.byteSize}) overlap`,
      );
    }
  }
}

/**
 * Which Q2_0 block size a tensor's byte extent fits: a size fits tightly when the extent is the
 * size padded to the alignment (or the exact size, for an unpadded last tensor).
 */
function q2BlockSizeFromExtent(
  t: { dims: number[]; nElements: number },
  extent: number,
  alignment: number,
): 128 | 64 | "ambiguous" | "bad" {
  const size128 = t.dims[0] % 128 === 0 ? (t.nElements / 128) * 34 : -1;
  const size64 = t.dims[0] % 64 === 0 ? (t.nElements / 64) * 18 : -1;
  const tight = (size: number) => size >= 0 && extent >= size && extent <= alignUp(size, alignment);
  const t128 = tight(size128);
  const t64 = tight(size64);
  if (t128 && t64) return "ambiguous";
  if (t128) return 128;
  if (t64) return 64;
  // Loosely packed file: take the larger layout that fits.
  if (size64 >= 0 && extent >= size64) return 64;
  if (size128 >= 0 && extent >= size128) return 128;
  return "bad";
}

function alignUp(x: number, a: number): number {
  return Math.ceil(x / a) * a;
}

/**
 * Initial header read. Real Bonsai headers are ~6 MB (151k tokens + 151k merges), so one read
 * usually covers them; the window grows if not. At most this much tensor data is read along.
 */
const FIRST_WINDOW = 8 << 20;

/**
 * Reads and parses the header of the GGUF file at `path`. Only the header region is read (the
 * window, `opts.firstWindow` bytes at first, grows until the header fits); tensor data is
 * located, not loaded.
 */
export async function readGguf(
  path: string,
  opts: { firstWindow?: number } = {},
): Promise<GgufFile> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (e) {
    throw new Error(`cannot open GGUF file ${path}: ${(e as Error).message}`);
  }
  try {
    const fileSize = (await file.stat()).size;
    let window = Math.min(
      fileSize,
      Math.max(64, opts.firstWindow ?? FIRST_WINDOW),
    );
    let buf = new Uint8Array(0);
    for (;;) {
      if (window > buf.length) {
        const grown = new Uint8Array(window);
        grown.set(buf);
        await readFully(file, grown, buf.length);
        buf = grown;
      }
      try {
        const g = parseGguf(buf, fileSize, path);
        g.path = path;
        return g;
      } catch (e) {
        if (
          !(e instanceof GgufError) || e.needBytes === undefined ||
          window >= fileSize
        ) throw e;
        window = Math.min(
          fileSize,
          Math.max(window * 2, Math.ceil(e.needBytes * 1.05) + 4096),
        );
      }
    }
  } finally {
    file.close();
  }
}

async function readFully(
  file: Deno.FsFile,
  into: Uint8Array,
  from: number,
): Promise<void> {
  await file.seek(from, Deno.SeekMode.Start);
  let pos = from;
  while (pos < into.length) {
    const n = await file.read(into.subarray(pos));
    if (n === null) {
      throw new Error(`unexpected end of file while reading GGUF header`);
    }
    pos += n;
  }
}
