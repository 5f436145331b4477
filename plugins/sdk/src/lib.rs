//! Guest SDK for MLX Plugin Worker plugins.
//!
//! A plugin is a WebAssembly component (`wasm32-wasip2`) implementing the `mlx:plugin@0.1.0`
//! contract (`wit/plugin.wit`). With this crate a plugin author writes one [`Operation`] per
//! operation (name, doc, typed input and output, declared errors) and lists them in
//! [`plugin!`]; the JSON Schemas, decoding, error mapping and WIT bindings are handled here.
//!
//! ```no_run
//! use mlx_plugin_sdk::{Context, ErrorDecl, JsonSchema, Operation, PluginError};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize, JsonSchema)]
//! #[serde(deny_unknown_fields)]
//! struct GreetInput {
//!     /// Who to greet.
//!     name: String,
//!     /// Greetings in a row.
//!     #[serde(default = "one")]
//!     #[schemars(range(min = 1, max = 10))]
//!     times: u32,
//! }
//!
//! fn one() -> u32 {
//!     1
//! }
//!
//! #[derive(Serialize, JsonSchema)]
//! struct GreetOutput {
//!     greeting: String,
//! }
//!
//! struct Greet;
//!
//! impl Operation for Greet {
//!     const NAME: &str = "greet";
//!     const DOC: &str = "Greets someone, in the language the manifest's `[config]` names.";
//!     const ERRORS: &[ErrorDecl] = &[ErrorDecl::invalid_input("EmptyName", "name is empty")];
//!     type Input = GreetInput;
//!     type Output = GreetOutput;
//!
//!     fn run(input: GreetInput, ctx: &Context) -> Result<GreetOutput, PluginError> {
//!         if input.name.is_empty() {
//!             return Err(PluginError::invalid_input("EmptyName", "name is empty"));
//!         }
//!         let hello = ctx.config("hello").unwrap_or_else(|| "Hello".into());
//!         mlx_plugin_sdk::log::info("greeting", &[("name", &input.name)]);
//!         let greeting = format!("{hello}, {}! ", input.name).repeat(input.times as usize);
//!         Ok(GreetOutput { greeting })
//!     }
//! }
//!
//! mlx_plugin_sdk::plugin!(Hello {
//!     name: "hello",
//!     version: env!("CARGO_PKG_VERSION"),
//!     description: "Greets people.",
//!     operations: [Greet],
//! });
//!
//! #[test]
//! fn greets_in_the_configured_language() {
//!     let ctx = Context::detached(1, None).with_config("hello", "Bonjour");
//!     let out = ctx.call::<Greet>(serde_json::json!({"name": "Ada"})).unwrap();
//!     assert_eq!(out["greeting"], "Bonjour, Ada! ");
//!     // Refused before the plugin runs, as the host refuses it: out of the schema's range.
//!     assert!(ctx.call::<Greet>(serde_json::json!({"name": "Ada", "times": 0})).is_err());
//! }
//! ```
//!
//! The input schema is derived from the input type as serde reads it: `#[serde(default)]`
//! values, doc comments and `#[schemars(range(..))]`/`#[schemars(extend(..))]` bounds show in
//! it, and the host checks every input against it before it instantiates the plugin. A `null`
//! input reads as `{}` (all defaults). `describe()` lists the declared errors after `DOC`.
//!
//! Every invocation runs in a fresh instance, so nothing survives between calls except what
//! goes through [`Context::heartbeat`] (the next attempt reads it with
//! [`Context::last_heartbeat`]). Files are reachable only under directories the operator
//! grants in the plugin's manifest (typically `/data` read-only and `/artifacts` read-write).
//!
//! Natively, [`Context::detached`] stands in for the host: it records heartbeats, cancels when
//! told to, and grants the config values and secrets given to it; [`Context::call`] runs an
//! operation as the worker would and fails the test on an undeclared error. [`log`] prints to
//! stderr off-wasm. The untyped [`Plugin`] trait with [`export_plugin!`] remains for plugins
//! that write their schemas by hand.

pub mod config;
mod context;
mod error;
mod guest;
#[cfg(feature = "http")]
pub mod http;
mod info;
pub mod labels;
pub mod log;
mod operation;
pub mod schema;
mod testing;

