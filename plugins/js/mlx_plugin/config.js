// What the operator granted this plugin in its manifest: `[config]` values and secrets.
// Nothing else of the worker's configuration or environment is visible. Off the worker nothing
// is granted, unless a test installs testing.js's FakeHost.

import { currentHost } from "./host.js";

/** The manifest's `[config]` value for `key`, or `fallback` when there is none. */
export function get(key, fallback = null) {
  return currentHost().config(String(key)) ?? fallback;
}

/** The secret the manifest grants under `name` (`[secrets]`), read by the worker at the time
 * of the call; null when none is granted. Keep it out of logs, errors and outputs: the worker
 * never reveals it, neither should the plugin. */
export function secret(name) {
  return currentHost().secret(String(name)) ?? null;
}
