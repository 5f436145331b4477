// contract-js natively: the behaviours plugins/CONTRACT.md fixes, before the shared e2e table
// (tests/tests/e2e/contract.rs) runs them in the worker.

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";

import { plugin } from "../contract/plugin.js";
import { FakeHost, invoke } from "../mlx_plugin/testing.js";

const DATA = fileURLToPath(new URL("../../../data", import.meta.url));

describe("contract-js", () => {
  it("offers exactly the contract's operations", () => {
    const info = plugin.info();
    assert.equal(info.name, "contract-js");
    assert.deepEqual(
      info.operations.map((op) => op.name),
      ["echo", "fail", "throw", "checkpoint", "wait_for_cancel", "config", "secret", "log", "connect", "read_file"],
    );
    for (const op of info.operations) assert.equal(op.input_schema.additionalProperties, false, op.name);
  });

  it("echoes with the attempt", async () => {
    assert.deepEqual((await invoke(plugin, "echo", { value: [1, "a"] }, { attempt: 3 })).output, {
      value: [1, "a"],
      times: 1,
      attempt: 3,
    });
    assert.equal((await invoke(plugin, "echo", { value: 1, times: 11 })).error.typeName, "InvalidInput");
    assert.equal((await invoke(plugin, "echo", {})).error.typeName, "InvalidInput");
  });

  it("fails with each typed error", async () => {
    for (const kind of ["invalid_input", "retryable", "permanent"]) {
      const { error } = await invoke(plugin, "fail", { kind, type: "Mine", message: "m", details: { a: 1 } });
      assert.deepEqual([error.kind, error.typeName, error.message, error.details], [kind, "Mine", "m", { a: 1 }]);
    }
  });

  it("throws a TypeError as an UncaughtException", async () => {
    const { error } = await invoke(plugin, "throw", { message: "boom" });
    assert.deepEqual([error.kind, error.typeName, error.message], ["permanent", "UncaughtException", "TypeError: boom"]);
    assert.match(error.details.stack, /TypeError: boom/);
  });

  it("checkpoints, fails once and resumes", async () => {
    const host = new FakeHost();
    const first = await invoke(plugin, "checkpoint", { steps: 5, fail_at: 3 }, { host });
    assert.deepEqual([first.error.kind, first.error.typeName], ["retryable", "Interrupted"]);
    assert.deepEqual(host.heartbeats, [{ done: 1 }, { done: 2 }, { done: 3 }]);
    const second = await invoke(plugin, "checkpoint", { steps: 5, fail_at: 3 }, { attempt: 2, lastHeartbeat: { done: 3 } });
    assert.deepEqual(second.output, { resumed_from: 3, done: 5, attempt: 2 });
  });

  it("waits for cancellation, or gives up", async () => {
    const host = new FakeHost({ cancelAfter: 3 });
    const { error } = await invoke(plugin, "wait_for_cancel", {}, { host });
    assert.deepEqual([error.kind, error.typeName], ["retryable", "Cancelled"]);
    assert.deepEqual(host.heartbeats, [{ waiting: 1 }, { waiting: 2 }, { waiting: 3 }]);
    const bored = await invoke(plugin, "wait_for_cancel", { max_heartbeats: 2 });
    assert.deepEqual([bored.error.kind, bored.error.typeName], ["permanent", "NotCancelled"]);
  });

  it("reads config and secrets without revealing them", async () => {
    const host = new FakeHost({ config: { greeting: "hello" }, secrets: { token: "abcd" } });
    assert.deepEqual((await invoke(plugin, "config", { key: "greeting" }, { host })).output, { value: "hello" });
    assert.deepEqual((await invoke(plugin, "config", { key: "nope" }, { host })).output, { value: null });
    assert.deepEqual((await invoke(plugin, "secret", { name: "token" }, { host })).output, { present: true, length: 4 });
    assert.deepEqual((await invoke(plugin, "secret", { name: "nope" }, { host })).output, { present: false, length: null });
  });

  it("logs with fields", async () => {
    const host = new FakeHost();
    assert.deepEqual((await invoke(plugin, "log", { message: "hi", fields: { a: "1" } }, { host })).output, { logged: true });
    assert.deepEqual(host.logs, [{ level: "info", message: "hi", fields: { a: "1" } }]);
  });

  it("lets a failed connection escape as an uncaught exception", async () => {
    // Port 1 on loopback: nothing listens there, so fetch rejects (the worker denies it first).
    const { error } = await invoke(plugin, "connect", { port: 1 });
    assert.deepEqual([error.kind, error.typeName], ["permanent", "UncaughtException"]);
    assert.match(error.message, /^TypeError: /);
  });

  it("reads files, and names the OS error when it cannot", async () => {
    const host = new FakeHost({ dirs: { "/data": { path: DATA, readOnly: true } } });
    assert.deepEqual((await invoke(plugin, "read_file", { path: "/data/iris.csv" }, { host })).output, { bytes: 3877 });
    const { error } = await invoke(plugin, "read_file", { path: "/data/nope" }, { host });
    assert.deepEqual([error.kind, error.typeName], ["permanent", "ReadFailed"]);
    assert.equal(error.message, "cannot read /data/nope: no such file or directory");
    assert.equal(error.details.code, "ENOENT");
  });
});
