//! Domain types of the plugin contract, independent of the generated WIT bindings.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Bounds on a self-description. It is logged at load, shown by `plugin describe`, and its
/// names appear in failures that travel through Temporal: a plugin listing 200,000 operations
/// must be refused at load, not discovered as an oversized failure later.
pub mod bounds {
    /// Operations one plugin may declare.
    pub const OPERATIONS: usize = 256;
    /// Bytes of an operation name (and of the version).
    pub const NAME: usize = 64;
    /// Bytes of a description (the plugin's, or an operation's).
    pub const DESCRIPTION: usize = 4 << 10;
    /// Bytes of one JSON Schema.
    pub const SCHEMA: usize = 64 << 10;
    /// Names shown in a listing (e.g. in an unknown-operation failure); the rest are counted.
    pub const LISTED: usize = 20;
}

/// `names` joined for a message, at most [`bounds::LISTED`] of them and a count of the rest.
pub fn listing<S: AsRef<str>>(names: &[S]) -> String {
    let mut shown = names
        .iter()
        .take(bounds::LISTED)
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > bounds::LISTED {
        shown.push_str(&format!(", … and {} more", names.len() - bounds::LISTED));
    }
    shown
}

/// What a plugin says about itself (`describe`), validated at load.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    pub operations: Vec<OperationInfo>,
}

