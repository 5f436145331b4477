//! The `train_model` operation: load the split, train with checkpoints, evaluate, save.

use std::fs;
use std::path::Path;

use mlx_plugin_sdk::labels::sorted_labels;
use mlx_plugin_sdk::{Context, ErrorDecl, JsonSchema, Operation, PluginError, log};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::data;
use crate::files;
use crate::metrics::{Report, argmax, evaluate};
use crate::model::{Softmax, Standardizer};
use crate::model_file::{FORMAT, FORMAT_VERSION, ModelFile};

pub const MAX_EPOCHS: u32 = 100_000;

/// `train_model`.
pub struct TrainModel;

impl Operation for TrainModel {
    const NAME: &str = "train_model";
    const DOC: &str = "Multinomial logistic regression by full-batch gradient descent on \
                       standardized features (fitted on train only) with L2 regularization. \
                       Heartbeats a checkpoint {epoch, loss, weights, bias} every \
                       checkpoint_every epochs and resumes from the previous attempt's \
                       checkpoint. Evaluates on test and writes model.json.";
    const ERRORS: &[ErrorDecl] = &[
        ErrorDecl::invalid_input("InvalidParameter", "a hyperparameter is out of range"),
        ErrorDecl::invalid_input(
            "ArtifactNotFound",
            "train or test is missing or not granted",
        ),
        ErrorDecl::invalid_input("ColumnNotFound", "target is not in the header"),
        ErrorDecl::invalid_input("HeaderMismatch", "train and test have other columns"),
        ErrorDecl::invalid_input("NonNumericValue", "a feature cell is not a number"),
        ErrorDecl::invalid_input("MalformedCsv", ""),
        ErrorDecl::invalid_input("NoFeatures", "no column besides the target"),
        ErrorDecl::invalid_input("NoRows", "train or test has no rows"),
        ErrorDecl::invalid_input("TooFewClasses", "fewer than 2 classes"),
        ErrorDecl::invalid_input("TrainingDiverged", "the loss is no longer finite"),
        ErrorDecl::invalid_input("OutputNotWritable", "output_dir is not granted read-write"),
        ErrorDecl::retryable("ArtifactReadFailed", ""),
        ErrorDecl::retryable("ArtifactWriteFailed", ""),
        ErrorDecl::CANCELLED,
    ];
    type Input = TrainInput;
    type Output = TrainOutput;

    fn run(input: TrainInput, ctx: &Context) -> Result<TrainOutput, PluginError> {
        train(input, ctx)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainInput {
    /// Path of train.csv (csv plugin output).
    pub train: String,
    /// Path of test.csv, same columns.
    pub test: String,
    /// Class column; all others are numeric features.
    pub target: String,
    #[serde(default = "default_epochs")]
    #[schemars(range(min = 1, max = MAX_EPOCHS))]
    pub epochs: u32,
    #[serde(default = "default_learning_rate")]
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub learning_rate: f64,
    #[serde(default = "default_l2")]
    #[schemars(range(min = 0))]
    pub l2: f64,
    #[serde(default = "default_output_dir")]
    pub output_dir: String,
    /// Epochs between checkpoint heartbeats.
    #[serde(default = "default_checkpoint_every")]
    #[schemars(range(min = 1))]
    pub checkpoint_every: u32,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct TrainOutput {
    pub model: ModelRef,
    pub metrics: TrainMetrics,
    /// Epochs trained by this attempt.
    pub epochs_run: u32,
    pub resumed_from_epoch: Option<u32>,
    #[schemars(range(min = 1))]
    pub train_rows: u64,
    #[schemars(range(min = 1))]
    pub test_rows: u64,
}

/// The written model.json.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ModelRef {
    pub path: String,
    pub bytes: u64,
}

/// The test split's metrics, and how well the model fits its own training set.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct TrainMetrics {
    #[serde(flatten)]
    pub test: Report,
    pub train_accuracy: f64,
    pub train_log_loss: f64,
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

pub fn train(input: TrainInput, ctx: &Context) -> Result<TrainOutput, PluginError> {
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
    let accuracy = evaluation.accuracy;
    let metrics = TrainMetrics {
        test: evaluation.report(&classes),
        train_accuracy: train_correct as f64 / y_train.len() as f64,
        train_log_loss: model.cross_entropy(&x_train, &y_train),
    };

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
        metrics: json!(metrics),
    };
    let (path, bytes) = write_model(&input.output_dir, &document)?;
    log::info("model trained", &[("accuracy", &accuracy), ("path", &path)]);
    Ok(TrainOutput {
        model: ModelRef { path, bytes },
        metrics,
        epochs_run,
        resumed_from_epoch: resumed_from,
        train_rows: y_train.len() as u64,
        test_rows: y_test.len() as u64,
    })
}

fn write_model(output_dir: &str, document: &ModelFile) -> Result<(String, u64), PluginError> {
    let path = Path::new(output_dir).join("model.json");
    let text = document.to_bytes();
    fs::create_dir_all(output_dir).map_err(|e| files::write_error(&path, e))?;
    fs::write(&path, &text).map_err(|e| files::write_error(&path, e))?;
    Ok((path.display().to_string(), text.len() as u64))
}
