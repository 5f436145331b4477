//! The host checks every request's input against the JSON Schema its operation declared,
//! before a sandbox exists: a bad input costs no instance, and every plugin language gets the
//! same `InvalidInput` failure naming the path and the rule, whatever its SDK does.
//!
//! Schemas come from the plugin, so they are untrusted: validators are compiled once per
//! loaded plugin version with no retriever (a `$ref` may not make the worker read a file or a
//! URL) and the linear-time `regex` engine with size caps (a `pattern` may not backtrack
//! forever on the worker's threads), after [`schema_budget`] has bounded what one check can
//! cost. A schema those rules refuse fails the load, naming the operation.

use std::collections::HashMap;

use jsonschema::error::ValidationErrorKind;
use jsonschema::{PatternOptions, ValidationError, Validator};
use serde_json::Value;

use super::schema_budget;
use crate::contract::PluginInfo;

/// Compiled size caps of one `pattern` (the `regex` crate's defaults are 10 MiB / 2 MiB): a
/// schema field, not a program; 1 MiB leaves room for any real-world pattern.
const PATTERN_SIZE_LIMIT: usize = 1 << 20;
const PATTERN_DFA_SIZE_LIMIT: usize = 1 << 20;
/// Violations named in one failure (all are counted): enough to fix a request in one go.
const LISTED: usize = 5;
/// Bytes of one violation's text: the validator quotes the offending value, which may be large.
const VIOLATION_TEXT: usize = 300;

/// One operation input's validator per operation name.
pub struct InputSchemas {
    validators: HashMap<String, Validator>,
}

impl std::fmt::Debug for InputSchemas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InputSchemas")
            .field("operations", &self.validators.len())
            .finish()
    }
}

/// Why an input was refused: each violation as path, rule and text.
#[derive(Debug, Clone, PartialEq)]
pub struct Violations {
    pub listed: Vec<Violation>,
    pub total: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// JSON Pointer into the input (`""` is the input itself).
    pub path: String,
    /// The schema keyword that failed (`minimum`, `required`, `additionalProperties`, ...).
    pub rule: String,
    pub message: String,
}

impl InputSchemas {
    /// Compiles every operation's input schema; the error names the operation and the rule.
    pub fn compile(info: &PluginInfo) -> Result<Self, String> {
        let options = jsonschema::options().offline().with_pattern_options(
            PatternOptions::regex()
                .size_limit(PATTERN_SIZE_LIMIT)
                .dfa_size_limit(PATTERN_DFA_SIZE_LIMIT),
        );
        let mut validators = HashMap::with_capacity(info.operations.len());
        for op in &info.operations {
            let schema: Value = serde_json::from_str(&op.input_schema)
                .map_err(|e| format!("operation {:?}: input schema is not JSON: {e}", op.name))?;
            schema_budget::check(&schema)
                .map_err(|e| format!("operation {:?}: input schema refused: {e}", op.name))?;
            let validator = options.build(&schema).map_err(|e| {
                format!(
                    "operation {:?}: input schema is not a usable JSON Schema ({} at {}): {}",
                    op.name,
                    e.kind().keyword(),
                    pointer(e.schema_path().as_str()),
                    clip(&e.to_string()),
                )
            })?;
            validators.insert(op.name.clone(), validator);
        }
        Ok(Self { validators })
    }

    /// Checks `input` against `operation`'s schema. A `null` input is checked as `{}`: every
    /// SDK reads a missing input as an empty object (all defaults). An operation without a
    /// validator (none is compiled for unknown operations) accepts anything.
    pub fn check(&self, operation: &str, input: &Value) -> Result<(), Violations> {
        let Some(validator) = self.validators.get(operation) else {
            return Ok(());
        };
        let empty = Value::Object(Default::default());
        let input = if input.is_null() { &empty } else { input };
        if validator.is_valid(input) {
            return Ok(());
        }
        let mut total = 0;
        let mut listed = Vec::new();
        for error in validator.iter_errors(input) {
            for violation in explain(error.to_owned(), 0) {
                total += 1;
                if listed.len() < LISTED {
                    listed.push(violation);
                }
            }
        }
        Err(Violations { listed, total })
    }
}

/// How deep [`explain`] follows unions within unions; schemas nest them a level or two.
const UNION_DEPTH: usize = 4;

