/**
 * A JSON-schema subset compiled to a {@link Grammar} whose every complete match is JSON valid
 * against the schema.
 *
 * Supported: `type` (object, array, string, number, integer, boolean, null, or a list of them),
 * `properties`, `required`, `additionalProperties` (true/false), `items`, `minItems`,
 * `maxItems`, `minLength`, `maxLength`, `enum`, `const`, `anyOf`. Annotations (`title`,
 * `description`, `$schema`, `$id`, `$comment`, `examples`, `default`) are ignored; any other
 * keyword is refused with a {@link SchemaError} naming it, rather than silently not enforced.
 *
 * The output form is chosen so that generation always ends: properties come in schema order
 * (optional ones may be skipped), whitespace is at most one space after `:` and `,`, strings
 * and arrays are capped (schema bounds, else the defaults below), numbers have at most 15
 * integer and 9 fraction digits, and a schema without a type (any value) nests at most
 * `maxDepth` deep. Strings use escapes `\" \\ \/ \b \f \n \r \t` only (no `\u`; other
 * characters are written as UTF-8).
 *
 * @module
 */
import { charClass, type Element, type Grammar, GrammarBuilder, literal } from "./grammar.ts";
import { MAX_NESTING, MAX_SCHEMA_BOUND } from "./limits.ts";

export { MAX_SCHEMA_BOUND };

/** Limits applied where the schema sets none. */
export interface JsonSchemaOptions {
  /** Longest string when the schema has no maxLength (default 128 characters). */
  maxStringLength?: number;
  /** Most array items when the schema has no maxItems (default 16). */
  maxItems?: number;
  /** Deepest nesting of an untyped ("any JSON") value (default 3). */
  maxDepth?: number;
}

/** A schema the compiler cannot honour; the message names the keyword and where it is. */
export class SchemaError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SchemaError";
  }
}

const ANNOTATIONS = new Set(["title", "description", "$schema", "$id", "$comment", "examples", "default"]);
const KEYWORDS = new Set([
  "type",
  "properties",
  "required",
  "additionalProperties",
  "items",
  "minItems",
  "maxItems",
  "minLength",
  "maxLength",
  "enum",
  "const",
  "anyOf",
]);
const TYPES = ["object", "array", "string", "number", "integer", "boolean", "null"] as const;
type JsonType = typeof TYPES[number];

/** Compiles `schema` to a grammar whose start rule is `root`. */
export function jsonSchemaToGrammar(schema: unknown, opts: JsonSchemaOptions = {}): Grammar {
  const b = new GrammarBuilder();
  const value = new JsonSchemaCompiler(b, opts).compile(schema, "#");
  b.define("root", [[value]]);
  return b.build("root");
}

/** Adds the rules of one schema to a grammar being built (used for tool arguments). */
export class JsonSchemaCompiler {
  private readonly maxString: number;
  private readonly maxItems: number;
  private readonly maxDepth: number;
  /** Subschemas open at the moment, against MAX_NESTING. */
  private depth = 0;

  constructor(private readonly b: GrammarBuilder, opts: JsonSchemaOptions = {}) {
    this.maxString = opts.maxStringLength ?? 128;
    this.maxItems = opts.maxItems ?? 16;
    this.maxDepth = opts.maxDepth ?? 3;
  }

  /** A reference to a rule matching exactly the JSON texts valid against `schema`. */
  compile(schema: unknown, path: string): Element {
    // The compiler recurses into subschemas: bound the depth before the call stack does.
    if (this.depth >= MAX_NESTING) {
      throw new SchemaError(`schema at ${path} is nested deeper than ${MAX_NESTING} levels (limit MAX_NESTING)`);
    }
    this.depth++;
    try {
      return this.compileAt(schema, path);
    } finally {
      this.depth--;
    }
  }

