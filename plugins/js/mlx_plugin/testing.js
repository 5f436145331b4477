// Native tests of plugin operations (`node --test`), without the worker or the toolchain.
//
//   import { FakeHost, invoke } from "../mlx_plugin/testing.js";
//
//   const host = new FakeHost({ config: { region: "eu" }, secrets: { token: "t" }, cancelAfter: 3,
//                               dirs: { "/data": "../../data", "/artifacts": tmp } });
//   const result = await invoke(plugin, "greet", { name: "Ada" }, { host, attempt: 2, lastHeartbeat: { row: 10 } });
//   assert.deepEqual(result.output, {...});     // or result.error.kind / .typeName / .details
//   assert.deepEqual(host.heartbeats, [...]); assert.equal(host.logs[0].message, "greeting");
//
// `invoke` runs exactly what the component's `invoke` export runs (JSON text both ways, input
// check, error mapping), with `host` standing in for the worker. It installs the host for the
// call, so run invocations one at a time (node --test runs a file's tests in order).

import { Context } from "./context.js";
import { PluginError } from "./errors.js";
import { NativeHost, installHost } from "./host.js";

/** Records log lines (`logs`) and heartbeats (`heartbeats`, decoded); grants `config` values
 * and `secrets`; reports cancellation once `cancel()` is called or `cancelAfter` heartbeats
 * have been recorded. Files: guest paths under a key of `dirs` are read from and written to
 * the host directory it maps to (a path, or `{path, readOnly: true}` as a manifest's
 * `access = "read-only"`); other paths are refused like a directory the manifest does not
 * grant (ENOENT). Without `dirs`, paths are the machine's own. */
export class FakeHost extends NativeHost {
  constructor({ config = {}, secrets = {}, cancelAfter = null, dirs = null } = {}) {
    super();
    this.configValues = { ...config };
    this.secrets = { ...secrets };
    this.cancelAfter = cancelAfter;
    this.dirs = dirs;
    /** @type {{level: string, message: string, fields: Record<string, string>}[]} */
    this.logs = [];
    this.heartbeats = [];
    this.cancelled = false;
  }

  cancel() {
    this.cancelled = true;
  }

  log(level, message, fields) {
    this.logs.push({ level, message, fields: Object.fromEntries(fields) });
  }

  heartbeat(details) {
    this.heartbeats.push(JSON.parse(details));
    if (this.cancelAfter !== null && this.heartbeats.length >= this.cancelAfter) this.cancelled = true;
    return this.cancelled;
  }

  isCancelled() {
    return this.cancelled;
  }

  config(key) {
    return Object.hasOwn(this.configValues, key) ? this.configValues[key] : undefined;
  }

  secret(name) {
    return Object.hasOwn(this.secrets, name) ? this.secrets[name] : undefined;
  }

  /** The host path behind guest `path`; `write` refuses read-only directories (EROFS). */
  hostPath(path, write = false) {
    if (this.dirs === null) return path;
    const guests = Object.keys(this.dirs).sort((a, b) => b.length - a.length);
    for (const guest of guests) {
      const prefix = guest.replace(/\/+$/, "");
      if (path === prefix || path.startsWith(`${prefix}/`)) {
        const dir = this.dirs[guest];
        if (write && dir.readOnly) {
          const error = new Error("read-only file system");
          error.code = "EROFS";
          throw error;
        }
        return (typeof dir === "string" ? dir : dir.path) + path.slice(prefix.length);
      }
    }
    const reason = `no such file or directory (not in a directory granted to the plugin: ${guests.join(", ")})`;
    const error = new Error(reason);
    error.code = "ENOENT";
    error.reason = reason;
    throw error;
  }

  readFile(path) {
    return super.readFile(this.hostPath(path));
  }

  writeFile(path, bytes) {
    super.writeFile(this.hostPath(path, true), bytes);
  }

  makeDirs(path) {
    super.makeDirs(this.hostPath(path, true));
  }

  /** The messages logged (at `level`, if given). */
  messages(level = null) {
    return this.logs.filter((l) => level === null || l.level === level).map((l) => l.message);
  }
}

/** How an invocation ended: `output` (a JSON value) or `error` (a PluginError). */
export class Result {
  constructor({ output = null, error = null } = {}) {
    this.output = output;
    this.error = error;
  }

  get ok() {
    return this.error === null;
  }

  unwrap() {
    if (this.error !== null) throw new Error(`the operation failed: ${this.error}`);
    return this.output;
  }
}

/** Runs `operation` as the worker would and resolves to how it ended. `lastHeartbeat` is the
 * previous attempt's checkpoint (a JSON value, or JSON text as a string). */
export async function invoke(
  plugin,
  operation,
  input = null,
  { host = new FakeHost(), attempt = 1, lastHeartbeat = null, workflowId = "test-workflow", activityId = "test-activity" } = {},
) {
  const lastHeartbeatDetails =
    lastHeartbeat === null || typeof lastHeartbeat === "string" ? lastHeartbeat : JSON.stringify(lastHeartbeat);
  const ctx = new Context({ workflowId, activityId, attempt, lastHeartbeatDetails });
  const previous = installHost(host);
  try {
    const text = await plugin.run(operation, JSON.stringify(input), ctx);
    return new Result({ output: JSON.parse(text) });
  } catch (error) {
    if (error instanceof PluginError) return new Result({ error });
    throw error;
  } finally {
    installHost(previous);
  }
}
