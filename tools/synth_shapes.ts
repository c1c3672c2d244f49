/**
 * Model shapes the generator can synthesize: the real Bonsai 1.7B and 4B geometries, and a tiny
 * one for fast tests (its q width 8*64 = 512 differs from n_embd 256, as in the 4B).
 */

/** Hyper-parameters of one Qwen3-architecture model. */
export interface SynthShape {
  /** CLI name. */
  name: string;
  /** Value of general.size_label. */
  sizeLabel: string;
  blockCount: number;
  nEmbd: number;
  nFf: number;
  nHead: number;
  nHeadKv: number;
  headDim: number;
  contextLength: number;
}

/** The shapes by CLI name. */
export const SHAPES = {
  tiny: {
    name: "tiny",
    sizeLabel: "tiny",
    blockCount: 2,
    nEmbd: 256,
    nFf: 512,
    nHead: 8,
    nHeadKv: 2,
    headDim: 64,
    contextLength: 2048,
  },
  "1.7b": {
    name: "1.7b",
    sizeLabel: "1.7B",
    blockCount: 28,
    nEmbd: 2048,
    nFf: 6144,
    nHead: 16,
    nHeadKv: 8,
    headDim: 128,
    contextLength: 32768,
  },
  "4b": {
    name: "4b",
    sizeLabel: "4B",
    blockCount: 36,
    nEmbd: 2560,
    nFf: 9728,
    nHead: 32,
    nHeadKv: 8,
    headDim: 128,
    contextLength: 32768,
  },
} as const satisfies Record<string, SynthShape>;

/** A CLI shape name. */
export type ShapeName = keyof typeof SHAPES;

/** Looks up a shape by name; throws listing the known names. */
export function shapeByName(name: string): SynthShape {
  if (!Object.hasOwn(SHAPES, name)) {
    throw new Error(
      `unknown shape '${name}'; known shapes: ${Object.keys(SHAPES).join(", ")}`,
    );
  }
  return SHAPES[name as ShapeName];
}
