//! `logistic_regression` (smartcore's model and optimizer, the objective in `logistic`),
//! `linear_regression` and `ridge`: one smartcore call each.

use mlx_plugin_sdk::PluginError;
use serde::{Deserialize, Serialize};
use smartcore::linalg::basic::arrays::Array;
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::linear::linear_regression::{LinearRegression, LinearRegressionParameters};
use smartcore::linear::ridge_regression::{
    RidgeRegression, RidgeRegressionParameters, RidgeRegressionSolverName,
};

use super::dense::{Dense, Label};
use super::error::{fit_failed, internal, predict_failed};
use super::loss::{normalized, sigmoid, softmax_in_place};
use super::spec::{LogisticParams, RidgeParams};

type LogisticModel = super::logistic::LogisticRegressionModel;
type LinearModel = LinearRegression<f64, f64, Dense, Vec<f64>>;
type RidgeModel = RidgeRegression<f64, f64, Dense, Vec<f64>>;

#[derive(Debug, Serialize, Deserialize)]
pub struct Logistic {
    model: LogisticModel,
    classes: usize,
}

pub fn fit_logistic(
    p: &LogisticParams,
    x: &Dense,
    labels: &[Label],
    classes: usize,
) -> Result<Logistic, PluginError> {
    let model = super::logistic::fit(x, labels, p.alpha)?;
    Ok(Logistic { model, classes })
}

impl Logistic {
    /// smartcore's `LogisticRegression` predicts labels only, so the probabilities are computed
    /// here from its coefficients, as its objective defines them: the sigmoid of the one score
    /// for two classes, the softmax of one score per class otherwise.
    pub fn predict_proba(&self, x: &Dense) -> Vec<Vec<f64>> {
        let coef = self.model.coefficients();
        let intercept = self.model.intercept();
        let labels = self.model.classes();
        let (scores_per_row, features) = coef.shape();
        let rows = x.shape().0;
        let mut out = Vec::with_capacity(rows);
        let mut scores = vec![0.0; scores_per_row];
        for i in 0..rows {
            for (r, s) in scores.iter_mut().enumerate() {
                *s = *intercept.get((r, 0))
                    + (0..features)
                        .map(|j| x.get((i, j)) * coef.get((r, j)))
                        .sum::<f64>();
            }
            let by_label = if labels.len() == 2 {
                let p1 = sigmoid(scores[0]);
                vec![1.0 - p1, p1]
            } else {
                let mut p = scores.clone();
                softmax_in_place(&mut p);
                p
            };
            let mut probs = vec![0.0; self.classes];
            // Labels are class indices below `classes`, checked when training.
            for (label, p) in labels.iter().zip(&by_label) {
                if let Some(slot) = probs.get_mut(*label as usize) {
                    *slot = *p;
                }
            }
            out.push(probs);
        }
        out
    }

    /// Mean absolute coefficient of each feature over the classes' score functions,
    /// normalized to sum to 1. Comparable between features only when they share a scale.
    pub fn importances(&self) -> Vec<f64> {
        coefficient_magnitudes(self.model.coefficients(), false)
    }

    pub fn coefficients_finite(&self) -> bool {
        self.model.coefficients().iterator(0).all(|v| v.is_finite())
            && self.model.intercept().iterator(0).all(|v| v.is_finite())
    }
}

/// Mean |coefficient| per feature, normalized. `by_column` when the features are rows of
/// `coef` (smartcore's regressions store p×1, its logistic regression classes×p).
fn coefficient_magnitudes(coef: &Dense, by_column: bool) -> Vec<f64> {
    let (rows, cols) = coef.shape();
    let (features, outputs) = if by_column {
        (rows, cols)
    } else {
        (cols, rows)
    };
    let magnitudes = (0..features)
        .map(|j| {
            (0..outputs)
                .map(|r| {
                    let pos = if by_column { (j, r) } else { (r, j) };
                    coef.get(pos).abs()
                })
                .sum::<f64>()
                / outputs.max(1) as f64
        })
        .collect();
    normalized(magnitudes)
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Linear {
    model: LinearModel,
}

pub fn fit_linear(x: &Dense, y: &[f64]) -> Result<Linear, PluginError> {
    let model = LinearRegression::fit(x, &y.to_vec(), LinearRegressionParameters::default())
        .map_err(|e| fit_failed("linear_regression", e))?;
    Ok(Linear { model })
}

impl Linear {
    pub fn predict(&self, x: &Dense) -> Result<Vec<f64>, PluginError> {
        self.model
            .predict(x)
            .map_err(|e| predict_failed("linear_regression", e))
    }

    /// |coefficient| per feature, normalized; comparable only between features on one scale.
    pub fn importances(&self) -> Vec<f64> {
        coefficient_magnitudes(self.model.coefficients(), true)
    }
}

/// smartcore's ridge either standardizes the features itself (then alpha acts on the
/// standardized scale, and a constant column is an error) or fits no intercept at all.
/// scikit-learn's ridge penalizes on the features' own scale with a free intercept, which is
/// the unstandardized fit on centered data: so the centering is done here, and undone at
/// prediction.
#[derive(Debug, Serialize, Deserialize)]
pub struct Ridge {
    model: RidgeModel,
    x_mean: Vec<f64>,
    y_mean: f64,
}

pub fn fit_ridge(p: &RidgeParams, x: &Dense, y: &[f64]) -> Result<Ridge, PluginError> {
    let (rows, cols) = x.shape();
    let x_mean: Vec<f64> = (0..cols)
        .map(|j| (0..rows).map(|i| x.get((i, j))).sum::<f64>() / rows as f64)
        .collect();
    let y_mean = y.iter().sum::<f64>() / rows as f64;
    let centered_y: Vec<f64> = y.iter().map(|v| v - y_mean).collect();
    let params = RidgeRegressionParameters {
        solver: RidgeRegressionSolverName::Cholesky,
        alpha: p.alpha,
        normalize: false,
    };
    let model = RidgeRegression::fit(&centered(x, &x_mean)?, &centered_y, params)
        .map_err(|e| fit_failed("ridge", e))?;
    Ok(Ridge {
        model,
        x_mean,
        y_mean,
    })
}

fn centered(x: &Dense, mean: &[f64]) -> Result<Dense, PluginError> {
    let (rows, cols) = x.shape();
    if mean.len() != cols {
        return Err(internal(format!(
            "ridge: {} feature means for {cols} features",
            mean.len()
        )));
    }
    let values = (0..rows)
        .flat_map(|i| (0..cols).map(move |j| (i, j)))
        .map(|(i, j)| x.get((i, j)) - mean[j])
        .collect();
    DenseMatrix::new(rows, cols, values, false).map_err(|e| internal(format!("ridge: {e}")))
}

impl Ridge {
    pub fn predict(&self, x: &Dense) -> Result<Vec<f64>, PluginError> {
        let predicted = self
            .model
            .predict(&centered(x, &self.x_mean)?)
            .map_err(|e| predict_failed("ridge", e))?;
        Ok(predicted.into_iter().map(|v| v + self.y_mean).collect())
    }

    /// |coefficient| per feature, normalized; comparable only between features on one scale.
    pub fn importances(&self) -> Vec<f64> {
        coefficient_magnitudes(self.model.coefficients(), true)
    }
}
