use serde_json::Value;

/// What a plugin says about itself ([`crate::Plugin::info`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PluginInfo {
    /// How workflows address the plugin; unique among the plugins a worker loads.
    pub name: String,
    /// Semantic version of the plugin itself (not of the contract).
    pub version: String,
    pub description: String,
    pub operations: Vec<OperationInfo>,
}

/// One operation a plugin offers.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationInfo {
    /// Name workflows put in the request's `operation`.
    pub name: String,
    pub description: String,
    /// JSON Schema of the input.
    pub input_schema: Value,
    /// JSON Schema of the output.
    pub output_schema: Value,
}

impl OperationInfo {
    pub fn new(
        name: impl Into<String>,
        description: impl Into<String>,
        input_schema: Value,
        output_schema: Value,
    ) -> Self {
        Self {
            name: name.into(),
            description: description.into(),
            input_schema,
            output_schema,
        }
    }
}
