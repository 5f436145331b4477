// The SDK as a plugin author uses it: declaring operations, errors, logging, heartbeats, config
// and secrets, run natively through mlx_plugin/testing.js.

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  Cancelled,
  Context,
  InvalidInput,
  Permanent,
  Retryable,
  UNCAUGHT_EXCEPTION,
  config,
  definePlugin,
  log,
  schema,
} from "../mlx_plugin/index.js";
import { FakeHost, invoke } from "../mlx_plugin/testing.js";

function helper() {
  return undefined.columns;
}

function makePlugin() {
  return definePlugin({
    name: "demo",
    version: "1.2.3",
    description: "A plugin for the tests.",
    operations: {
      greet: {
        description: "Greets someone.",
        input: schema.object(
          {
            name: schema.string({ minLength: 1 }),
            times: schema.integer({ minimum: 1, maximum: 3, default: 1 }),
            tags: schema.array(schema.string(), { default: [] }),
            mode: { enum: ["loud", "quiet"], default: "quiet" },
          },
          ["name"],
        ),
        output: schema.object({ greeting: schema.string() }),
        errors: { invalid_input: ["Rude"], retryable: ["Busy"] },
        handler(input) {
          log.info("greeting", { name: input.name, times: input.times, tags: input.tags });
          return { greeting: Array(input.times).fill(`Hello, ${input.name}!`).join(" ") };
        },
      },
      fail: {
        input: schema.object({ kind: schema.string() }),
        handler(input) {
          switch (input.kind) {
            case "invalid_input":
              throw new InvalidInput("Rude", "be nice", { word: "x" });
            case "retryable":
              throw new Retryable("Busy", "try later");
            case "permanent":
              throw new Permanent("Broken", "cannot work", [1, 2]);
            case "type":
              return helper();
            case "string":
              throw "just text";
            case "nan":
              return { x: NaN };
            case "bigint":
              return { x: 1n };
            case "undefined":
              return undefined;
            default:
              return { kind: input.kind };
          }
        },
      },
      later: {
        description: "Async, and fails after an await.",
        input: schema.object({ fail: schema.boolean({ default: false }) }),
        async handler(input) {
          await new Promise((resolve) => setTimeout(resolve, 1));
          if (input.fail) throw new RangeError("too late");
          return { done: true };
        },
      },
      work: {
        validateInput: false,
        handler(input, ctx) {
          const start = ctx.lastHeartbeat()?.step ?? 0;
          const done = [];
          for (let step = start; step < 5; step++) {
            done.push(step);
            if (ctx.heartbeat({ step: step + 1 })) throw new Cancelled(`cancelled after step ${step}`);
          }
          return { done, attempt: ctx.attempt, resumed_from: start };
        },
      },
      settings: {
        validateInput: false,
        handler(input, ctx) {
          return {
            region: config.get("region", "default-region"),
            missing: config.get("nope"),
            token_length: (ctx.secret("token") ?? "").length,
            no_secret: ctx.secret("other"),
            via_context: ctx.config("region"),
          };
        },
      },
    },
  });
}

describe("declaring", () => {
  it("describes operations in one place", () => {
    const info = makePlugin().info();
    assert.deepEqual([info.name, info.version], ["demo", "1.2.3"]);
    const greet = info.operations[0];
    assert.equal(greet.name, "greet");
    assert.equal(greet.description, "Greets someone. Errors: InvalidInput Rude; Retryable Busy.");
    assert.deepEqual(greet.input_schema.required, ["name"]);
    assert.equal(greet.input_schema.additionalProperties, false);
    assert.deepEqual(greet.output_schema.properties.greeting, { type: "string" });
    assert.deepEqual(
      info.operations.map((op) => op.name),
      ["greet", "fail", "later", "work", "settings"],
    );
  });

  it("refuses a plugin without operations, a handler or JSON schemas when it is declared", () => {
    assert.throws(() => definePlugin({ name: "x", version: "1", operations: {} }), TypeError);
    assert.throws(() => definePlugin({ name: "x", version: "1", operations: { a: {} } }), /handler/);
    assert.throws(
      () => definePlugin({ name: "x", version: "1", operations: { a: { input: { maximum: NaN }, handler() {} } } }),
      /not a JSON number/,
    );
    assert.throws(() => definePlugin({ name: "", version: "1", operations: { a: { handler() {} } } }), /name/);
  });

  it("schema helpers take a description and keywords", () => {
    assert.deepEqual(schema.string("Path.", { default: "/a" }), { type: "string", description: "Path.", default: "/a" });
    assert.deepEqual(schema.integer({ minimum: 1 }), { type: "integer", minimum: 1 });
    assert.deepEqual(schema.nullable(schema.number()), { type: ["number", "null"] });
    assert.deepEqual(schema.array(schema.string()), { type: "array", items: { type: "string" } });
  });
});

