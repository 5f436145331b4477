//! The `train_model` operation: read the split, encode features, train any family in
//! checkpointed rounds, score the test split, write model.json.

use std::fs;
use std::path::Path;

use mlx_plugin_sdk::{Context, ErrorDecl, JsonSchema, Operation, PluginError, log};
use mlx_tabular::{FeatureOptions, FeatureSpec, Missing, Table};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::checkpoint::{self, Journal, Progress};
use crate::data;
use crate::errors::{FAMILIES, SCORING, concat, total};
use crate::evaluation::{self, Metrics, Truth};
use crate::families::{Fit, Fitted, LogisticParams, ModelSpec, Target, Task};
use crate::files;
use crate::model_file::{FORMAT, FORMAT_VERSION, ModelFile};
use crate::report;

/// `train_model`.
pub struct TrainModel;

impl Operation for TrainModel {
    const NAME: &str = "train_model";
    const DOC: &str = "Trains one model family (smartcore) on a CSV or Parquet train split: \
                       features encoded from the train split only (one-hot categories, \
                       imputation or refusal of missing values, scaling), ensembles trained \
                       tree by tree or round by round, appended to a checkpoint journal \
                       every checkpoint_every rounds with a heartbeat every round, resuming \
                       from the journal a previous attempt left. Scores the test split and writes \
                       model.json (family, hyperparameters, encoding, parameters, metrics).";
    const ERRORS: &[ErrorDecl] = &TRAIN_ERRORS;
    type Input = TrainInput;
    type Output = TrainOutput;

    fn run(input: TrainInput, ctx: &Context) -> Result<TrainOutput, PluginError> {
        train(input, ctx)
    }
}

const OWN_ERRORS: &[ErrorDecl] = &[
    ErrorDecl::invalid_input("TooFewClasses", "the train split has fewer than 2 classes"),
    ErrorDecl::permanent("ModelNotSerializable", ""),
    ErrorDecl::permanent("CheckpointFailed", ""),
    ErrorDecl::CANCELLED,
];
const PARTS: &[&[ErrorDecl]] = &[mlx_tabular::ERRORS, FAMILIES, SCORING, OWN_ERRORS];
const TRAIN_ERRORS: [ErrorDecl; total(PARTS)] = concat(PARTS);

