import assert from "node:assert/strict";
import { GgufError, type GgufFile, parseGguf, readGguf } from "./gguf.ts";
import { GgufWriter } from "./gguf_writer.ts";
import { FORMATS, type WeightFormat } from "./ggml_types.ts";
import { Rng } from "./rng.ts";

const dir = await Deno.makeTempDir({ prefix: "gguf_test_" });
let fileNo = 0;

async function writeFile(
  w: GgufWriter,
): Promise<{ path: string; bytes: Uint8Array }> {
  const path = `${dir}/f${fileNo++}.gguf`;
  await w.write(path);
  return { path, bytes: await Deno.readFile(path) };
}

function randomBytes(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  new Rng(seed).fillBytes(b);
  return b;
}

/** A small model-like file: metadata and three tensors of different formats. */
function smallWriter(): GgufWriter {
  return new GgufWriter()
    .set("general.architecture", "qwen3")
    .set("qwen3.block_count", 2)
    .set("tokenizer.ggml.tokens", ["a", "b", "c"])
    .addTensor(
      "a",
      [3],
      FORMATS.F32,
      new Uint8Array(new Float32Array([1, 2, 3]).buffer),
    )
    .addTensor("b", [256, 2], FORMATS.Q1_0, randomBytes(72, 1))
    .addTensor("c", [5], FORMATS.F16, () => new Uint8Array(10).fill(0x3c));
}

function expectError(fn: () => unknown, code: string, message: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof GgufError, `expected GgufError, got ${e}`);
    assert.equal(e.code, code, `code of: ${e.message}`);
    assert.match(e.message, message);
    return true;
  });
}

async function expectErrorAsync(
  p: Promise<unknown>,
  code: string,
  message: RegExp,
): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof GgufError, `expected GgufError, got ${e}`);
    assert.equal(e.code, code, `code of: ${e.message}`);
    assert.match(e.message, message);
    return true;
  });
}

Deno.test("every value type round-trips, with its type recorded", () => {
  const w = new GgufWriter()
    .set("u8", 255, "u8")
    .set("i8", -128, "i8")
    .set("u16", 65535, "u16")
    .set("i16", -32768, "i16")
    .set("u32", 4294967295, "u32")
    .set("i32", -2147483648, "i32")
    .set("f32", 0.85, "f32")
    .set("f64", Math.PI, "f64")
    .set("bool", true)
    .set("bool0", false)
    .set("string", "héllo ✓ 🌲")
    .set("bom", "\uFEFFx")
    .set("u64small", 12345, "u64")
    .set("u64big", 2n ** 64n - 1n, "u64")
    .set("i64neg", -(2n ** 63n), "i64")
    .set("i64small", -5, "i64")
    .set("inferred_u32", 7)
    .set("inferred_f32", -1.5)
    .set("arr_u8", [0, 1, 255], "array:u8")
    .set("arr_i8", [-1, 2], "array:i8")
    .set("arr_u16", [1, 65535], "array:u16")
    .set("arr_i16", [-300, 300], "array:i16")
    .set("arr_u32", [1, 2, 3])
    .set("arr_i32", [-1, 5])
    .set("arr_f32", [0.5, -2.25])
    .set("arr_f64", [1e300, -1e-300], "array:f64")
    .set("arr_bool", [true, false, true])
    .set("arr_str", ["x", "", "ü", "🌲z", "\uFEFF"])
    .set("arr_u64", [1, 2n ** 60n], "array:u64")
    .set("arr_i64", [-1, -(2n ** 62n)], "array:i64")
    .set("arr_empty", [], "array:string")
    .set("nested", [[1, 2], [3]], "array:array:u16")
    .set("nested_str", [["a"], ["b", "c"]]);
  const h = w.headerBytes();
  const g = parseGguf(h, h.length);
  const want: Record<string, [unknown, string]> = {
    u8: [255, "u8"],
    i8: [-128, "i8"],
    u16: [65535, "u16"],
    i16: [-32768, "i16"],
    u32: [4294967295, "u32"],
    i32: [-2147483648, "i32"],
    f32: [0.85, "f32"],
    f64: [Math.PI, "f64"],
    bool: [true, "bool"],
    bool0: [false, "bool"],
    string: ["héllo ✓ 🌲", "string"],
    bom: ["\uFEFFx", "string"],
    u64small: [12345, "u64"],
    u64big: [2n ** 64n - 1n, "u64"],
    i64neg: [-(2n ** 63n), "i64"],
    i64small: [-5, "i64"],
    inferred_u32: [7, "u32"],
    inferred_f32: [-1.5, "f32"],
    arr_u8: [[0, 1, 255], "array:u8"],
    arr_i8: [[-1, 2], "array:i8"],
    arr_u16: [[1, 65535], "array:u16"],
    arr_i16: [[-300, 300], "array:i16"],
    arr_u32: [[1, 2, 3], "array:u32"],
    arr_i32: [[-1, 5], "array:i32"],
    arr_f32: [[0.5, -2.25], "array:f32"],
    arr_f64: [[1e300, -1e-300], "array:f64"],
    arr_bool: [[true, false, true], "array:bool"],
    arr_str: [["x", "", "ü", "🌲z", "\uFEFF"], "array:string"],
    arr_u64: [[1, 2n ** 60n], "array:u64"],
    arr_i64: [[-1, -(2n ** 62n)], "array:i64"],
    arr_empty: [[], "array:string"],
    nested: [[[1, 2], [3]], "array:array:u16"],
    nested_str: [[["a"], ["b", "c"]], "array:array:string"],
  };
  assert.deepEqual([...g.metadata.keys()], Object.keys(want));
  for (const [k, [value, type]] of Object.entries(want)) {
    assert.deepEqual(g.metadata.get(k), value, k);
    assert.equal(g.valueTypes.get(k), type, k);
  }
  assert.equal(g.version, 3);
  assert.equal(g.tensors.size, 0);
});

