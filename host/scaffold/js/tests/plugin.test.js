// The plugin's operations, natively (`node --test`): the same code the component runs, with a
// fake worker.

import assert from "node:assert/strict";
import { it } from "node:test";

import { FakeHost, invoke } from "../src/mlx_plugin/testing.js";
import { plugin } from "../src/plugin.js";

it("greets by name and logs", async () => {
  const host = new FakeHost();
  const result = await invoke(plugin, "greet", { name: " Ada " }, { host });
  assert.deepEqual(result.unwrap(), { greeting: "Hello, Ada!" });
  assert.deepEqual(host.messages("info"), ["greeting"]);
});

it("refuses a blank name as invalid input", async () => {
  const result = await invoke(plugin, "greet", { name: "  " });
  assert.equal(result.error.typeName, "EmptyName");
});
