//! ROC curves and their AUC, computed as scikit-learn 1.9's `roc_curve` (with its default
//! `drop_intermediate=True`) and `auc` do: one point per distinct score (tied scores move
//! the curve diagonally, which the trapezoid integrates as half a step), collinear points
//! dropped, a first point (0, 0) at threshold +inf.

use super::ReportError;
use super::classification::validate;

/// The points of a ROC curve, by decreasing threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct RocCurve {
    pub fpr: Vec<f64>,
    pub tpr: Vec<f64>,
    /// Score threshold of each point; the first is +inf (nothing predicted positive).
    pub thresholds: Vec<f64>,
}

impl RocCurve {
    /// Area under the curve by the trapezoidal rule (scikit-learn's `auc(fpr, tpr)`).
    pub fn auc(&self) -> f64 {
        let (x, y) = (&self.fpr, &self.tpr);
        (1..x.len())
            .map(|i| (x[i] - x[i - 1]) * (y[i] + y[i - 1]) / 2.0)
            .sum()
    }
}

/// The ROC curve of `scores` for the examples marked `positive`. Err says why there is no
/// curve: mismatched lengths, a non-finite score, or no positive or no negative example
/// (the rates would divide by zero; scikit-learn returns NaN rates there).
pub fn roc_curve(positive: &[bool], scores: &[f64]) -> Result<RocCurve, String> {
    if positive.len() != scores.len() {
        return Err(format!(
            "{} labels but {} scores",
            positive.len(),
            scores.len()
        ));
    }
    if let Some(s) = scores.iter().find(|s| !s.is_finite()) {
        return Err(format!("score {s} is not finite"));
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    // Descending; the order within a tie does not matter since a tie is one point.
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut fps, mut tps, mut thresholds) = (vec![0i64], vec![0i64], vec![f64::INFINITY]);
    let (mut fp, mut tp) = (0i64, 0i64);
    for (rank, &i) in order.iter().enumerate() {
        if positive[i] {
            tp += 1;
        } else {
            fp += 1;
        }
        // `!=` rather than total_cmp: -0.0 and 0.0 are one threshold, as in numpy.
        let last_of_tie = order
            .get(rank + 1)
            .is_none_or(|&next| scores[next] != scores[i]);
        if last_of_tie {
            fps.push(fp);
            tps.push(tp);
            thresholds.push(scores[i]);
        }
    }
    if tp == 0 {
        return Err("no positive example".into());
    }
    if fp == 0 {
        return Err("no negative example".into());
    }
    // scikit-learn drops the interior points where neither count bends (before it prepends
    // the (0, 0) point, hence the index shift): they add nothing to the curve or its area.
    let keep: Vec<usize> = if fps.len() - 1 > 2 {
        let bends = |v: &[i64], i: usize| v[i - 1] - 2 * v[i] + v[i + 1] != 0;
        std::iter::once(0)
            .chain(
                (1..fps.len())
                    .filter(|&i| i == 1 || i == fps.len() - 1 || bends(&fps, i) || bends(&tps, i)),
            )
            .collect()
    } else {
        (0..fps.len()).collect()
    };
    Ok(RocCurve {
        fpr: keep.iter().map(|&i| fps[i] as f64 / fp as f64).collect(),
        tpr: keep.iter().map(|&i| tps[i] as f64 / tp as f64).collect(),
        thresholds: keep.iter().map(|&i| thresholds[i]).collect(),
    })
}

/// One class's curve, for [`super::roc_svg`].
#[derive(Debug, Clone, PartialEq)]
pub struct ClassRoc {
    pub class: String,
    pub curve: RocCurve,
    pub auc: f64,
}

/// The curves a ROC plot shows: binary, the positive class's (`classes[1]`); more classes,
/// each class's one-vs-rest curve. Classes without a curve (no example, or only examples
/// of it) are left out.
pub fn class_roc_curves(
    y_true: &[usize],
    proba: &[Vec<f64>],
    classes: &[String],
) -> Result<Vec<ClassRoc>, ReportError> {
    validate(y_true, proba, classes)?;
    let first = if classes.len() == 2 { 1 } else { 0 };
    Ok((first..classes.len())
        .filter_map(|c| {
            let curve = one_vs_rest(y_true, proba, c).ok()?;
            Some(ClassRoc {
                class: classes[c].clone(),
                auc: curve.auc(),
                curve,
            })
        })
        .collect())
}

fn one_vs_rest(y_true: &[usize], proba: &[Vec<f64>], class: usize) -> Result<RocCurve, String> {
    let positive: Vec<bool> = y_true.iter().map(|&y| y == class).collect();
    let scores: Vec<f64> = proba.iter().map(|row| row[class]).collect();
    roc_curve(&positive, &scores)
}

pub(super) struct RocAuc {
    pub per_class: Vec<Option<f64>>,
    pub overall: Option<f64>,
    pub undefined: Option<String>,
}

/// Per class one-vs-rest AUCs and the overall one (see `ClassificationReport::roc_auc`),
/// on validated input.
pub(super) fn roc_auc(y_true: &[usize], proba: &[Vec<f64>], classes: &[String]) -> RocAuc {
    let k = classes.len();
    let per_class: Vec<Option<f64>> = (0..k)
        .map(|c| one_vs_rest(y_true, proba, c).ok().map(|curve| curve.auc()))
        .collect();
    let undefined = |reason: String| RocAuc {
        per_class: per_class.clone(),
        overall: None,
        undefined: Some(reason),
    };
    if k < 2 {
        return undefined("the model has a single class".into());
    }
    let absent: Vec<&str> = (0..k)
        .filter(|c| !y_true.contains(c))
        .map(|c| classes[c].as_str())
        .collect();
    if k == 2 {
        return match per_class[1] {
            Some(auc) => RocAuc {
                overall: Some(auc),
                undefined: None,
                per_class,
            },
            None => undefined(format!(
                "only one class is present in the evaluated data (no {:?})",
                absent.first().copied().unwrap_or_default()
            )),
        };
    }
    if !absent.is_empty() {
        return undefined(format!(
            "one-vs-rest AUC needs every class in the evaluated data; absent: {absent:?}"
        ));
    }
    // roc_auc_score's multiclass check: numpy allclose(1, row sums).
    if let Some(i) = proba.iter().position(|row| {
        let sum: f64 = row.iter().sum();
        (1.0 - sum).abs() > 1e-8 + 1e-5 * sum.abs()
    }) {
        return undefined(format!(
            "one-vs-rest AUC needs probabilities that sum to 1; example {i}'s do not"
        ));
    }
    let overall = per_class.iter().flatten().sum::<f64>() / k as f64;
    RocAuc {
        overall: Some(overall),
        undefined: None,
        per_class,
    }
}