Deno.test("writer rejects values that do not fit their type", () => {
  const w = new GgufWriter();
  assert.throws(() => w.set("k", 256, "u8"), /key 'k'.*256 is not a valid u8/);
  assert.throws(() => w.set("k", -1, "u32"), /not a valid u32/);
  assert.throws(() => w.set("k", 1.5, "i32"), /not a valid i32/);
  assert.throws(() => w.set("k", "x", "u32"), /not a valid u32/);
  assert.throws(() => w.set("k", 1, "string"), /needs a string/);
  assert.throws(() => w.set("k", [1, "a"]), /mixed/);
  assert.throws(() => w.set("k", 1, "u128" as "u8"), /unknown value type/);
  assert.throws(
    () => w.addTensor("t", [100], FORMATS.Q1_0, new Uint8Array(18)),
    /multiple of the Q1_0 block size/,
  );
  assert.throws(
    () => w.addTensor("t", [128], FORMATS.Q1_0, new Uint8Array(17)),
    /17 bytes, expected 18/,
  );
});

Deno.test("getters: typed access, MISSING_KEY and WRONG_KEY_TYPE name the key", async () => {
  const { path } = await writeFile(smallWriter());
  const g = await readGguf(path);
  assert.equal(g.getString("general.architecture"), "qwen3");
  assert.equal(g.getNumber("qwen3.block_count"), 2);
  assert.equal(g.getNumberOr("qwen3.nope", 9), 9);
  assert.equal(g.getStringOr("nope", "d"), "d");
  assert.deepEqual(g.getStringArray("tokenizer.ggml.tokens"), ["a", "b", "c"]);
  assert.ok(g.has("qwen3.block_count") && !g.has("nope"));
  expectError(
    () => g.getNumber("qwen3.missing"),
    "MISSING_KEY",
    /'qwen3\.missing' is missing/,
  );
  expectError(
    () => g.getString("qwen3.block_count"),
    "WRONG_KEY_TYPE",
    /'qwen3\.block_count'.*u32/,
  );
  expectError(
    () => g.getNumber("general.architecture"),
    "WRONG_KEY_TYPE",
    /general\.architecture/,
  );
  expectError(
    () => g.getNumberArray("tokenizer.ggml.tokens"),
    "WRONG_KEY_TYPE",
    /array of numbers/,
  );
  expectError(
    () => g.getStringArray("qwen3.block_count"),
    "WRONG_KEY_TYPE",
    /array of strings/,
  );
  expectError(() => g.tensor("x"), "MISSING_KEY", /tensor 'x' not in file/);
  assert.ok(g.getNumberOr("qwen3.block_count", 0) === 2);
});

