//! Metrics and SVG plots of an evaluation, with scikit-learn's definitions so a number here
//! can be checked against `sklearn.metrics` (the tests quote the calls behind their expected
//! values). Metrics that are undefined for the data (ROC AUC with one class present, R² of one
//! row, silhouette of one cluster) are `None` with a reason, never NaN: JSON cannot carry NaN.

mod classification;
mod clustering;
mod regression;
mod roc;
mod svg;

#[cfg(test)]
mod tests;

pub use classification::{ClassificationReport, classification_report};
pub use clustering::{ClusteringReport, clustering_report};
pub use regression::{RegressionReport, regression_report};
pub use roc::{ClassRoc, class_roc_curves};
// Named by the tests only.
#[cfg(test)]
pub use classification::ClassMetrics;
#[cfg(test)]
pub use clustering::SILHOUETTE_MAX_ROWS;
#[cfg(test)]
use clustering::squared_distance;
#[cfg(test)]
pub use roc::roc_curve;
pub use svg::{confusion_matrix_svg, importances_svg, loss_curve_svg, residuals_svg, roc_svg};

use std::fmt;

/// Inputs no metric can be computed from (mismatched lengths, a class index out of range,
/// a probability outside [0, 1], a non-finite value): a caller's bug or bad data, reported
/// instead of panicking.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportError(pub String);

impl fmt::Display for ReportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ReportError {}

fn invalid(message: impl Into<String>) -> ReportError {
    ReportError(message.into())
}
