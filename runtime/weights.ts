/**
 * Binds a GGUF file's tensors to the kernel library: the big matrices stay in the library's
 * memory map (never copied into the JS heap); the small norm vectors are read as f32.
 */
import type { GgufFile, GgufTensorInfo } from "./gguf.ts";
import { dequantizeRow } from "./quant.ts";
import type { Qwen3Config } from "./config.ts";
import type { Kernels, KTensor, MappedFile } from "../kernels/ffi.ts";

/** One transformer block's weights. */
export interface LayerWeights {
  attnNorm: Float32Array;
  wq: KTensor;
  wk: KTensor;
  wv: KTensor;
  wo: KTensor;
  qNorm: Float32Array;
  kNorm: Float32Array;
  ffnNorm: Float32Array;
  wGate: KTensor;
  wUp: KTensor;
  wDown: KTensor;
}

/** Everything the forward pass reads. `output` is `tokenEmbd` itself when the head is tied. */
export interface ModelWeights {
  tokenEmbd: KTensor;
  output: KTensor;
  outputNorm: Float32Array;
  layers: LayerWeights[];
  /** Bytes of weights read from the mapping per decoded token (matrices only). */
  bytesPerToken: number;
}

/** Maps the file and creates a kernel tensor per matrix. */
export function bindWeights(
  kernels: Kernels,
  file: GgufFile,
  map: MappedFile,
  config: Qwen3Config,
): ModelWeights {
  const bytes = readSmallTensors(file);
  let bytesPerToken = 0;
  const matrix = (name: string, countsPerToken = true): KTensor => {
    const info = file.tensor(name);
    if (countsPerToken) bytesPerToken += info.byteSize;
    return kernels.tensor(map, info.offset, info.format.kernelCode, info.dims[0], info.dims[1] ?? 1);
  };
  const vector = (name: string): Float32Array => {
    const info = file.tensor(name);
    return dequantizeRow(info.format, bytes.get(name)!, 0, info.nElements);
  };
  const tokenEmbd = matrix("token_embd.weight", config.tiedEmbeddings);
  const output = config.tiedEmbeddings ? tokenEmbd : matrix("output.weight");
  const layers: LayerWeights[] = [];
  for (let i = 0; i < config.nLayer; i++) {
    const b = `blk.${i}.`;
    layers.push({
      attnNorm: vector(b + "attn_norm.weight"),
      wq: matrix(b + "attn_q.weight"),
      wk: matrix(b + "attn_k.weight"),
      wv: matrix(b + "attn_v.weight"),
      wo: matrix(b + "attn_output.weight"),
      qNorm: vector(b + "attn_q_norm.weight"),
      kNorm: vector(b + "attn_k_norm.weight"),
      ffnNorm: vector(b + "ffn_norm.weight"),
      wGate: matrix(b + "ffn_gate.weight"),
      wUp: matrix(b + "ffn_up.weight"),
      wDown: matrix(b + "ffn_down.weight"),
    });
  }
  return { tokenEmbd, output, outputNorm: vector("output_norm.weight"), layers, bytesPerToken };
}

/** Frees every kernel tensor of a binding. */
export function freeWeights(w: ModelWeights): void {
  const seen = new Set<KTensor>();
  const free = (t: KTensor) => {
    if (!seen.has(t)) t.free();
    seen.add(t);
  };
  free(w.tokenEmbd);
  free(w.output);
  for (const l of w.layers) [l.wq, l.wk, l.wv, l.wo, l.wGate, l.wUp, l.wDown].forEach(free);
}

/** Reads the one-dimensional tensors (norms) of a file. */
function readSmallTensors(file: GgufFile): Map<string, Uint8Array> {
  if (!file.path) throw new Error("model file has no path to read norm weights from");
  const out = new Map<string, Uint8Array>();
  const fd = Deno.openSync(file.path, { read: true });
  try {
    for (const info of file.tensors.values()) {
      if (info.dims.filter((d) => d > 1).length > 1) continue;
      out.set(info.name, readAt(fd, info));
    }
  } finally {
    fd.close();
  }
  return out;
}

function readAt(fd: Deno.FsFile, info: GgufTensorInfo): Uint8Array {
  const buf = new Uint8Array(info.byteSize);
  fd.seekSync(info.offset, Deno.SeekMode.Start);
  let got = 0;
  while (got < buf.length) {
    const n = fd.readSync(buf.subarray(got));
    if (n === null || n === 0) {
      throw new Error(`tensor ${info.name}: file ends before its data (truncated model file)`);
    }
    got += n;
  }
  return buf;
}