/// What to learn from the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    Classification,
    Regression,
    Clustering,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainInput {
    /// Path of the training split, CSV or Parquet (csv plugin output).
    pub train: String,
    /// Path of the test split, same columns, CSV or Parquet.
    pub test: String,
    /// The class (classification) or value (regression) column; unused by clustering.
    #[serde(default)]
    pub target: Option<String>,
    /// Default: clustering for kmeans, classification otherwise.
    #[serde(default)]
    pub task: Option<TaskKind>,
    /// The family and its hyperparameters. Default: logistic_regression with its defaults.
    #[serde(default = "default_model")]
    pub model: ModelSpec,
    /// Feature columns, in this order. Default: every column but the target.
    #[serde(default)]
    #[schemars(length(min = 1))]
    pub columns: Option<Vec<String>>,
    /// Missing feature values: refuse (an error naming the column and row) or impute (the
    /// train split's mean, or most frequent category).
    #[serde(default)]
    pub missing: Missing,
    /// Standardize numeric features with the train split's mean and deviation. Default: on
    /// for logistic_regression, linear_regression, ridge and kmeans; off for trees.
    #[serde(default)]
    pub scale: Option<bool>,
    #[serde(default = "default_output_dir")]
    pub output_dir: String,
    /// Rounds (trees, boosting rounds) between appends to the checkpoint journal; every
    /// round heartbeats.
    #[serde(default = "default_checkpoint_every")]
    #[schemars(range(min = 1, max = 100_000))]
    pub checkpoint_every: u32,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct TrainOutput {
    pub model: ModelRef,
    pub family: String,
    pub task: TaskKind,
    /// The test split's metrics.
    pub metrics: Metrics,
    /// The same metrics on the train split (how well the model fits what it saw).
    pub train_metrics: Metrics,
    pub rounds: Rounds,
    #[schemars(range(min = 1))]
    pub train_rows: u64,
    #[schemars(range(min = 1))]
    pub test_rows: u64,
    /// Model inputs after encoding (one-hot columns count one per category).
    pub features: u64,
    /// Training loss by round, where the family reports one.
    pub loss_curve: Option<String>,
}

/// The written model.json.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ModelRef {
    pub path: String,
    pub bytes: u64,
    #[schemars(regex(pattern = "^[0-9a-f]{64}$"))]
    pub sha256: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Rounds {
    /// Rounds the family trains: trees, boosting rounds; 1 for single-fit families.
    pub total: u32,
    /// Rounds trained by this attempt.
    pub run: u32,
    /// The round a previous attempt's checkpoint had reached, when this attempt resumed.
    pub resumed_from: Option<u32>,
    pub final_loss: Option<f64>,
}

fn default_model() -> ModelSpec {
    ModelSpec::LogisticRegression(LogisticParams::default())
}
fn default_output_dir() -> String {
    "/artifacts/model".into()
}
fn default_checkpoint_every() -> u32 {
    10
}

/// Families whose fit depends on the features' scale.
fn scales_by_default(spec: &ModelSpec) -> bool {
    matches!(
        spec,
        ModelSpec::LogisticRegression(_)
            | ModelSpec::LinearRegression(_)
            | ModelSpec::Ridge(_)
            | ModelSpec::Kmeans(_)
    )
}

/// The split, encoded, with its targets.
struct Prepared {
    features: FeatureSpec,
    x_train: crate::families::Matrix,
    x_test: crate::families::Matrix,
    y_train: Target,
    y_test: Target,
    classes: Vec<String>,
    task: Task,
    kind: TaskKind,
}

fn prepare(input: &TrainInput) -> Result<Prepared, PluginError> {
    let kind = input.task.unwrap_or(match input.model {
        ModelSpec::Kmeans(_) => TaskKind::Clustering,
        _ => TaskKind::Classification,
    });
    let target = match (kind, &input.target) {
        (TaskKind::Clustering, _) => None,
        (_, Some(t)) => Some(t.as_str()),
        (_, None) => {
            return Err(PluginError::invalid_input(
                "MissingTarget",
                format!("{kind:?} needs \"target\", the column to learn").to_lowercase(),
            ));
        }
    };
    let train = data::load(&input.train)?;
    let test = data::load(&input.test)?;
    let options = FeatureOptions {
        missing: input.missing,
        scale: input
            .scale
            .unwrap_or_else(|| scales_by_default(&input.model)),
    };
    // A clustering run may still be given a target (e.g. the class): it is no feature.
    let exclude = input.target.as_deref();
    let features = FeatureSpec::fit(&train, exclude, input.columns.as_deref(), &options)?;
    let x_train = features.transform(&train)?;
    let x_test = features.transform(&test)?;
    let (y_train, y_test, classes, task) = targets(kind, target, &train, &test, input)?;
    Ok(Prepared {
        features,
        x_train,
        x_test,
        y_train,
        y_test,
        classes,
        task,
        kind,
    })
}

fn targets(
    kind: TaskKind,
    target: Option<&str>,
    train: &Table,
    test: &Table,
    input: &TrainInput,
) -> Result<(Target, Target, Vec<String>, Task), PluginError> {
    let Some(target) = target else {
        return Ok((Target::None, Target::None, Vec::new(), Task::Clustering));
    };
    if kind == TaskKind::Regression {
        let y_train = data::target_values(train, target, &input.train)?;
        let y_test = data::target_values(test, target, &input.test)?;
        return Ok((
            Target::Values(y_train),
            Target::Values(y_test),
            Vec::new(),
            Task::Regression,
        ));
    }
    // Classes come from the train split: a model cannot predict a class it never saw, so a
    // test label outside them is reported (UnknownClass) rather than silently scored wrong.
    let classes = data::classes(&[train], target)?;
    if classes.len() < 2 {
        return Err(PluginError::invalid_input(
            "TooFewClasses",
            format!(
                "{} has {classes:?} in {target:?}: need at least 2 classes",
                input.train
            ),
        ));
    }
    let y_train = data::class_indices(train, target, &classes, &input.train)?;
    let y_test = data::class_indices(test, target, &classes, &input.test)?;
    let task = Task::Classification {
        classes: classes.len(),
    };
    Ok((
        Target::Classes(y_train),
        Target::Classes(y_test),
        classes,
        task,
    ))
}

fn truth(y: &Target) -> Truth<'_> {
    match y {
        Target::Classes(c) => Truth::Classes(c),
        Target::Values(v) => Truth::Values(v),
        Target::None => Truth::None,
    }
}

