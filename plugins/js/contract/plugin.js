// `contract-js`: the operations of plugins/CONTRACT.md, written with the JavaScript SDK the way a
// plugin author would. tests/tests/e2e/contract.rs runs the same table of cases against this
// plugin and its Rust and Python twins, so every SDK keeps the same behaviour.

import { Cancelled, InvalidInput, Permanent, Retryable, definePlugin, files, log, schema } from "../mlx_plugin/index.js";

const ERRORS = { invalid_input: InvalidInput, permanent: Permanent, retryable: Retryable };

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export const plugin = definePlugin({
  name: "contract-js",
  version: "0.1.0",
  description: "The contract operations (plugins/CONTRACT.md) in JavaScript: one behaviour in every language.",
  operations: {
    echo: {
      description: "Returns its input and the attempt number; does nothing else (the trivial call the benchmarks time).",
      input: schema.object({ value: schema.any(), times: schema.integer({ minimum: 1, maximum: 10, default: 1 }) }, ["value"]),
      output: schema.object(
        { value: schema.any(), times: schema.integer(), attempt: schema.integer({ minimum: 1 }) },
        ["value", "times", "attempt"],
      ),
      handler: (input, ctx) => ({ value: input.value, times: input.times, attempt: ctx.attempt }),
    },

    fail: {
      description: "Fails with the SDK's typed error of `kind`, with the given `type`, `message` and `details`.",
      input: schema.object(
        {
          kind: schema.string({ enum: Object.keys(ERRORS) }),
          type: schema.string({ minLength: 1 }),
          message: schema.string(),
          details: { type: "object" },
        },
        ["kind", "type", "message"],
      ),
      output: {},
      handler(input) {
        throw new ERRORS[input.kind](input.type, input.message, input.details);
      },
    },

    throw: {
      description:
        "Throws new TypeError(message) without handling it: the SDK reports a permanent UncaughtException with the stack in its details.",
      input: schema.object({ message: schema.string() }, ["message"]),
      output: {},
      handler(input) {
        throw new TypeError(input.message);
      },
    },

    checkpoint: {
      description:
        'Heartbeats {"done": i} for each step after the last attempt\'s checkpoint; on the first attempt, fails (retryably) right after step `fail_at`, so a retry resumes there.',
      input: schema.object(
        {
          steps: schema.integer({ minimum: 1, maximum: 1000 }),
          fail_at: schema.integer("On the first attempt, fail after this step's heartbeat."),
        },
        ["steps"],
      ),
      output: schema.object(
        { resumed_from: schema.integer({ minimum: 0 }), done: schema.integer(), attempt: schema.integer({ minimum: 1 }) },
        ["resumed_from", "done", "attempt"],
      ),
      errors: { retryable: ["Interrupted"] },
      handler(input, ctx) {
        const last = ctx.lastHeartbeat();
        const resumedFrom = Number.isInteger(last?.done) ? last.done : 0;
        for (let i = resumedFrom + 1; i <= input.steps; i++) {
          ctx.heartbeat({ done: i });
          if (input.fail_at === i && ctx.attempt === 1) {
            throw new Retryable("Interrupted", `interrupted after step ${i}`, { done: i });
          }
        }
        return { resumed_from: resumedFrom, done: input.steps, attempt: ctx.attempt };
      },
    },

    wait_for_cancel: {
      description:
        'Heartbeats {"waiting": i} about every 10 ms until cancellation is requested, then fails with Cancelled; NotCancelled after `max_heartbeats`.',
      input: schema.object({ max_heartbeats: schema.integer({ minimum: 1, default: 100000 }) }),
      output: {},
      errors: { retryable: ["Cancelled"], permanent: ["NotCancelled"] },
      // Async so that it sleeps: setTimeout blocks the component on wasi:clocks between beats.
      async handler(input, ctx) {
        for (let i = 1; i <= input.max_heartbeats; i++) {
          if (ctx.heartbeat({ waiting: i })) {
            throw new Cancelled(`cancelled after ${i} heartbeats`, { heartbeats: i });
          }
          await sleep(10);
        }
        throw new Permanent("NotCancelled", `no cancellation after ${input.max_heartbeats} heartbeats`, {
          heartbeats: input.max_heartbeats,
        });
      },
    },

    config: {
      description: "The manifest's [config] value for `key` (null if not granted).",
      input: schema.object({ key: schema.string() }, ["key"]),
      output: schema.object({ value: { type: ["string", "null"] } }, ["value"]),
      handler: (input, ctx) => ({ value: ctx.config(input.key) }),
    },

    secret: {
      description: "Whether the secret `name` is granted, and its length; never its value.",
      input: schema.object({ name: schema.string() }, ["name"]),
      output: schema.object({ present: schema.boolean(), length: { type: ["integer", "null"] } }, ["present", "length"]),
      handler(input, ctx) {
        const value = ctx.secret(input.name);
        return { present: value !== null, length: value === null ? null : value.length };
      },
    },

    log: {
      description: "Logs `message` at info with `fields`.",
      input: schema.object(
        { message: schema.string(), fields: { type: "object", additionalProperties: schema.string(), default: {} } },
        ["message"],
      ),
      output: schema.object({ logged: schema.boolean() }, ["logged"]),
      handler(input) {
        log.info(input.message, input.fields);
        return { logged: true };
      },
    },

    connect: {
      description:
        "Fetches http://host:port/. Without a grant the worker refuses it (CapabilityDenied); the failure escapes as JavaScript's own exception, as it would in a plugin that did not expect it.",
      input: schema.object(
        { host: schema.string({ default: "127.0.0.1" }), port: schema.integer({ minimum: 1, maximum: 65535 }) },
        ["port"],
      ),
      output: schema.object({ connected: schema.boolean() }, ["connected"]),
      async handler(input) {
        await fetch(`http://${input.host}:${input.port}/`);
        return { connected: true };
      },
    },

    read_file: {
      description: "Reads the whole file at `path` and returns its size; ReadFailed names the OS error.",
      input: schema.object({ path: schema.string() }, ["path"]),
      output: schema.object({ bytes: schema.integer({ minimum: 0 }) }, ["bytes"]),
      errors: { permanent: ["ReadFailed"] },
      handler(input) {
        try {
          return { bytes: files.readBytes(input.path).length };
        } catch (e) {
          // A FileError's message is already "cannot read PATH: REASON".
          throw new Permanent("ReadFailed", e.message, { path: input.path, code: e.code ?? null, error: e.reason ?? null });
        }
      },
    },
  },
});
