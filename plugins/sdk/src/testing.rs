//! Native tests of typed operations: [`Context::call`] runs one as a real invocation would.

use serde_json::Value;

use crate::{Context, Operation, PluginError, operation, schema};

impl Context {
    /// Runs `O` on `input` as the worker would: the host first checks `input` against the
    /// input schema (a `null` input as `{}`) and refuses it with `InvalidInput`; then the SDK
    /// decodes it, runs the operation and encodes its output.
    ///
    /// The schema checks need the host's validator, which only native builds link: built for
    /// wasm32 (as `cargo clippy --all-targets` does) the input and output go unchecked.
    ///
    /// Panics, failing the test, when the operation returns an error it does not declare in
    /// [`Operation::ERRORS`] or an output its output schema does not allow.
    pub fn call<O: Operation>(&self, input: Value) -> Result<Value, PluginError> {
        let checked = if input.is_null() {
            Value::Object(Default::default())
        } else {
            input.clone()
        };
        if let Some(violations) = violations(&schema::input::<O::Input>(), &checked, O::NAME) {
            return Err(PluginError::invalid_input(
                "InvalidInput",
                format!("input refused by the schema of {}: {violations}", O::NAME),
            ));
        }
        match operation::invoke::<O>(input, self) {
            Ok(output) => {
                if let Some(violations) =
                    violations(&schema::output::<O::Output>(), &output, O::NAME)
                {
                    panic!(
                        "{} returned {output} against its output schema: {violations}",
                        O::NAME
                    );
                }
                Ok(output)
            }
            Err(error) => {
                assert!(
                    operation::declares::<O>(&error),
                    "{} returned an error it does not declare in ERRORS: {error}",
                    O::NAME
                );
                Err(error)
            }
        }
    }
}

/// What the host's validator (offline: no `$ref` outside the schema) says of `value`.
#[cfg(not(target_arch = "wasm32"))]
fn violations(schema: &Value, value: &Value, operation: &str) -> Option<String> {
    let validator = jsonschema::options()
        .offline()
        .build(schema)
        .unwrap_or_else(|e| panic!("the schema of {operation} does not compile: {e}\n{schema:#}"));
    let found: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{}: {e}", e.instance_path().as_str()))
        .collect();
    (!found.is_empty()).then(|| found.join("; "))
}

#[cfg(target_arch = "wasm32")]
fn violations(_: &Value, _: &Value, _: &str) -> Option<String> {
    None
}
