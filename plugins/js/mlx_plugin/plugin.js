// `definePlugin`: a plugin's operations, declared in one place, and the dispatch the
// component's `invoke` export runs.

import * as schemaCheck from "./schema.js";
import { InvalidInput, Permanent, PluginError, finiteOnly, uncaught, unknownOperation } from "./errors.js";

const KIND_NAMES = { invalid_input: "InvalidInput", retryable: "Retryable", permanent: "Permanent" };

function describeErrors(errors) {
  if (Array.isArray(errors)) return errors.join(", ");
  return Object.entries(errors)
    .map(([kind, names]) => `${KIND_NAMES[kind] ?? kind} ${names.join(", ")}`)
    .join("; ");
}

function errorNames(errors) {
  if (!errors) return [];
  return Array.isArray(errors) ? [...errors] : Object.values(errors).flat();
}

const isThenable = (value) =>
  value !== null && (typeof value === "object" || typeof value === "function") && typeof value.then === "function";

/** What escaped an operation, as the PluginError the worker receives. */
export function asPluginError(error, operation) {
  return error instanceof PluginError ? error : uncaught(error, operation);
}

/**
 * Declares a plugin:
 *
 *   export const plugin = definePlugin({
 *     name: "hello", version: "0.1.0", description: "Greets people.",
 *     operations: {
 *       greet: {
 *         description: "Returns a greeting.",
 *         input: schema.object({ name: schema.string() }, ["name"]),
 *         output: schema.object({ greeting: schema.string() }),
 *         errors: { invalid_input: ["EmptyName"] },
 *         handler(input, ctx) { return { greeting: `Hello, ${input.name}!` }; },
 *       },
 *     },
 *   });
 *
 * A handler takes `(input, ctx)` and returns (or resolves to) anything JSON; it throws
 * `InvalidInput`, `Retryable` or `Permanent` for errors it means. `errors` lists the type names
 * of those (published in the description), or maps each kind to its names. The input is
 * checked against `input` before the handler runs and its defaults filled in, unless
 * `validateInput: false`.
 */
export function definePlugin({ name, version, description = "", operations }) {
  return new Plugin(name, version, description, operations);
}

export class Plugin {
  constructor(name, version, description, operations) {
    for (const [what, value] of [["name", name], ["version", version]]) {
      if (typeof value !== "string" || value === "") throw new TypeError(`the plugin's ${what} must be a non-empty string`);
    }
    if (typeof operations !== "object" || operations === null || Object.keys(operations).length === 0) {
      throw new TypeError("a plugin declares at least one operation: operations: { name: { handler, ... } }");
    }
    this.name = name;
    this.version = version;
    this.description = description;
    /** @type {Map<string, object>} */
    this.operations = new Map();
    for (const [opName, op] of Object.entries(operations)) {
      if (typeof op?.handler !== "function") {
        throw new TypeError(`operation ${JSON.stringify(opName)} needs a handler(input, ctx) function`);
      }
      for (const key of ["input", "output"]) {
        // Fails when the module loads (at build time), not in the worker, if a schema is not JSON.
        if (op[key] !== undefined) JSON.stringify(op[key], finiteOnly);
      }
      let text = op.description ?? "";
      if (op.errors && errorNames(op.errors).length > 0) text = `${text} Errors: ${describeErrors(op.errors)}.`.trim();
      this.operations.set(opName, {
        name: opName,
        description: text,
        inputSchema: op.input ?? {},
        outputSchema: op.output ?? {},
        handler: op.handler,
        errors: errorNames(op.errors),
        validateInput: op.validateInput ?? true,
      });
    }
  }

  /** The self-description `describe` returns, schemas as JSON values. */
  info() {
    return {
      name: this.name,
      version: this.version,
      description: this.description,
      operations: [...this.operations.values()].map((op) => ({
        name: op.name,
        description: op.description,
        input_schema: op.inputSchema,
        output_schema: op.outputSchema,
      })),
    };
  }

  /** Runs `operation` on `input` (a JSON value): its output value, or a promise of it when the
   * handler is async. Errors the plugin means propagate as `PluginError`; anything else it
   * throws (or a promise rejects with) becomes a `Permanent` `UncaughtException` with the
   * stack in its details. */
  call(operation, input, ctx) {
    const op = this.operations.get(operation);
    if (op === undefined) throw unknownOperation(operation, [...this.operations.keys()]);
    if (input === null || input === undefined) input = {};
    if (op.validateInput) {
      const problems = schemaCheck.validate(input, op.inputSchema);
      if (problems.length > 0) {
        throw new InvalidInput("InvalidInput", `invalid input: ${problems.join("; ")}`, { problems });
      }
    }
    let result;
    try {
      result = op.handler(input, ctx);
    } catch (error) {
      throw asPluginError(error, operation);
    }
    if (isThenable(result)) {
      return Promise.resolve(result).catch((error) => {
        throw asPluginError(error, operation);
      });
    }
    return result;
  }

  /** What the component's `invoke` export does: JSON text in, JSON text out (or a promise of
   * it); throws (rejects with) `PluginError` for every failure. */
  run(operation, inputText, ctx) {
    let input;
    try {
      input = JSON.parse(inputText);
    } catch (e) {
      throw new InvalidInput("InvalidJson", `input is not valid JSON: ${e.message}`);
    }
    const output = this.call(operation, input, ctx);
    if (isThenable(output)) return output.then((value) => encode(operation, value));
    return encode(operation, output);
  }
}

function encode(operation, value) {
  let text;
  try {
    text = JSON.stringify(value ?? null, finiteOnly);
  } catch (e) {
    throw new Permanent(
      "InvalidOutput",
      `operation ${JSON.stringify(operation)} returned a value that is not JSON: ${e.message}`,
      { type: value?.constructor?.name ?? typeof value },
    );
  }
  if (text === undefined) {
    throw new Permanent(
      "InvalidOutput",
      `operation ${JSON.stringify(operation)} returned a ${typeof value}, not a JSON value`,
      { type: typeof value },
    );
  }
  return text;
}
