//! Training in rounds, with checkpoints a retried attempt resumes from.

use mlx_plugin_sdk::PluginError;
use mlx_tabular::Matrix;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::boosting::Boosted;
use super::dense::{DataKey, TrainData, Y};
use super::error::{diverged, internal};
use super::fitted::{Fitted, Model};
use super::forest::{self, Trees};
use super::loss::{log_loss, mse};
use super::spec::ModelSpec;
use super::{Target, Task, kmeans, linear, tree};

/// Bumped when the state's serde form changes (ours or smartcore's), so that a checkpoint
/// written by another build is refused rather than misread.
const CHECKPOINT_VERSION: u32 = 2;

/// What one [`Fit::step`] did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoundReport {
    /// Rounds done, this one included (1 after the first).
    pub round: u32,
    /// Training loss after the round where it is cheap: log loss for logistic regression and
    /// classification boosting, mean squared error for linear, ridge and regression boosting.
    pub loss: Option<f64>,
}

/// The learned state so far.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum State {
    /// A family smartcore fits in one call (linear models, one tree, k-means): one round.
    Single(Option<Model>),
    Forest(Trees),
    Boosting(Boosted),
}

/// What a checkpoint journal begins with: the training it belongs to. A journal resumes only
/// the same spec, task, training data (by digest) and format; the rounds follow it as
/// [`Fit::record`]s.
#[derive(Debug, Serialize, Deserialize)]
pub struct Header {
    version: u32,
    spec: ModelSpec,
    task: Task,
    data: DataKey,
}

/// Training in progress: [`Fit::start`] or [`Fit::resume`], [`Fit::step`] until
/// [`Fit::rounds_done`] reaches [`Fit::rounds_total`] (saving [`Fit::record`]s in between),
/// then [`Fit::finish`].
#[derive(Debug)]
pub struct Fit {
    spec: ModelSpec,
    task: Task,
    data: TrainData,
    state: State,
    /// Boosting's raw training scores (rows × outputs). Recomputed from the trees on resume
    /// rather than checkpointed: they are as large as the targets, and cheap to rebuild.
    scores: Vec<f64>,
}

fn mismatch(reason: String) -> PluginError {
    PluginError::invalid_input(
        "CheckpointMismatch",
        format!("the checkpoint is not of this training: {reason}"),
    )
}

impl Fit {
    /// Checks the spec against the task and the data, and prepares round 1.
    pub fn start(spec: &ModelSpec, task: Task, x: &Matrix, y: &Target) -> Result<Fit, PluginError> {
        spec.validate(task)?;
        let data = TrainData::new(task, x, y)?;
        check_data(spec, &data)?;
        let state = match (spec, &data.y) {
            (ModelSpec::RandomForest(_), Y::Classes { classes, .. }) => {
                State::Forest(Trees::Classifier {
                    trees: Vec::new(),
                    classes: *classes,
                })
            }
            (ModelSpec::RandomForest(_), _) => State::Forest(Trees::Regressor(Vec::new())),
            (ModelSpec::GradientBoosting(p), Y::Classes { labels, classes }) => {
                State::Boosting(Boosted::classifier(p, labels, *classes))
            }
            (ModelSpec::GradientBoosting(p), Y::Values(y)) => {
                State::Boosting(Boosted::regressor(p, y))
            }
            _ => State::Single(None),
        };
        let mut fit = Fit {
            spec: spec.clone(),
            task,
            data,
            state,
            scores: Vec::new(),
        };
        fit.rebuild_scores()?;
        Ok(fit)
    }

