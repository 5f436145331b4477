//! Test-only plugin: each operation provokes one behaviour the host must handle (deadlines,
//! cancellation, retries with checkpoints, typed errors, traps, memory limits, logs).
//! Never grant it anything in production.

mod hostile;
mod ops;
mod schemas;

use mlx_plugin_sdk::{Context, Plugin, PluginError, PluginInfo, parse_input};
use std::hint::black_box;

use serde_json::Value;

pub struct Testkit;

impl Plugin for Testkit {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "testkit".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Test-only operations that exercise the host's limits, \
                          cancellation, retries and error handling."
                .into(),
            operations: schemas::operations(),
        }
    }

    fn invoke(operation: &str, input: Value, ctx: &Context) -> Result<Value, PluginError> {
        match operation {
            "echo" => Ok(ops::echo(input, ctx)),
            "spin" => ops::spin(),
            "wait_for_cancel" => ops::wait_for_cancel(parse_input(input)?, ctx),
            "wait_for_file" => ops::wait_for_file(parse_input(input)?, ctx),
            "checkpoint" => ops::checkpoint(parse_input(input)?, ctx),
            "fail" => Err(ops::fail(parse_input(input)?)),
            "panic" => ops::panic(parse_input(input)?),
            "alloc" => ops::alloc(parse_input(input)?),
            "log" => Ok(ops::log(parse_input(input)?)),
            "raw_heartbeat" => Ok(hostile::raw_heartbeat(parse_input(input)?)),
            "big_output" => Ok(hostile::big_output(parse_input(input)?)),
            "scratch" => ops::scratch(),
            "grants" => Ok(hostile::grants(parse_input(input)?)),
            "count_calls" => Ok(hostile::count_calls()),
            "recurse" => {
                Ok(serde_json::json!({ "depth": hostile::recurse(0, black_box(u64::MAX)) }))
            }
            other => Err(PluginError::unknown_operation(other)),
        }
    }
}

mlx_plugin_sdk::export_plugin!(Testkit);
