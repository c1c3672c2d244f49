/**
 * A loaded Bonsai (Qwen3) model: configuration, tokenizer and memory-mapped weights.
 */
import { type GgufFile, readGguf } from "./gguf.ts";
import { ModelConfigError, type Qwen3Config, qwen3ConfigFromGguf } from "./config.ts";
import { Tokenizer, tokenizerSpecFromMetadata } from "./tokenizer.ts";
import { bindWeights, freeWeights, type ModelWeights } from "./weights.ts";
import { DEFAULT_SAMPLING, type ResolvedSampling, resolveSampling, type SamplingOptions } from "./sampler.ts";
import { Kernels, type MappedFile } from "../kernels/ffi.ts";

/** How to load a model. */
export interface LoadOptions {
  /** Kernel worker threads (0 or absent: one per CPU). */
  threads?: number;
  /** An already loaded kernel library (default: found with `findKernelLibrary`). */
  kernels?: Kernels;
  /** The file's already parsed header (saves reading it twice). */
  file?: GgufFile;
}

/** A model ready to run. Call {@link Model.close} to unmap it. */
export class Model {
  private constructor(
    readonly path: string,
    readonly file: GgufFile,
    readonly config: Qwen3Config,
    readonly tokenizer: Tokenizer,
    readonly kernels: Kernels,
    readonly weights: ModelWeights,
    private readonly map: MappedFile,
    readonly samplingDefaults: ResolvedSampling,
    readonly loadMs: number,
  ) {}

  /**
   * Reads the header, checks it, maps the file and binds every tensor. Every value of the file
   * is checked here, before anything is allocated from it: a broken file fails at load (a
   * GgufError or ModelConfigError naming the key and the file), never in a later request.
   */
  static async load(path: string, opts: LoadOptions = {}): Promise<Model> {
    const started = performance.now();
    const file = opts.file ?? await readGguf(path);
    const config = qwen3ConfigFromGguf(file);
    let tokenizer: Tokenizer;
    try {
      tokenizer = new Tokenizer(tokenizerSpecFromMetadata(file.metadata));
      tokenizer.validate();
    } catch (e) {
      throw new ModelConfigError(`${path}: ${(e as Error).message}`);
    }
    if (tokenizer.vocabSize > config.nVocab) {
      throw new ModelConfigError(
        `${path}: tokenizer has ${tokenizer.vocabSize} tokens but token_embd has only ${config.nVocab} rows`,
      );
    }
    const samplingDefaults = samplingDefaultsFrom(file, path);
    const kernels = opts.kernels ?? Kernels.load();
    kernels.setThreads(opts.threads ?? 0);
    const map = kernels.openMap(path);
    let weights: ModelWeights;
    try {
      weights = bindWeights(kernels, file, map, config);
    } catch (e) {
      map.close();
      throw e;
    }
    return new Model(
      path,
      file,
      config,
      tokenizer,
      kernels,
      weights,
      map,
      samplingDefaults,
      performance.now() - started,
    );
  }

  /** Frees the kernel tensors and unmaps the file. */
  close(): void {
    freeWeights(this.weights);
    this.map.close();
  }
}

/** The file's sampling keys and the option each sets. */
const SAMPLING_KEYS: [string, keyof SamplingOptions][] = [
  ["general.sampling.temp", "temperature"],
  ["general.sampling.top_k", "topK"],
  ["general.sampling.top_p", "topP"],
  ["general.sampling.min_p", "minP"],
];

/**
 * The publisher's sampling defaults (`general.sampling.*`), where the file has them, checked
 * one by one: a bad value would otherwise be reported later as the client's BAD_REQUEST.
 */
function samplingDefaultsFrom(file: GgufFile, path: string): ResolvedSampling {
  const out: ResolvedSampling = { ...DEFAULT_SAMPLING };
  for (const [key, field] of SAMPLING_KEYS) {
    if (!file.has(key)) continue;
    const value = file.getNumber(key);
    try {
      resolveSampling({ [field]: value });
    } catch (e) {
      throw new ModelConfigError(`${path}: ${key} = ${value} is not usable: ${(e as Error).message}`);
    }
    out[field] = value;
  }
  return out;
}
