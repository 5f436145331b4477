//! Test-only plugin: each operation attacks the sandbox once (filesystem escapes, writes to
//! read-only grants, the worker's environment, resource floods, abrupt exits) and reports what
//! got through, so the host's tests can assert containment. Never grant it anything real. The
//! `hoard` operations make the worker spend its own memory (buffers, lifted lists, listings)
//! rather than the guest's, which only a host-side budget bounds.
//!
//! A `table.grow` bomb is missing: stable Rust cannot emit that instruction.

mod bombs;
mod env;
mod fs;
mod hoard;
mod net;
mod report;
mod schemas;

use mlx_plugin_sdk::{Context, Plugin, PluginError, PluginInfo, parse_input};
use serde_json::Value;

pub struct Hostile;

impl Plugin for Hostile {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "hostile".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Test-only attacks on the sandbox: each operation tries one escape or \
                          exhaustion and reports what got through."
                .into(),
            operations: schemas::operations()
                .into_iter()
                .chain(schemas::decoys())
                .collect(),
        }
    }

    fn invoke(operation: &str, input: Value, ctx: &Context) -> Result<Value, PluginError> {
        match operation {
            "dotdot_escape" => fs::dotdot_escape(parse_input(input)?),
            "absolute_escape" => fs::absolute_escape(parse_input(input)?),
            "symlink_escape" => fs::symlink_escape(parse_input(input)?),
            "create_symlink_escape" => fs::create_symlink_escape(parse_input(input)?),
            "trailing_slash_escape" => fs::trailing_slash_escape(parse_input(input)?),
            "hardlink_escape" => fs::hardlink_escape(parse_input(input)?),
            "truncate_readonly" => fs::truncate_readonly(parse_input(input)?),
            "write_readonly" => fs::write_readonly(parse_input(input)?),
            "read_env" => env::read_env(parse_input(input)?),
            "sockets" => net::sockets(parse_input(input)?),
            "memory_bomb" => bombs::memory_bomb(parse_input(input)?),
            "heartbeat_spam" => Ok(bombs::heartbeat_spam(parse_input(input)?, ctx)),
            "log_flood" => Ok(bombs::log_flood(parse_input(input)?)),
            "huge_output" => bombs::huge_output(parse_input(input)?),
            "deep_tree" => bombs::deep_tree(parse_input(input)?),
            "open_files" => bombs::open_files(parse_input(input)?),
            "disk_fill" => bombs::disk_fill(parse_input(input)?),
            "abort" => {
                let bombs::NoInput {} = parse_input(input)?;
                bombs::abort()
            }
            "exit" => bombs::exit(parse_input(input)?),
            "busy_with_host_calls" => {
                let bombs::NoInput {} = parse_input(input)?;
                bombs::busy_with_host_calls(ctx)
            }
            "stream_hoard" => hoard::stream_hoard(parse_input(input)?),
            "log_fields" => hoard::log_fields(parse_input(input)?),
            "poll_list" => hoard::poll_list(parse_input(input)?),
            "dir_hoard" => hoard::dir_hoard(parse_input(input)?),
            "random_bytes" => hoard::random_bytes(parse_input(input)?),
            "heartbeat_arrays" => hoard::heartbeat_arrays(parse_input(input)?),
            other => Err(PluginError::unknown_operation(other)),
        }
    }
}

mlx_plugin_sdk::export_plugin!(Hostile);

#[cfg(test)]
mod tests {
    use super::*;

    /// Every described operation is dispatched, and refuses unknown fields before acting (which
    /// is also what keeps this test from aborting or looping).
    #[test]
    fn describe_lists_every_operation() {
        let names: Vec<String> = Hostile::info()
            .operations
            .into_iter()
            .map(|op| op.name)
            .collect();
        let ctx = Context::detached(1, None);
        for name in &names {
            let err = Hostile::invoke(name, serde_json::json!({"no_such_field": 1}), &ctx);
            assert_eq!(
                err.unwrap_err().type_name,
                "InvalidInput",
                "{name} must reject unknown fields"
            );
        }
    }
}
