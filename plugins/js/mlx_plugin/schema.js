// JSON Schemas of operations: helpers to write them, and the input check the SDK runs before
// an operation sees its input.
//
// The check covers the keywords operations use for plain JSON inputs: `type`, `properties`,
// `required`, `additionalProperties`, `items`, `enum`, `const`, `minimum`, `maximum`,
// `exclusiveMinimum`, `exclusiveMaximum`, `minLength`, `maxLength`, `minItems`, `maxItems`,
// and fills in each missing property's `default`. Other keywords are ignored here (they are
// still published to callers in `describe`). A failure names the path and the rule, e.g.
// `input.columns[1]: expected string, got number`.

/** An object schema with `properties` that rejects unknown properties: the usual shape of an
 * operation's input. */
export function object(properties, required = [], extra = {}) {
  return { type: "object", properties, required: [...required], additionalProperties: false, ...extra };
}

// Each takes an optional description (a string) and/or more keywords (an object):
// string("Path of the file.", { default: "/artifacts/x" }) or string({ minLength: 1 }).
export const string = (description, extra) => typed("string", description, extra);
export const number = (description, extra) => typed("number", description, extra);
export const integer = (description, extra) => typed("integer", description, extra);
export const boolean = (description, extra) => typed("boolean", description, extra);

/** An array of `items`. */
export function array(items, description, extra) {
  const schema = typed("array", description, extra);
  return { ...schema, items };
}

/** A value of any JSON type. */
export function any(description, extra) {
  return withDescription({}, description, extra);
}

/** One of the given values. */
export function oneOf(values, description, extra) {
  return withDescription({ enum: [...values] }, description, extra);
}

/** An object whose every value matches `values` (a map, e.g. per-column rules). */
export function mapOf(values, description, extra) {
  return withDescription({ type: "object", additionalProperties: values }, description, extra);
}

/** `schema` or null. */
export function nullable(schema) {
  const type = schema.type === undefined ? undefined : [].concat(schema.type, "null");
  return type === undefined ? { anyOf: [schema, { type: "null" }] } : { ...schema, type };
}

function typed(name, description, extra) {
  return withDescription({ type: name }, description, extra);
}

function withDescription(schema, description, extra) {
  if (description !== undefined && typeof description === "object" && description !== null) {
    return { ...schema, ...description };
  }
  if (description !== undefined && description !== null) schema.description = description;
  return { ...schema, ...(extra ?? {}) };
}

/** The JSON type name of `value` ("integer" for a whole number). */
export function jsonType(value) {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
  return typeof value;
}

function is(value, name) {
  if (name === "integer") return typeof value === "number" && Number.isInteger(value);
  if (name === "number") return typeof value === "number";
  return jsonType(value) === name;
}

function show(value) {
  return JSON.stringify(value);
}

function equal(a, b) {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && equal(a[k], b[k]));
}

const isObject = (v) => typeof v === "object" && v !== null && !Array.isArray(v);

/** The rules `value` breaks, each naming its path; defaults are filled in place. */
export function validate(value, schema, path = "input") {
  if (schema === true || !isObject(schema)) return schema === false ? [`${path}: not allowed`] : [];
  const problems = [];
  if (schema.type !== undefined) {
    const names = [].concat(schema.type);
    if (!names.some((n) => is(value, n))) {
      return [`${path}: expected ${names.join(" or ")}, got ${jsonType(value)}`];
    }
  }
  if (Array.isArray(schema.enum) && !schema.enum.some((v) => equal(v, value))) {
    problems.push(`${path}: must be one of ${show(schema.enum)}, got ${show(value)}`);
  }
  if ("const" in schema && !equal(schema.const, value)) {
    problems.push(`${path}: must be ${show(schema.const)}, got ${show(value)}`);
  }
  if (typeof value === "number") {
    const rules = {
      minimum: (limit) => value >= limit,
      maximum: (limit) => value <= limit,
      exclusiveMinimum: (limit) => value > limit,
      exclusiveMaximum: (limit) => value < limit,
    };
    for (const [rule, ok] of Object.entries(rules)) {
      const limit = schema[rule];
      if (typeof limit === "number" && !ok(limit)) problems.push(`${path}: ${rule} is ${limit}, got ${value}`);
    }
  }
  if (typeof value === "string") {
    // Code points, as JSON Schema counts length (not UTF-16 units).
    const length = [...value].length;
    if (typeof schema.minLength === "number" && length < schema.minLength) {
      problems.push(`${path}: minLength is ${schema.minLength}, got ${length}`);
    }
    if (typeof schema.maxLength === "number" && length > schema.maxLength) {
      problems.push(`${path}: maxLength is ${schema.maxLength}, got ${length}`);
    }
  }
  if (Array.isArray(value)) {
    if (typeof schema.minItems === "number" && value.length < schema.minItems) {
      problems.push(`${path}: minItems is ${schema.minItems}, got ${value.length}`);
    }
    if (typeof schema.maxItems === "number" && value.length > schema.maxItems) {
      problems.push(`${path}: maxItems is ${schema.maxItems}, got ${value.length}`);
    }
    if (isObject(schema.items)) {
      value.forEach((item, i) => problems.push(...validate(item, schema.items, `${path}[${i}]`)));
    }
  }
  if (isObject(value)) {
    const properties = isObject(schema.properties) ? schema.properties : {};
    for (const name of schema.required ?? []) {
      if (!Object.hasOwn(value, name)) problems.push(`${path}: missing required property ${show(name)}`);
    }
    const extra = schema.additionalProperties ?? true;
    for (const [name, item] of Object.entries(value)) {
      if (Object.hasOwn(properties, name)) {
        problems.push(...validate(item, properties[name], `${path}.${name}`));
      } else if (extra === false) {
        const known = Object.keys(properties).sort().join(", ") || "none";
        problems.push(`${path}: unknown property ${show(name)} (known properties: ${known})`);
      } else {
        problems.push(...validate(item, extra, `${path}.${name}`));
      }
    }
    for (const [name, sub] of Object.entries(properties)) {
      if (!Object.hasOwn(value, name) && isObject(sub) && "default" in sub) {
        value[name] = JSON.parse(JSON.stringify(sub.default));
      }
    }
  }
  return problems;
}
