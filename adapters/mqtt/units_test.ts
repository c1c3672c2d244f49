/**
 * The MQTT service's pure parts: payload codec, topic names, backoff, option checks.
 */
import assert from "node:assert/strict";
import { encode as cborEncode } from "cbor-x";
import { RequestError } from "../../runtime/request.ts";
import { decodePayload, detectEncoding, encodePayload } from "./codec.ts";
import { nodeTopics, publishTopicProblem, replyPrefixes, replyTopicRefusal } from "./topics.ts";
import { Backoff } from "./backoff.ts";
import { clientOptions, resolveMqttOptions } from "./options.ts";

const code = (c: string) => (e: unknown) => e instanceof RequestError && e.code === c;

Deno.test("codec: content type decides, else the first byte; both encodings round-trip a request", () => {
  const req = { id: 1, prompt: "héllo", temperature: 0.5, messages: [{ role: "user", content: "x" }] };
  const json = encodePayload(req, "json");
  const cbor = encodePayload(req, "cbor");
  assert.equal(detectEncoding(json), "json");
  assert.equal(detectEncoding(cbor), "cbor");
  assert.equal(detectEncoding(new TextEncoder().encode("  \n{}")), "json");
  assert.equal(detectEncoding(cbor, "application/json; charset=utf-8"), "json");
  assert.equal(detectEncoding(json, "application/cbor"), "cbor");
  assert.throws(() => detectEncoding(json, "text/plain"), code("UNSUPPORTED_CONTENT_TYPE"));
  assert.deepEqual(decodePayload(json, "json"), req);
  assert.deepEqual(decodePayload(cbor, "cbor"), req);
});

Deno.test("codec: malformed payloads give BAD_JSON / BAD_CBOR; CBOR maps with non-string keys are rejected", () => {
  assert.throws(() => decodePayload(new TextEncoder().encode("{"), "json"), code("BAD_JSON"));
  assert.throws(() => decodePayload(new Uint8Array([0xff, 0xfe]), "json"), code("BAD_JSON"));
  assert.throws(() => decodePayload(new Uint8Array([0xa1, 0x61]), "cbor"), code("BAD_CBOR"));
  assert.throws(() => decodePayload(new Uint8Array(), "cbor"), code("BAD_CBOR"));
  assert.throws(() => decodePayload(cborEncode(new Map([[1, "x"]])), "cbor"), code("BAD_CBOR"));
  assert.deepEqual(decodePayload(cborEncode(new Map([["prompt", "x"]])), "cbor"), { prompt: "x" });
});

Deno.test("codec: a tag-wrapped CBOR map without a content type is CBOR; unknown tags are BAD_CBOR", () => {
  const map = cborEncode({ prompt: "x" });
  const selfDescribed = new Uint8Array([0xd9, 0xd9, 0xf7, ...map]);
  assert.equal(detectEncoding(selfDescribed), "cbor");
  assert.deepEqual(decodePayload(selfDescribed, detectEncoding(selfDescribed)), { prompt: "x" });
  const tag1000 = new Uint8Array([0xd9, 0x03, 0xe8, ...map]);
  assert.equal(detectEncoding(tag1000), "cbor");
  assert.throws(
    () => decodePayload(tag1000, "cbor"),
    (e) => code("BAD_CBOR")(e) && /tag 1000/.test((e as Error).message),
  );
});

Deno.test("topics: built under prefix/node; bad names and reply topics are named", () => {
  assert.deepEqual(nodeTopics("plant/line1", "arm-3"), {
    request: "plant/line1/arm-3/request",
    cancel: "plant/line1/arm-3/cancel",
    status: "plant/line1/arm-3/status",
    metrics: "plant/line1/arm-3/metrics",
  });
  assert.equal(nodeTopics("bonsai", "n", "arms").groupRequest, "bonsai/group/arms/request");
  assert.throws(() => nodeTopics("bonsai", "group"), /reserved/);
  assert.throws(() => nodeTopics("bonsai", "n", "a/b"), /single topic level/);
  assert.throws(() => nodeTopics("bonsai", "a/b"), /single topic level/);
  assert.throws(() => nodeTopics("bonsai", "+"), /must not contain/);
  assert.throws(() => nodeTopics("", "n"), /prefix must not be empty/);
  assert.throws(() => nodeTopics("$SYS", "n"), /reserved/);
  assert.equal(publishTopicProblem("replies/42"), undefined);
  assert.match(publishTopicProblem("replies/#")!, /wildcard/);
  assert.match(publishTopicProblem("")!, /empty/);
});

