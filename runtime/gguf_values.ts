/**
 * GGUF values: the error type, the metadata value types, and the bounds-checked little-endian
 * cursor that reads them from a header (strings, scalars, nested arrays). `gguf.ts` builds the
 * file model on top.
 * @module
 */

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

// ignoreBOM: a token may legitimately start with U+FEFF; the default decoder would drop it.
const utf8 = new TextDecoder("utf-8", { ignoreBOM: true });
const utf8Fatal = new TextDecoder("utf-8", { ignoreBOM: true, fatal: true });

/** Sequential little-endian reader over the header bytes, with bounds checks that name the file. */
export class Cursor {
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

export function readValue(
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
