// The glue between a `definePlugin` plugin and the component: the worker's imports
// (mlx:plugin/*, and wasi:filesystem for files.js) and the `plugin` export. Imported only by
// the entry module mk/js.mk generates for a component build; Node.js cannot resolve these
// specifiers, which is why nothing else imports this module.
//
// The world is plugins/js/wit/world.wit: plugin-world plus the wasi:filesystem interfaces the
// JavaScript engine imports anyway, so that JavaScript can reach them.

import { heartbeat, isCancelled } from "mlx:plugin/activity@0.1.0";
import { get, getSecret } from "mlx:plugin/config@0.1.0";
import { log } from "mlx:plugin/log@0.1.0";
import { getDirectories } from "wasi:filesystem/preopens@0.2.12";

import { Context } from "./context.js";
import { INVALID_INPUT, RETRYABLE } from "./errors.js";
import { installHost } from "./host.js";
import { asPluginError } from "./plugin.js";

const TAGS = { [INVALID_INPUT]: "invalid-input", [RETRYABLE]: "retryable" };

/** The WIT `plugin-error` value for `error` (a PluginError). */
function toWit(error) {
  return {
    tag: TAGS[error.kind] ?? "permanent",
    val: { typeName: error.typeName, message: error.message, details: error.detailsJson() },
  };
}

// wasi:filesystem error codes as the Node-style codes files.js promises (it adds the text).
const FS_CODES = {
  access: "EACCES",
  exist: "EEXIST",
  invalid: "EINVAL",
  "is-directory": "EISDIR",
  "no-entry": "ENOENT",
  "not-directory": "ENOTDIR",
  "not-permitted": "EPERM",
  "read-only": "EROFS",
  "insufficient-space": "ENOSPC",
  "file-too-large": "EFBIG",
  "too-many-links": "EMLINK",
  "name-too-long": "ENAMETOOLONG",
  quota: "EDQUOT",
};

/** A host failure as files.js expects it: a `code`, and a `reason` when the code says too little. */
function fsError(e) {
  const wasi = typeof e?.payload === "string" ? e.payload : null;
  const error = new Error(wasi ?? String(e?.message ?? e));
  error.code = FS_CODES[wasi] ?? "EIO";
  if (!(wasi in FS_CODES)) error.reason = wasi ?? error.message;
  return error;
}

function refused(code, reason) {
  const error = new Error(reason);
  error.code = code;
  error.reason = reason;
  return error;
}

function dispose(resource) {
  const drop = Symbol.dispose && resource?.[Symbol.dispose];
  if (typeof drop === "function") drop.call(resource);
}

/** The preopened directory holding `path` (the longest guest prefix) and the path inside it. */
function locate(path) {
  if (typeof path !== "string" || !path.startsWith("/")) {
    throw refused("EINVAL", "paths inside the plugin are absolute (/data/..., /artifacts/...)");
  }
  const parts = path.split("/").filter((p) => p !== "" && p !== ".");
  let best = null;
  const dirs = getDirectories();
  for (const [descriptor, guest] of dirs) {
    const prefix = guest.split("/").filter((p) => p !== "" && p !== ".");
    const inside = prefix.every((p, i) => parts[i] === p);
    if (inside && (best === null || prefix.length > best.depth)) best = { descriptor, depth: prefix.length };
  }
  if (best === null) {
    const granted = dirs.map(([, guest]) => guest).join(", ") || "none";
    throw refused("ENOENT", `no such file or directory (not in a directory granted to the plugin: ${granted})`);
  }
  return { dir: best.descriptor, rest: parts.slice(best.depth).join("/") || "." };
}

function open(path, openFlags, flags) {
  const { dir, rest } = locate(path);
  try {
    return dir.openAt({ symlinkFollow: true }, rest, openFlags, flags);
  } catch (e) {
    throw fsError(e);
  }
}

const CHUNK = 1n << 20n;

class WitHost {
  log(level, message, fields) {
    log(level, message, fields.map(([key, value]) => ({ key, value })));
  }

  heartbeat(details) {
    return heartbeat(details);
  }

  isCancelled() {
    return isCancelled();
  }

  config(key) {
    return get(key);
  }

  secret(name) {
    return getSecret(name);
  }

  readFile(path) {
    const fd = open(path, {}, { read: true });
    try {
      const chunks = [];
      let size = 0;
      for (;;) {
        const [bytes, end] = fd.read(CHUNK, BigInt(size));
        chunks.push(bytes);
        size += bytes.length;
        if (end || bytes.length === 0) break;
      }
      const all = new Uint8Array(size);
      let at = 0;
      for (const chunk of chunks) {
        all.set(chunk, at);
        at += chunk.length;
      }
      return all;
    } catch (e) {
      throw fsError(e);
    } finally {
      dispose(fd);
    }
  }

  writeFile(path, bytes) {
    const fd = open(path, { create: true, truncate: true }, { write: true });
    try {
      let at = 0;
      while (at < bytes.length) {
        at += Number(fd.write(bytes.subarray(at, at + Number(CHUNK)), BigInt(at)));
      }
    } catch (e) {
      throw fsError(e);
    } finally {
      dispose(fd);
    }
  }

  makeDirs(path) {
    const { dir, rest } = locate(path);
    let sofar = "";
    for (const part of rest.split("/").filter((p) => p !== ".")) {
      sofar = sofar ? `${sofar}/${part}` : part;
      try {
        dir.createDirectoryAt(sofar);
      } catch (e) {
        if (e?.payload !== "exist") throw fsError(e);
      }
    }
  }
}

/** The object componentize-js exports as `mlx:plugin/plugin`: bind it to the name `plugin` in
 * the component's entry module. */
export function component(plugin) {
  installHost(new WitHost());
  return {
    describe() {
      const info = plugin.info();
      return {
        name: info.name,
        version: info.version,
        description: info.description,
        operations: info.operations.map((op) => ({
          name: op.name,
          description: op.description,
          inputSchema: JSON.stringify(op.input_schema),
          outputSchema: JSON.stringify(op.output_schema),
        })),
      };
    },

    invoke(operation, input, context) {
      const ctx = new Context({
        workflowId: context.workflowId,
        activityId: context.activityId,
        attempt: context.attempt,
        lastHeartbeatDetails: context.lastHeartbeatDetails,
      });
      let output;
      try {
        output = plugin.run(operation, input, ctx);
      } catch (error) {
        throw toWit(asPluginError(error, operation));
      }
      if (typeof output === "string") return output;
      // An async handler: componentize-js runs the event loop until the promise settles.
      return output.then(
        (text) => text,
        (error) => {
          throw toWit(asPluginError(error, operation));
        },
      );
    },
  };
}
