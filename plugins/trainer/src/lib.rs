//! `trainer` plugin: trains a softmax logistic regression on the csv plugin's train/test
//! artifacts, checkpointing through heartbeats so a retried attempt resumes where the last
//! one stopped, and writes the model with its test metrics as JSON.

mod data;
mod metrics;
mod model;
mod train;

#[cfg(test)]
mod pipeline_tests;

use mlx_plugin_sdk::{Context, Operation, Plugin, PluginError, PluginInfo, parse_input};
use serde_json::{Value, json};

pub struct Trainer;

impl Plugin for Trainer {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "trainer".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Trains and evaluates classification models on CSV artifacts.".into(),
            operations: vec![Operation::new(
                "train_model",
                "Multinomial logistic regression by full-batch gradient descent on standardized \
                 features (fitted on train only) with L2 regularization. Heartbeats a checkpoint \
                 {epoch, loss, weights, bias} every checkpoint_every epochs and resumes from the \
                 previous attempt's checkpoint. Evaluates on test and writes model.json. \
                 Errors: InvalidInput InvalidParameter, ArtifactNotFound, ColumnNotFound, \
                 HeaderMismatch, NonNumericValue, MalformedCsv, NoFeatures, NoRows, \
                 TooFewClasses, TrainingDiverged, OutputNotWritable; Retryable \
                 ArtifactReadFailed, ArtifactWriteFailed, Cancelled.",
                input_schema(),
                output_schema(),
            )],
        }
    }

    fn invoke(operation: &str, input: Value, ctx: &Context) -> Result<Value, PluginError> {
        match operation {
            "train_model" => train::train(parse_input(input)?, ctx),
            other => Err(PluginError::unknown_operation(other)),
        }
    }
}

fn input_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "train": {"type": "string", "description": "Path of train.csv (csv plugin output)."},
            "test": {"type": "string", "description": "Path of test.csv, same columns."},
            "target": {"type": "string", "description": "Class column; all others are \
                       numeric features."},
            "epochs": {"type": "integer", "minimum": 1, "maximum": train::MAX_EPOCHS,
                       "default": 300},
            "learning_rate": {"type": "number", "exclusiveMinimum": 0, "default": 0.1},
            "l2": {"type": "number", "minimum": 0, "default": 0.0001},
            "output_dir": {"type": "string", "default": "/artifacts/model"},
            "checkpoint_every": {"type": "integer", "minimum": 1, "default": 1,
                                 "description": "Epochs between checkpoint heartbeats."},
        },
        "required": ["train", "test", "target"],
        "additionalProperties": false,
    })
}

fn output_schema() -> Value {
    let number = json!({"type": "number"});
    json!({
        "type": "object",
        "properties": {
            "model": {
                "type": "object",
                "properties": {"path": {"type": "string"}, "bytes": {"type": "integer"}},
                "required": ["path", "bytes"],
            },
            "metrics": {
                "type": "object",
                "properties": {
                    "accuracy": number, "precision_macro": number, "recall_macro": number,
                    "f1_macro": number, "log_loss": number, "train_accuracy": number,
                    "train_log_loss": number,
                    "classes": {"type": "array", "items": {"type": "string"}},
                    "confusion_matrix": {
                        "description": "confusion_matrix[true][predicted], in classes order.",
                        "type": "array",
                        "items": {"type": "array", "items": {"type": "integer"}},
                    },
                    "per_class": {"type": "array", "items": {
                        "type": "object",
                        "properties": {"class": {"type": "string"}, "precision": number,
                                       "recall": number, "f1": number,
                                       "support": {"type": "integer"}},
                    }},
                },
                "required": ["accuracy", "precision_macro", "recall_macro", "f1_macro",
                             "log_loss", "confusion_matrix", "train_accuracy"],
            },
            "epochs_run": {"type": "integer", "minimum": 0,
                           "description": "Epochs trained by this attempt."},
            "resumed_from_epoch": {"type": ["integer", "null"]},
            "train_rows": {"type": "integer", "minimum": 1},
            "test_rows": {"type": "integer", "minimum": 1},
        },
        "required": ["model", "metrics", "epochs_run", "resumed_from_epoch", "train_rows",
                     "test_rows"],
    })
}

mlx_plugin_sdk::export_plugin!(Trainer);