Deno.test("tensors: absolute offsets, sizes, data readable at the offsets", async () => {
  const { path, bytes } = await writeFile(smallWriter());
  const g = await readGguf(path);
  assert.equal(g.path, path);
  assert.equal(g.fileSize, bytes.length);
  assert.equal(g.alignment, 32);
  assert.equal(g.dataOffset % 32, 0);
  assert.deepEqual([...g.tensors.keys()], ["a", "b", "c"]);
  const a = g.tensor("a"), b = g.tensor("b"), c = g.tensor("c");
  assert.equal(a.offset, g.dataOffset);
  assert.deepEqual([a.byteSize, b.byteSize, c.byteSize], [12, 72, 10]);
  assert.deepEqual(b.dims, [256, 2]);
  assert.equal(b.nElements, 512);
  assert.equal(b.format, FORMATS.Q1_0);
  assert.equal(c.format.name, "F16");
  for (const t of [a, b, c]) assert.equal((t.offset - g.dataOffset) % 32, 0);
  assert.deepEqual(
    [...new Float32Array(bytes.slice(a.offset, a.offset + 12).buffer)],
    [1, 2, 3],
  );
  assert.deepEqual(bytes.subarray(b.offset, b.offset + 72), randomBytes(72, 1));
  assert.ok(bytes.subarray(c.offset, c.offset + 10).every((x) => x === 0x3c));
});

Deno.test("general.alignment is written and honoured", async () => {
  const w = new GgufWriter({ alignment: 256 })
    .addTensor("x", [3], FORMATS.F32, new Uint8Array(12).fill(1))
    .addTensor("y", [7], FORMATS.F16, new Uint8Array(14).fill(2));
  const { path, bytes } = await writeFile(w);
  const g = await readGguf(path);
  assert.equal(g.alignment, 256);
  assert.equal(g.getNumber("general.alignment"), 256);
  assert.equal(g.dataOffset % 256, 0);
  assert.equal(g.tensor("y").offset, g.dataOffset + 256);
  assert.ok(
    bytes.subarray(g.tensor("y").offset, g.tensor("y").offset + 14).every((x) => x === 2),
  );
  assert.throws(() => new GgufWriter({ alignment: 48 }), /power of two/);
  // A file declaring a non-power-of-two alignment is rejected.
  const bad = new GgufWriter().set("general.alignment", 48, "u32")
    .headerBytes();
  expectError(
    () => parseGguf(bad, bad.length),
    "WRONG_KEY_TYPE",
    /power of two, got 48/,
  );
});

Deno.test("bad magic says what was found; versions 1 and 99 are rejected", async () => {
  const { bytes } = await writeFile(smallWriter());
  const m = bytes.slice();
  m.set([0x50, 0x4b, 0x03, 0x04], 0); // a zip file
  expectError(
    () => parseGguf(m, m.length, "model.zip"),
    "BAD_MAGIC",
    /model\.zip: .*"PK\.\." \(50 4b 03 04\)/,
  );
  for (const v of [1, 99]) {
    const b = bytes.slice();
    new DataView(b.buffer).setUint32(4, v, true);
    expectError(
      () => parseGguf(b, b.length),
      "BAD_VERSION",
      new RegExp(`version ${v}`),
    );
  }
  const v2 = bytes.slice();
  new DataView(v2.buffer).setUint32(4, 2, true);
  assert.equal(parseGguf(v2, v2.length).version, 2);
});

Deno.test("truncation anywhere in the header is TRUNCATED, in the data OUT_OF_BOUNDS", async () => {
  const { bytes } = await writeFile(smallWriter());
  const g = parseGguf(bytes, bytes.length);
  const headerCuts = [
    0,
    3,
    4,
    7,
    8,
    15,
    20,
    30,
    60,
    Math.floor(g.dataOffset / 2),
    g.dataOffset - 33,
  ];
  for (const n of headerCuts) {
    expectError(
      () => parseGguf(bytes.slice(0, n), n, "cut.gguf"),
      "TRUNCATED",
      /cut\.gguf/,
    );
  }
  for (
    const n of [
      g.dataOffset,
      g.tensor("b").offset + 10,
      g.tensor("c").offset + 9,
    ]
  ) {
    expectError(
      () => parseGguf(bytes.slice(0, n), n, "cut.gguf"),
      "OUT_OF_BOUNDS",
      /tensor '[abc]'.*past the end/,
    );
  }
  // The same through readGguf on real files (no endless window growing).
  for (
    const n of [20, Math.floor(g.dataOffset / 2), g.tensor("c").offset + 3]
  ) {
    const p = `${dir}/cut${n}.gguf`;
    await Deno.writeFile(p, bytes.slice(0, n));
    await expectErrorAsync(
      readGguf(p),
      n > g.dataOffset ? "OUT_OF_BOUNDS" : "TRUNCATED",
      new RegExp(p),
    );
  }
});

Deno.test("a header prefix shorter than the file asks for more bytes", async () => {
  const { bytes } = await writeFile(smallWriter());
  assert.throws(
    () => parseGguf(bytes.slice(0, 40), bytes.length),
    (e: unknown) => {
      assert.ok(
        e instanceof GgufError && e.code === "TRUNCATED" &&
          e.needBytes !== undefined,
      );
      return true;
    },
  );
});