/// A finished training: the model, its rounds and its loss curve.
struct Trained {
    fitted: Fitted,
    rounds: Rounds,
    losses: Vec<(u32, f64)>,
}

/// Where a previous attempt's journal left the training.
struct Resumed {
    fit: Fit,
    /// The journal, to go on appending to.
    journal: Journal,
    losses: Vec<(u32, f64)>,
}

/// The previous attempt's journal, if it is of this training.
fn resume(input: &TrainInput, p: &Prepared) -> Result<Option<Resumed>, PluginError> {
    let Some(previous) = checkpoint::previous(&input.output_dir) else {
        return Ok(None);
    };
    let losses = previous
        .rounds
        .iter()
        .filter_map(|r| Some((r.round, r.loss?)))
        .collect();
    let records = previous.rounds.iter().map(|r| r.record.clone()).collect();
    match Fit::resume(
        &input.model,
        p.task,
        &p.x_train,
        &p.y_train,
        &previous.header,
        records,
    ) {
        Ok(fit) => {
            let journal = Journal::continue_from(&input.output_dir, &previous)?;
            log::info(
                "resuming from checkpoint",
                &[("round", &previous.rounds.len())],
            );
            Ok(Some(Resumed {
                fit,
                journal,
                losses,
            }))
        }
        Err(e) => {
            log::warn(
                "checkpoint does not fit this training; training from the start",
                &[("reason", &e.message)],
            );
            Ok(None)
        }
    }
}

/// Trains in rounds from the previous attempt's journal (if it is of this training), with a
/// heartbeat every round and the rounds appended to the journal every `checkpoint_every`.
fn fit(input: &TrainInput, p: &Prepared, ctx: &Context) -> Result<Trained, PluginError> {
    input.model.validate(p.task)?;
    let (mut fit, mut journal, mut losses, resumed_from) = match resume(input, p)? {
        Some(Resumed {
            fit,
            journal,
            losses,
        }) => {
            let done = fit.rounds_done();
            (fit, Some(journal), losses, Some(done))
        }
        None => (
            Fit::start(&input.model, p.task, &p.x_train, &p.y_train)?,
            None,
            Vec::new(),
            None,
        ),
    };
    let total = fit.rounds_total();
    let log_every = (total / 10).max(1);
    let mut run = 0;
    let mut pending = Vec::new();
    let mut last_file = None;
    while fit.rounds_done() < total {
        let report = fit.step()?;
        run += 1;
        if let Some(loss) = report.loss {
            losses.push((report.round, loss));
        }
        let last = report.round >= total;
        if report.round.is_multiple_of(log_every) || last {
            log::info(
                "round",
                &[
                    ("round", &report.round),
                    ("of", &total),
                    (
                        "loss",
                        &report.loss.map_or("none".into(), |l| l.to_string()),
                    ),
                ],
            );
        }
        // The last round needs no checkpoint: the model file follows at once.
        if !last {
            pending.push(checkpoint::Round {
                round: report.round,
                loss: report.loss,
                record: fit.record(report.round)?,
            });
            if report.round.is_multiple_of(input.checkpoint_every) {
                let journal = match &mut journal {
                    Some(j) => j,
                    None => journal.insert(Journal::create(&input.output_dir, &fit.header())?),
                };
                last_file = Some(journal.append(&pending)?);
                pending.clear();
            }
        }
        let progress = Progress {
            round: report.round,
            of: total,
            loss: report.loss,
            checkpoint: last_file.clone(),
        };
        if ctx.heartbeat(&progress) {
            return Err(PluginError::cancelled(format!(
                "training cancelled after round {}",
                report.round
            ))
            .with_details(json!({"round": report.round})));
        }
    }
    let final_loss = losses.last().map(|(_, l)| *l);
    Ok(Trained {
        fitted: fit.finish()?,
        rounds: Rounds {
            total,
            run,
            resumed_from,
            final_loss,
        },
        losses,
    })
}

