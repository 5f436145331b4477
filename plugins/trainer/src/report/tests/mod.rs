//! Metric values checked against scikit-learn 1.9.1: every expected number was printed by
//! the sklearn call named next to it (numpy float64, `labels=range(k)`, `zero_division=0`),
//! and pasted here so the tests need no Python.

mod classification;
mod clustering;
mod iris;
mod regression;
mod roc;

/// Equal up to float rounding: the sums here and numpy's (pairwise) sums may round
/// differently in the last bits.
#[track_caller]
fn close(actual: f64, expected: f64) {
    let tolerance = 1e-12 * expected.abs().max(1.0);
    assert!(
        (actual - expected).abs() <= tolerance,
        "{actual} is not {expected}"
    );
}

#[track_caller]
fn all_close(actual: &[f64], expected: &[f64]) {
    assert_eq!(actual.len(), expected.len(), "{actual:?} vs {expected:?}");
    for (a, e) in actual.iter().zip(expected) {
        close(*a, *e);
    }
}

fn names(n: usize) -> Vec<String> {
    ["setosa", "versicolor", "virginica", "d", "e"][..n]
        .iter()
        .map(|s| s.to_string())
        .collect()
}
