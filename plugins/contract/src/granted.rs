//! `config`, `secret` and `log`: what the manifest grants, and the worker's log.

use std::collections::BTreeMap;
use std::fmt::Display;

use mlx_plugin_sdk::{Context, JsonSchema, Operation, PluginError, log};
use serde::{Deserialize, Serialize};

pub struct Config;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigInput {
    key: String,
}

#[derive(Serialize, JsonSchema)]
pub struct ConfigOutput {
    value: Option<String>,
}

impl Operation for Config {
    const NAME: &str = "config";
    const DOC: &str = "The manifest's [config] value for `key` (null if not granted).";
    type Input = ConfigInput;
    type Output = ConfigOutput;

    fn run(input: ConfigInput, ctx: &Context) -> Result<ConfigOutput, PluginError> {
        Ok(ConfigOutput {
            value: ctx.config(&input.key),
        })
    }
}

pub struct Secret;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretInput {
    name: String,
}

#[derive(Serialize, JsonSchema)]
pub struct SecretOutput {
    present: bool,
    /// In characters, as the other SDKs count them.
    length: Option<u64>,
}

impl Operation for Secret {
    const NAME: &str = "secret";
    const DOC: &str = "Whether the secret `name` is granted, and its length; never its value.";
    type Input = SecretInput;
    type Output = SecretOutput;

    fn run(input: SecretInput, ctx: &Context) -> Result<SecretOutput, PluginError> {
        let value = ctx.secret(&input.name);
        Ok(SecretOutput {
            present: value.is_some(),
            length: value.map(|v| v.chars().count() as u64),
        })
    }
}

pub struct Log;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogInput {
    message: String,
    #[serde(default)]
    fields: BTreeMap<String, String>,
}

#[derive(Serialize, JsonSchema)]
pub struct LogOutput {
    logged: bool,
}

impl Operation for Log {
    const NAME: &str = "log";
    const DOC: &str = "Logs `message` at info with `fields`.";
    type Input = LogInput;
    type Output = LogOutput;

    fn run(input: LogInput, _ctx: &Context) -> Result<LogOutput, PluginError> {
        let fields: Vec<(&str, &dyn Display)> = input
            .fields
            .iter()
            .map(|(k, v)| (k.as_str(), v as &dyn Display))
            .collect();
        log::info(&input.message, &fields);
        Ok(LogOutput { logged: true })
    }
}
