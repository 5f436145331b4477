//! The WIT bindings and the glue between them and [`Plugin`].

use crate::{Context, ErrorKind, Plugin, PluginError, PluginInfo};

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "plugin-world",
        path: "../../wit",
        // Plugin crates invoke the export macro through `export_plugin!`, so it must be public
        // and must find the types here rather than next to the call site.
        pub_export_macro: true,
        default_bindings_module: "mlx_plugin_sdk::__private::bindings",
    });
}

use bindings::mlx::plugin::types as wit;

/// `describe` export: the plugin's self-description with schemas as JSON text.
pub fn describe<P: Plugin>() -> wit::PluginInfo {
    let PluginInfo {
        name,
        version,
        description,
        operations,
    } = P::info();
    wit::PluginInfo {
        name,
        version,
        description,
        operations: operations
            .into_iter()
            .map(|op| wit::OperationInfo {
                name: op.name,
                description: op.description,
                input_schema: op.input_schema.to_string(),
                output_schema: op.output_schema.to_string(),
            })
            .collect(),
    }
}

/// `invoke` export: decodes the JSON input, checks the operation, runs the plugin, encodes.
pub fn invoke<P: Plugin>(
    operation: String,
    input: String,
    context: wit::InvocationContext,
) -> Result<String, wit::PluginError> {
    run::<P>(&operation, &input, Context::from_host(context))
        .map(|output| output.to_string())
        .map_err(into_wit)
}

fn run<P: Plugin>(
    operation: &str,
    input: &str,
    ctx: Context,
) -> Result<serde_json::Value, PluginError> {
    // No check of `operation` against `P::info()` here: the host refuses unknown operations
    // before it instantiates, and building the info (every schema) in each fresh instance
    // cost more than the rest of a small invocation. A plugin's own `_` arm is the backstop.
    let input: serde_json::Value = serde_json::from_str(input).map_err(|e| {
        PluginError::invalid_input("InvalidJson", format!("input is not valid JSON: {e}"))
    })?;
    P::invoke(operation, input, &ctx)
}

fn into_wit(error: PluginError) -> wit::PluginError {
    let info = wit::ErrorInfo {
        type_name: error.type_name,
        message: error.message,
        details: error.details.map(|d| d.to_string()),
    };
    match error.kind {
        ErrorKind::InvalidInput => wit::PluginError::InvalidInput(info),
        ErrorKind::Retryable => wit::PluginError::Retryable(info),
        ErrorKind::Permanent => wit::PluginError::Permanent(info),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{OperationInfo, parse_input};
    use serde_json::{Value, json};

    struct Echo;

    impl Plugin for Echo {
        fn info() -> PluginInfo {
            PluginInfo {
                name: "echo".into(),
                version: "0.0.0".into(),
                description: String::new(),
                operations: vec![OperationInfo::new("echo", "", json!({}), json!({}))],
            }
        }

        fn invoke(operation: &str, input: Value, ctx: &Context) -> Result<Value, PluginError> {
            if operation != "echo" {
                return Err(PluginError::unknown_operation(operation));
            }
            #[derive(serde::Deserialize)]
            struct In {
                n: u32,
            }
            let In { n } = parse_input(input)?;
            ctx.heartbeat(&json!({ "n": n }));
            Ok(json!({ "n": n, "attempt": ctx.attempt() }))
        }
    }

    #[test]
    fn describe_encodes_schemas_as_json_text() {
        let info = describe::<Echo>();
        assert_eq!(info.operations[0].input_schema, "{}");
    }

    #[test]
    fn run_decodes_checks_and_dispatches() {
        let ok = run::<Echo>("echo", r#"{"n": 3}"#, Context::detached(2, None)).unwrap();
        assert_eq!(ok, json!({"n": 3, "attempt": 2}));
        let err = run::<Echo>("nope", "{}", Context::detached(1, None)).unwrap_err();
        assert_eq!(
            (err.kind, err.type_name.as_str()),
            (ErrorKind::InvalidInput, "UnknownOperation")
        );
        let err = run::<Echo>("echo", "{", Context::detached(1, None)).unwrap_err();
        assert_eq!(err.type_name, "InvalidJson");
        let err = run::<Echo>("echo", "null", Context::detached(1, None)).unwrap_err();
        assert!(err.message.contains("missing field `n`"), "{}", err.message);
    }

    #[test]
    fn errors_map_to_wit_variants_with_json_details() {
        let e = PluginError::permanent("Boom", "bad").with_details(json!({"x": 1}));
        match into_wit(e) {
            wit::PluginError::Permanent(info) => {
                assert_eq!(
                    (info.type_name.as_str(), info.details.as_deref()),
                    ("Boom", Some(r#"{"x":1}"#))
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn context_decodes_checkpoints_and_records_heartbeats() {
        #[derive(serde::Deserialize)]
        struct Step {
            step: u32,
        }
        let ctx = Context::detached(2, Some(r#"{"step": 4}"#)).cancel_after(2);
        assert_eq!(ctx.last_heartbeat::<Step>().map(|s| s.step), Some(4));
        assert!(
            ctx.last_heartbeat::<Vec<u8>>().is_none(),
            "undecodable is None"
        );
        assert!(!ctx.heartbeat(&json!({"a": 1})));
        assert!(
            ctx.heartbeat(&json!({"a": 2})),
            "cancelled at the second heartbeat"
        );
        assert!(ctx.is_cancelled());
        assert_eq!(
            ctx.recorded_heartbeats(),
            [json!({"a": 1}), json!({"a": 2})]
        );
        assert!(
            Context::detached(1, None)
                .last_heartbeat::<Value>()
                .is_none()
        );
    }
}
