//! Domain types of the plugin contract, independent of the generated WIT bindings.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a plugin says about itself (`describe`), validated at load.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    pub operations: Vec<OperationInfo>,
}

impl PluginInfo {
    pub fn operation(&self, name: &str) -> Option<&OperationInfo> {
        self.operations.iter().find(|op| op.name == name)
    }

    pub fn operation_names(&self) -> Vec<&str> {
        self.operations.iter().map(|op| op.name.as_str()).collect()
    }

    /// Checks a self-description at load. Plugin names are identifiers people type in
    /// workflows and file names.
    pub fn validate(&self) -> Result<(), String> {
        let info = self;
        let valid_name = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        };
        if !valid_name(&info.name) {
            return Err(format!(
                "name {:?} must be 1-64 characters of a-z, 0-9, '_' or '-'",
                info.name
            ));
        }
        if info.version.trim().is_empty() {
            return Err("version is empty".into());
        }
        if info.operations.is_empty() {
            return Err("declares no operations".into());
        }
        let mut seen = std::collections::HashSet::new();
        for op in &info.operations {
            if op.name.is_empty() || !seen.insert(op.name.as_str()) {
                return Err(format!("operation name {:?} is empty or repeated", op.name));
            }
            for (which, schema) in [("input", &op.input_schema), ("output", &op.output_schema)] {
                serde_json::from_str::<Value>(schema).map_err(|e| {
                    format!("operation {:?}: {which} schema is not JSON: {e}", op.name)
                })?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OperationInfo {
    pub name: String,
    pub description: String,
    /// JSON Schema text, as the plugin declared it.
    pub input_schema: String,
    pub output_schema: String,
}

/// The payload of the `plugin_activity` activity: plain JSON so any Temporal SDK or the
/// `temporal` CLI can send it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PluginRequest {
    pub plugin: String,
    pub operation: String,
    #[serde(default)]
    pub input: Value,
}

/// Where an invocation comes from; handed to the guest.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InvocationContext {
    pub workflow_id: String,
    pub activity_id: String,
    pub attempt: u32,
    /// Heartbeat details the previous attempt recorded: the checkpoint to resume from.
    pub last_heartbeat_details: Option<Value>,
}

/// The three kinds of error a plugin may return, as the WIT `plugin-error` variant defines them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum GuestErrorKind {
    InvalidInput,
    Retryable,
    Permanent,
}

/// An error the guest chose to return (as opposed to a trap).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GuestError {
    pub kind: GuestErrorKind,
    pub type_name: String,
    pub message: String,
    pub details: Option<Value>,
}