pub fn train(input: TrainInput, ctx: &Context) -> Result<TrainOutput, PluginError> {
    let p = prepare(&input)?;
    let Trained {
        fitted,
        rounds,
        losses,
    } = fit(&input, &p, ctx)?;
    let test = evaluation::score(&fitted, &p.x_test, &truth(&p.y_test), &p.classes)?;
    let train = evaluation::score(&fitted, &p.x_train, &truth(&p.y_train), &p.classes)?;
    let loss_curve = write_loss_curve(&input.output_dir, &losses)?;
    let family = fitted.spec().family().to_string();
    let document = ModelFile {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        target: input
            .target
            .clone()
            .filter(|_| p.kind != TaskKind::Clustering),
        classes: p.classes.clone(),
        features: p.features.clone(),
        model: fitted,
        training: json!({
            "rounds": rounds, "losses": losses, "train_rows": p.x_train.rows,
            "test_rows": p.x_test.rows, "train": input.train, "test": input.test,
        }),
        metrics: json!({"test": test.metrics, "train": train.metrics}),
    };
    let model = write_model(&input.output_dir, &document)?;
    // The journal is superseded by the model; a leftover would only cost disk.
    let _ = fs::remove_file(checkpoint::path(&input.output_dir));
    log::info(
        "model trained",
        &[("family", &family), ("path", &model.path)],
    );
    Ok(TrainOutput {
        model,
        family,
        task: p.kind,
        metrics: test.metrics,
        train_metrics: train.metrics,
        rounds,
        train_rows: p.x_train.rows as u64,
        test_rows: p.x_test.rows as u64,
        features: p.x_train.cols as u64,
        loss_curve,
    })
}

fn write_loss_curve(
    output_dir: &str,
    losses: &[(u32, f64)],
) -> Result<Option<String>, PluginError> {
    if losses.len() < 2 {
        return Ok(None);
    }
    let rounds: Vec<usize> = losses.iter().map(|(r, _)| *r as usize).collect();
    let values: Vec<f64> = losses.iter().map(|(_, l)| *l).collect();
    let svg = report::loss_curve_svg(&rounds, &values)
        .map_err(|e| PluginError::permanent("MetricsFailed", e.to_string()))?;
    let path = Path::new(output_dir).join("loss_curve.svg");
    fs::create_dir_all(output_dir).map_err(|e| files::write_error(Path::new(output_dir), e))?;
    fs::write(&path, svg).map_err(|e| files::write_error(&path, e))?;
    Ok(Some(path.display().to_string()))
}

fn write_model(output_dir: &str, document: &ModelFile) -> Result<ModelRef, PluginError> {
    let path = Path::new(output_dir).join("model.json");
    let text = document.to_bytes()?;
    fs::create_dir_all(output_dir).map_err(|e| files::write_error(&path, e))?;
    fs::write(&path, &text).map_err(|e| files::write_error(&path, e))?;
    Ok(ModelRef {
        path: path.display().to_string(),
        bytes: text.len() as u64,
        sha256: checkpoint::hex(&Sha256::digest(&text)),
    })
}
