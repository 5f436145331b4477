//! A native Rust `plugin_activity` that does what the testkit plugin's `echo` operation does,
//! with no sandbox. It exists only for the end-to-end benchmark (`run --native-echo`): the
//! same binary, connection, decoding and result encoding as the plugin path, so the difference
//! between the two is the price of the sandbox.

use serde_json::json;
use temporalio_common::data_converters::RawValue;
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

use super::{
    activity::to_activity_error,
    payload::{decode_heartbeat_details, decode_request, result_payload},
};
use mlx_runtime::failure::InvocationError;

pub struct NativeEchoActivity;

#[activities]
impl NativeEchoActivity {
    /// Decodes the request as the plugin path does, so both pay for the same parsing.
    #[activity(definition = super::plugin_activity::PluginActivity)]
    pub async fn plugin_activity(
        self: std::sync::Arc<Self>,
        ctx: ActivityContext,
        input: RawValue,
    ) -> Result<RawValue, ActivityError> {
        let request = decode_request(&input, super::worker::DEFAULT_MAX_INPUT_BYTES)
            .map_err(|e| to_activity_error(&e, ctx.info().attempt))?;
        if request.operation != "echo" {
            return Err(to_activity_error(
                &InvocationError::UnknownOperation {
                    plugin: request.plugin,
                    operation: request.operation,
                    available: "echo".into(),
                },
                ctx.info().attempt,
            ));
        }
        let info = ctx.info();
        let output = json!({
            "input": request.input,
            "workflow_id": info.workflow_id,
            "activity_id": info.activity_id,
            "attempt": info.attempt,
            "last_heartbeat_details": decode_heartbeat_details(ctx.heartbeat_details().raw())
                .map(|d| d.to_value()),
        });
        // The metadata says no plugin bytes produced this result.
        Ok(result_payload(
            &output,
            "native-echo",
            env!("CARGO_PKG_VERSION"),
            "native",
            info.attempt,
        ))
    }
}
