/**
 * Payload encodings of the MQTT service: JSON (`application/json`) and CBOR (`application/cbor`,
 * via cbor-x). A reply uses the encoding of its request. MQTT 5 clients say which one with the
 * Content Type property; on MQTT 3.1.1 (no properties) the payload is sniffed: a request is an
 * object, and an object in JSON starts with `{` (0x7b) while in CBOR it starts with a map byte
 * (0xa0-0xbf) or a tag wrapping one (0xc0-0xdb, e.g. the self-describe tag 55799, `d9 d9 f7`),
 * so the first byte tells them apart.
 */
import { decode as cborDecode, encode as cborEncode, Tag } from "cbor-x";
import { RequestError } from "../../runtime/request.ts";

/** A payload encoding. */
export type Encoding = "json" | "cbor";

/** MIME type of each encoding, sent as the reply's Content Type (MQTT 5). */
export const CONTENT_TYPES: Record<Encoding, string> = {
  json: "application/json",
  cbor: "application/cbor",
};

const textDecoder = new TextDecoder("utf-8", { fatal: true });
const textEncoder = new TextEncoder();

/**
 * Which encoding a payload uses: from the Content Type when given (parameters such as
 * `; charset=utf-8` ignored), else from the first non-blank byte. Throws RequestError
 * UNSUPPORTED_CONTENT_TYPE for a content type that is neither.
 */
export function detectEncoding(payload: Uint8Array, contentType?: string): Encoding {
  if (contentType !== undefined && contentType !== "") {
    const mime = contentType.split(";")[0].trim().toLowerCase();
    if (mime === CONTENT_TYPES.json || mime === "text/json") return "json";
    if (mime === CONTENT_TYPES.cbor) return "cbor";
    throw new RequestError(
      "UNSUPPORTED_CONTENT_TYPE",
      `content type '${contentType}' is not supported: send application/json or application/cbor`,
    );
  }
  for (const b of payload) {
    if (b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d) continue; // JSON whitespace
    // CBOR major types 5 (map) and 6 (tag); no JSON text starts with a byte >= 0x80.
    return b >= 0xa0 && b <= 0xdb ? "cbor" : "json";
  }
  return "json";
}

/** Decodes a payload; throws RequestError BAD_JSON or BAD_CBOR naming the problem. */
export function decodePayload(payload: Uint8Array, encoding: Encoding): unknown {
  if (encoding === "json") {
    let text: string;
    try {
      text = textDecoder.decode(payload);
    } catch {
      throw new RequestError("BAD_JSON", "request is not valid UTF-8 text (JSON expected)");
    }
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new RequestError("BAD_JSON", `request is not valid JSON: ${(e as Error).message}`);
    }
  }
  if (payload.length === 0) throw new RequestError("BAD_CBOR", "request is empty (CBOR expected)");
  try {
    return normalizeCbor(cborDecode(payload));
  } catch (e) {
    throw new RequestError("BAD_CBOR", `request is not valid CBOR: ${(e as Error).message}`);
  }
}

/** Encodes a reply in the request's encoding. */
export function encodePayload(value: unknown, encoding: Encoding): Uint8Array {
  return encoding === "json" ? textEncoder.encode(JSON.stringify(value)) : cborEncode(value);
}

/**
 * cbor-x decodes maps with non-string keys into Map objects; a request has string keys only,
 * so a Map is turned into a plain object (or rejected, for other keys) to be checked like JSON.
 */
function normalizeCbor(value: unknown): unknown {
  // cbor-x unwraps the self-describe tag (55799) itself; any other tag has no meaning here.
  if (value instanceof Tag) throw new Error(`CBOR tag ${value.tag} is not supported`);
  if (value instanceof Map) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of value) {
      if (typeof k !== "string") throw new Error(`map key ${String(k)} is not a string`);
      out[k] = normalizeCbor(v);
    }
    return out;
  }
  if (Array.isArray(value)) return value.map(normalizeCbor);
  if (value !== null && typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype) {
    const obj = value as Record<string, unknown>;
    for (const k of Object.keys(obj)) obj[k] = normalizeCbor(obj[k]);
  }
  return value;
}