    /// Continues the training a journal saved: `header`, then the [`Fit::record`]s of rounds
    /// 1, 2, … in order. Refuses (`CheckpointMismatch`) a journal of another spec, task or
    /// training data, of another build's format, or with a record that is not of this model;
    /// the caller then starts afresh.
    pub fn resume(
        spec: &ModelSpec,
        task: Task,
        x: &Matrix,
        y: &Target,
        header: &Header,
        records: Vec<Value>,
    ) -> Result<Fit, PluginError> {
        let mut fit = Self::start(spec, task, x, y)?;
        if header.version != CHECKPOINT_VERSION {
            return Err(mismatch(format!(
                "format {} (this build writes {CHECKPOINT_VERSION})",
                header.version
            )));
        }
        if header.spec != *spec {
            return Err(mismatch(format!(
                "it trains {:?}, not {spec:?}",
                header.spec
            )));
        }
        if header.task != task {
            return Err(mismatch(format!("it is for {:?}", header.task)));
        }
        if header.data != *fit.data.key() {
            return Err(mismatch(format!(
                "it was made on other training data ({}×{}, sha256 {})",
                header.data.rows, header.data.cols, header.data.sha256
            )));
        }
        if records.len() >= fit.rounds_total() as usize {
            return Err(mismatch(format!(
                "it holds {} rounds of {}",
                records.len(),
                fit.rounds_total()
            )));
        }
        for (i, record) in records.into_iter().enumerate() {
            let pushed = match &mut fit.state {
                State::Forest(trees) => trees.push_record(record),
                State::Boosting(b) => b.push_record(record),
                State::Single(_) => Err("a single-fit family has no rounds to resume".into()),
            };
            pushed.map_err(|e| mismatch(format!("round {}: {e}", i + 1)))?;
        }
        fit.rebuild_scores()?;
        Ok(fit)
    }

    pub fn rounds_total(&self) -> u32 {
        self.spec.rounds()
    }

    pub fn rounds_done(&self) -> u32 {
        let done = match &self.state {
            State::Single(model) => usize::from(model.is_some()),
            State::Forest(trees) => trees.grown(),
            State::Boosting(b) => b.rounds_done(),
        };
        u32::try_from(done).unwrap_or(u32::MAX)
    }

    /// Trains one round: a forest's next tree, a boosting round, or the whole fit of a family
    /// smartcore fits in one call. A loss that is no longer finite is `TrainingDiverged`.
    pub fn step(&mut self) -> Result<RoundReport, PluginError> {
        if self.rounds_done() >= self.rounds_total() {
            return Err(internal(format!(
                "step after all {} rounds are done",
                self.rounds_total()
            )));
        }
        let x = &self.data.x;
        let loss = match (&self.spec, &mut self.state, &self.data.y) {
            (
                ModelSpec::RandomForest(p),
                State::Forest(Trees::Classifier { trees, .. }),
                Y::Classes { labels, .. },
            ) => forest::grow_classifier(p, &self.data, labels, trees).map(|()| None)?,
            (ModelSpec::RandomForest(p), State::Forest(Trees::Regressor(trees)), Y::Values(y)) => {
                forest::grow_regressor(p, x, y, trees).map(|()| None)?
            }
            (ModelSpec::GradientBoosting(p), State::Boosting(b), Y::Classes { labels, .. }) => {
                Some(b.round_classifier(p, &self.data, labels, &mut self.scores)?)
            }
            (ModelSpec::GradientBoosting(p), State::Boosting(b), Y::Values(y)) => {
                Some(b.round_regressor(p, &self.data, y, &mut self.scores)?)
            }
            (spec, State::Single(slot), y) => {
                let (model, loss) = fit_single(spec, &self.data, y)?;
                *slot = Some(model);
                loss
            }
            _ => return Err(internal("the training state does not match the spec")),
        };
        let round = self.rounds_done();
        if let Some(loss) = loss
            && !loss.is_finite()
        {
            return Err(diverged(self.spec.family(), round, loss));
        }
        Ok(RoundReport { round, loss })
    }

    /// What a journal of this training begins with.
    pub fn header(&self) -> Header {
        Header {
            version: CHECKPOINT_VERSION,
            spec: self.spec.clone(),
            task: self.task,
            data: self.data.key().clone(),
        }
    }

