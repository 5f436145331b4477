//! The one place WIT bindings are generated. Everything outside this module works with the
//! domain types in [`crate::contract`]; conversions happen here, at the edge.

use crate::contract::{GuestError, GuestErrorKind, InvocationContext, OperationInfo, PluginInfo};

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "mlx:plugin/plugin-world",
    // Host imports never block (heartbeats are handed to the Temporal glue through a channel)
    // and may trap: a guest that breaks the contract, e.g. with non-JSON heartbeat details,
    // is stopped rather than trusted.
    imports: { default: trappable },
    exports: { default: async },
});

pub(crate) use exports::mlx::plugin::plugin::{
    InvocationContext as WitContext, PluginError as WitPluginError, PluginInfo as WitPluginInfo,
};
pub(crate) use mlx::plugin::log::Level as WitLevel;

impl From<WitPluginInfo> for PluginInfo {
    fn from(info: WitPluginInfo) -> Self {
        PluginInfo {
            name: info.name,
            version: info.version,
            description: info.description,
            operations: info
                .operations
                .into_iter()
                .map(|op| OperationInfo {
                    name: op.name,
                    description: op.description,
                    input_schema: op.input_schema,
                    output_schema: op.output_schema,
                })
                .collect(),
        }
    }
}

impl From<&InvocationContext> for WitContext {
    fn from(ctx: &InvocationContext) -> Self {
        WitContext {
            workflow_id: ctx.workflow_id.clone(),
            activity_id: ctx.activity_id.clone(),
            attempt: ctx.attempt,
            last_heartbeat_details: ctx
                .last_heartbeat_details
                .as_ref()
                .map(|v| v.as_str().to_string()),
        }
    }
}

impl From<WitPluginError> for GuestError {
    fn from(err: WitPluginError) -> Self {
        let (kind, info) = match err {
            WitPluginError::InvalidInput(info) => (GuestErrorKind::InvalidInput, info),
            WitPluginError::Retryable(info) => (GuestErrorKind::Retryable, info),
            WitPluginError::Permanent(info) => (GuestErrorKind::Permanent, info),
        };
        GuestError {
            kind,
            type_name: info.type_name,
            message: info.message,
            // Details are JSON text by contract; keep what is not JSON as a string rather than
            // dropping what the plugin author meant to tell the operator.
            details: info
                .details
                .map(|text| serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))),
        }
    }
}

impl From<WitLevel> for tracing::Level {
    fn from(level: WitLevel) -> Self {
        match level {
            WitLevel::Trace => tracing::Level::TRACE,
            WitLevel::Debug => tracing::Level::DEBUG,
            WitLevel::Info => tracing::Level::INFO,
            WitLevel::Warn => tracing::Level::WARN,
            WitLevel::Error => tracing::Level::ERROR,
        }
    }
}
