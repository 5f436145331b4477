//! Scoring a fitted model on rows whose truth is known, and the plots of that score. One place
//! for train_model (its test split) and evaluate_model, so the two report the same numbers.

use std::fs;
use std::path::Path;

use mlx_plugin_sdk::{JsonSchema, PluginError};
use serde::Serialize;

use crate::families::{Fitted, Matrix, Task};
use crate::files;
use crate::report::{self, ClassificationReport, ClusteringReport, RegressionReport, ReportError};

/// The metrics of one task. Untagged: `metrics.accuracy` (or `.r2`, `.inertia`) is at the
/// top, where pipeline conditions read it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Metrics {
    Classification(ClassificationReport),
    Regression(RegressionReport),
    Clustering(ClusteringReport),
}

/// What the rows really are.
pub enum Truth<'a> {
    Classes(&'a [usize]),
    Values(&'a [f64]),
    /// Clustering has no truth to compare with; it is scored on the rows alone.
    None,
}

/// A score and what its plots are drawn from.
pub struct Scored {
    pub metrics: Metrics,
    proba: Vec<Vec<f64>>,
    predicted: Vec<f64>,
}

fn report_failed(e: ReportError) -> PluginError {
    // The inputs come from the model: a metric that cannot be computed from them is a model
    // (or trainer) defect that a retry would repeat.
    PluginError::permanent("MetricsFailed", format!("cannot compute the metrics: {e}"))
}

pub fn score(
    model: &Fitted,
    x: &Matrix,
    truth: &Truth,
    classes: &[String],
) -> Result<Scored, PluginError> {
    match (model.task(), truth) {
        (Task::Classification { .. }, Truth::Classes(y)) => {
            let proba = model.predict_proba(x)?;
            let metrics =
                report::classification_report(y, &proba, classes).map_err(report_failed)?;
            Ok(Scored {
                metrics: Metrics::Classification(metrics),
                proba,
                predicted: Vec::new(),
            })
        }
        (Task::Regression, Truth::Values(y)) => {
            let predicted = model.predict(x)?;
            let metrics = report::regression_report(y, &predicted).map_err(report_failed)?;
            Ok(Scored {
                metrics: Metrics::Regression(metrics),
                proba: Vec::new(),
                predicted,
            })
        }
        (Task::Clustering, _) => {
            let predicted = model.predict(x)?;
            let labels: Vec<usize> = predicted.iter().map(|c| *c as usize).collect();
            let rows: Vec<Vec<f64>> = x.iter_rows().map(<[f64]>::to_vec).collect();
            let metrics = report::clustering_report(&rows, &labels, None).map_err(report_failed)?;
            Ok(Scored {
                metrics: Metrics::Clustering(metrics),
                proba: Vec::new(),
                predicted,
            })
        }
        (task, _) => Err(PluginError::permanent(
            "MetricsFailed",
            format!("no truth of the kind a {task:?} model is scored against"),
        )),
    }
}

/// The SVG files evaluate_model wrote, by what they show; absent when the task or family has
/// no such picture.
#[derive(Debug, Default, Serialize, JsonSchema)]
pub struct Plots {
    pub confusion_matrix: Option<String>,
    pub roc_curve: Option<String>,
    pub residuals: Option<String>,
    pub feature_importances: Option<String>,
}

/// Draws what fits the task into `dir`: confusion matrix and ROC curves (classification),
/// residuals (regression), and feature importances where the family has them.
pub fn write_plots(
    dir: &Path,
    scored: &Scored,
    truth: &Truth,
    model: &Fitted,
    classes: &[String],
    feature_names: &[String],
) -> Result<Plots, PluginError> {
    fs::create_dir_all(dir).map_err(|e| files::write_error(dir, e))?;
    let write = |name: &str,
                 svg: Result<String, ReportError>|
     -> Result<Option<String>, PluginError> {
        let path = dir.join(name);
        fs::write(&path, svg.map_err(report_failed)?).map_err(|e| files::write_error(&path, e))?;
        Ok(Some(path.display().to_string()))
    };
    let mut plots = Plots::default();
    match (&scored.metrics, truth) {
        (Metrics::Classification(m), Truth::Classes(y)) => {
            plots.confusion_matrix = write(
                "confusion_matrix.svg",
                report::confusion_matrix_svg(&m.confusion_matrix, classes),
            )?;
            // Undefined (one class present): no curve to draw, and the metrics say why.
            if m.roc_auc.is_some() {
                let curves =
                    report::class_roc_curves(y, &scored.proba, classes).map_err(report_failed)?;
                plots.roc_curve = write("roc_curve.svg", report::roc_svg(&curves))?;
            }
        }
        (Metrics::Regression(_), Truth::Values(y)) => {
            plots.residuals = write("residuals.svg", report::residuals_svg(y, &scored.predicted))?;
        }
        _ => {}
    }
    if let Some(values) = model.feature_importances() {
        plots.feature_importances = write(
            "feature_importances.svg",
            report::importances_svg(feature_names, &values),
        )?;
    }
    Ok(plots)
}
