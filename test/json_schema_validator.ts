/**
 * An independent JSON-schema validator for the tests of the constrained decoder: written from
 * the JSON-schema rules, sharing no code with the grammar compiler, so a compiler bug cannot
 * hide itself.
 *
 * @module
 */

/** Problems of `value` against `schema` (empty when valid), each with its JSON pointer. */
export function validate(value: unknown, schema: unknown, path = "#"): string[] {
  if (schema === true) return [];
  if (schema === false) return [`${path}: schema false`];
  const s = schema as Record<string, unknown>;
  const errors: string[] = [];
  if (s.anyOf) {
    const ok = (s.anyOf as unknown[]).some((sub) => validate(value, sub, path).length === 0);
    if (!ok) errors.push(`${path}: matches no anyOf branch`);
  }
  if (s.const !== undefined && !deepEqual(value, s.const)) errors.push(`${path}: not the const`);
  if (s.enum !== undefined && !(s.enum as unknown[]).some((e) => deepEqual(e, value))) {
    errors.push(`${path}: not in enum`);
  }
  if (s.type !== undefined) {
    const types = Array.isArray(s.type) ? s.type : [s.type];
    if (!types.some((t) => typeOf(value, t as string))) errors.push(`${path}: not of type ${types.join("|")}`);
  }
  if (typeof value === "string") {
    const n = [...value].length;
    if (typeof s.maxLength === "number" && n > s.maxLength) errors.push(`${path}: longer than ${s.maxLength}`);
    if (typeof s.minLength === "number" && n < s.minLength) errors.push(`${path}: shorter than ${s.minLength}`);
  }
  if (Array.isArray(value)) {
    if (typeof s.maxItems === "number" && value.length > s.maxItems) {
      errors.push(`${path}: more than ${s.maxItems} items`);
    }
    if (typeof s.minItems === "number" && value.length < s.minItems) {
      errors.push(`${path}: fewer than ${s.minItems} items`);
    }
    if (s.items !== undefined) value.forEach((v, i) => errors.push(...validate(v, s.items, `${path}/${i}`)));
  }
  if (typeof value === "object" && value !== null && !Array.isArray(value)) {
    const obj = value as Record<string, unknown>;
    const props = (s.properties ?? {}) as Record<string, unknown>;
    for (const r of (s.required ?? []) as string[]) if (!(r in obj)) errors.push(`${path}: missing ${r}`);
    for (const [k, v] of Object.entries(obj)) {
      if (k in props) errors.push(...validate(v, props[k], `${path}/${k}`));
      else if (s.additionalProperties === false) errors.push(`${path}: extra property ${k}`);
    }
  }
  return errors;
}

function typeOf(v: unknown, t: string): boolean {
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
  return false;
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a as object), kb = Object.keys(b as object);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

/** Schemas the tests generate against: every supported keyword, nested. */
export const TEST_SCHEMAS: Record<string, unknown> = {
  robotCommand: {
    type: "object",
    properties: {
      action: { enum: ["move", "turn", "stop"] },
      speed: { type: "number" },
      steps: { type: "integer" },
      safe: { type: "boolean" },
    },
    required: ["action", "speed"],
    additionalProperties: false,
  },
  nested: {
    title: "a plan",
    type: "object",
    properties: {
      name: { type: "string", maxLength: 12 },
      waypoints: {
        type: "array",
        maxItems: 3,
        items: {
          type: "object",
          properties: {
            x: { type: "integer" },
            y: { type: "integer" },
            label: { type: ["string", "null"], maxLength: 5 },
          },
          required: ["x", "y"],
        },
      },
      mode: {
        anyOf: [{ const: "auto" }, { type: "integer" }, {
          type: "object",
          properties: { manual: { type: "boolean" } },
          required: ["manual"],
        }],
      },
    },
    required: ["name", "waypoints", "mode"],
  },
  list: { type: "array", items: { type: "string", minLength: 1, maxLength: 4 }, minItems: 2, maxItems: 4 },
  anything: { description: "any JSON value" },
};