/// Whether `name` may name a plugin: 1-64 characters of a-z, 0-9, '_' or '-'.
pub fn valid_plugin_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
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
        if !valid_plugin_name(&info.name) {
            return Err(format!(
                "name {:?} must be 1-64 characters of a-z, 0-9, '_' or '-'",
                info.name
            ));
        }
        if info.version.trim().is_empty() || info.version.len() > bounds::NAME {
            return Err(format!("version must be 1-{} bytes", bounds::NAME));
        }
        let too_long = |what: &str, len: usize, max: usize| {
            (len > max).then(|| format!("{what} is {len} bytes; at most {max} are allowed"))
        };
        if let Some(e) = too_long(
            "the description",
            info.description.len(),
            bounds::DESCRIPTION,
        ) {
            return Err(e);
        }
        if info.operations.is_empty() {
            return Err("declares no operations".into());
        }
        if info.operations.len() > bounds::OPERATIONS {
            return Err(format!(
                "declares {} operations; at most {} are allowed (split it into several plugins)",
                info.operations.len(),
                bounds::OPERATIONS
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for op in &info.operations {
            let name = &op.name;
            if name.is_empty()
                || name.len() > bounds::NAME
                || name.chars().any(|c| c.is_control() || c.is_whitespace())
            {
                return Err(format!(
                    "operation name {:?} must be 1-{} bytes with no spaces or control characters",
                    one_line_prefix(name),
                    bounds::NAME
                ));
            }
            if !seen.insert(name.as_str()) {
                return Err(format!("operation name {name:?} is repeated"));
            }
            let description =
                too_long("its description", op.description.len(), bounds::DESCRIPTION);
            if let Some(e) = description {
                return Err(format!("operation {name:?}: {e}"));
            }
            for (which, schema) in [("input", &op.input_schema), ("output", &op.output_schema)] {
                if let Some(e) = too_long("the schema", schema.len(), bounds::SCHEMA) {
                    return Err(format!("operation {name:?}: {which} schema: {e}"));
                }
                serde_json::from_str::<Value>(schema)
                    .map_err(|e| format!("operation {name:?}: {which} schema is not JSON: {e}"))?;
            }
        }
        Ok(())
    }
}

/// The start of a refused name, so that the refusal itself stays short.
fn one_line_prefix(name: &str) -> String {
    name.chars().take(bounds::NAME).collect()
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
    /// Reuse an earlier identical invocation's result from the worker's step cache (and store
    /// this one's). Left out of the payload when false, so requests read as they always have.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cache: bool,
}

/// JSON checked once and kept as text: heartbeat details travel guest -> host -> Temporal ->
/// next attempt without ever becoming a `serde_json::Value`, whose tree can take 30 times the
/// text's size (2 MiB of `[0,0,...]` is 32 MiB of values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonText(std::sync::Arc<str>);

impl JsonText {
    /// `text` if it is one JSON value (checked without building it).
    pub fn parse(text: String) -> Result<Self, serde_json::Error> {
        serde_json::from_str::<serde::de::IgnoredAny>(&text)?;
        Ok(Self(text.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value itself, for callers that need to look inside (tests, small documents).
    pub fn to_value(&self) -> Value {
        serde_json::from_str(&self.0).expect("checked when made")
    }
}

impl From<&Value> for JsonText {
    fn from(value: &Value) -> Self {
        Self(value.to_string().into())
    }
}

/// As the JSON text itself (a string), checked again when read: the worker hands checkpoints
/// to its child processes this way ([`crate::isolated`]).
impl Serialize for JsonText {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for JsonText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::parse(String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for JsonText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where an invocation comes from; handed to the guest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvocationContext {
    pub workflow_id: String,
    pub activity_id: String,
    pub attempt: u32,
    /// Heartbeat details the previous attempt recorded: the checkpoint to resume from.
    pub last_heartbeat_details: Option<JsonText>,
}

/// The three kinds of error a plugin may return, as the WIT `plugin-error` variant defines them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum GuestErrorKind {
    InvalidInput,
    Retryable,
    Permanent,
}

/// An error the guest chose to return (as opposed to a trap).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuestError {
    pub kind: GuestErrorKind,
    pub type_name: String,
    pub message: String,
    pub details: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_context_crosses_to_a_child_as_json_and_its_checkpoint_is_checked_again() {
        let ctx = InvocationContext {
            workflow_id: "w".into(),
            activity_id: "1".into(),
            attempt: 2,
            last_heartbeat_details: Some(JsonText::parse(r#"{"step": 3}"#.into()).unwrap()),
        };
        let text = serde_json::to_string(&ctx).unwrap();
        assert_eq!(
            serde_json::from_str::<InvocationContext>(&text).unwrap(),
            ctx
        );
        let forged = text.replace(r#"{\"step\": 3}"#, "not json");
        assert_ne!(forged, text);
        assert!(serde_json::from_str::<InvocationContext>(&forged).is_err());
    }

    fn info(operations: usize) -> PluginInfo {
        PluginInfo {
            name: "p".into(),
            version: "1".into(),
            description: String::new(),
            operations: (0..operations)
                .map(|i| OperationInfo {
                    name: format!("op{i}"),
                    description: String::new(),
                    input_schema: "{}".into(),
                    output_schema: "{}".into(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_self_description_is_bounded_at_load() {
        assert_eq!(info(bounds::OPERATIONS).validate(), Ok(()));
        let err = info(200_000).validate().unwrap_err();
        assert!(
            err.contains("declares 200000 operations; at most 256"),
            "{err}"
        );

        let mut long = info(1);
        long.operations[0].name = "x".repeat(100_000);
        let err = long.validate().unwrap_err();
        assert!(
            err.len() < 300,
            "the refusal itself is bounded: {}",
            err.len()
        );

        let mut schema = info(1);
        schema.operations[0].input_schema = format!("\"{}\"", "s".repeat(bounds::SCHEMA));
        let err = schema.validate().unwrap_err();
        assert!(
            err.contains("input schema") && err.contains("at most 65536"),
            "{err}"
        );

        let mut described = info(1);
        described.operations[0].description = "d".repeat(bounds::DESCRIPTION + 1);
        assert!(
            described
                .validate()
                .unwrap_err()
                .contains("its description")
        );

        let mut spaced = info(1);
        spaced.operations[0].name = "a\nb".into();
        assert!(spaced.validate().is_err());
    }

    #[test]
    fn a_listing_shows_a_bounded_number_of_names() {
        assert_eq!(listing(&["a", "b"]), "a, b");
        let names: Vec<String> = (0..1000).map(|i| format!("op{i}")).collect();
        let shown = listing(&names);
        assert!(shown.ends_with(", … and 980 more"), "{shown}");
        assert_eq!(shown.matches(", ").count(), bounds::LISTED);
    }
}
