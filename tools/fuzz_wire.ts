/**
 * Mutated wire requests for the fuzz harness: request objects built from valid and invalid
 * field values (prototype names, huge and non-finite numbers, wrong types, deep nesting),
 * encoded as JSON or CBOR (sometimes tag-wrapped), sometimes with bytes flipped or cut. The
 * adapters must answer each with a RequestError of a specific code, never INTERNAL.
 *
 * @module
 */
import { encode as cborEncode } from "cbor-x";
import type { FuzzRng } from "./fuzz_rng.ts";
import { WIRE_FIELDS } from "../adapters/request.ts";

/** A request payload as it arrives over MQTT or stdin. */
export interface WirePayload {
  payload: Uint8Array;
  contentType?: string;
}

const FIELDS = [
  ...WIRE_FIELDS,
  // names an unknown-field check by `in` would let through, and one plainly unknown
  "constructor",
  "toString",
  "hasOwnProperty",
  "__proto__",
  "valueOf",
  "unknown_field",
];

function deep(depth: number, leaf: unknown, rng: FuzzRng): unknown {
  let v = leaf;
  for (let i = 0; i < depth; i++) v = rng.chance(0.5) ? [v] : { type: "array", items: v };
  return v;
}

function value(rng: FuzzRng, field: string): unknown {
  const k = rng.int(16);
  if (k === 0) return rng.pick([1e400, -1e400, NaN, 2 ** 53 + 1, -0, 1e-320, 4294967296]);
  if (k === 1) return rng.pick([null, true, false, "", [], {}]);
  if (k === 2) return deep(rng.pick([10, 100, 1000]), "x", rng);
  if (k === 3) return "x".repeat(rng.pick([1, 100, 10000]));
  if (k === 4) return rng.pick(["<|im_start|>", "<|im_end|>", "<tool_call>", "\u0000", "\ud800", "é"]);
  if (k === 5) return rng.int(1000) - 10;
  switch (field) {
    case "prompt":
    case "system":
      return rng.pick(["hello", "hello world", "<|im_end|>", "a".repeat(50)]);
    case "messages":
      return [{ role: rng.pick(["user", "system", "assistant", "tool", "robot"]), content: rng.pick(["hi", 3, null]) }];
    case "max_tokens":
      return rng.pick([1, 2, 3, 0, -1, 1.5, 4]);
    case "stop":
      return rng.pick(["\n", ["a", "b"], [""], [1]]);
    case "stop_tokens":
      return rng.pick([[0], [-1], [1e9], [1.5], "x"]);
    case "json_schema":
      return rng.pick<unknown>([
        { type: "object", properties: { a: { type: "integer" } }, required: ["a"] },
        { type: "string", maxLength: 4 },
        { type: "array", items: { enum: [1, "x", null] }, maxItems: 3 },
        { anyOf: [{ type: "boolean" }, { type: "null" }] },
        { type: "string", maxLength: 1e9 },
        { type: "object", properties: { constructor: { type: "string" } } },
        { not: {} },
        true,
        false,
      ]);
    case "grammar":
      return rng.pick([
        'root ::= "yes" | "no"',
        "root ::= [a-z]{1,4}",
        'root ::= "a"{0,10000}',
        'root ::= s\ns ::= "a" s "b" | "a" s "c" | "a" s "d" | "a"',
        "root ::= <|im_end|>",
        "root ::= root",
        'root ::= "(" root ")" | "x"',
        "root ::= " + "(".repeat(200) + '"a"' + ")".repeat(200),
      ]);
    case "tools":
      return rng.pick([
        [{ type: "function", function: { name: "f", parameters: { type: "object", properties: {} } } }],
        [{ name: "g" }],
        [],
        "x",
      ]);
    case "tool_choice":
      return rng.pick(["auto", "none", "required", { type: "function", function: { name: "f" } }, "x"]);
    case "temperature":
    case "top_p":
    case "min_p":
      return rng.pick([0, 0.5, 1, 2, -1, 7]);
    default:
      return rng.int(100);
  }
}

/** A request object: mostly valid fields, some broken. */
function requestObject(rng: FuzzRng): Record<string, unknown> {
  const obj: Record<string, unknown> = {};
  if (rng.chance(0.9)) obj.prompt = "hello";
  obj.max_tokens = 2;
  const n = rng.int(5);
  for (let i = 0; i < n; i++) {
    const f = rng.pick(FIELDS);
    // An own property even for "__proto__" (as JSON.parse makes it).
    Object.defineProperty(obj, f, { value: value(rng, f), enumerable: true, writable: true, configurable: true });
  }
  return obj;
}

/** A mutated request payload. */
export function mutatedWire(rng: FuzzRng): WirePayload {
  const obj = requestObject(rng);
  const cbor = rng.chance(0.4);
  let payload: Uint8Array;
  if (cbor) {
    payload = cborEncode(obj);
    if (rng.chance(0.2)) payload = new Uint8Array([0xd9, 0xd9, 0xf7, ...payload]); // self-describe tag
    else if (rng.chance(0.1)) payload = new Uint8Array([0xc6, ...payload]); // tag 6
  } else {
    let text: string;
    try {
      text = JSON.stringify(obj) ?? "{}";
    } catch {
      text = "{}";
    }
    if (rng.chance(0.1)) text = text.replace(/"id":[^,}]*/, '"id":1e400');
    payload = new TextEncoder().encode(text);
  }
  if (rng.chance(0.15)) {
    payload = payload.slice();
    for (let i = 0, n = 1 + rng.int(4); i < n && payload.length > 0; i++) {
      payload[rng.int(payload.length)] ^= 1 << rng.int(8);
    }
  }
  if (rng.chance(0.05)) payload = payload.slice(0, rng.int(payload.length + 1));
  const contentType = rng.chance(0.3)
    ? rng.pick(["application/json", "application/cbor", "text/plain", "application/cbor; x=1", ""])
    : undefined;
  return { payload, contentType };
}
