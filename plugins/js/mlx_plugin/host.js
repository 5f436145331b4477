// What the SDK needs from the worker, behind one object so that operations run unchanged in
// the component (the WIT imports, see wit.js), natively (stderr, node:fs) and in tests
// (testing.js's FakeHost).

export const LEVELS = ["trace", "debug", "info", "warn", "error"];

/** Off the worker: log lines go to stderr, heartbeats are dropped, nothing is granted, files
 * are the machine's own. */
export class NativeHost {
  log(level, message, fields) {
    const rendered = fields.map(([k, v]) => ` ${k}=${v}`).join("");
    console.error(`[${level}] ${message}${rendered}`);
  }

  heartbeat(_details) {
    return false;
  }

  isCancelled() {
    return false;
  }

  config(_key) {
    return undefined;
  }

  secret(_name) {
    return undefined;
  }

  /** @returns {Uint8Array} */
  readFile(path) {
    return nodeFs().readFileSync(path);
  }

  writeFile(path, bytes) {
    nodeFs().writeFileSync(path, bytes);
  }

  makeDirs(path) {
    nodeFs().mkdirSync(path, { recursive: true });
  }
}

// Not a static import: the component has no node:fs, and must still load this module.
function nodeFs() {
  const fs = globalThis.process?.getBuiltinModule?.("node:fs");
  if (!fs) throw new Error("no filesystem here: node:fs needs Node.js 20.16 or newer");
  return fs;
}

let current = new NativeHost();

/** The host the SDK talks to now. */
export function currentHost() {
  return current;
}

/** Makes `host` the current host; returns the previous one (to restore). */
export function installHost(host) {
  const previous = current;
  current = host;
  return previous;
}
