import assert from "node:assert/strict";
import { f16ToF32, f32ToF16 } from "./f16.ts";
import { Rng } from "./rng.ts";

const isNanBits = (h: number) => (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;

Deno.test("every half round-trips through f32 (NaNs stay NaN)", () => {
  for (let h = 0; h < 0x10000; h++) {
    const x = f16ToF32(h);
    const back = f32ToF16(x);
    if (isNanBits(h)) {
      assert.ok(Number.isNaN(x));
      assert.ok(
        isNanBits(back),
        `NaN ${h.toString(16)} came back as ${back.toString(16)}`,
      );
    } else {
      assert.equal(
        back,
        h,
        `half 0x${h.toString(16)} (${x}) came back as 0x${back.toString(16)}`,
      );
    }
  }
});

Deno.test("f16ToF32 agrees with the platform's Float16Array for every half", () => {
  const u = new Uint16Array(1);
  const f = new Float16Array(u.buffer);
  for (let h = 0; h < 0x10000; h++) {
    u[0] = h;
    const want = f[0];
    const got = f16ToF32(h);
    if (Number.isNaN(want)) assert.ok(Number.isNaN(got));
    else {assert.ok(
        Object.is(got, want),
        `0x${h.toString(16)}: ${got} != ${want}`,
      );}
  }
});

Deno.test("f32ToF16 rounds to nearest even like the platform's Float16Array", () => {
  const f = new Float16Array(1);
  const u = new Uint16Array(f.buffer);
  const rng = new Rng(3);
  const bits = new Uint32Array(1);
  const asF32 = new Float32Array(bits.buffer);
  for (let i = 0; i < 200000; i++) {
    // Random float32 bit patterns around the half range (exponents 2^-30..2^17).
    bits[0] = (rng.nextU32() & 0x807fffff) |
      ((97 + (rng.nextU32() % 48)) << 23);
    const x = asF32[0];
    f[0] = x;
    assert.equal(f32ToF16(x), u[0], `x = ${x}`);
  }
});

Deno.test("f32ToF16 edge cases: ties, subnormals, overflow, inf, nan", () => {
  assert.equal(f32ToF16(1), 0x3c00);
  assert.equal(f32ToF16(-2), 0xc000);
  assert.equal(f32ToF16(-0), 0x8000);
  assert.equal(f32ToF16(65504), 0x7bff);
  assert.equal(f32ToF16(65519), 0x7bff);
  assert.equal(f32ToF16(65520), 0x7c00); // tie between 65504 and 65536 -> even -> inf
  assert.equal(f32ToF16(1 + 2 ** -11), 0x3c00); // tie -> even
  assert.equal(f32ToF16(1 + 3 * 2 ** -11), 0x3c02); // tie -> even (up)
  assert.equal(f32ToF16(2 ** -14), 0x0400); // smallest normal
  assert.equal(f32ToF16(2 ** -24), 0x0001); // smallest subnormal
  assert.equal(f32ToF16(2 ** -25), 0x0000); // tie -> even (zero)
  assert.equal(f32ToF16(1.5 * 2 ** -25), 0x0001);
  assert.equal(f32ToF16(2.5 * 2 ** -24), 0x0002);
  assert.equal(f32ToF16(3.5 * 2 ** -24), 0x0004);
  assert.equal(f32ToF16((1023.5) * 2 ** -24), 0x0400); // rounds up into the normals
  assert.equal(f32ToF16(1e-10), 0);
  assert.equal(f32ToF16(Infinity), 0x7c00);
  assert.equal(f32ToF16(-Infinity), 0xfc00);
  assert.ok(isNanBits(f32ToF16(NaN)));
  assert.equal(f32ToF16(1e10), 0x7c00);
});
