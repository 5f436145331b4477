//! Classification metrics from predicted class probabilities.
//!
//! Conventions, all scikit-learn 1.9's:
//! - the prediction is the most probable class, the first one on ties (`numpy.argmax`);
//! - per class precision, recall and F1 are `precision_recall_fscore_support(y, pred,
//!   labels=range(k), zero_division=0)`: a class never predicted has precision 0, a class
//!   absent from `y_true` has recall 0, and F1 = 2tp / (2tp + fp + fn) is 0 when both are;
//! - macro averages weigh every class of the model equally, absent ones included (they
//!   count as 0, as with `labels=`);
//! - log loss is `log_loss(y, proba, labels=range(k))`: probabilities clipped to
//!   [eps, 1 - eps] with eps = `f64::EPSILON`, no renormalisation. Values outside [0, 1] are
//!   rejected; a row that does not sum to 1 only gets a note (scikit-learn only warns);
//! - ROC AUC: see [`super::roc`].

use mlx_plugin_sdk::JsonSchema;
use serde::Serialize;

use crate::families::math::ln;

use super::roc::{self, RocAuc};
use super::{ReportError, invalid};

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ClassMetrics {
    pub class: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Examples of this class in the evaluated set.
    pub support: u64,
    /// One-vs-rest ROC AUC of this class's probability; null when the evaluated set has no
    /// example of the class or only examples of it.
    pub roc_auc: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ClassificationReport {
    /// Fraction of examples whose most probable class is the true one.
    pub accuracy: f64,
    /// Unweighted mean over the model's classes (scikit-learn's average="macro").
    pub precision_macro: f64,
    pub recall_macro: f64,
    pub f1_macro: f64,
    /// Binary: AUC of the second class's probability. More classes: mean of the one-vs-rest
    /// AUCs (roc_auc_score(multi_class="ovr", average="macro")). Null when undefined, with
    /// the reason in roc_auc_undefined.
    pub roc_auc: Option<f64>,
    pub roc_auc_undefined: Option<String>,
    /// Mean negative log-probability of the true class, probabilities clipped to
    /// [eps, 1 - eps] (eps = 2.22e-16) like scikit-learn's log_loss.
    pub log_loss: f64,
    /// `confusion_matrix[true][predicted]`, classes in the model's order.
    pub confusion_matrix: Vec<Vec<u64>>,
    pub per_class: Vec<ClassMetrics>,
    pub classes: Vec<String>,
    /// Examples evaluated.
    pub n: u64,
    /// Oddities in the input the metrics were still computed on (e.g. probability rows
    /// that do not sum to 1).
    pub notes: Vec<String>,
}

/// The index of the largest probability, the first on ties (what `numpy.argmax` and so
/// scikit-learn's `predict` pick).
pub fn argmax(p: &[f64]) -> usize {
    let mut best = 0;
    for (i, v) in p.iter().enumerate() {
        if *v > p[best] {
            best = i;
        }
    }
    best
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Metrics of class probabilities `proba` (one row per example, one column per class of
/// `classes`) against the true class indices `y_true`.
pub fn classification_report(
    y_true: &[usize],
    proba: &[Vec<f64>],
    classes: &[String],
) -> Result<ClassificationReport, ReportError> {
    let notes = validate(y_true, proba, classes)?;
    let k = classes.len();
    let mut confusion = vec![vec![0u64; k]; k];
    for (p, &truth) in proba.iter().zip(y_true) {
        confusion[truth][argmax(p)] += 1;
    }
    let n = y_true.len() as u64;
    let correct: u64 = (0..k).map(|c| confusion[c][c]).sum();
    let RocAuc {
        per_class: class_auc,
        overall: roc_auc,
        undefined: roc_auc_undefined,
    } = roc::roc_auc(y_true, proba, classes);
    let per_class: Vec<ClassMetrics> = (0..k)
        .map(|c| {
            let tp = confusion[c][c];
            let support: u64 = confusion[c].iter().sum();
            let predicted: u64 = confusion.iter().map(|row| row[c]).sum();
            ClassMetrics {
                class: classes[c].clone(),
                precision: ratio(tp, predicted),
                recall: ratio(tp, support),
                // scikit-learn's form: equal to 2PR / (P + R) but rounded once, and 0
                // rather than 0/0 when the class is neither true nor predicted.
                f1: ratio(2 * tp, support + predicted),
                support,
                roc_auc: class_auc[c],
            }
        })
        .collect();
    let macro_avg = |f: fn(&ClassMetrics) -> f64| per_class.iter().map(f).sum::<f64>() / k as f64;
    let eps = f64::EPSILON;
    let log_loss = proba
        .iter()
        .zip(y_true)
        .map(|(p, &truth)| -ln(p[truth].clamp(eps, 1.0 - eps)))
        .sum::<f64>()
        / n as f64;
    Ok(ClassificationReport {
        accuracy: ratio(correct, n),
        precision_macro: macro_avg(|m| m.precision),
        recall_macro: macro_avg(|m| m.recall),
        f1_macro: macro_avg(|m| m.f1),
        roc_auc,
        roc_auc_undefined,
        log_loss,
        confusion_matrix: confusion,
        per_class,
        classes: classes.to_vec(),
        n,
        notes,
    })
}

/// Rejects what scikit-learn rejects; returns notes on what it only warns about.
pub(super) fn validate(
    y_true: &[usize],
    proba: &[Vec<f64>],
    classes: &[String],
) -> Result<Vec<String>, ReportError> {
    let k = classes.len();
    if k == 0 {
        return Err(invalid("no classes"));
    }
    if y_true.is_empty() {
        return Err(invalid("no examples to evaluate"));
    }
    if y_true.len() != proba.len() {
        return Err(invalid(format!(
            "{} true classes but {} probability rows",
            y_true.len(),
            proba.len()
        )));
    }
    let mut off_sum = 0usize;
    let mut first_off = None;
    for (i, (row, &truth)) in proba.iter().zip(y_true).enumerate() {
        if truth >= k {
            return Err(invalid(format!(
                "example {i}: class index {truth} but only {k} classes"
            )));
        }
        if row.len() != k {
            return Err(invalid(format!(
                "example {i}: {} probabilities for {k} classes",
                row.len()
            )));
        }
        if let Some(p) = row.iter().find(|p| !(0.0..=1.0).contains(*p)) {
            return Err(invalid(format!(
                "example {i}: probability {p} is not in [0, 1]"
            )));
        }
        // log_loss's tolerance: numpy isclose(sum, 1, rtol=sqrt(eps)) with its default
        // atol of 1e-8.
        let sum: f64 = row.iter().sum();
        if (sum - 1.0).abs() > 1e-8 + f64::EPSILON.sqrt() {
            off_sum += 1;
            first_off.get_or_insert((i, sum));
        }
    }
    let mut notes = Vec::new();
    if let Some((i, sum)) = first_off {
        notes.push(format!(
            "{off_sum} probability rows do not sum to 1 (the first: example {i}, sum {sum}); \
             log loss uses them as given"
        ));
    }
    Ok(notes)
}
