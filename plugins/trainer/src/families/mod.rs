//! Model families on smartcore: what to train ([`ModelSpec`]), training in resumable rounds
//! ([`Fit`], [`Header`]) and the trained model ([`Fitted`]).
//!
//! Nothing here knows about files, CSV or Temporal: it takes a [`Matrix`] and its targets and
//! returns models. `train_model` does the reading, the heartbeats and the writing.

mod boosting;
mod dense;
mod error;
mod fit;
mod fitted;
mod forest;
mod grow;
mod kmeans;
mod linear;
mod logistic;
mod loss;
/// Shared with the metrics in `report`, which take logarithms too.
pub(crate) mod math;
mod spec;
mod tree;

#[cfg(test)]
mod tests;

pub use fit::{Fit, Header};
pub use fitted::Fitted;
pub use mlx_tabular::Matrix;
pub use spec::{LogisticParams, ModelSpec};
// The parameter types are named by the tests; train_model reads them through ModelSpec.
#[cfg(test)]
pub use spec::{ForestParams, KmeansParams, LinearParams, MaxFeatures, MaxFeaturesRule};

use serde::{Deserialize, Serialize};

/// What the model learns to do with the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Predict one of `classes` classes, numbered 0..classes.
    Classification { classes: usize },
    /// Predict a real value.
    Regression,
    /// Group the rows; there is no target.
    Clustering,
}

/// The training rows' targets, one per row of the matrix.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Class indices in 0..classes (classification).
    Classes(Vec<usize>),
    /// Real values (regression).
    Values(Vec<f64>),
    /// No target (clustering).
    None,
}