pub use context::Context;
pub use error::{ErrorKind, PluginError};
pub use info::{OperationInfo, PluginInfo};
pub use operation::{ErrorDecl, Never, Operation, declares};
// Re-exported so plugins derive schemas with the schemars the SDK reads them with.
pub use schemars::{self, JsonSchema};
// Re-exported so plugins build `Value`s with the same serde_json the SDK was compiled with.
pub use serde_json;

/// What a plugin implements. Both functions are associated (no `self`): the host creates a
/// fresh instance per invocation, so there is no state to carry.
pub trait Plugin {
    /// Describes the plugin and its operations. The host calls it once when it loads the
    /// component and rejects invocations of operations not listed here, and inputs their input
    /// schema refuses.
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

/// Defines a plugin made of typed [`Operation`]s and exports it as this component's
/// `mlx:plugin/plugin` interface. Use it exactly once, in the plugin crate (a `cdylib`):
///
/// ```ignore
/// mlx_plugin_sdk::plugin!(CsvPlugin {
///     name: "csv",
///     version: env!("CARGO_PKG_VERSION"),
///     description: "Extracts tabular datasets from CSV files.",
///     operations: [Extract],
/// });
/// ```
///
/// It declares `pub struct CsvPlugin`, implementing [`Plugin`] (so tests can call
/// `CsvPlugin::info()` and `CsvPlugin::invoke`), with the operations in the order listed.
/// Two operations with the same name, or an operation declaring an error type twice, fail
/// the build:
///
/// ```compile_fail
/// # use mlx_plugin_sdk::{Context, Operation, PluginError};
/// struct A;
/// impl Operation for A {
///     const NAME: &str = "same";
///     const DOC: &str = "";
///     type Input = ();
///     type Output = ();
///     fn run(_: (), _: &Context) -> Result<(), PluginError> { Ok(()) }
/// }
/// struct B;
/// impl Operation for B {
///     const NAME: &str = "same";
///     const DOC: &str = "";
///     type Input = ();
///     type Output = ();
///     fn run(_: (), _: &Context) -> Result<(), PluginError> { Ok(()) }
/// }
/// mlx_plugin_sdk::plugin!(Twice { name: "t", version: "0", description: "", operations: [A, B] });
/// ```
#[macro_export]
macro_rules! plugin {
    (
        $(#[$meta:meta])*
        $plugin:ident {
            name: $name:expr,
            version: $version:expr,
            description: $description:expr,
            operations: [$($op:ty),+ $(,)?] $(,)?
        }
    ) => {
        $(#[$meta])*
        pub struct $plugin;

        const _: () = $crate::__private::check(&[
            $((<$op as $crate::Operation>::NAME, <$op as $crate::Operation>::ERRORS)),+
        ]);

        impl $crate::Plugin for $plugin {
            fn info() -> $crate::PluginInfo {
                $crate::PluginInfo {
                    name: ::std::string::String::from($name),
                    version: ::std::string::String::from($version),
                    description: ::std::string::String::from($description),
                    operations: ::std::vec![$($crate::__private::operation_info::<$op>()),+],
                }
            }

            fn invoke(
                operation: &str,
                input: $crate::serde_json::Value,
                ctx: &$crate::Context,
            ) -> ::std::result::Result<$crate::serde_json::Value, $crate::PluginError> {
                $(
                    if operation == <$op as $crate::Operation>::NAME {
                        return $crate::__private::invoke_operation::<$op>(input, ctx);
                    }
                )+
                ::std::result::Result::Err($crate::PluginError::unknown_operation(operation))
            }
        }

        $crate::export_plugin!($plugin);
    };
}

/// Used by [`export_plugin!`] and [`plugin!`]; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::guest::bindings;
    pub use crate::guest::bindings::exports::mlx::plugin::plugin::{
        Guest, InvocationContext as WitContext, PluginError as WitError,
        PluginInfo as WitPluginInfo,
    };
    pub use crate::guest::{describe, invoke};
    pub use crate::operation::{check, info as operation_info, invoke as invoke_operation};
}
