//! Attempts to read the worker's environment, which the host must not pass through.

use std::env::{self, VarError};

use mlx_plugin_sdk::PluginError;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::report::{Attempt, verdict};

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReadEnv {
    names: Vec<String>,
}

impl Default for ReadEnv {
    fn default() -> Self {
        Self {
            names: ["PATH", "HOME", "TEMPORAL_ADDRESS", "AWS_SECRET_ACCESS_KEY"]
                .map(String::from)
                .to_vec(),
        }
    }
}

/// A named variable that is visible is an escape. Its value is left out of the evidence: if
/// the sandbox leaks a real secret, the test report must not spread it further.
pub fn read_env(input: ReadEnv) -> Result<Value, PluginError> {
    let mut attempts: Vec<Attempt> = input
        .names
        .iter()
        .map(|name| {
            let what = format!("read ${name}");
            match env::var_os(name) {
                None => Attempt::blocked(what, VarError::NotPresent),
                Some(value) => Attempt::escaped(what, json!({"name": name, "bytes": value.len()})),
            }
        })
        .collect();
    // Not an escape by itself (the manifest may grant variables), but worth seeing.
    let visible: Vec<String> = env::vars_os()
        .map(|(k, _)| k.to_string_lossy().into_owned())
        .collect();
    attempts.push(Attempt::allowed(
        "list the environment",
        format!("{} variables visible: {visible:?}", visible.len()),
    ));
    verdict("read_env", attempts)
}