  private compileAt(schema: unknown, path: string): Element {
    if (schema === true) return this.any(this.maxDepth);
    if (schema === false) throw new SchemaError(`schema at ${path} is false: nothing is valid`);
    if (typeof schema !== "object" || schema === null || Array.isArray(schema)) {
      throw new SchemaError(`schema at ${path} must be an object or a boolean`);
    }
    const s = schema as Record<string, unknown>;
    for (const key of Object.keys(s)) {
      if (!KEYWORDS.has(key) && !ANNOTATIONS.has(key)) {
        throw new SchemaError(`unsupported JSON-schema keyword '${key}' at ${path}`);
      }
    }
    if (s.anyOf !== undefined) return this.anyOf(s, path);
    const types = this.types(s, path);
    if (s.const !== undefined || s.enum !== undefined) return this.literals(s, types, path);
    const alts: Element[][] = [];
    for (const t of types ?? this.implicitTypes(s)) {
      if (t === "object") alts.push([this.object(s, path)]);
      else if (t === "array") alts.push([this.array(s, path)]);
      else if (t === "string") alts.push([this.string(s, path)]);
      else if (t === "number") alts.push([this.number()]);
      else if (t === "integer") alts.push([this.integer()]);
      else if (t === "boolean") alts.push(literal("true"), literal("false"));
      else alts.push(literal("null"));
    }
    if (alts.length === 0) return this.any(this.maxDepth);
    return this.b.define(this.b.fresh(ruleName(path)), alts);
  }

  private types(s: Record<string, unknown>, path: string): JsonType[] | undefined {
    if (s.type === undefined) return undefined;
    const list = Array.isArray(s.type) ? s.type : [s.type];
    if (list.length === 0) throw new SchemaError(`'type' at ${path} is an empty list`);
    for (const t of list) {
      if (!TYPES.includes(t as JsonType)) {
        throw new SchemaError(`unsupported type ${JSON.stringify(t)} at ${path}; use one of ${TYPES.join(", ")}`);
      }
    }
    return [...new Set(list as JsonType[])];
  }

  /** Types implied by the keywords of an untyped schema; empty means any value. */
  private implicitTypes(s: Record<string, unknown>): JsonType[] {
    if (s.properties !== undefined || s.required !== undefined || s.additionalProperties !== undefined) {
      return ["object"];
    }
    if (s.items !== undefined || s.minItems !== undefined || s.maxItems !== undefined) return ["array"];
    if (s.minLength !== undefined || s.maxLength !== undefined) return ["string"];
    return [];
  }

  private anyOf(s: Record<string, unknown>, path: string): Element {
    const others = Object.keys(s).filter((k) => k !== "anyOf" && !ANNOTATIONS.has(k));
    if (others.length > 0) {
      throw new SchemaError(
        `'anyOf' at ${path} next to '${others[0]}' is not supported; move '${others[0]}' into each branch`,
      );
    }
    if (!Array.isArray(s.anyOf) || s.anyOf.length === 0) {
      throw new SchemaError(`'anyOf' at ${path} must be a non-empty array`);
    }
    const alts = s.anyOf.map((sub, i) => [this.compile(sub, `${path}/anyOf/${i}`)]);
    return this.b.define(this.b.fresh(ruleName(path)), alts);
  }

  private literals(s: Record<string, unknown>, types: JsonType[] | undefined, path: string): Element {
    let values: unknown[];
    if (s.const !== undefined) {
      if (s.enum !== undefined) throw new SchemaError(`both 'const' and 'enum' at ${path}; give one`);
      values = [s.const];
    } else {
      if (!Array.isArray(s.enum) || s.enum.length === 0) {
        throw new SchemaError(`'enum' at ${path} must be a non-empty array`);
      }
      values = s.enum;
    }
    // A value must also satisfy 'type' (and the string/array bounds, checked by JSON shape only).
    const kept = types === undefined ? values : values.filter((v) => types.some((t) => isOfType(v, t)));
    if (kept.length === 0) throw new SchemaError(`no value of 'enum'/'const' at ${path} has the schema's type`);
    const alts = kept.map((v) => {
      const text = JSON.stringify(v);
      if (text === undefined) throw new SchemaError(`'enum'/'const' at ${path} holds a value that is not JSON`);
      return literal(text);
    });
    return this.b.define(this.b.fresh(ruleName(path)), alts);
  }