Deno.test("readGguf grows its window over a header larger than the first read", async () => {
  const tokens = Array.from({ length: 20000 }, (_, i) => `tok${i}✓`);
  const w = new GgufWriter().set("tokenizer.ggml.tokens", tokens).set(
    "after",
    "end",
  )
    .addTensor("t", [4], FORMATS.F32, new Uint8Array(16));
  const { path } = await writeFile(w);
  const g = await readGguf(path, { firstWindow: 1000 });
  assert.deepEqual(g.getStringArray("tokenizer.ggml.tokens"), tokens);
  assert.equal(g.getString("after"), "end");
  assert.equal(g.tensor("t").byteSize, 16);
});

Deno.test("unknown tensor type names the tensor, the id and the supported types", async () => {
  const fake: WeightFormat = { ...FORMATS.F32, ggmlType: 99 };
  const { bytes } = await writeFile(
    new GgufWriter().addTensor("weird.weight", [4], fake, new Uint8Array(16)),
  );
  expectError(
    () => parseGguf(bytes, bytes.length),
    "UNKNOWN_TENSOR_TYPE",
    /tensor 'weird\.weight' has ggml type 99.*supported: F32 \(0\).*Q1_0 \(41\)/,
  );
});

Deno.test("row length not a multiple of the block size is BAD_TENSOR", async () => {
  // Claim Q1_0 (block 128) for a 100-element row, bypassing the writer's own check.
  const fake: WeightFormat = { ...FORMATS.Q1_0, blockSize: 1 };
  const { bytes } = await writeFile(
    new GgufWriter().addTensor("odd", [100], fake, new Uint8Array(1800)),
  );
  expectError(
    () => parseGguf(bytes, bytes.length),
    "BAD_TENSOR",
    /'odd'.*100 elements.*block size 128/,
  );
});

Deno.test("absurd counts and lengths are rejected without allocating", async () => {
  const { bytes } = await writeFile(smallWriter());
  const patch = (at: number, value: bigint) => {
    const b = bytes.slice();
    new DataView(b.buffer).setBigUint64(at, value, true);
    return b;
  };
  let b = patch(8, 2_000_000n); // tensor count
  expectError(
    () => parseGguf(b, b.length),
    "TRUNCATED",
    /tensor count 2000000 is absurd/,
  );
  b = patch(16, 5_000_000_000n); // KV count
  expectError(
    () => parseGguf(b, b.length),
    "TRUNCATED",
    /metadata count .* is absurd/,
  );
  b = patch(16, 100_000n); // KV count that cannot fit in the file
  expectError(() => parseGguf(b, b.length), "TRUNCATED", /cannot fit/);
  b = patch(24, 1n << 40n); // length of the first key
  expectError(
    () => parseGguf(b, b.length),
    "TRUNCATED",
    /more than the whole file/,
  );
  b = patch(24, 1n << 62n);
  expectError(() => parseGguf(b, b.length), "TRUNCATED", /absurd 64-bit value/);
  // An array whose count cannot fit.
  const arr = new GgufWriter().set("k", [1, 2, 3]).headerBytes();
  const at = 24 + 8 + 1 + 4 + 4; // key length, "k", value type, element type
  new DataView(arr.buffer).setBigUint64(at, 1_000_000_000n, true);
  expectError(
    () => parseGguf(arr, arr.length),
    "TRUNCATED",
    /'k'.*1000000000 entries.*cannot fit/,
  );
});

Deno.test("unknown metadata value type is UNKNOWN_VALUE_TYPE naming the key", () => {
  const h = new GgufWriter().set("some.key", 1, "u32").headerBytes();
  new DataView(h.buffer).setUint32(24 + 8 + 8, 13, true);
  expectError(
    () => parseGguf(h, h.length),
    "UNKNOWN_VALUE_TYPE",
    /'some\.key' has unknown value type 13/,
  );
});

