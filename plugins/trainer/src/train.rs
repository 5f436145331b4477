//! The `train_model` operation: load the split, train with checkpoints, evaluate, save.

use std::fs;
use std::path::Path;

use mlx_plugin_sdk::{Context, PluginError, log};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use mlx_plugin_sdk::labels::sorted_labels;

use crate::data;
use crate::files;
use crate::metrics::{argmax, evaluate};
use crate::model::{Softmax, Standardizer};
use crate::model_file::{FORMAT, FORMAT_VERSION, ModelFile};

pub const MAX_EPOCHS: u32 = 100_000;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrainInput {
    pub train: String,
    pub test: String,
    pub target: String,
    #[serde(default = "default_epochs")]
    pub epochs: u32,
    #[serde(default = "default_learning_rate")]
    pub learning_rate: f64,
    #[serde(default = "default_l2")]
    pub l2: f64,
    #[serde(default = "default_output_dir")]
    pub output_dir: String,
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: u32,
}

fn default_epochs() -> u32 {
    300
}
fn default_learning_rate() -> f64 {
    0.1
}
fn default_l2() -> f64 {
    1e-4
}
fn default_output_dir() -> String {
    "/artifacts/model".into()
}
fn default_checkpoint_every() -> u32 {
    1
}

/// Heartbeat details: progress for people, and the point the next attempt resumes from.
#[derive(Debug, Serialize, Deserialize)]
struct Checkpoint {
    epoch: u32,
    loss: f64,
    weights: Vec<Vec<f64>>,
    bias: Vec<f64>,
}

fn invalid(message: String) -> PluginError {
    PluginError::invalid_input("InvalidParameter", message)
}

fn validate(input: &TrainInput) -> Result<(), PluginError> {
    if input.epochs == 0 || input.epochs > MAX_EPOCHS {
        return Err(invalid(format!(
            "epochs must be 1..={MAX_EPOCHS}, got {}",
            input.epochs
        )));
    }
    if !(input.learning_rate.is_finite() && input.learning_rate > 0.0) {
        return Err(invalid(format!(
            "learning_rate must be > 0, got {}",
            input.learning_rate
        )));
    }
    if !(input.l2.is_finite() && input.l2 >= 0.0) {
        return Err(invalid(format!("l2 must be >= 0, got {}", input.l2)));
    }
    if input.checkpoint_every == 0 {
        return Err(invalid("checkpoint_every must be >= 1".into()));
    }
    Ok(())
}

/// A checkpoint from a previous attempt, if its shapes fit this model.
fn resume_point(ctx: &Context, classes: usize, features: usize) -> Option<Checkpoint> {
    let cp: Checkpoint = ctx.last_heartbeat()?;
    let fits = cp.epoch >= 1
        && cp.bias.len() == classes
        && cp.weights.len() == classes
        && cp.weights.iter().all(|w| w.len() == features)
        && cp
            .weights
            .iter()
            .flatten()
            .chain(&cp.bias)
            .all(|v| v.is_finite());
    fits.then_some(cp)
}

