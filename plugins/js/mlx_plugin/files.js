// Files inside the plugin: the workflow's /artifacts (read-write) and the directories its
// manifest grants (e.g. /data read-only). The component reads them through wasi:filesystem
// (StarlingMonkey has no `fs`); natively they are the machine's files, or those a test's
// FakeHost maps (`dirs: {"/data": ".../data"}`), so operations use the same paths everywhere.
//
// Failures are `FileError`s with a Node-style `code` (ENOENT, EACCES, EROFS, ...) in both
// places.

import { currentHost } from "./host.js";

/** A file operation that failed: `code` is the Node-style error code, `reason` the text for a
 * person ("no such file or directory"), the message `cannot read PATH: REASON`. */
export class FileError extends Error {
  constructor(code, message, path, reason = message) {
    super(message);
    this.code = code;
    this.path = path;
    this.reason = reason;
  }

  get name() {
    return "FileError";
  }
}

// The same text in the component and natively (Node's messages add the call and the path).
const REASONS = {
  EACCES: "permission denied",
  EDQUOT: "disk quota exceeded",
  EEXIST: "file already exists",
  EFBIG: "file too large",
  EINVAL: "invalid argument",
  EISDIR: "is a directory",
  EMLINK: "too many links",
  ENAMETOOLONG: "name too long",
  ENOENT: "no such file or directory",
  ENOSPC: "no space left on device",
  ENOTDIR: "not a directory",
  EPERM: "operation not permitted",
  EROFS: "read-only file system",
};

function wrap(path, what, action) {
  try {
    return action();
  } catch (e) {
    if (e instanceof FileError) throw e;
    const code = typeof e?.code === "string" ? e.code : "EIO";
    const reason = e?.reason ?? REASONS[code] ?? String(e?.message ?? e);
    throw new FileError(code, `cannot ${what} ${path}: ${reason}`, path, reason);
  }
}

/** The whole file as bytes. */
export function readBytes(path) {
  return wrap(path, "read", () => currentHost().readFile(path));
}

/** The whole file as UTF-8 text (a byte-order mark is dropped). */
export function readText(path) {
  return new TextDecoder("utf-8", { fatal: true }).decode(readBytes(path));
}

/** Writes `data` (a string as UTF-8, or bytes), replacing the file. */
export function writeText(path, data) {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  wrap(path, "write", () => currentHost().writeFile(path, bytes));
}

/** Writes `value` as JSON text (two-space indented, newline-terminated). */
export function writeJson(path, value) {
  writeText(path, `${JSON.stringify(value, null, 2)}\n`);
}

/** Creates directory `path` and its missing parents. */
export function makeDirs(path) {
  wrap(path, "create", () => currentHost().makeDirs(path));
}

/** The directory part of `path` ("/artifacts/a/b.json" -> "/artifacts/a"). */
export function dirname(path) {
  const i = path.lastIndexOf("/");
  return i <= 0 ? (i === 0 ? "/" : ".") : path.slice(0, i);
}
