//! Regression metrics: scikit-learn 1.9's `root_mean_squared_error`,
//! `mean_absolute_error` and `r2_score` (with its default `force_finite=True`).

use mlx_plugin_sdk::JsonSchema;
use serde::Serialize;

use super::{ReportError, invalid};

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct RegressionReport {
    pub rmse: f64,
    pub mae: f64,
    /// Coefficient of determination. A constant target gives 1 when predicted exactly and
    /// 0 otherwise (r2_score's force_finite). Null for fewer than two examples, with the
    /// reason in r2_undefined.
    pub r2: Option<f64>,
    pub r2_undefined: Option<String>,
    /// Examples evaluated.
    pub n: u64,
}

/// Metrics of predictions `y_pred` against targets `y_true`.
pub fn regression_report(y_true: &[f64], y_pred: &[f64]) -> Result<RegressionReport, ReportError> {
    if y_true.len() != y_pred.len() {
        return Err(invalid(format!(
            "{} targets but {} predictions",
            y_true.len(),
            y_pred.len()
        )));
    }
    if y_true.is_empty() {
        return Err(invalid("no examples to evaluate"));
    }
    if let Some(v) = y_true.iter().chain(y_pred).find(|v| !v.is_finite()) {
        return Err(invalid(format!("value {v} is not finite")));
    }
    let n = y_true.len() as f64;
    let residuals = || y_true.iter().zip(y_pred).map(|(t, p)| t - p);
    let sse: f64 = residuals().map(|r| r * r).sum();
    let mae = residuals().map(f64::abs).sum::<f64>() / n;
    let (r2, r2_undefined) = if y_true.len() < 2 {
        (
            None,
            Some("R² is not defined for fewer than two examples".to_string()),
        )
    } else {
        (Some(r2(y_true, sse)), None)
    };
    Ok(RegressionReport {
        rmse: (sse / n).sqrt(),
        mae,
        r2,
        r2_undefined,
        n: y_true.len() as u64,
    })
}

fn r2(y_true: &[f64], sse: f64) -> f64 {
    // A constant target is tested as such: its mean need not round back to the constant,
    // which would leave a tiny nonzero denominator and a meaningless huge negative score
    // where scikit-learn's documented answer is 0 (or 1 when predicted exactly).
    let constant = y_true.iter().all(|&v| v == y_true[0]);
    let mean = y_true.iter().sum::<f64>() / y_true.len() as f64;
    let total: f64 = y_true.iter().map(|v| (v - mean) * (v - mean)).sum();
    match (sse == 0.0, constant || total == 0.0) {
        (true, _) => 1.0,
        (false, true) => 0.0,
        (false, false) => 1.0 - sse / total,
    }
}