Deno.test("reply namespace: only under the allowed prefixes, never the node's or a group's own topics", () => {
  const allowed = replyPrefixes(["bonsai/replies/", "robots/+x/#".replace("+x", "r1")]);
  assert.deepEqual(allowed, ["bonsai/replies", "robots/r1"]);
  const refusal = (t: string) => replyTopicRefusal(t, allowed, "bonsai", "arm");
  assert.equal(refusal("bonsai/replies/c1/7"), undefined);
  assert.equal(refusal("robots/r1"), undefined);
  assert.match(refusal("robots/r10/x")!, /outside the allowed reply prefixes/);
  assert.match(refusal("plant/gripper/open")!, /outside the allowed/);
  assert.match(refusal("bonsai/arm/status")!, /own topics/);
  assert.match(replyTopicRefusal("bonsai/arm/status", ["bonsai"], "bonsai", "arm")!, /own topics/);
  assert.match(replyTopicRefusal("bonsai/group/g/request", ["bonsai"], "bonsai", "arm")!, /own topics/);
  assert.throws(() => replyPrefixes(["a/+/b"]), /must not contain/);
  assert.deepEqual(resolveMqttOptions({ url: "mqtt://x", node: "n", prefix: "p" }).replyPrefixes, ["p/replies"]);
  assert.throws(() => resolveMqttOptions({ url: "mqtt://x", node: "n", sessionExpiry: -1 }), /session expiry/);
});

Deno.test("backoff: doubles from min to max, jitter only shortens, reset starts over", () => {
  const b = new Backoff(100, 1000, 0.2, () => 0);
  assert.deepEqual([b.next(), b.next(), b.next(), b.next(), b.next(), b.next()], [100, 200, 400, 800, 1000, 1000]);
  b.reset();
  assert.equal(b.next(), 100);
  const j = new Backoff(100, 1000, 0.5, () => 0.999);
  const d = j.next();
  assert.ok(d >= 50 && d < 100);
  assert.throws(() => new Backoff(0, 10), RangeError);
});

Deno.test("options: defaults, checks, TLS files read and passed to mqtt.js, will retained", async () => {
  const o = resolveMqttOptions({ url: "mqtt://127.0.0.1:1883", node: "n1" });
  assert.equal(o.prefix, "bonsai");
  assert.equal(o.clientId, "bonsai-n1");
  assert.equal(o.qos, 1);
  assert.throws(() => resolveMqttOptions({ url: "http://x", node: "n" }), /scheme 'http:'/);
  assert.throws(() => resolveMqttOptions({ url: "not a url", node: "n" }), /not a URL/);
  assert.throws(() => resolveMqttOptions({ url: "mqtt://x", node: "n", cert: "/c" }), /both --cert and --key/);
  assert.throws(
    () => resolveMqttOptions({ url: "mqtt://x", node: "n", ca: "/no/such/ca.pem" }),
    /CA certificate file '\/no\/such\/ca.pem'/,
  );
  const dir = await Deno.makeTempDir();
  try {
    for (const f of ["ca", "cert", "key"]) await Deno.writeTextFile(`${dir}/${f}.pem`, `${f} pem`);
    const t = resolveMqttOptions({
      url: "mqtts://broker:8883",
      node: "n",
      username: "u",
      password: "p",
      ca: `${dir}/ca.pem`,
      cert: `${dir}/cert.pem`,
      key: `${dir}/key.pem`,
    });
    const will = { topic: "bonsai/n/status", payload: new TextEncoder().encode("{}"), qos: 1 as const };
    const c = clientOptions(t, 5, will);
    assert.equal(c.username, "u");
    assert.equal(c.password, "p");
    assert.equal(new TextDecoder().decode(c.ca as Uint8Array), "ca pem");
    assert.equal(new TextDecoder().decode(c.key as Uint8Array), "key pem");
    assert.equal(c.will?.retain, true);
    assert.equal(c.will?.topic, "bonsai/n/status");
    assert.equal(c.protocolVersion, 5);
    assert.equal(clientOptions(t, 4, will).properties, undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
