/**
 * GGUF (v2/v3) reader: parses the header (metadata and tensor infos) and locates every tensor's
 * data in the file, without reading the data itself.
 *
 * Layout (little-endian): magic "GGUF", u32 version, u64 tensor count, u64 KV count, KV pairs,
 * tensor infos (name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset), padding to
 * `general.alignment`, then the data section that the tensor offsets are relative to.
 */
import { formatOfGgmlType, FORMATS, GgmlType, SUPPORTED_TYPES_TEXT, type WeightFormat } from "./ggml_types.ts";
import { Cursor, GgufError, type GgufValue, type GgufValueTypeName, readValue } from "./gguf_values.ts";

export {
  GgufError,
  type GgufErrorCode,
  type GgufScalarTypeName,
  type GgufValue,
  GgufValueType,
  type GgufValueTypeName,
} from "./gguf_values.ts";

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
