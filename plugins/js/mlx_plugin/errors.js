// Errors a plugin throws on purpose, each mapped to a case of the WIT `plugin-error` variant.
//
//   throw new InvalidInput("ColumnNotFound", `no column ${name}`, { column: name });
//
// `typeName` is stable and machine-readable (it becomes the Temporal application failure type,
// so retry policies and workflows can match on it); `message` tells a person what went wrong
// and what to fix; `details` is any JSON value.
//
// Anything else thrown out of an operation is a bug in the plugin: the SDK turns it into a
// `Permanent` error of type `UncaughtException` (see `uncaught`), never a trap, so it is not
// retried as if it could succeed.

export const INVALID_INPUT = "invalid_input";
export const RETRYABLE = "retryable";
export const PERMANENT = "permanent";

/** The type name of an exception the plugin did not handle. */
export const UNCAUGHT_EXCEPTION = "UncaughtException";

/** An error the plugin returns to the host. Throw a subclass: `InvalidInput`, `Retryable` or
 * `Permanent`. */
export class PluginError extends Error {
  /** @param {string} typeName @param {string} message @param {any} [details] */
  constructor(typeName, message, details = undefined) {
    if (typeof typeName !== "string" || typeName === "") {
      throw new TypeError("typeName must be a non-empty string, e.g. 'ColumnNotFound'");
    }
    super(String(message));
    this.typeName = typeName;
    this.details = details;
  }

  get kind() {
    return PERMANENT;
  }

  get name() {
    return this.constructor.name;
  }

  /** `details` as JSON text (what the WIT `error-info` carries), or undefined; a value that is
   * not JSON (a cycle, a BigInt) is sent as its string rather than lost. */
  detailsJson() {
    if (this.details === undefined || this.details === null) return undefined;
    try {
      const text = JSON.stringify(this.details, finiteOnly);
      return text === undefined ? JSON.stringify({ repr: String(this.details) }) : text;
    } catch {
      return JSON.stringify({ repr: String(this.details) });
    }
  }

  toString() {
    return `${this.typeName}: ${this.message}`;
  }
}

/** The input does not satisfy the operation's contract. Never retried: the caller must change
 * the request. */
export class InvalidInput extends PluginError {
  get kind() {
    return INVALID_INPUT;
  }
}

/** A transient failure: the same request may succeed later. Retried according to the
 * activity's retry policy. */
export class Retryable extends PluginError {
  get kind() {
    return RETRYABLE;
  }
}

/** A failure that retrying cannot fix. Never retried. */
export class Permanent extends PluginError {
  get kind() {
    return PERMANENT;
  }
}

/** The plugin stopped because cancellation was requested (`ctx.heartbeat` returned true, or
 * `ctx.isCancelled()`). Retryable, so that if the workflow retries after all, the next attempt
 * can resume from the last heartbeat. */
export class Cancelled extends Retryable {
  constructor(message = "cancellation requested", details = undefined) {
    super("Cancelled", message, details);
  }
}

export function unknownOperation(operation, known) {
  return new InvalidInput(
    "UnknownOperation",
    `this plugin has no operation ${JSON.stringify(operation)}; its operations: ${known.join(", ")}`,
  );
}

/** JSON.stringify replacer refusing what JSON cannot carry (NaN and the infinities become
 * `null` silently otherwise). */
export function finiteOnly(key, value) {
  if (typeof value === "number" && !Number.isFinite(value)) {
    throw new TypeError(`${value} is not a JSON number${key ? ` (at ${JSON.stringify(key)})` : ""}`);
  }
  return value;
}

/** The `Permanent` error for anything an operation threw without meaning to: the message is
 * the exception's name and text (`TypeError: x is undefined`), the details hold the stack and
 * where it was thrown. Values that are not errors (`throw "text"`) are reported as such. */
export function uncaught(error, operation) {
  const isError = error instanceof Error;
  const name = isError ? error.name || error.constructor?.name || "Error" : "Thrown";
  let text;
  try {
    text = isError ? String(error.message ?? "") : describeThrown(error);
  } catch {
    text = "(a value that cannot be shown)";
  }
  const stack = isError && typeof error.stack === "string" ? stackText(name, text, error.stack) : "";
  return new Permanent(UNCAUGHT_EXCEPTION, text ? `${name}: ${text}` : name, {
    exception: name,
    message: text,
    operation,
    where: firstFrame(error?.stack),
    stack,
  });
}

function describeThrown(value) {
  if (typeof value === "string") return value;
  try {
    const json = JSON.stringify(value);
    if (json !== undefined) return json;
  } catch {
    // fall through to String
  }
  return String(value);
}

// V8 (node) starts a stack with "Name: message"; SpiderMonkey (the component) lists frames
// only. Both are reported the same way, headed by the exception as Python's traceback ends
// with it. The frame of componentize-js's generated export glue is dropped: it names a
// temporary directory of the build, different in every build.
function stackText(name, text, stack) {
  const head = text ? `${name}: ${text}` : name;
  const frames = stack
    .split("\n")
    .filter((line) => !/@\/.*\/sources\/initializer\.js:\d+:\d+$/.test(line))
    .join("\n");
  return frames.startsWith(head) ? frames : `${head}\n${frames}`;
}

/** {file, line, column, function} of the innermost frame, from either engine's format:
 * V8 `    at fn (file:1:2)`, SpiderMonkey `fn@file:1:2`. */
function firstFrame(stack) {
  if (typeof stack !== "string") return null;
  for (const line of stack.split("\n")) {
    let m = line.match(/^\s+at (?:(.*?) \()?(.+?):(\d+):(\d+)\)?$/);
    if (m) return frame(m[1], m[2], m[3], m[4]);
    m = line.match(/^(.*?)@(.+?):(\d+):(\d+)$/);
    if (m) return frame(m[1], m[2], m[3], m[4]);
  }
  return null;
}

function frame(fn, file, line, column) {
  return { file, line: Number(line), column: Number(column), function: fn || null };
}
