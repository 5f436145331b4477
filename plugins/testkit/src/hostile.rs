//! Operations that break the plugin contract on purpose, to test that the host contains them.

use std::{
    hint::black_box,
    sync::atomic::{AtomicU64, Ordering},
};

use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeartbeat {
    /// Sent as heartbeat details verbatim, bypassing the SDK's JSON encoding.
    text: Option<String>,
    /// Or: a JSON string of this many KiB.
    kb: Option<usize>,
}

/// Calls the heartbeat import directly, so it can send what the SDK never would.
pub fn raw_heartbeat(input: RawHeartbeat) -> Value {
    let text = match (input.text, input.kb) {
        (Some(text), _) => text,
        (None, Some(kb)) => format!("\"{}\"", "x".repeat(kb << 10)),
        (None, None) => "null".to_owned(),
    };
    let cancelled = mlx_plugin_sdk::__private::bindings::mlx::plugin::activity::heartbeat(&text);
    json!({ "cancelled": cancelled })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BigOutput {
    kb: usize,
}

/// Returns a JSON string of `kb` KiB: larger than the host accepts for big enough `kb`.
pub fn big_output(input: BigOutput) -> Value {
    Value::String("y".repeat(input.kb << 10))
}

/// Recurses without bound (the optimizer cannot see that `limit` is never reached): the host
/// must turn the stack overflow into a failure.
pub fn recurse(depth: u64, limit: u64) -> u64 {
    if depth == limit {
        return depth;
    }
    // An opaque indirect call keeps the optimizer from turning this into a loop; frames are
    // tiny in linear memory, so the engine's own stack limit is what ends it.
    let next: fn(u64, u64) -> u64 = black_box(recurse);
    next(depth + 1, limit).wrapping_add(depth)
}

static CALLS: AtomicU64 = AtomicU64::new(0);

/// Counts calls in a global: a host that reused instances would return more than 1.
pub fn count_calls() -> Value {
    json!({ "calls": CALLS.fetch_add(1, Ordering::SeqCst) + 1 })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    #[serde(default)]
    config: Vec<String>,
    #[serde(default)]
    secrets: Vec<String>,
    #[serde(default)]
    env: Vec<String>,
}

/// Reports what the host granted, verbatim, secrets included: a test must see that the value
/// arrived. (A real plugin never returns a secret.)
pub fn grants(input: Grants) -> Value {
    let pick = |keys: &[String], read: &dyn Fn(&str) -> Option<String>| -> Value {
        keys.iter()
            .map(|k| (k.clone(), json!(read(k))))
            .collect::<serde_json::Map<String, Value>>()
            .into()
    };
    json!({
        "config": pick(&input.config, &mlx_plugin_sdk::config::get),
        "secrets": pick(&input.secrets, &mlx_plugin_sdk::config::secret),
        "env": pick(&input.env, &|k| std::env::var(k).ok()),
        "env_names": std::env::vars().map(|(k, _)| k).collect::<Vec<_>>(),
    })
}
