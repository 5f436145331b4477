//! `model.json`: what `train_model` writes and `evaluate_model` / `register_model` read. One
//! type serves both directions, so the reader cannot drift from the writer.

use std::fs;

use mlx_plugin_sdk::PluginError;
use mlx_tabular::FeatureSpec;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::families::{Fitted, Task};
use crate::files;

pub const FORMAT: &str = "mlx-trainer-model";
/// 2: any family (smartcore), features encoded by a stored FeatureSpec. Version 1 files
/// (`mlx-softmax-regression`) came from the hand-written trainer and are refused with a
/// message to retrain.
pub const FORMAT_VERSION: u64 = 2;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    pub format: String,
    pub format_version: u64,
    /// The target column; none for clustering.
    #[serde(default)]
    pub target: Option<String>,
    /// Class names in index order (classification), else empty.
    #[serde(default)]
    pub classes: Vec<String>,
    /// How raw columns become the model's inputs (imputation, one-hot, scaling), learned
    /// from the training split only.
    pub features: FeatureSpec,
    /// The family, its hyperparameters, the task and the learned parameters.
    pub model: Fitted,
    // Provenance for people; prediction does not need them, so their absence is no error.
    #[serde(default)]
    pub training: Value,
    #[serde(default)]
    pub metrics: Value,
}

impl ModelFile {
    /// Pretty JSON with keys sorted (through `Value`), as the file has always been written.
    pub fn to_bytes(&self) -> Result<Vec<u8>, PluginError> {
        serde_json::to_value(self)
            .and_then(|v| serde_json::to_vec_pretty(&v))
            .map_err(|e| PluginError::permanent("ModelNotSerializable", e.to_string()))
    }

    /// `{family, hyperparameters}`, as train_model's input names them, defaults filled in.
    pub fn spec_json(&self) -> Value {
        json!(self.model.spec())
    }
}

/// The bytes of the model file at `path`.
pub fn read(path: &str) -> Result<Vec<u8>, PluginError> {
    fs::read(path).map_err(|e| {
        files::read_error(
            path,
            e,
            "Pass the model path train_model returned; it must be inside a directory granted \
             to the trainer (usually /artifacts)",
        )
    })
}

/// Parses and checks a model file. Its shapes are checked here because a model that
/// deserializes but does not fit together would otherwise fail far from the cause.
pub fn parse(bytes: &[u8], path: &str) -> Result<ModelFile, PluginError> {
    let invalid = |problem: String| {
        PluginError::invalid_input(
            "InvalidModel",
            format!("{path} is not a usable model: {problem}"),
        )
        .with_details(json!({"path": path}))
    };
    let value: Value = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
    // Checked before the full shape, so another format gets this message, not a field error.
    let (format, version) = (&value["format"], &value["format_version"]);
    if format != FORMAT || version != FORMAT_VERSION {
        return Err(PluginError::invalid_input(
            "UnsupportedModelFormat",
            format!(
                "{path} has format {format} version {version}; this trainer reads {FORMAT:?} \
                 version {FORMAT_VERSION}. Train the model again with this trainer"
            ),
        )
        .with_details(json!({"path": path, "format": format, "format_version": version})));
    }
    let model: ModelFile = serde_json::from_value(value).map_err(|e| invalid(e.to_string()))?;
    check_shapes(&model).map_err(invalid)?;
    Ok(model)
}

fn check_shapes(m: &ModelFile) -> Result<(), String> {
    let width = m.features.output_names().len();
    if width != m.model.features() {
        return Err(format!(
            "its feature encoding gives {width} inputs but the model takes {}",
            m.model.features()
        ));
    }
    match m.model.task() {
        Task::Classification { classes } => {
            let mut distinct = m.classes.clone();
            distinct.sort_unstable();
            distinct.dedup();
            if classes < 2 || m.classes.len() != classes || distinct.len() != classes {
                return Err(format!(
                    "a classifier of {classes} classes needs as many distinct class names, \
                     has {:?}",
                    m.classes
                ));
            }
            if m.target.is_none() {
                return Err("a classifier must record its target column".into());
            }
        }
        Task::Regression if m.target.is_none() => {
            return Err("a regressor must record its target column".into());
        }
        _ => {}
    }
    Ok(())
}