/// One failure as the violations a person can act on. A tagged union (`oneOf` / `anyOf` whose
/// variants each fix a property with `const`, as serde's tagged enums, pydantic's
/// discriminated unions and zod's produce) fails as a whole with "not valid under any of the
/// schemas", which names neither the bad field nor the choices. So: when exactly one variant's
/// tag matched, its own violations are the answer; when no tag matched, the answer is the
/// tag's allowed values.
fn explain(error: ValidationError<'static>, depth: usize) -> Vec<Violation> {
    let whole = Violation {
        path: error.instance_path().as_str().to_string(),
        rule: error.kind().keyword().to_string(),
        message: clip(&error.to_string()),
    };
    if depth >= UNION_DEPTH {
        return vec![whole];
    }
    let context = match error.into_parts().kind {
        ValidationErrorKind::OneOfNotValid { context } | ValidationErrorKind::AnyOf { context }
            if !context.is_empty() =>
        {
            context
        }
        _ => return vec![whole],
    };
    let tag_failure = |variant: &[ValidationError<'static>]| {
        variant
            .iter()
            .position(|e| matches!(e.kind(), ValidationErrorKind::Constant { .. }))
    };
    let matched: Vec<usize> = (0..context.len())
        .filter(|&i| tag_failure(&context[i]).is_none())
        .collect();
    match matched.as_slice() {
        [only] => {
            let variant = context.into_iter().nth(*only).unwrap_or_default();
            return variant
                .into_iter()
                .flat_map(|e| explain(e, depth + 1))
                .collect();
        }
        [] => {}
        _ => return vec![whole],
    }
    // No variant's tag matched: when they all failed on the same tag, list its values.
    let tags: Vec<&ValidationError<'static>> = context
        .iter()
        .filter_map(|v| tag_failure(v).map(|i| &v[i]))
        .collect();
    let path = tags[0].instance_path().as_str();
    if tags.iter().any(|t| t.instance_path().as_str() != path) {
        return vec![whole];
    }
    let allowed: Vec<String> = tags
        .iter()
        .filter_map(|t| match t.kind() {
            ValidationErrorKind::Constant { expected_value } => Some(expected_value.to_string()),
            _ => None,
        })
        .collect();
    vec![Violation {
        path: path.to_string(),
        rule: "enum".into(),
        message: clip(&format!(
            "{} is not one of {}",
            tags[0].instance(),
            allowed.join(", ")
        )),
    }]
}

impl Violations {
    /// `/times: 0 is less than the minimum of 1 (minimum); ...` for the failure message.
    pub fn summary(&self) -> String {
        let mut text = self
            .listed
            .iter()
            .map(|v| format!("{}: {} ({})", pointer(&v.path), v.message, v.rule))
            .collect::<Vec<_>>()
            .join("; ");
        if self.total > self.listed.len() {
            text.push_str(&format!("; and {} more", self.total - self.listed.len()));
        }
        text
    }

    /// The failure's details: every listed violation, and how many there were.
    pub fn to_json(&self) -> Value {
        let listed: Vec<Value> = self
            .listed
            .iter()
            .map(|v| serde_json::json!({"path": v.path, "rule": v.rule, "message": v.message}))
            .collect();
        serde_json::json!({"violations": listed, "total": self.total})
    }
}

/// The input's root reads better as `(input)` than as an empty pointer.
fn pointer(path: &str) -> &str {
    if path.is_empty() { "(input)" } else { path }
}