describe("dispatching", () => {
  const plugin = makePlugin();

  it("returns the output, with defaults filled in", async () => {
    const result = await invoke(plugin, "greet", { name: "Ada", times: 2 });
    assert.deepEqual(result.unwrap(), { greeting: "Hello, Ada! Hello, Ada!" });
  });

  it("names the real operations for an unknown one", async () => {
    const { error } = await invoke(plugin, "nope", {});
    assert.deepEqual([error.kind, error.typeName], ["invalid_input", "UnknownOperation"]);
    assert.match(error.message, /greet/);
  });

  it("refuses input that is not JSON", () => {
    assert.throws(
      () => plugin.run("greet", "{", new Context()),
      (e) => e instanceof InvalidInput && e.typeName === "InvalidJson",
    );
  });

  it("checks the input against the schema, naming path and rule", async () => {
    const cases = [
      [null, 'input: missing required property "name"'],
      [{ name: "A", colour: 1 }, 'input: unknown property "colour"'],
      [{ name: 3 }, "input.name: expected string, got integer"],
      [{ name: "" }, "input.name: minLength is 1, got 0"],
      [{ name: "A", times: 9 }, "input.times: maximum is 3, got 9"],
      [{ name: "A", times: 1.5 }, "input.times: expected integer, got number"],
      [{ name: "A", times: true }, "input.times: expected integer, got boolean"],
      [{ name: "A", tags: ["a", 2] }, "input.tags[1]: expected string, got integer"],
      [{ name: "A", mode: "shout" }, 'input.mode: must be one of ["loud","quiet"], got "shout"'],
      [[], "input: expected object, got array"],
    ];
    for (const [value, expected] of cases) {
      const { error } = await invoke(plugin, "greet", value);
      assert.equal(error?.typeName, "InvalidInput", JSON.stringify(value));
      assert.equal(error.kind, "invalid_input");
      assert.ok(error.message.includes(expected), `${error.message} lacks ${expected}`);
      assert.ok(error.details.problems.length >= 1);
    }
  });

  it("keeps the typed errors a plugin means", async () => {
    const cases = [
      ["invalid_input", "invalid_input", "Rude", { word: "x" }],
      ["retryable", "retryable", "Busy", undefined],
      ["permanent", "permanent", "Broken", [1, 2]],
    ];
    for (const [input, kind, type, details] of cases) {
      const { error } = await invoke(plugin, "fail", { kind: input });
      assert.deepEqual([error.kind, error.typeName, error.details], [kind, type, details]);
      assert.equal(error.detailsJson(), details === undefined ? undefined : JSON.stringify(details));
    }
    const cancelled = new Cancelled();
    assert.deepEqual([cancelled.kind, cancelled.typeName, cancelled.message], ["retryable", "Cancelled", "cancellation requested"]);
    assert.ok(cancelled instanceof Retryable);
  });

  it("turns an uncaught exception into a permanent UncaughtException with the stack", async () => {
    const { error } = await invoke(plugin, "fail", { kind: "type" });
    assert.deepEqual([error.kind, error.typeName], ["permanent", UNCAUGHT_EXCEPTION]);
    assert.match(error.message, /^TypeError: Cannot read properties of undefined/);
    const details = error.details;
    assert.equal(details.exception, "TypeError");
    assert.equal(details.operation, "fail");
    assert.equal(details.where.function, "helper");
    assert.match(details.stack, /^TypeError: .*\n\s+at helper /);
    assert.ok(JSON.parse(error.detailsJson()).stack.includes("sdk.test.js"));
  });

  it("reports a thrown value that is not an Error, and a rejected promise", async () => {
    let { error } = await invoke(plugin, "fail", { kind: "string" });
    assert.deepEqual([error.kind, error.typeName, error.message], ["permanent", UNCAUGHT_EXCEPTION, "Thrown: just text"]);
    ({ error } = await invoke(plugin, "later", { fail: true }));
    assert.deepEqual([error.kind, error.typeName, error.message], ["permanent", UNCAUGHT_EXCEPTION, "RangeError: too late"]);
    assert.match(error.details.stack, /RangeError: too late/);
    assert.deepEqual((await invoke(plugin, "later", {})).output, { done: true });
  });

  it("refuses output that is not JSON", async () => {
    for (const kind of ["nan", "bigint"]) {
      const { error } = await invoke(plugin, "fail", { kind });
      assert.deepEqual([error.kind, error.typeName], ["permanent", "InvalidOutput"], kind);
    }
    assert.equal((await invoke(plugin, "fail", { kind: "undefined" })).output, null);
  });
});

