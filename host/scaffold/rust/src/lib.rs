//! `{{name}}`: a plugin for the MLX Plugin Worker. `make` builds {{name}}.wasm, a WebAssembly
//! component exporting the operations listed in `plugin!` below.

use mlx_plugin_sdk::{Context, ErrorDecl, JsonSchema, Operation, PluginError, log};
use serde::{Deserialize, Serialize};

// The input and output types are the operation's JSON Schemas (doc comments become
// descriptions): the worker refuses inputs that do not match before your code runs.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GreetInput {
    /// Who to greet.
    pub name: String,
}

#[derive(Serialize, JsonSchema)]
pub struct GreetOutput {
    pub greeting: String,
}

/// One type per operation: its name, doc, input and output types and the errors it may return.
pub struct Greet;

impl Operation for Greet {
    const NAME: &str = "greet";
    const DOC: &str = "Returns a greeting for `name`.";
    const ERRORS: &[ErrorDecl] = &[ErrorDecl::invalid_input("EmptyName", "name is blank")];
    type Input = GreetInput;
    type Output = GreetOutput;

    fn run(input: GreetInput, ctx: &Context) -> Result<GreetOutput, PluginError> {
        let name = input.name.trim();
        if name.is_empty() {
            // Typed errors: InvalidInput and Permanent are never retried, Retryable is.
            return Err(PluginError::invalid_input(
                "EmptyName",
                "name must not be blank",
            ));
        }
        // Into the worker's structured log, tagged with the workflow and activity.
        log::info("greeting", &[("name", &name), ("attempt", &ctx.attempt())]);
        Ok(GreetOutput {
            greeting: format!("Hello, {name}!"),
        })
    }
}

mlx_plugin_sdk::plugin!({{type}} {
    name: "{{name}}",
    version: env!("CARGO_PKG_VERSION"),
    description: "Greets people. Replace with what your plugin does.",
    operations: [Greet],
});

// Natively, with a fake worker: `Context::call` checks the input against the schema and runs
// the operation as the worker would.
#[cfg(test)]
mod tests {
    use super::*;
    use mlx_plugin_sdk::serde_json::json;

    #[test]
    fn greets_by_name() {
        let ctx = Context::detached(1, None);
        let output = ctx.call::<Greet>(json!({"name": " Ada "})).unwrap();
        assert_eq!(output, json!({"greeting": "Hello, Ada!"}));
    }

    #[test]
    fn a_blank_name_is_invalid_input() {
        let error = Context::detached(1, None)
            .call::<Greet>(json!({"name": "  "}))
            .unwrap_err();
        assert_eq!(error.type_name, "EmptyName");
    }
}
