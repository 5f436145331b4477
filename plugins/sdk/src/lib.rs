//! Guest SDK for MLX Plugin Worker plugins.
//!
//! A plugin is a WebAssembly component (`wasm32-wasip2`) implementing the `mlx:plugin@0.1.0`
//! contract (`wit/plugin.wit`). With this crate a plugin author implements [`Plugin`] and calls
//! [`export_plugin!`]; the WIT bindings, JSON encoding and error mapping are handled here.
//!
//! ```no_run
//! use mlx_plugin_sdk::{Context, Operation, Plugin, PluginError, PluginInfo, parse_input};
//! use serde_json::{Value, json};
//!
//! struct Hello;
//!
//! impl Plugin for Hello {
//!     fn info() -> PluginInfo {
//!         PluginInfo {
//!             name: "hello".into(),
//!             version: env!("CARGO_PKG_VERSION").into(),
//!             description: "Greets people.".into(),
//!             operations: vec![Operation::new(
//!                 "greet",
//!                 "Returns a greeting.",
//!                 json!({"type": "object", "properties": {"name": {"type": "string"}},
//!                        "required": ["name"], "additionalProperties": false}),
//!                 json!({"type": "object", "properties": {"greeting": {"type": "string"}}}),
//!             )],
//!         }
//!     }
//!
//!     fn invoke(operation: &str, input: Value, _ctx: &Context) -> Result<Value, PluginError> {
//!         #[derive(serde::Deserialize)]
//!         struct Greet { name: String }
//!         match operation {
//!             "greet" => {
//!                 let Greet { name } = parse_input(input)?;
//!                 mlx_plugin_sdk::log::info("greeting", &[("name", &name)]);
//!                 Ok(json!({"greeting": format!("Hello, {name}!")}))
//!             }
//!             other => Err(PluginError::unknown_operation(other)),
//!         }
//!     }
//! }
//!
//! mlx_plugin_sdk::export_plugin!(Hello);
//! ```
//!
//! Every invocation runs in a fresh instance, so nothing survives between calls except what
//! goes through [`Context::heartbeat`] (the next attempt reads it with
//! [`Context::last_heartbeat`]). Files are reachable only under directories the operator
//! grants in the plugin's manifest (typically `/data` read-only and `/artifacts` read-write).
//!
//! The plugin logic can be unit-tested natively with [`Context::detached`], which records
//! heartbeats instead of calling the host; [`log`] prints to stderr off-wasm.

pub mod config;
mod context;
mod error;
mod guest;
#[cfg(feature = "http")]
pub mod http;
mod info;
pub mod labels;
pub mod log;
pub mod schema;

pub use context::Context;
pub use error::{ErrorKind, PluginError};
pub use info::{Operation, PluginInfo};
// Re-exported so plugins build `Value`s with the same serde_json the SDK was compiled with.
pub use serde_json;

/// What a plugin implements. Both functions are associated (no `self`): the host creates a
/// fresh instance per invocation, so there is no state to carry.
pub trait Plugin {
    /// Describes the plugin and its operations. The host calls it once when it loads the
    /// component and rejects invocations of operations not listed here.
    fn info() -> PluginInfo;

    /// Runs `operation` (one of the names from [`Plugin::info`]) on `input`, the request's
    /// JSON. Returns the output JSON, or an error the host turns into a typed Temporal failure.
    /// Panics are not errors: they trap, and the host reports them as such.
    fn invoke(
        operation: &str,
        input: serde_json::Value,
        ctx: &Context,
    ) -> Result<serde_json::Value, PluginError>;
}

/// Decodes `input` into `T`. On failure returns an [`ErrorKind::InvalidInput`] error of type
/// `"InvalidInput"` whose message is serde's, which names the offending field (use
/// `#[serde(deny_unknown_fields)]` on `T` to catch misspelled options too).
///
/// A `null` input is read as `{}`, so operations whose options all have defaults can be
/// invoked without an input, and a missing required option is reported by name.
pub fn parse_input<T: serde::de::DeserializeOwned>(
    input: serde_json::Value,
) -> Result<T, PluginError> {
    let input = match input {
        serde_json::Value::Null => serde_json::Value::Object(Default::default()),
        other => other,
    };
    serde_json::from_value(input)
        .map_err(|e| PluginError::invalid_input("InvalidInput", format!("invalid input: {e}")))
}

/// Exports a [`Plugin`] implementation as this component's `mlx:plugin/plugin` interface.
/// Use it exactly once, in the plugin crate (a `cdylib`), with the implementing type's path.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        const _: () = {
            // The generated export macro wants a plain identifier, so adapt through a local type.
            struct MlxPluginExport;

            impl $crate::__private::Guest for MlxPluginExport {
                fn describe() -> $crate::__private::WitPluginInfo {
                    $crate::__private::describe::<$plugin>()
                }

                fn invoke(
                    operation: ::std::string::String,
                    input: ::std::string::String,
                    context: $crate::__private::WitContext,
                ) -> ::std::result::Result<::std::string::String, $crate::__private::WitError>
                {
                    $crate::__private::invoke::<$plugin>(operation, input, context)
                }
            }

            $crate::__private::bindings::export!(
                MlxPluginExport with_types_in $crate::__private::bindings
            );
        };
    };
}

/// Used by [`export_plugin!`]; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::guest::bindings;
    pub use crate::guest::bindings::exports::mlx::plugin::plugin::{
        Guest, InvocationContext as WitContext, PluginError as WitError,
        PluginInfo as WitPluginInfo,
    };
    pub use crate::guest::{describe, invoke};
}
