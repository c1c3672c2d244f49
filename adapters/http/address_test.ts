import assert from "node:assert/strict";
import { parseListenAddress } from "./address.ts";

Deno.test("listen addresses: localhost by default, any interface only when given", () => {
  assert.deepEqual(parseListenAddress("8080"), { hostname: "127.0.0.1", port: 8080 });
  assert.deepEqual(parseListenAddress(":9000"), { hostname: "127.0.0.1", port: 9000 });
  assert.deepEqual(parseListenAddress("0.0.0.0:8080"), { hostname: "0.0.0.0", port: 8080 });
  assert.deepEqual(parseListenAddress("kiosk.local:80"), { hostname: "kiosk.local", port: 80 });
  assert.deepEqual(parseListenAddress("[::1]:8080"), { hostname: "::1", port: 8080 });
  for (const bad of ["", "host", "host:", "1.2.3.4:99999", "::1:8080", "a b:80"]) {
    assert.throws(() => parseListenAddress(bad), /HTTP (address|port)/, bad);
  }
});
