import assert from "node:assert/strict";
import { byteSizeFlag, numberFlag, parseByteSize, UsageError } from "./args.ts";

Deno.test("sizes parse with binary units", () => {
  assert.equal(parseByteSize("512M"), 512 * 2 ** 20);
  assert.equal(parseByteSize("1.5G"), 1.5 * 2 ** 30);
  assert.equal(parseByteSize("2GiB"), 2 * 2 ** 30);
  assert.equal(parseByteSize("4096"), 4096);
  assert.throws(() => parseByteSize("lots"), /not a size/);
  assert.throws(
    () => byteSizeFlag("max-memory", "lots"),
    (e) => e instanceof UsageError && /--max-memory: not a size/.test(e.message),
  );
  assert.equal(byteSizeFlag("max-memory", undefined), undefined);
});

Deno.test("number flags name the flag and the bound", () => {
  assert.equal(numberFlag("ctx", "512", { integer: true, min: 16 }), 512);
  assert.throws(
    () => numberFlag("ctx", "8", { integer: true, min: 16 }),
    /--ctx must be >= 16, got 8/,
  );
  assert.throws(
    () => numberFlag("ctx", "1.5", { integer: true }),
    /--ctx expects an integer, got '1.5'/,
  );
});
