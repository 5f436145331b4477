//! What a trainer `model.json` contributes to a run: its family and hyperparameters as params,
//! and its loss by round as the `train_loss` history. Read as plain JSON rather than through
//! the trainer's types: only these few keys are needed, and the trainer's crate (smartcore,
//! arrow) would make this component many times larger.

use mlx_plugin_sdk::PluginError;
use serde_json::{Value, json};

use crate::batch::{KeyValue, check_param, param_value};

/// `format` of every file the trainer's `train_model` writes (plugins/trainer/src/model_file.rs).
pub const TRAINER_FORMAT: &str = "mlx-trainer-model";
/// The metric the loss history is logged as.
pub const LOSS_METRIC: &str = "train_loss";

#[derive(Debug, Clone, PartialEq)]
pub struct TrainedModel {
    /// `family` and `hyperparameters.<name>`.
    pub params: Vec<KeyValue>,
    /// `(round, loss)`, in the file's order.
    pub losses: Vec<(i64, f64)>,
}

/// Reads the parts of a trainer model file the run logs; `path` is for messages.
pub fn parse(bytes: &[u8], path: &str) -> Result<TrainedModel, PluginError> {
    let invalid = |problem: &str| {
        PluginError::invalid_input(
            "InvalidModel",
            format!("{path} is not a trainer model.json: {problem}"),
        )
        .with_details(json!({"path": path}))
    };
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| invalid(&e.to_string()))?;
    if doc["format"] != TRAINER_FORMAT {
        return Err(invalid(&format!(
            "its format is {}, not {TRAINER_FORMAT:?}",
            doc["format"]
        )));
    }
    let spec = &doc["model"]["spec"];
    let family = spec["family"]
        .as_str()
        .ok_or_else(|| invalid("no model.spec.family"))?;
    let mut params = vec![KeyValue::new("family", family)];
    match &spec["hyperparameters"] {
        // Families without hyperparameters (linear_regression) may have none.
        Value::Null => {}
        Value::Object(h) => {
            for (name, value) in h {
                let key = format!("hyperparameters.{name}");
                let value = param_value(value);
                check_param(&key, &value)?;
                params.push(KeyValue::new(key, value));
            }
        }
        _ => return Err(invalid("model.spec.hyperparameters is not an object")),
    }
    let losses = match &doc["training"]["losses"] {
        // Provenance is optional in the trainer's own reader too.
        Value::Null => Vec::new(),
        Value::Array(pairs) => pairs
            .iter()
            .map(|pair| match pair.as_array().map(Vec::as_slice) {
                Some([round, loss]) => match (round.as_i64(), loss.as_f64()) {
                    (Some(r), Some(l)) => Ok((r, l)),
                    _ => Err(invalid("a training.losses entry is not [round, loss]")),
                },
                _ => Err(invalid("a training.losses entry is not [round, loss]")),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(invalid("training.losses is not a list")),
    };
    Ok(TrainedModel { params, losses })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(spec: Value, losses: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "format": TRAINER_FORMAT, "format_version": 2, "target": "label",
            "model": {"spec": spec, "task": {"classification": {"classes": 2}}, "features": 3,
                      "model": {}},
            "training": {"losses": losses, "rounds": {"total": 3}},
            "metrics": {"test": {"accuracy": 1.0}},
        }))
        .unwrap()
    }

    #[test]
    fn family_hyperparameters_and_losses_are_read() {
        let bytes = model(
            json!({"family": "gradient_boosting",
                   "hyperparameters": {"n_estimators": 3, "learning_rate": 0.1,
                                       "loss": "log_loss", "max_depth": null}}),
            json!([[1, 0.6], [2, 0.4], [3, 0.25]]),
        );
        let m = parse(&bytes, "/artifacts/m/model.json").unwrap();
        let params: Vec<(&str, &str)> = m
            .params
            .iter()
            .map(|p| (p.key.as_str(), p.value.as_str()))
            .collect();
        assert_eq!(
            params,
            [
                ("family", "gradient_boosting"),
                ("hyperparameters.learning_rate", "0.1"),
                ("hyperparameters.loss", "log_loss"),
                ("hyperparameters.max_depth", "null"),
                ("hyperparameters.n_estimators", "3"),
            ]
        );
        assert_eq!(m.losses, [(1, 0.6), (2, 0.4), (3, 0.25)]);
    }

    #[test]
    fn a_family_without_hyperparameters_or_losses_is_still_a_model() {
        let mut doc: Value =
            serde_json::from_slice(&model(json!({"family": "linear_regression"}), Value::Null))
                .unwrap();
        doc.as_object_mut().unwrap().remove("training");
        let m = parse(&serde_json::to_vec(&doc).unwrap(), "m.json").unwrap();
        assert_eq!(m.params, [KeyValue::new("family", "linear_regression")]);
        assert!(m.losses.is_empty());
    }

    #[test]
    fn other_files_are_refused_naming_the_path() {
        let cases = [
            b"not json".to_vec(),
            br#"{"format": "onnx"}"#.to_vec(),
            br#"{"format": "mlx-trainer-model", "model": {}}"#.to_vec(),
            model(json!({"family": "tree"}), json!([[1]])),
            model(json!({"family": "tree"}), json!({"1": 0.5})),
            model(json!({"family": "tree", "hyperparameters": 3}), json!([])),
        ];
        for bytes in cases {
            let err = parse(&bytes, "/artifacts/x.json").unwrap_err();
            assert_eq!(err.type_name, "InvalidModel");
            assert_eq!(err.kind, mlx_plugin_sdk::ErrorKind::InvalidInput);
            assert!(err.message.contains("/artifacts/x.json"), "{}", err.message);
        }
    }
}
