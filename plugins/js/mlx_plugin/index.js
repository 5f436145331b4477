// JavaScript SDK for MLX Plugin Worker plugins.
//
// A plugin is a WebAssembly component built with componentize-js (StarlingMonkey) against the
// `mlx:plugin@0.1.0` contract (wit/plugin.wit). With this package a plugin author declares its
// operations with `definePlugin` and exports the result as `plugin`; JSON, errors and the WIT
// bindings are handled here.
//
//   import { definePlugin, InvalidInput, log, schema } from "../mlx_plugin/index.js";
//
//   export const plugin = definePlugin({
//     name: "hello", version: "0.1.0", description: "Greets people.",
//     operations: {
//       greet: {
//         description: "Returns a greeting.",
//         input: schema.object({ name: schema.string() }, ["name"]),
//         output: schema.object({ greeting: schema.string() }),
//         errors: { invalid_input: ["EmptyName"] },
//         handler(input, ctx) {
//           if (!input.name) throw new InvalidInput("EmptyName", "name must not be empty");
//           log.info("greeting", { name: input.name });
//           return { greeting: `Hello, ${input.name}!` };
//         },
//       },
//     },
//   });
//
// Every invocation runs in a fresh instance: nothing survives between calls except heartbeat
// details (`ctx.heartbeat`, read back by the next attempt as `ctx.lastHeartbeat()`). Files are
// reachable (files.js) only under directories the operator grants in the plugin's manifest
// (typically /data read-only) and the workflow's /artifacts. Test operations natively with
// testing.js.

export * as config from "./config.js";
export * as files from "./files.js";
export * as log from "./log.js";
export * as schema from "./schema.js";
export { Context } from "./context.js";
export {
  Cancelled,
  InvalidInput,
  Permanent,
  PluginError,
  Retryable,
  UNCAUGHT_EXCEPTION,
  INVALID_INPUT,
  RETRYABLE,
  PERMANENT,
} from "./errors.js";
export { FileError } from "./files.js";
export { Plugin, definePlugin } from "./plugin.js";