fn clip(text: &str) -> String {
    if text.len() <= VIOLATION_TEXT {
        return text.to_string();
    }
    format!("{}…", &text[..text.floor_char_boundary(VIOLATION_TEXT)])
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::contract::OperationInfo;

    fn info(schema: Value) -> PluginInfo {
        PluginInfo {
            name: "p".into(),
            version: "1.0.0".into(),
            description: String::new(),
            operations: vec![OperationInfo {
                name: "op".into(),
                description: String::new(),
                input_schema: schema.to_string(),
                output_schema: "{}".into(),
            }],
        }
    }

    fn echo_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "value": {},
                "times": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
            },
            "required": ["value"],
            "additionalProperties": false,
        })
    }

    /// The schema serde + schemars give a tagged enum (`{family, hyperparameters}`).
    fn tagged_union_schema() -> Value {
        let variant = |family: &str, param: &str, minimum: u32| {
            json!({
                "type": "object",
                "properties": {
                    "family": {"type": "string", "const": family},
                    "hyperparameters": {
                        "type": "object",
                        "properties": {param: {"type": "number", "minimum": minimum}},
                        "additionalProperties": false,
                    },
                },
                "required": ["family"],
                "additionalProperties": false,
            })
        };
        json!({
            "type": "object",
            "properties": {"model": {"oneOf": [
                variant("random_forest", "n_estimators", 1),
                variant("ridge", "alpha", 0),
            ]}},
        })
    }

    #[test]
    fn a_tagged_union_names_the_variant_field_or_the_allowed_tags() {
        let schemas = InputSchemas::compile(&info(tagged_union_schema())).unwrap();
        let ok = json!({"model": {"family": "ridge", "hyperparameters": {"alpha": 2}}});
        assert_eq!(schemas.check("op", &ok), Ok(()));

        let bad = json!({"model": {"family": "random_forest",
                                   "hyperparameters": {"n_estimators": 0}}});
        let v = schemas.check("op", &bad).unwrap_err();
        assert_eq!(v.listed.len(), 1, "{v:?}");
        assert_eq!(v.listed[0].path, "/model/hyperparameters/n_estimators");
        assert_eq!(v.listed[0].rule, "minimum");

        let typo = json!({"model": {"family": "ridge", "hyperparameters": {"alpah": 1}}});
        let v = schemas.check("op", &typo).unwrap_err();
        assert_eq!(v.listed[0].rule, "additionalProperties", "{v:?}");
        assert!(v.listed[0].message.contains("alpah"), "{v:?}");

        let unknown = json!({"model": {"family": "svm"}});
        let v = schemas.check("op", &unknown).unwrap_err();
        assert_eq!(
            (v.listed[0].path.as_str(), v.listed[0].rule.as_str()),
            ("/model/family", "enum")
        );
        assert_eq!(
            v.listed[0].message,
            r#""svm" is not one of "random_forest", "ridge""#
        );
    }

    #[test]
    fn names_the_path_and_the_rule_of_each_violation() {
        let schemas = InputSchemas::compile(&info(echo_schema())).unwrap();
        assert_eq!(
            schemas.check("op", &json!({"value": 1, "times": 3})),
            Ok(())
        );
        let v = schemas
            .check("op", &json!({"value": 1, "times": 0}))
            .unwrap_err();
        assert_eq!((v.total, v.listed[0].path.as_str()), (1, "/times"));
        assert_eq!(v.listed[0].rule, "minimum");
        assert!(
            v.summary()
                .starts_with("/times: 0 is less than the minimum of 1 (minimum)")
        );
        let v = schemas
            .check("op", &json!({"times": "3", "extra": true}))
            .unwrap_err();
        let rules: Vec<&str> = v.listed.iter().map(|v| v.rule.as_str()).collect();
        assert!(rules.contains(&"required"), "{rules:?}");
        assert!(rules.contains(&"additionalProperties"), "{rules:?}");
        assert!(rules.contains(&"type"), "{rules:?}");
        assert_eq!(v.to_json()["total"], v.total);
    }

    #[test]
    fn a_null_input_is_checked_as_an_empty_object() {
        let schemas = InputSchemas::compile(&info(json!({"type": "object"}))).unwrap();
        assert_eq!(schemas.check("op", &Value::Null), Ok(()));
        let schemas = InputSchemas::compile(&info(echo_schema())).unwrap();
        let v = schemas.check("op", &Value::Null).unwrap_err();
        assert_eq!(v.listed[0].rule, "required");
        assert!(v.summary().starts_with("(input): "), "{}", v.summary());
    }

    #[test]
    fn lists_a_few_violations_and_counts_the_rest() {
        let schema = json!({"type": "array", "items": {"type": "integer"}});
        let schemas = InputSchemas::compile(&info(schema)).unwrap();
        let v = schemas.check("op", &json!(vec!["a"; 12])).unwrap_err();
        assert_eq!((v.listed.len(), v.total), (LISTED, 12));
        assert!(v.summary().ends_with("; and 7 more"), "{}", v.summary());
    }

    #[test]
    fn a_large_offending_value_is_clipped_in_the_message() {
        let schemas = InputSchemas::compile(&info(json!({"type": "integer"}))).unwrap();
        let v = schemas.check("op", &json!("é".repeat(10_000))).unwrap_err();
        assert!(v.listed[0].message.len() <= VIOLATION_TEXT + '…'.len_utf8());
    }

    #[test]
    fn schemas_that_would_reach_outside_or_run_away_are_refused_at_load() {
        for (schema, why) in [
            (
                json!({"$ref": "https://example.com/s.json"}),
                "a remote $ref",
            ),
            (json!({"$ref": "file:///etc/passwd"}), "a file $ref"),
            (
                json!({"pattern": "(a+)+\\1"}),
                "a backreference (backtracking)",
            ),
            (json!({"type": "no-such-type"}), "an invalid type"),
            (
                json!({"anyOf": [{"items": {"$ref": "#"}}, {"items": {"$ref": "#"}}]}),
                "recursion, exponential in the input's depth",
            ),
        ] {
            let err = InputSchemas::compile(&info(schema)).expect_err(why);
            assert!(
                err.starts_with("operation \"op\": input schema"),
                "{why}: {err}"
            );
        }
    }

    #[test]
    fn an_unknown_operation_has_no_validator_and_is_left_to_the_caller() {
        let schemas = InputSchemas::compile(&info(echo_schema())).unwrap();
        assert_eq!(schemas.check("other", &json!(42)), Ok(()));
    }
}
