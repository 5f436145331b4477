// `{{name}}`: a plugin for the MLX Plugin Worker. `make` builds {{name}}.wasm from this module
// (through component.js); the tests import it natively.

import { InvalidInput, definePlugin, log, schema } from "./mlx_plugin/index.js";

export const plugin = definePlugin({
  name: "{{name}}",
  version: "0.1.0",
  description: "Greets people. Replace with what your plugin does.",
  // One place per operation: its name (the key), description, input and output schemas (the
  // worker refuses inputs that do not match before your code runs), errors and handler.
  operations: {
    greet: {
      description: "Returns a greeting for `name`.",
      input: schema.object({ name: schema.string("Who to greet.") }, ["name"]),
      output: schema.object({ greeting: schema.string() }, ["greeting"]),
      errors: { invalid_input: ["EmptyName"] },
      handler(input, ctx) {
        const name = input.name.trim();
        // Typed errors: InvalidInput and Permanent are never retried, Retryable is.
        if (!name) throw new InvalidInput("EmptyName", "name must not be blank");
        // Into the worker's structured log, tagged with the workflow and activity.
        log.info("greeting", { name, attempt: ctx.attempt });
        return { greeting: `Hello, ${name}!` };
      },
    },
  },
});
