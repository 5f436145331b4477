//! A native Rust `plugin_activity` that does what the testkit plugin's `echo` operation does,
//! with no sandbox. It exists only for the end-to-end benchmark (`run --native-echo`): the
//! same binary, connection, decoding and result encoding as the plugin path, so the difference
//! between the two is the price of the sandbox.

use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::json;
use temporalio_common::{ActivityError, data_converters::RawValue};

use super::{
    activity::to_activity_error,
    dispatch::{Activity, Handler},
    payload::{decode_heartbeat_details, decode_request, result_payload},
};
use mlx_runtime::failure::InvocationError;

pub struct NativeEchoActivity;

impl Handler for NativeEchoActivity {
    fn run(
        self: Arc<Self>,
        activity: Activity,
        input: RawValue,
    ) -> BoxFuture<'static, Result<RawValue, ActivityError>> {
        Box::pin(async move { echo(&activity, &input) })
    }
}

/// Decodes the request as the plugin path does, so both pay for the same parsing.
fn echo(activity: &Activity, input: &RawValue) -> Result<RawValue, ActivityError> {
    let info = activity.info();
    let request = decode_request(input, super::worker::DEFAULT_MAX_INPUT_BYTES)
        .map_err(|e| to_activity_error(&e, info.attempt))?;
    if request.operation != "echo" {
        return Err(to_activity_error(
            &InvocationError::UnknownOperation {
                plugin: request.plugin,
                operation: request.operation,
                available: "echo".into(),
            },
            info.attempt,
        ));
    }
    let output = json!({
        "input": request.input,
        "workflow_id": info.workflow_id,
        "activity_id": info.activity_id,
        "attempt": info.attempt,
        "last_heartbeat_details": decode_heartbeat_details(activity.heartbeat_details())
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