  private bound(s: Record<string, unknown>, key: string, path: string, fallback: number): number {
    const v = s[key];
    if (v === undefined) return fallback;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
      throw new SchemaError(`'${key}' at ${path} must be a non-negative integer`);
    }
    if (v > MAX_SCHEMA_BOUND) throw new SchemaError(`'${key}' at ${path} is above the supported ${MAX_SCHEMA_BOUND}`);
    return v;
  }

  private string(s: Record<string, unknown>, path: string): Element {
    const min = this.bound(s, "minLength", path, 0);
    const max = this.bound(s, "maxLength", path, Math.max(min, this.maxString));
    if (max < min) throw new SchemaError(`'maxLength' at ${path} is below 'minLength'`);
    return this.stringRule(min, max);
  }

  private stringRule(min: number, max: number): Element {
    const name = `string-${min}-${max}`;
    if (this.b.isDefined(name)) return this.b.ref(name);
    const chars = this.b.repeat(name, [this.char()], min, max);
    return this.b.define(name, [[...literal('"'), chars, ...literal('"')]]);
  }

  private char(): Element {
    if (this.b.isDefined("json-char")) return this.b.ref("json-char");
    return this.b.define("json-char", [
      [charClass([0x22, 0x22, 0x5c, 0x5c, 0, 0x1f], true)],
      [...literal("\\"), charClass([...cps('"\\/bfnrt')])],
    ]);
  }

  private number(): Element {
    if (this.b.isDefined("json-number")) return this.b.ref("json-number");
    const digit = charClass([0x30, 0x39]);
    const fraction = this.b.define("json-fraction", [[
      ...literal("."),
      this.b.repeat("json-fraction-digits", [digit], 1, 9),
    ], []]);
    return this.b.define("json-number", [[this.integer(), fraction]]);
  }

  private integer(): Element {
    if (this.b.isDefined("json-integer")) return this.b.ref("json-integer");
    const digits = this.b.define("json-natural", [
      literal("0"),
      [charClass([0x31, 0x39]), this.b.repeat("json-digits", [charClass([0x30, 0x39])], 0, 14)],
    ]);
    return this.b.define("json-integer", [[...literal("-"), digits], [digits]]);
  }

  /** `,` or `, ` */
  private comma(): Element {
    if (this.b.isDefined("json-comma")) return this.b.ref("json-comma");
    return this.b.define("json-comma", [literal(","), literal(", ")]);
  }

  /** `:` or `: ` */
  private colon(): Element {
    if (this.b.isDefined("json-colon")) return this.b.ref("json-colon");
    return this.b.define("json-colon", [literal(":"), literal(": ")]);
  }

  private object(s: Record<string, unknown>, path: string): Element {
    const props = s.properties ?? {};
    if (typeof props !== "object" || props === null || Array.isArray(props)) {
      throw new SchemaError(`'properties' at ${path} must be an object`);
    }
    const required = s.required ?? [];
    if (!Array.isArray(required) || required.some((r) => typeof r !== "string")) {
      throw new SchemaError(`'required' at ${path} must be an array of strings`);
    }
    const extra = s.additionalProperties;
    if (extra !== undefined && typeof extra !== "boolean") {
      throw new SchemaError(`'additionalProperties' at ${path} must be true or false (schemas are not supported)`);
    }
    const names = Object.keys(props);
    for (const r of required) {
      if (!names.includes(r)) throw new SchemaError(`required property '${r}' at ${path} is not in 'properties'`);
    }
    if (names.length === 0) {
      // No declared properties: any object when extra properties are allowed, else only {}.
      return extra === false
        ? this.b.define(this.b.fresh(ruleName(path)), [literal("{}")])
        : this.anyObject(this.maxDepth);
    }
    const kv = names.map((n) => {
      const value = this.compile((props as Record<string, unknown>)[n], `${path}/properties/${escapePointer(n)}`);
      return [...literal(JSON.stringify(n)), this.colon(), value];
    });
    // first(i): properties i.. with none written yet; after(i): with one written (comma first).
    const base = this.b.fresh(ruleName(path));
    const first: Element[] = [];
    const after: Element[] = [];
    for (let i = names.length; i >= 0; i--) {
      if (i === names.length) {
        after[i] = this.b.define(`${base}-after-${i}`, [[]]);
        first[i] = this.b.define(`${base}-first-${i}`, [[]]);
        continue;
      }
      const req = (required as string[]).includes(names[i]);
      after[i] = this.b.define(`${base}-after-${i}`, [
        [this.comma(), ...kv[i], after[i + 1]],
        ...(req ? [] : [[after[i + 1]]]),
      ]);
      first[i] = this.b.define(`${base}-first-${i}`, [[...kv[i], after[i + 1]], ...(req ? [] : [[first[i + 1]]])]);
    }
    return this.b.define(base, [[...literal("{"), first[0], ...literal("}")]]);
  }

  private array(s: Record<string, unknown>, path: string): Element {
    if (Array.isArray(s.items)) throw new SchemaError(`tuple 'items' (an array) at ${path} is not supported`);
    const min = this.bound(s, "minItems", path, 0);
    const max = this.bound(s, "maxItems", path, Math.max(min, this.maxItems));
    if (max < min) throw new SchemaError(`'maxItems' at ${path} is below 'minItems'`);
    const item = s.items === undefined ? this.any(this.maxDepth - 1) : this.compile(s.items, `${path}/items`);
    return this.arrayOf(this.b.fresh(ruleName(path)), item, min, max);
  }

  private arrayOf(name: string, item: Element, min: number, max: number): Element {
    if (max === 0) return this.b.define(name, [literal("[]")]);
    const more = this.b.repeat(`${name}-more`, [this.comma(), item], Math.max(0, min - 1), max - 1);
    const alts: Element[][] = [[...literal("["), item, more, ...literal("]")]];
    if (min === 0) alts.push(literal("[]"));
    return this.b.define(name, alts);
  }

  /** Any JSON value nested at most `depth` levels. */
  private any(depth: number): Element {
    const name = `json-any-${Math.max(0, depth)}`;
    if (this.b.isDefined(name)) return this.b.ref(name);
    const alts: Element[][] = [
      [this.stringRule(0, this.maxString)],
      [this.number()],
      literal("true"),
      literal("false"),
      literal("null"),
    ];
    if (depth > 0) {
      alts.push([this.anyObject(depth)]);
      alts.push([this.arrayOf(`json-any-array-${depth}`, this.any(depth - 1), 0, this.maxItems)]);
    }
    return this.b.define(name, alts);
  }

  private anyObject(depth: number): Element {
    const name = `json-any-object-${depth}`;
    if (this.b.isDefined(name)) return this.b.ref(name);
    const kv = this.b.define(`${name}-member`, [[
      this.stringRule(0, this.maxString),
      this.colon(),
      this.any(depth - 1),
    ]]);
    const more = this.b.repeat(`${name}-more`, [this.comma(), kv], 0, this.maxItems - 1);
    return this.b.define(name, [[...literal("{"), kv, more, ...literal("}")], literal("{}")]);
  }
}

function isOfType(v: unknown, t: JsonType): boolean {
  switch (t) {
    case "null":
      return v === null;
    case "boolean":
      return typeof v === "boolean";
    case "string":
      return typeof v === "string";
    case "number":
      return typeof v === "number" && Number.isFinite(v);
    case "integer":
      return typeof v === "number" && Number.isInteger(v);
    case "array":
      return Array.isArray(v);
    case "object":
      return typeof v === "object" && v !== null && !Array.isArray(v);
  }
}

function cps(s: string): number[] {
  const out: number[] = [];
  for (const ch of s) out.push(ch.codePointAt(0)!, ch.codePointAt(0)!);
  return out;
}

function ruleName(path: string): string {
  return ("schema" + path.slice(1)).replace(/[^a-zA-Z0-9_-]+/g, "-").replace(/-+$/, "");
}

function escapePointer(s: string): string {
  return s.replace(/~/g, "~0").replace(/\//g, "~1");
}