describe("the host", () => {
  const plugin = makePlugin();

  it("records log lines with their fields as text", async () => {
    const host = new FakeHost();
    await invoke(plugin, "greet", { name: "Ada", tags: ["x"] }, { host });
    assert.deepEqual(host.logs, [{ level: "info", message: "greeting", fields: { name: "Ada", times: "1", tags: '["x"]' } }]);
    assert.deepEqual(host.messages("warn"), []);
    assert.throws(() => log.log("loud", "x"), /log level must be one of/);
  });

  it("records heartbeats, resumes from the last one and stops when cancelled", async () => {
    let host = new FakeHost();
    let result = await invoke(plugin, "work", {}, { host, attempt: 2, lastHeartbeat: { step: 3 } });
    assert.deepEqual(result.output, { done: [3, 4], attempt: 2, resumed_from: 3 });
    assert.deepEqual(host.heartbeats, [{ step: 4 }, { step: 5 }]);

    host = new FakeHost({ cancelAfter: 2 });
    result = await invoke(plugin, "work", {}, { host });
    assert.deepEqual([result.error.kind, result.error.typeName], ["retryable", "Cancelled"]);
    assert.equal(result.error.message, "cancelled after step 1");

    // A checkpoint that is not JSON means starting over.
    result = await invoke(plugin, "work", {}, { lastHeartbeat: "{not json" });
    assert.equal(result.output.resumed_from, 0);
  });

  it("does not record details that are not JSON, and says so", async () => {
    const host = new FakeHost();
    host.cancel();
    const beats = definePlugin({
      name: "x",
      version: "1",
      operations: { hb: { handler: (input, ctx) => ({ cancelled: ctx.heartbeat({ x: 1n }), is: ctx.isCancelled() }) } },
    });
    const result = await invoke(beats, "hb", {}, { host });
    assert.deepEqual(result.output, { cancelled: true, is: true });
    assert.deepEqual(host.heartbeats, []);
    assert.deepEqual(host.messages("warn"), ["heartbeat details not serializable"]);
  });

  it("grants config and secrets only as the fake host says", async () => {
    const host = new FakeHost({ config: { region: "eu" }, secrets: { token: "s3cret" } });
    const result = await invoke(plugin, "settings", {}, { host });
    assert.deepEqual(result.output, {
      region: "eu",
      missing: null,
      token_length: 6,
      no_secret: null,
      via_context: "eu",
    });
    const bare = await invoke(plugin, "settings", {});
    assert.equal(bare.output.region, "default-region");
  });
});
