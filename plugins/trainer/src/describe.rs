//! What `describe()` reports of each operation: description, error types, JSON Schemas.

use mlx_plugin_sdk::Operation;
use serde_json::{Value, json};

use crate::train::MAX_EPOCHS;

pub fn operations() -> Vec<Operation> {
    vec![train_model(), evaluate_model(), register_model()]
}

fn train_model() -> Operation {
    let mut metrics = metrics_schema();
    metrics["properties"]["train_accuracy"] = json!({"type": "number"});
    metrics["properties"]["train_log_loss"] = json!({"type": "number"});
    if let Some(required) = metrics["required"].as_array_mut() {
        required.push(json!("train_accuracy"));
    }
    Operation::new(
        "train_model",
        "Multinomial logistic regression by full-batch gradient descent on standardized \
         features (fitted on train only) with L2 regularization. Heartbeats a checkpoint \
         {epoch, loss, weights, bias} every checkpoint_every epochs and resumes from the \
         previous attempt's checkpoint. Evaluates on test and writes model.json. \
         Errors: InvalidInput InvalidParameter, ArtifactNotFound, ColumnNotFound, \
         HeaderMismatch, NonNumericValue, MalformedCsv, NoFeatures, NoRows, \
         TooFewClasses, TrainingDiverged, OutputNotWritable; Retryable \
         ArtifactReadFailed, ArtifactWriteFailed, Cancelled.",
        json!({
            "type": "object",
            "properties": {
                "train": {"type": "string",
                          "description": "Path of train.csv (csv plugin output)."},
                "test": {"type": "string", "description": "Path of test.csv, same columns."},
                "target": {"type": "string", "description": "Class column; all others are \
                           numeric features."},
                "epochs": {"type": "integer", "minimum": 1, "maximum": MAX_EPOCHS,
                           "default": 300},
                "learning_rate": {"type": "number", "exclusiveMinimum": 0, "default": 0.1},
                "l2": {"type": "number", "minimum": 0, "default": 0.0001},
                "output_dir": {"type": "string", "default": "/artifacts/model"},
                "checkpoint_every": {"type": "integer", "minimum": 1, "default": 1,
                                     "description": "Epochs between checkpoint heartbeats."},
            },
            "required": ["train", "test", "target"],
            "additionalProperties": false,
        }),
        json!({
            "type": "object",
            "properties": {
                "model": {
                    "type": "object",
                    "properties": {"path": {"type": "string"}, "bytes": {"type": "integer"}},
                    "required": ["path", "bytes"],
                },
                "metrics": metrics,
                "epochs_run": {"type": "integer", "minimum": 0,
                               "description": "Epochs trained by this attempt."},
                "resumed_from_epoch": {"type": ["integer", "null"]},
                "train_rows": {"type": "integer", "minimum": 1},
                "test_rows": {"type": "integer", "minimum": 1},
            },
            "required": ["model", "metrics", "epochs_run", "resumed_from_epoch", "train_rows",
                         "test_rows"],
        }),
    )
}

fn evaluate_model() -> Operation {
    Operation::new(
        "evaluate_model",
        "Scores a model.json written by train_model on a labelled CSV with the model's \
         feature columns (same names, same order) and its target column: predicts every row \
         and reports the metrics train_model reports for its test split. \
         Errors: InvalidInput InvalidInput, InvalidParameter, ArtifactNotFound, InvalidModel, \
         UnsupportedModelFormat, ColumnNotFound, HeaderMismatch, NonNumericValue, \
         MalformedCsv, NoFeatures, NoRows, UnknownClass; Retryable ArtifactReadFailed.",
        json!({
            "type": "object",
            "properties": {
                "model": {"type": "string", "description": "Path of model.json \
                          (train_model's model.path)."},
                "data": {"type": "string", "description": "Path of a CSV with the model's \
                         feature columns and the target column."},
                "target": {"type": "string", "description": "Class column; defaults to the \
                           one recorded in the model."},
            },
            "required": ["model", "data"],
            "additionalProperties": false,
        }),
        json!({
            "type": "object",
            "properties": {
                "metrics": metrics_schema(),
                "rows": {"type": "integer", "minimum": 1},
                "confusion_matrix": confusion_schema(),
                "classes": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["metrics", "rows", "confusion_matrix", "classes"],
        }),
    )
}

fn register_model() -> Operation {
    let entry = json!({
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "integer", "minimum": 1},
            "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "source": {"type": "string", "description": "The model path registered from."},
            "metrics": {"type": ["object", "null"]},
            "note": {"type": ["string", "null"]},
        },
        "required": ["name", "version", "sha256", "source", "metrics", "note"],
    });
    Operation::new(
        "register_model",
        "Copies a model.json into <registry_dir>/<name>/v<N>/model.json, N one above the \
         highest existing version (never overwriting one, also under concurrent \
         registrations), and writes entry.json beside it (written last: a version with an \
         entry.json is complete). \
         Errors: InvalidInput InvalidInput, InvalidName, ArtifactNotFound, InvalidModel, \
         UnsupportedModelFormat, OutputNotWritable; Retryable ArtifactReadFailed, \
         ArtifactWriteFailed, RegistryBusy.",
        json!({
            "type": "object",
            "properties": {
                "model": {"type": "string", "description": "Path of model.json."},
                "name": {"type": "string", "pattern": "^[a-z0-9_-]{1,64}$"},
                "registry_dir": {"type": "string", "default": "/artifacts/registry"},
                "metrics": {"type": "object", "description": "Recorded in the entry as given."},
                "note": {"type": "string"},
            },
            "required": ["model", "name"],
            "additionalProperties": false,
        }),
        json!({
            "type": "object",
            "properties": {
                "entry": entry,
                "path": {"type": "string", "description": "Path of entry.json."},
                "model_path": {"type": "string", "description": "Path of the registered copy."},
            },
            "required": ["entry", "path", "model_path"],
        }),
    )
}

fn confusion_schema() -> Value {
    json!({
        "description": "confusion_matrix[true][predicted], in classes order.",
        "type": "array",
        "items": {"type": "array", "items": {"type": "integer"}},
    })
}

/// Metrics of one evaluated set (`Evaluation::report`).
fn metrics_schema() -> Value {
    let number = json!({"type": "number"});
    json!({
        "type": "object",
        "properties": {
            "accuracy": number, "precision_macro": number, "recall_macro": number,
            "f1_macro": number, "log_loss": number,
            "classes": {"type": "array", "items": {"type": "string"}},
            "confusion_matrix": confusion_schema(),
            "per_class": {"type": "array", "items": {
                "type": "object",
                "properties": {"class": {"type": "string"}, "precision": number,
                               "recall": number, "f1": number,
                               "support": {"type": "integer"}},
            }},
        },
        "required": ["accuracy", "precision_macro", "recall_macro", "f1_macro", "log_loss",
                     "confusion_matrix"],
    })
}
