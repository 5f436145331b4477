//! `gradient_boosting`: Friedman's gradient tree boosting, one round per training round.
//!
//! Why this loop is ours: smartcore's only booster, `XGRegressor`, is squared-error regression
//! fitted in a single call (no warm start, its trees private), and no maintained crate that
//! builds for wasm32-wasip2 offers multiclass boosting. Resuming needs rounds we drive anyway,
//! so both tasks share this loop over smartcore's `DecisionTreeRegressor`, and the numerics
//! written here stop at the gradient and the score update:
//!
//! - classification (log loss, K classes): every round fits K trees, tree k to the negative
//!   gradient y_onehot[k] − softmax(F)[k], and adds learning_rate × tree k to F[k]. F starts at
//!   the log class priors.
//! - regression (squared error): every round fits one tree to the residual y − F. F starts at
//!   the mean target. This is scikit-learn's `GradientBoostingRegressor` exactly.
//!
//! smartcore's trees keep their leaves private, so a classification leaf holds the mean
//! gradient of its rows, not Friedman's one-step Newton value (K−1)/K · Σr / Σ|r|(1−|r|):
//! each round is a plain gradient step, which needs more rounds or a larger learning_rate
//! than scikit-learn for the same fit.

use mlx_plugin_sdk::PluginError;
use serde::{Deserialize, Serialize};

use super::dense::{Dense, Label};
use super::error::predict_failed;
use super::loss::{log_loss, mse, normalized, softmax_in_place};
use super::spec::BoostingParams;
use super::tree::{RegTree, fit_regression_tree, tree_seed};

const FAMILY: &str = "gradient_boosting";

/// Floor of a class prior whose class has no training row, so its initial score is finite.
const PRIOR_FLOOR: f64 = 1e-15;

#[derive(Debug, Serialize, Deserialize)]
pub struct Boosted {
    /// Initial raw score of each output: log class priors (classification) or the mean target.
    init: Vec<f64>,
    learning_rate: f64,
    /// The trees of each round, one per output.
    rounds: Vec<Vec<RegTree>>,
}

impl Boosted {
    pub fn classifier(p: &BoostingParams, labels: &[Label], classes: usize) -> Self {
        let mut counts = vec![0.0; classes];
        for &l in labels {
            counts[l as usize] += 1.0;
        }
        let n = labels.len().max(1) as f64;
        let init = counts
            .into_iter()
            .map(|c| (c / n).max(PRIOR_FLOOR).ln())
            .collect();
        Self {
            init,
            learning_rate: p.learning_rate,
            rounds: Vec::new(),
        }
    }

    pub fn regressor(p: &BoostingParams, y: &[f64]) -> Self {
        let mean = y.iter().sum::<f64>() / y.len().max(1) as f64;
        Self {
            init: vec![mean],
            learning_rate: p.learning_rate,
            rounds: Vec::new(),
        }
    }

    pub fn rounds_done(&self) -> usize {
        self.rounds.len()
    }

    pub fn outputs(&self) -> usize {
        self.init.len()
    }

    /// Raw scores F of every row of `x`, `rows × outputs` row-major. Adds the trees' shrunk
    /// predictions in the order `round` does, so that scores recomputed on resume are the
    /// training scores bit for bit.
    pub fn scores(&self, x: &Dense, rows: usize) -> Result<Vec<f64>, PluginError> {
        let k = self.outputs();
        let mut f: Vec<f64> = (0..rows).flat_map(|_| self.init.iter().copied()).collect();
        for trees in &self.rounds {
            self.add(trees, x, &mut f)?;
        }
        debug_assert_eq!(f.len(), rows * k);
        Ok(f)
    }

    fn add(&self, trees: &[RegTree], x: &Dense, f: &mut [f64]) -> Result<(), PluginError> {
        let k = self.outputs();
        for (c, tree) in trees.iter().enumerate() {
            let predicted = tree.predict(x).map_err(|e| predict_failed(FAMILY, e))?;
            for (i, v) in predicted.into_iter().enumerate() {
                f[i * k + c] += self.learning_rate * v;
            }
        }
        Ok(())
    }

    /// One classification round; updates the training scores `f` and returns the training
    /// log loss.
    pub fn round_classifier(
        &mut self,
        p: &BoostingParams,
        x: &Dense,
        labels: &[Label],
        f: &mut [f64],
    ) -> Result<f64, PluginError> {
        let k = self.outputs();
        let probs = probabilities(f, k);
        let round = self.rounds.len() as u64;
        let mut trees = Vec::with_capacity(k);
        for c in 0..k {
            let gradient: Vec<f64> = labels
                .iter()
                .zip(probs.chunks_exact(k))
                .map(|(&l, p)| f64::from(u8::from(l as usize == c)) - p[c])
                .collect();
            let seed = tree_seed(p.seed, round * k as u64 + c as u64);
            trees.push(self.tree(p, x, &gradient, seed)?);
        }
        self.add(&trees, x, f)?;
        self.rounds.push(trees);
        let probs = probabilities(f, k);
        Ok(log_loss(probs.chunks_exact(k), labels))
    }

    /// One regression round; updates `f` and returns the training mean squared error.
    pub fn round_regressor(
        &mut self,
        p: &BoostingParams,
        x: &Dense,
        y: &[f64],
        f: &mut [f64],
    ) -> Result<f64, PluginError> {
        let residual: Vec<f64> = y.iter().zip(f.iter()).map(|(y, f)| y - f).collect();
        let seed = tree_seed(p.seed, self.rounds.len() as u64);
        let tree = self.tree(p, x, &residual, seed)?;
        let trees = vec![tree];
        self.add(&trees, x, f)?;
        self.rounds.push(trees);
        Ok(mse(f, y))
    }

    fn tree(
        &self,
        p: &BoostingParams,
        x: &Dense,
        target: &[f64],
        seed: u64,
    ) -> Result<RegTree, PluginError> {
        fit_regression_tree(
            FAMILY,
            x,
            target,
            Some(p.max_depth),
            p.min_samples_leaf,
            p.min_samples_split,
            seed,
        )
    }

    /// Class probabilities, `rows × classes` row-major.
    pub fn predict_proba(&self, x: &Dense, rows: usize) -> Result<Vec<f64>, PluginError> {
        Ok(probabilities(&self.scores(x, rows)?, self.outputs()))
    }

    /// scikit-learn's boosting importances: each tree's impurity decrease (not normalized per
    /// tree, so later trees fitting small residuals weigh less), summed, normalized.
    pub fn importances(&self) -> Result<Vec<f64>, PluginError> {
        let mut total: Vec<f64> = Vec::new();
        for tree in self.rounds.iter().flatten() {
            let imp = tree
                .compute_feature_importances(false)
                .map_err(|e| predict_failed(FAMILY, e))?;
            if total.is_empty() {
                total = vec![0.0; imp.len()];
            }
            total.iter_mut().zip(imp).for_each(|(t, v)| *t += v);
        }
        Ok(normalized(total))
    }
}

/// The softmax of each row of `k` scores.
fn probabilities(f: &[f64], k: usize) -> Vec<f64> {
    let mut probs = f.to_vec();
    for row in probs.chunks_exact_mut(k) {
        softmax_in_place(row);
    }
    probs
}