    /// What round `round` (1 for the first) added, to append to the journal: a forest's tree
    /// or a boosting round's trees. Single-fit families have nothing to resume mid-way.
    pub fn record(&self, round: u32) -> Result<Value, PluginError> {
        let i = (round as usize)
            .checked_sub(1)
            .filter(|&i| i < self.rounds_done() as usize)
            .ok_or_else(|| internal(format!("no round {round} to record")))?;
        let value = match &self.state {
            State::Forest(trees) => trees.record(i),
            State::Boosting(b) => b.record(i),
            State::Single(_) => {
                return Err(internal("a single-fit family has no rounds to record"));
            }
        };
        value.map_err(|e| internal(format!("serializing round {round}: {e}")))
    }

    /// The trained model, once every round is done.
    pub fn finish(self) -> Result<Fitted, PluginError> {
        if self.rounds_done() < self.rounds_total() {
            return Err(internal(format!(
                "finish after {} of {} rounds",
                self.rounds_done(),
                self.rounds_total()
            )));
        }
        let model = match self.state {
            State::Single(Some(model)) => model,
            State::Single(None) => return Err(internal("finish before the fit")),
            State::Forest(trees) => Model::Forest(trees),
            State::Boosting(b) => Model::Boosting(b),
        };
        Ok(Fitted::new(self.spec, self.task, self.data.cols, model))
    }

    /// Runs the remaining rounds without checkpoints and finishes.
    #[cfg(test)]
    pub fn run_to_end(mut self) -> Result<Fitted, PluginError> {
        while self.rounds_done() < self.rounds_total() {
            self.step()?;
        }
        self.finish()
    }

    fn rebuild_scores(&mut self) -> Result<(), PluginError> {
        if let State::Boosting(b) = &self.state {
            self.scores = b.scores(&self.data.x, self.data.rows)?;
        }
        Ok(())
    }
}

/// Checks of the hyperparameters that need the data.
fn check_data(spec: &ModelSpec, data: &TrainData) -> Result<(), PluginError> {
    match spec {
        ModelSpec::RandomForest(p) => {
            let classification = matches!(data.y, Y::Classes { .. });
            forest::split_features(p, classification, data.cols).map(|_| ())
        }
        ModelSpec::Kmeans(p) if p.k > data.rows => Err(PluginError::invalid_input(
            "InvalidParameter",
            format!("k is {}, but there are only {} rows", p.k, data.rows),
        )),
        _ => Ok(()),
    }
}

/// The families smartcore fits in one call, with their training loss where it is cheap.
fn fit_single(
    spec: &ModelSpec,
    data: &TrainData,
    y: &Y,
) -> Result<(Model, Option<f64>), PluginError> {
    let x = &data.x;
    match (spec, y) {
        (ModelSpec::LogisticRegression(p), Y::Classes { labels, classes }) => {
            let m = linear::fit_logistic(p, x, labels, *classes)?;
            let loss = if m.coefficients_finite() {
                let probs = m.predict_proba(x);
                log_loss(probs.iter().map(Vec::as_slice), labels)
            } else {
                f64::NAN
            };
            Ok((Model::Logistic(m), Some(loss)))
        }
        (ModelSpec::DecisionTree(p), Y::Classes { labels, classes }) => Ok((
            Model::Tree(tree::fit_classifier(p, data, labels, *classes)?),
            None,
        )),
        (ModelSpec::DecisionTree(p), Y::Values(y)) => {
            Ok((Model::Tree(tree::fit_regressor(p, data, y)?), None))
        }
        (ModelSpec::LinearRegression(_), Y::Values(y)) => {
            let m = linear::fit_linear(x, y)?;
            let loss = mse(&m.predict(x)?, y);
            Ok((Model::Linear(m), Some(loss)))
        }
        (ModelSpec::Ridge(p), Y::Values(y)) => {
            let m = linear::fit_ridge(p, x, y)?;
            let loss = mse(&m.predict(x)?, y);
            Ok((Model::Ridge(m), Some(loss)))
        }
        (ModelSpec::Kmeans(p), Y::None) => Ok((Model::Kmeans(kmeans::fit(p, x, data.rows)?), None)),
        _ => Err(internal(format!(
            "{} has no single-call fit for this target",
            spec.family()
        ))),
    }
}