pub fn train(input: TrainInput, ctx: &Context) -> Result<Value, PluginError> {
    validate(&input)?;
    let train = data::load(&input.train, &input.target)?;
    let test = data::load(&input.test, &input.target)?;
    if train.header != test.header {
        return Err(PluginError::invalid_input(
            "HeaderMismatch",
            format!(
                "{} and {} have different columns: {:?} vs {:?}",
                input.train, input.test, train.header, test.header
            ),
        ));
    }
    if train.x.is_empty() || test.x.is_empty() {
        return Err(PluginError::invalid_input(
            "NoRows",
            "the train and test sets must both have rows",
        ));
    }
    let classes = sorted_labels(train.labels.iter().chain(&test.labels).map(String::as_str));
    if classes.len() < 2 {
        return Err(PluginError::invalid_input(
            "TooFewClasses",
            format!("need at least 2 classes, found {classes:?}"),
        ));
    }
    let y_train = train.class_indices(&classes, &input.train)?;
    let y_test = test.class_indices(&classes, &input.test)?;
    let scaler = Standardizer::fit(&train.x);
    let (x_train, x_test) = (scaler.transform(&train.x), scaler.transform(&test.x));

    let mut model = Softmax::zeros(classes.len(), train.features.len());
    let mut resumed_from = None;
    if let Some(cp) = resume_point(ctx, classes.len(), train.features.len()) {
        log::info(
            "resuming from checkpoint",
            &[("epoch", &cp.epoch), ("loss", &cp.loss)],
        );
        resumed_from = Some(cp.epoch);
        model = Softmax {
            weights: cp.weights,
            bias: cp.bias,
        };
    }
    let first = resumed_from.map_or(1, |e| e + 1);
    let log_every = (input.epochs / 10).max(1);
    let mut epochs_run = 0;
    for epoch in first..=input.epochs {
        let loss = model.step(&x_train, &y_train, input.learning_rate, input.l2);
        epochs_run += 1;
        if !loss.is_finite() {
            return Err(PluginError::invalid_input(
                "TrainingDiverged",
                format!(
                    "the loss became {loss} at epoch {epoch}; lower learning_rate (now {})",
                    input.learning_rate
                ),
            ));
        }
        if epoch.is_multiple_of(log_every) || epoch == input.epochs {
            log::info(
                "epoch",
                &[("epoch", &epoch), ("of", &input.epochs), ("loss", &loss)],
            );
        }
        if epoch.is_multiple_of(input.checkpoint_every) || epoch == input.epochs {
            let cp = Checkpoint {
                epoch,
                loss,
                weights: model.weights.clone(),
                bias: model.bias.clone(),
            };
            if ctx.heartbeat(&cp) {
                return Err(PluginError::cancelled(format!(
                    "training cancelled after epoch {epoch}"
                ))
                .with_details(json!({"epoch": epoch})));
            }
        }
    }

    let evaluation = evaluate(&model.predict(&x_test), &y_test, &classes);
    let train_probs = model.predict(&x_train);
    let train_correct = train_probs
        .iter()
        .zip(&y_train)
        .filter(|(p, y)| argmax(p) == **y)
        .count();
    let mut metrics = evaluation.report(&classes);
    if let Value::Object(m) = &mut metrics {
        m.insert(
            "train_accuracy".into(),
            json!(train_correct as f64 / y_train.len() as f64),
        );
        m.insert(
            "train_log_loss".into(),
            json!(model.cross_entropy(&x_train, &y_train)),
        );
    }

    let document = ModelFile {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        target: Some(input.target.clone()),
        features: train.features,
        classes,
        standardization: scaler,
        weights: model.weights,
        bias: model.bias,
        hyperparameters: json!({
            "epochs": input.epochs, "learning_rate": input.learning_rate,
            "l2": input.l2, "checkpoint_every": input.checkpoint_every,
        }),
        training: json!({"resumed_from_epoch": resumed_from, "epochs_run": epochs_run}),
        metrics: metrics.clone(),
    };
    let (path, bytes) = write_model(&input.output_dir, &document)?;
    log::info(
        "model trained",
        &[("accuracy", &evaluation.accuracy), ("path", &path)],
    );
    Ok(json!({
        "model": {"path": path, "bytes": bytes},
        "metrics": metrics,
        "epochs_run": epochs_run,
        "resumed_from_epoch": resumed_from,
        "train_rows": y_train.len(),
        "test_rows": y_test.len(),
    }))
}

fn write_model(output_dir: &str, document: &ModelFile) -> Result<(String, usize), PluginError> {
    let path = Path::new(output_dir).join("model.json");
    let text = document.to_bytes();
    fs::create_dir_all(output_dir).map_err(|e| files::write_error(&path, e))?;
    fs::write(&path, &text).map_err(|e| files::write_error(&path, e))?;
    Ok((path.display().to_string(), text.len()))
}
