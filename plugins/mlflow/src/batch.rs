//! What a run logs, in MLflow's shapes: metrics flattened from JSON, params as strings, and
//! `runs/log-batch` requests cut to the server's limits. Pure, so tested natively.

use mlx_plugin_sdk::PluginError;
use serde::Serialize;
use serde_json::{Map, Value, json};

/// MLflow's limits on one `runs/log-batch` request (mlflow/utils/validation.py); a larger
/// request is refused whole with INVALID_PARAMETER_VALUE.
pub const MAX_METRICS_PER_BATCH: usize = 1000;
pub const MAX_PARAMS_PER_BATCH: usize = 100;
pub const MAX_TAGS_PER_BATCH: usize = 100;
pub const MAX_ENTITIES_PER_BATCH: usize = 1000;
/// MLflow's longest param value; longer ones are refused by the server, so they are refused
/// here first, with the key named.
pub const MAX_PARAM_VALUE_CHARS: usize = 6000;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metric {
    pub key: String,
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    pub step: i64,
}

/// A param or a tag: MLflow gives both the same shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

impl KeyValue {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// Every numeric leaf of `value` as `(key, number)`, nested object keys and array indices
/// joined with '.' under `prefix`; returns how many other leaves (strings, booleans, nulls)
/// were skipped, since MLflow metrics are numbers only.
pub fn flatten_metrics(prefix: &str, value: &Value, out: &mut Vec<(String, f64)>) -> u64 {
    let join = |key: &str| {
        if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}.{key}")
        }
    };
    match value {
        Value::Number(n) => match n.as_f64() {
            Some(x) => {
                out.push((prefix.to_string(), x));
                0
            }
            None => 1,
        },
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| flatten_metrics(&join(k), v, out))
            .sum(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| flatten_metrics(&join(&i.to_string()), v, out))
            .sum(),
        Value::String(_) | Value::Bool(_) | Value::Null => 1,
    }
}

/// A param's value as MLflow stores it: a string as is, anything else as compact JSON, so
/// `0.1` stays `0.1` and `[1, 2]` stays readable.
pub fn param_value(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The params of `map`, checked against MLflow's value length.
pub fn params_from(map: &Map<String, Value>) -> Result<Vec<KeyValue>, PluginError> {
    map.iter()
        .map(|(k, v)| {
            let value = param_value(v);
            check_param(k, &value)?;
            Ok(KeyValue::new(k, value))
        })
        .collect()
}

pub fn check_param(key: &str, value: &str) -> Result<(), PluginError> {
    let chars = value.chars().count();
    if chars > MAX_PARAM_VALUE_CHARS {
        return Err(PluginError::invalid_input(
            "ParamTooLong",
            format!(
                "param {key:?} is {chars} characters long; MLflow keeps at most \
                 {MAX_PARAM_VALUE_CHARS}. Log it as an artifact file instead"
            ),
        )
        .with_details(json!({"key": key, "chars": chars})));
    }
    Ok(())
}

/// One `runs/log-batch` request body, without the run id.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Batch {
    pub metrics: Vec<Metric>,
    pub params: Vec<KeyValue>,
    pub tags: Vec<KeyValue>,
}

impl Batch {
    pub fn entities(&self) -> usize {
        self.metrics.len() + self.params.len() + self.tags.len()
    }
}

