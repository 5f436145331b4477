// Structured logging into the worker's log. Each line is tagged by the worker with the
// invocation's workflow id, activity id, attempt, plugin, operation, version and digest.
//
//   import { log } from "../mlx_plugin/index.js";
//   log.info("report written", { rows: 150, columns: 5 });
//
// Fields: strings as they are, numbers and other scalars with String, arrays and objects as
// JSON. Off the worker (native runs) lines go to stderr, or to testing.js's FakeHost.logs.

import { currentHost, LEVELS } from "./host.js";

function text(value) {
  if (typeof value === "string") return value;
  if (value === null || value === undefined) return JSON.stringify(value ?? null);
  if (typeof value === "object" || typeof value === "boolean") {
    try {
      return JSON.stringify(value) ?? String(value);
    } catch {
      return String(value);
    }
  }
  return String(value);
}

/** Logs `message` at `level` (trace, debug, info, warn or error) with `fields` (an object). */
export function log(level, message, fields = {}) {
  if (level === "warning") level = "warn";
  if (!LEVELS.includes(level)) {
    throw new TypeError(`log level must be one of ${LEVELS.join(", ")}, not ${JSON.stringify(level)}`);
  }
  const pairs = Object.entries(fields ?? {}).map(([k, v]) => [String(k), text(v)]);
  currentHost().log(level, String(message), pairs);
}

export const trace = (message, fields) => log("trace", message, fields);
export const debug = (message, fields) => log("debug", message, fields);
export const info = (message, fields) => log("info", message, fields);
export const warn = (message, fields) => log("warn", message, fields);
export const error = (message, fields) => log("error", message, fields);
