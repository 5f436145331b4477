//! Helpers for the JSON Schemas a plugin declares in [`crate::PluginInfo`].

use serde_json::{Value, json};

/// An object schema with `properties` that rejects unknown properties, the usual shape of an
/// operation's input.
pub fn object(properties: Value, required: &[&str]) -> Value {
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}