/// Cuts everything into requests within MLflow's per-request limits, params and tags first
/// (so a run shows its configuration even if a later metrics request fails), in order.
pub fn chunk(metrics: Vec<Metric>, params: Vec<KeyValue>, tags: Vec<KeyValue>) -> Vec<Batch> {
    let mut metrics = metrics.into_iter().peekable();
    let mut params = params.into_iter().peekable();
    let mut tags = tags.into_iter().peekable();
    let mut batches = Vec::new();
    while metrics.peek().is_some() || params.peek().is_some() || tags.peek().is_some() {
        let mut batch = Batch {
            params: params.by_ref().take(MAX_PARAMS_PER_BATCH).collect(),
            tags: tags.by_ref().take(MAX_TAGS_PER_BATCH).collect(),
            ..Batch::default()
        };
        let room = MAX_METRICS_PER_BATCH.min(MAX_ENTITIES_PER_BATCH - batch.entities());
        batch.metrics = metrics.by_ref().take(room).collect();
        batches.push(batch);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_leaves_become_dotted_keys_and_the_rest_is_counted() {
        let metrics = json!({
            "accuracy": 0.9,
            "classes": ["a", "b"],
            "confusion_matrix": [[3, 1], [0, 4]],
            "per_class": {"a": {"f1": 0.5, "support": 4}},
            "note": null,
            "ok": true,
        });
        let mut out = Vec::new();
        let skipped = flatten_metrics("", &metrics, &mut out);
        assert_eq!(skipped, 4, "two class names, a null and a boolean");
        assert_eq!(
            out,
            [
                ("accuracy".to_string(), 0.9),
                ("confusion_matrix.0.0".into(), 3.0),
                ("confusion_matrix.0.1".into(), 1.0),
                ("confusion_matrix.1.0".into(), 0.0),
                ("confusion_matrix.1.1".into(), 4.0),
                ("per_class.a.f1".into(), 0.5),
                ("per_class.a.support".into(), 4.0),
            ]
        );
        let mut out = Vec::new();
        assert_eq!(flatten_metrics("test", &json!(2), &mut out), 0);
        assert_eq!(out, [("test".to_string(), 2.0)]);
    }

    #[test]
    fn params_are_strings_or_compact_json_and_long_ones_are_refused_by_name() {
        let map = json!({"lr": 0.1, "name": "gb", "layers": [8, 4], "opt": {"beta": 0.9}});
        let params = params_from(map.as_object().unwrap()).unwrap();
        let got: Vec<(&str, &str)> = params
            .iter()
            .map(|p| (p.key.as_str(), p.value.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("layers", "[8,4]"),
                ("lr", "0.1"),
                ("name", "gb"),
                ("opt", "{\"beta\":0.9}"),
            ]
        );
        let long = json!({"notes": "x".repeat(MAX_PARAM_VALUE_CHARS + 1)});
        let err = params_from(long.as_object().unwrap()).unwrap_err();
        assert_eq!(err.type_name, "ParamTooLong");
        assert_eq!(err.kind, mlx_plugin_sdk::ErrorKind::InvalidInput);
        assert!(err.message.contains("\"notes\""), "{}", err.message);
        let fits = json!({"notes": "é".repeat(MAX_PARAM_VALUE_CHARS)});
        assert!(
            params_from(fits.as_object().unwrap()).is_ok(),
            "chars, not bytes"
        );
    }

    fn metrics(n: usize) -> Vec<Metric> {
        (0..n)
            .map(|i| Metric {
                key: "loss".into(),
                value: i as f64,
                timestamp: 0,
                step: i as i64,
            })
            .collect()
    }

    fn kvs(prefix: &str, n: usize) -> Vec<KeyValue> {
        (0..n)
            .map(|i| KeyValue::new(format!("{prefix}{i}"), "v"))
            .collect()
    }

    #[test]
    fn batches_stay_within_every_limit_and_keep_everything_in_order() {
        let batches = chunk(metrics(2500), kvs("p", 250), kvs("t", 30));
        for b in &batches {
            assert!(b.metrics.len() <= MAX_METRICS_PER_BATCH);
            assert!(b.params.len() <= MAX_PARAMS_PER_BATCH);
            assert!(b.tags.len() <= MAX_TAGS_PER_BATCH);
            assert!(b.entities() <= MAX_ENTITIES_PER_BATCH);
        }
        let shape: Vec<(usize, usize, usize)> = batches
            .iter()
            .map(|b| (b.params.len(), b.tags.len(), b.metrics.len()))
            .collect();
        assert_eq!(shape, [(100, 30, 870), (100, 0, 900), (50, 0, 730),]);
        let steps: Vec<i64> = batches
            .iter()
            .flat_map(|b| b.metrics.iter().map(|m| m.step))
            .collect();
        assert_eq!(steps, (0..2500).collect::<Vec<i64>>());
        let params: Vec<String> = batches
            .iter()
            .flat_map(|b| b.params.iter().map(|p| p.key.clone()))
            .collect();
        assert_eq!(
            params,
            (0..250).map(|i| format!("p{i}")).collect::<Vec<_>>()
        );
    }

    #[test]
    fn nothing_to_log_is_no_request_and_small_runs_are_one() {
        assert!(chunk(Vec::new(), Vec::new(), Vec::new()).is_empty());
        let one = chunk(metrics(20), kvs("p", 3), kvs("t", 3));
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].entities(), 26);
        assert_eq!(chunk(metrics(1000), Vec::new(), Vec::new()).len(), 1);
        assert_eq!(chunk(metrics(1001), Vec::new(), Vec::new()).len(), 2);
    }
}