Deno.test("Q2_0 block size (128 vs 64) is told apart by each tensor's byte extent", async () => {
  const q2 = (w: GgufWriter, name: string, dims: number[], f: WeightFormat) =>
    w.addTensor(
      name,
      dims,
      f,
      randomBytes((dims[0] * (dims[1] ?? 1) / f.blockSize) * f.blockBytes, 5),
    );
  // Mixed in one file, each as a middle and as the last tensor.
  const w = new GgufWriter();
  q2(w, "m128", [4096, 2], FORMATS.Q2_0);
  q2(w, "m64", [4096, 2], FORMATS.Q2_0_g64);
  q2(w, "only64", [192, 3], FORMATS.Q2_0_g64); // row not a multiple of 128: must be 64
  q2(w, "last128", [4096, 3], FORMATS.Q2_0);
  const { bytes } = await writeFile(w);
  const g = parseGguf(bytes, bytes.length);
  assert.equal(g.tensor("m128").format, FORMATS.Q2_0);
  assert.equal(g.tensor("m64").format, FORMATS.Q2_0_g64);
  assert.equal(g.tensor("only64").format, FORMATS.Q2_0_g64);
  assert.equal(g.tensor("last128").format, FORMATS.Q2_0);
  assert.equal(g.tensor("m64").byteSize, 8192 / 64 * 18);
  assert.equal(g.tensor("m64").format.kernelCode, 242);

  const w2 = new GgufWriter();
  q2(w2, "first", [4096, 1], FORMATS.Q2_0);
  q2(w2, "last64", [4096, 3], FORMATS.Q2_0_g64);
  const f2 = await writeFile(w2);
  assert.equal(
    parseGguf(f2.bytes, f2.bytes.length).tensor("last64").format,
    FORMATS.Q2_0_g64,
  );
});

Deno.test("tiny Q2_0 tensors whose extent fits both layouts follow the rest of the file", async () => {
  for (const f of [FORMATS.Q2_0, FORMATS.Q2_0_g64]) {
    const w = new GgufWriter()
      .addTensor(
        "big",
        [4096, 2],
        f,
        randomBytes(8192 / f.blockSize * f.blockBytes, 1),
      )
      .addTensor(
        "small",
        [128],
        f,
        randomBytes(f.blockBytes * (128 / f.blockSize), 2),
      );
    const { bytes } = await writeFile(w);
    assert.equal(parseGguf(bytes, bytes.length).tensor("small").format, f);
  }
  // Alone and undecidable: PrismML's 128-block layout.
  const { bytes } = await writeFile(
    new GgufWriter().addTensor("s", [128], FORMATS.Q2_0, randomBytes(34, 3)),
  );
  assert.equal(parseGguf(bytes, bytes.length).tensor("s").format, FORMATS.Q2_0);
});

Deno.test("Q2_0 tensor cut short of both layouts is OUT_OF_BOUNDS", async () => {
  const { bytes } = await writeFile(
    new GgufWriter().addTensor(
      "w",
      [4096, 2],
      FORMATS.Q2_0,
      randomBytes(2176, 1),
    ),
  );
  const n = bytes.length - 200;
  expectError(
    () => parseGguf(bytes.slice(0, n), n),
    "OUT_OF_BOUNDS",
    /Q2_0 tensor 'w'/,
  );
});

Deno.test("duplicate tensor names and too many dimensions are BAD_TENSOR", () => {
  const h = new GgufWriter().addTensor(
    "t",
    [4],
    FORMATS.F32,
    new Uint8Array(16),
  )
    .addTensor("u", [4], FORMATS.F32, new Uint8Array(16)).headerBytes();
  // Rename "u" to "t": the names are the only 1-byte strings after the KV section.
  const at = h.lastIndexOf(0x75);
  h[at] = 0x74;
  const file = new Uint8Array(h.length + 64);
  file.set(h);
  expectError(
    () => parseGguf(file, file.length),
    "BAD_TENSOR",
    /'t' appears twice/,
  );
  assert.throws(
    () =>
      new GgufWriter().addTensor(
        "x",
        [1, 1, 1, 1, 1],
        FORMATS.F32,
        new Uint8Array(4),
      ),
    /invalid dims/,
  );
});

let tinyHeader: GgufFile | undefined;
Deno.test("the tiny synthetic model's header parses: 151669 tokens, fast", async () => {
  const { synthesize } = await import("../tools/synth.ts");
  const path = `${dir}/tiny.gguf`;
  await synthesize({ shape: "tiny", out: path, seed: 1 });
  const t0 = performance.now();
  tinyHeader = await readGguf(path);
  const ms = performance.now() - t0;
  assert.equal(
    tinyHeader.getStringArray("tokenizer.ggml.tokens").length,
    151669,
  );
  assert.equal(
    tinyHeader.getStringArray("tokenizer.ggml.merges").length,
    151387,
  );
  assert.equal(
    tinyHeader.getNumberArray("tokenizer.ggml.token_type").length,
    151669,
  );
  assert.ok(ms < 1500, `header parse took ${ms.toFixed(0)} ms`);
});

Deno.test("cleanup", async () => {
  await Deno.remove(dir, { recursive: true });
});
