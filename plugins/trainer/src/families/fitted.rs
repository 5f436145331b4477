//! A trained model: predictions, probabilities, importances; serde for the model file.

use mlx_plugin_sdk::PluginError;
use mlx_tabular::Matrix;
use serde::{Deserialize, Serialize};
use smartcore::linalg::basic::arrays::Array;

use super::Task;
use super::boosting::Boosted;
use super::dense::for_prediction;
use super::error::{internal, predict_failed};
use super::forest::{self, Trees};
use super::kmeans::{self, Kmeans};
use super::linear::{Linear, Logistic, Ridge};
use super::loss::argmax;
use super::spec::{ModelSpec, task_name};
use super::tree::{Tree, vote_fractions};

/// The smartcore model (or ensemble of them) of each family.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Model {
    Logistic(Logistic),
    Tree(Tree),
    Forest(Trees),
    Boosting(Boosted),
    Linear(Linear),
    Ridge(Ridge),
    Kmeans(Kmeans),
}

/// A trained model with the spec and task it was trained for. Its serde form is the model
/// file's: it holds smartcore's own serde form of the model.
#[derive(Debug, Serialize, Deserialize)]
pub struct Fitted {
    spec: ModelSpec,
    task: Task,
    /// Feature columns the model was trained on; predictions need the same.
    features: usize,
    model: Model,
}

impl Fitted {
    pub(super) fn new(spec: ModelSpec, task: Task, features: usize, model: Model) -> Self {
        Self {
            spec,
            task,
            features,
            model,
        }
    }

    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    pub fn task(&self) -> Task {
        self.task
    }

    pub fn features(&self) -> usize {
        self.features
    }

    /// Class probabilities, one row of `classes` values per row of `x` (classification only).
    /// Logistic regression and boosting give the softmax (or sigmoid) of their scores; a
    /// decision tree gives its leaf's majority class as a one-hot row (what smartcore's tree
    /// gives); a forest gives the fraction of trees voting for each class.
    pub fn predict_proba(&self, x: &Matrix) -> Result<Vec<Vec<f64>>, PluginError> {
        let Task::Classification { classes } = self.task else {
            return Err(PluginError::invalid_input(
                "UnsupportedTask",
                format!(
                    "this {} model does {}, which has no class probabilities",
                    self.spec.family(),
                    task_name(self.task)
                ),
            ));
        };
        let family = self.spec.family();
        let x = for_prediction(x, self.features)?;
        let rows = x.shape().0;
        match &self.model {
            Model::Logistic(m) => Ok(m.predict_proba(&x)),
            Model::Tree(Tree::Classifier { tree, .. }) => {
                vote_fractions(family, std::slice::from_ref(tree), &x, rows, classes)
            }
            Model::Forest(Trees::Classifier { trees, .. }) => {
                vote_fractions(family, trees, &x, rows, classes)
            }
            Model::Boosting(b) => Ok(b
                .predict_proba(&x, rows)?
                .chunks_exact(classes)
                .map(<[f64]>::to_vec)
                .collect()),
            _ => Err(self.mismatch()),
        }
    }

    /// Per row of `x`: the predicted value (regression), the most probable class index
    /// (classification; the lowest index on ties), or the cluster index (clustering).
    pub fn predict(&self, x: &Matrix) -> Result<Vec<f64>, PluginError> {
        if let Task::Classification { .. } = self.task {
            return Ok(self
                .predict_proba(x)?
                .iter()
                .map(|p| argmax(p) as f64)
                .collect());
        }
        let family = self.spec.family();
        let x = for_prediction(x, self.features)?;
        let rows = x.shape().0;
        match &self.model {
            Model::Tree(Tree::Regressor(tree)) => {
                tree.predict(&x).map_err(|e| predict_failed(family, e))
            }
            Model::Forest(Trees::Regressor(trees)) => forest::predict_regressor(trees, &x),
            Model::Boosting(b) if b.outputs() == 1 => b.scores(&x, rows),
            Model::Linear(m) => m.predict(&x),
            Model::Ridge(m) => m.predict(&x),
            Model::Kmeans(m) => kmeans::predict(m, &x),
            _ => Err(self.mismatch()),
        }
    }

    /// Each feature's share of the model's importance, summing to 1 (all zeros for a model
    /// that never split); `None` for k-means, which has none.
    ///
    /// - trees, forests, boosting: impurity decrease (Gini/entropy/variance) from smartcore's
    ///   `compute_feature_importances` of each tree, averaged over a forest's trees as
    ///   scikit-learn does (per-tree normalized), summed over boosting's trees unnormalized;
    /// - linear, ridge, logistic regression: |coefficient| (mean over classes), which compares
    ///   features only when they share a scale (e.g. standardized).
    pub fn feature_importances(&self) -> Option<Vec<f64>> {
        match &self.model {
            Model::Logistic(m) => Some(m.importances()),
            Model::Tree(t) => t.importances().ok(),
            Model::Forest(trees) => forest::importances(trees).ok(),
            Model::Boosting(b) => b.importances().ok(),
            Model::Linear(m) => Some(m.importances()),
            Model::Ridge(m) => Some(m.importances()),
            Model::Kmeans(_) => None,
        }
    }

    /// A model that does not fit its task: only a hand-edited model file gets here.
    fn mismatch(&self) -> PluginError {
        internal(format!(
            "the {} model does not match its task, {}",
            self.spec.family(),
            task_name(self.task)
        ))
    }
}
