/**
 * A loaded Bonsai (Qwen3) model: configuration, tokenizer and memory-mapped weights.
 */
import { readGguf, type GgufFile } from "./gguf.ts";
import { qwen3ConfigFromGguf, type Qwen3Config } from "./config.ts";
import { Tokenizer, tokenizerSpecFromMetadata } from "./tokenizer.ts";
import { bindWeights, freeWeights, type ModelWeights } from "./weights.ts";
import { DEFAULT_SAMPLING, type ResolvedSampling } from "./sampler.ts";
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

  /** Reads the header, checks it, maps the file and binds every tensor. */
  static async load(path: string, opts: LoadOptions = {}): Promise<Model> {
    const started = performance.now();
    const file = opts.file ?? await readGguf(path);
    const config = qwen3ConfigFromGguf(file);
    const tokenizer = new Tokenizer(tokenizerSpecFromMetadata(file.metadata));
    if (tokenizer.vocabSize > config.nVocab) {
      throw new Error(
        `tokenizer has ${tokenizer.vocabSize} tokens but token_embd has only ${config.nVocab} rows`,
      );
    }
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
      path, file, config, tokenizer, kernels, weights, map,
      samplingDefaultsFrom(file), performance.now() - started,
    );
  }

  /** Frees the kernel tensors and unmaps the file. */
  close(): void {
    freeWeights(this.weights);
    this.map.close();
  }
}

/** The publisher's sampling defaults (`general.sampling.*`), where the file has them. */
function samplingDefaultsFrom(file: GgufFile): ResolvedSampling {
  return {
    ...DEFAULT_SAMPLING,
    temperature: file.getNumberOr("general.sampling.temp", DEFAULT_SAMPLING.temperature),
    topK: file.getNumberOr("general.sampling.top_k", DEFAULT_SAMPLING.topK),
    topP: file.getNumberOr("general.sampling.top_p", DEFAULT_SAMPLING.topP),
    minP: file.getNumberOr("general.sampling.min_p", DEFAULT_SAMPLING.minP),
  };
}
