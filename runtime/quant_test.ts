import assert from "node:assert/strict";
import { f16ToF32, f32ToF16 } from "./f16.ts";
import { byteSizeOf, FORMATS } from "./ggml_types.ts";
import { dequantizeRow, quantizeQ1_0, quantizeQ2_0, quantizeQ8_0 } from "./quant.ts";
import { Rng } from "./rng.ts";

function randomGaussian(n: number, seed: number): Float32Array {
  const r = new Rng(seed);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    x[i] = Math.sqrt(-2 * Math.log(1 - r.nextFloat())) *
      Math.cos(2 * Math.PI * r.nextFloat());
  }
  return x;
}

const half = (x: number) => f16ToF32(f32ToF16(x));

Deno.test("byteSizeOf: whole blocks only", () => {
  assert.equal(byteSizeOf(FORMATS.Q1_0, 256), 36);
  assert.equal(byteSizeOf(FORMATS.Q2_0, 256), 68);
  assert.equal(byteSizeOf(FORMATS.Q2_0_g64, 256), 72);
  assert.equal(byteSizeOf(FORMATS.Q8_0, 64), 68);
  assert.equal(byteSizeOf(FORMATS.F16, 3), 6);
  assert.equal(byteSizeOf(FORMATS.F32, 3), 12);
  assert.throws(
    () => byteSizeOf(FORMATS.Q1_0, 100),
    /not a whole number of Q1_0 blocks/,
  );
  assert.throws(
    () => byteSizeOf(FORMATS.Q2_0_g64, 96),
    /Q2_0_g64 blocks of 64/,
  );
});

Deno.test("Q1_0 hand-built block decodes bit j of byte j/8 to +-d", () => {
  const b = new Uint8Array(2 + 18); // 2 bytes of lead-in to test byteOffset
  new DataView(b.buffer).setUint16(2, 0x3800, true); // d = 0.5
  b[2 + 2] = 0b00000101; // elements 0 and 2 positive
  b[2 + 17] = 0b10000000; // element 127 positive
  const y = dequantizeRow(FORMATS.Q1_0, b, 2, 128);
  const want = new Array(128).fill(-0.5);
  want[0] = want[2] = want[127] = 0.5;
  assert.deepEqual([...y], want);
});

Deno.test("Q2_0 hand-built blocks (128 and 64) decode (code - 1) * d", () => {
  for (const format of [FORMATS.Q2_0, FORMATS.Q2_0_g64]) {
    const b = new Uint8Array(format.blockBytes);
    new DataView(b.buffer).setUint16(0, 0x4000, true); // d = 2
    b[2] = 0 | (1 << 2) | (2 << 4) | (1 << 6); // codes 0,1,2,1
    b[format.blockBytes - 1] = 2 << 6; // last element code 2
    b.fill(0b01010101, 3, format.blockBytes - 1); // code 1 = zero
    const y = dequantizeRow(format, b, 0, format.blockSize);
    assert.deepEqual([...y.subarray(0, 4)], [-2, 0, 2, 0]);
    assert.equal(y[format.blockSize - 1], 2);
    assert.equal(y[format.blockSize - 2], -2); // code 0 in the low bits of the last byte
    assert.ok(y.subarray(4, format.blockSize - 4).every((v) => v === 0));
  }
});

Deno.test("Q8_0, F16 and F32 hand-built rows", () => {
  const q = new Uint8Array(34);
  const v = new DataView(q.buffer);
  v.setUint16(0, 0x3400, true); // d = 0.25
  v.setInt8(2, -4);
  v.setInt8(33, 127);
  const y = dequantizeRow(FORMATS.Q8_0, q, 0, 32);
  assert.equal(y[0], -1);
  assert.equal(y[31], 31.75);
  assert.equal(y[1], 0);

  const h = new Uint8Array([0x00, 0x3c, 0x00, 0xc0]); // 1, -2
  assert.deepEqual([...dequantizeRow(FORMATS.F16, h, 0, 2)], [1, -2]);
  const f = new Uint8Array(new Float32Array([1.5, -3.25]).buffer);
  assert.deepEqual([...dequantizeRow(FORMATS.F32, f, 0, 2)], [1.5, -3.25]);
});

