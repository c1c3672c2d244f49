/**
 * The ggml tensor types a Bonsai file may carry, and their block layouts.
 *
 * A "format" is what the kernels need to know: the ggml type id alone is not enough, because
 * Q2_0 (id 42) exists with two block sizes (see BONSAI.md); the reader picks the format per tensor.
 * The kernel codes are the C ABI's, owned by `kernels/ffi.ts`.
 */
import { Format, type FormatCode } from "../kernels/ffi.ts";

/** ggml type ids as written in GGUF tensor infos. */
export const GgmlType = {
  F32: 0,
  F16: 1,
  Q8_0: 8,
  Q1_0: 41,
  Q2_0: 42,
} as const;

/** Names of the weight layouts the runtime understands. */
export type FormatName = "F32" | "F16" | "Q8_0" | "Q1_0" | "Q2_0" | "Q2_0_g64";

/** One weight layout: elements are stored in blocks of `blockSize`, each `blockBytes` long. */
export interface WeightFormat {
  name: FormatName;
  /** The id written in the GGUF tensor info. */
  ggmlType: number;
  /** Elements per block (1 for plain floats). */
  blockSize: number;
  /** Bytes per block. */
  blockBytes: number;
  /** The id the Rust kernels use: the ggml id, except Q2_0_g64 = 242 (it shares ggml id 42). */
  kernelCode: FormatCode;
}

/** All supported formats, by name. */
export const FORMATS: Record<FormatName, WeightFormat> = {
  F32: {
    name: "F32",
    ggmlType: GgmlType.F32,
    blockSize: 1,
    blockBytes: 4,
    kernelCode: Format.F32,
  },
  F16: {
    name: "F16",
    ggmlType: GgmlType.F16,
    blockSize: 1,
    blockBytes: 2,
    kernelCode: Format.F16,
  },
  // fp16 d + int8 qs[32]
  Q8_0: {
    name: "Q8_0",
    ggmlType: GgmlType.Q8_0,
    blockSize: 32,
    blockBytes: 34,
    kernelCode: Format.Q8_0,
  },
  // fp16 d + 128 sign bits
  Q1_0: {
    name: "Q1_0",
    ggmlType: GgmlType.Q1_0,
    blockSize: 128,
    blockBytes: 18,
    kernelCode: Format.Q1_0,
  },
  // fp16 d + 128 two-bit codes (PrismML files)
  Q2_0: {
    name: "Q2_0",
    ggmlType: GgmlType.Q2_0,
    blockSize: 128,
    blockBytes: 34,
    kernelCode: Format.Q2_0,
  },
  // fp16 d + 64 two-bit codes (mainline llama.cpp files)
  Q2_0_g64: {
    name: "Q2_0_g64",
    ggmlType: GgmlType.Q2_0,
    blockSize: 64,
    blockBytes: 18,
    kernelCode: Format.Q2_0_G64,
  },
};

/** Human-readable list of supported ggml type ids, for error messages. */
export const SUPPORTED_TYPES_TEXT = "F32 (0), F16 (1), Q8_0 (8), Q1_0 (41), Q2_0 (42)";

/** The format for a ggml type id when the id alone decides it (everything but Q2_0), else undefined. */
export function formatOfGgmlType(ggmlType: number): WeightFormat | undefined {
  switch (ggmlType) {
    case GgmlType.F32:
      return FORMATS.F32;
    case GgmlType.F16:
      return FORMATS.F16;
    case GgmlType.Q8_0:
      return FORMATS.Q8_0;
    case GgmlType.Q1_0:
      return FORMATS.Q1_0;
    case GgmlType.Q2_0:
      return FORMATS.Q2_0;
    default:
      return undefined;
  }
}

/** Bytes taken by `nElements` elements of `format`; throws if that is not a whole number of blocks. */
export function byteSizeOf(format: WeightFormat, nElements: number): number {
  if (!Number.isSafeInteger(nElements) || nElements < 0) {
    throw new RangeError(
      `element count ${nElements} is not a non-negative integer`,
    );
  }
  if (nElements % format.blockSize !== 0) {
    throw new RangeError(
      `${nElements} elements is not a whole number of ${format.name} blocks of ${format.blockSize}`,
    );
  }
  return (nElements / format.blockSize) * format.blockBytes;
}