Deno.test("Q1_0 quantize: signs follow the input, |value| is the block's mean |x|", () => {
  const x = randomGaussian(512, 1);
  x[5] = 0; // zero counts as non-negative
  const q = quantizeQ1_0(x);
  assert.equal(q.length, byteSizeOf(FORMATS.Q1_0, 512));
  const y = dequantizeRow(FORMATS.Q1_0, q, 0, 512);
  for (let b = 0; b < 4; b++) {
    let mean = 0;
    for (let j = 0; j < 128; j++) mean += Math.abs(x[b * 128 + j]) / 128;
    const d = half(mean);
    for (let j = 0; j < 128; j++) {
      const i = b * 128 + j;
      assert.equal(y[i], x[i] >= 0 ? d : -d, `element ${i}`);
    }
  }
});

Deno.test("Q2_0 quantize (both block sizes): values in {-d, 0, d}, d = max |x|, nearest code", () => {
  for (const bs of [128, 64] as const) {
    const format = bs === 128 ? FORMATS.Q2_0 : FORMATS.Q2_0_g64;
    const x = randomGaussian(512, 2);
    const q = quantizeQ2_0(x, bs);
    assert.equal(q.length, byteSizeOf(format, 512));
    const y = dequantizeRow(format, q, 0, 512);
    for (let b = 0; b < 512 / bs; b++) {
      let amax = 0;
      for (let j = 0; j < bs; j++) {
        amax = Math.max(amax, Math.abs(x[b * bs + j]));
      }
      const d = half(amax);
      for (let j = 0; j < bs; j++) {
        const i = b * bs + j;
        const r = x[i] / amax;
        const want = r > 0.5 ? d : r < -0.5 ? -d : Math.abs(r) < 0.5 ? 0 : undefined;
        if (want !== undefined) {
          assert.equal(y[i], want, `block ${b} element ${j} (x/d = ${r})`);
        }
      }
    }
    // No code 3 is ever produced.
    for (let b = 0; b < q.length / format.blockBytes; b++) {
      for (let k = 2; k < format.blockBytes; k++) {
        const byte = q[b * format.blockBytes + k];
        for (let s = 0; s < 8; s += 2) assert.notEqual((byte >> s) & 3, 3);
      }
    }
  }
});

Deno.test("Q8_0 quantize: error within half a step, extremes exact", () => {
  const x = randomGaussian(256, 3);
  const y = dequantizeRow(FORMATS.Q8_0, quantizeQ8_0(x), 0, 256);
  for (let b = 0; b < 8; b++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]));
    const d = half(amax / 127);
    for (let j = 0; j < 32; j++) {
      const i = b * 32 + j;
      if (Math.abs(x[i]) === amax) assert.equal(y[i], Math.sign(x[i]) * 127 * d);
      assert.ok(
        Math.abs(y[i] - x[i]) <= d * 0.5 + amax * 2e-3,
        `element ${i}: ${y[i]} vs ${x[i]}`,
      );
    }
  }
  // All-zero input gives zeros, not NaN.
  assert.ok(
    dequantizeRow(FORMATS.Q8_0, quantizeQ8_0(new Float32Array(32)), 0, 32)
      .every((v) => v === 0),
  );
});

Deno.test("dequantizeRow reads rows at an offset and rejects bad requests", () => {
  const x = randomGaussian(256, 4);
  const q = quantizeQ1_0(x);
  const second = dequantizeRow(FORMATS.Q1_0, q, 18, 128);
  assert.deepEqual([...second], [
    ...dequantizeRow(FORMATS.Q1_0, q, 0, 256).subarray(128),
  ]);
  assert.throws(
    () => dequantizeRow(FORMATS.Q1_0, q, 0, 100),
    /not a whole number/,
  );
  assert.throws(() => dequantizeRow(FORMATS.Q1_0, q, 18, 256), /buffer has 36/);
  assert.throws(
    () => dequantizeRow(FORMATS.Q1_0, q, 0, 256, new Float32Array(10)),
    /holds 10/,
  );
  assert.throws(() => quantizeQ1_0(new Float32Array(100)), /multiple of 128/);
});
