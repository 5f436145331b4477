//! The few numerics the families share: probabilities from scores, and training losses.

use super::math::{exp, ln};

/// Smallest probability used in a logarithm, as scikit-learn's `log_loss` clips.
pub const PROB_FLOOR: f64 = 1e-15;

/// Replaces `scores` by their softmax, shifted by the maximum so no exponential overflows.
pub fn softmax_in_place(scores: &mut [f64]) {
    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for s in scores.iter_mut() {
        *s = exp(*s - max);
        sum += *s;
    }
    for s in scores.iter_mut() {
        *s /= sum;
    }
}

/// The logistic function, in the form that does not overflow for either sign.
pub fn sigmoid(s: f64) -> f64 {
    if s >= 0.0 {
        1.0 / (1.0 + exp(-s))
    } else {
        let e = exp(s);
        e / (1.0 + e)
    }
}

/// Mean cross-entropy of `probs` (one row per example) against class indices.
pub fn log_loss<'a>(probs: impl IntoIterator<Item = &'a [f64]>, labels: &[u32]) -> f64 {
    let mut total = 0.0;
    for (p, &label) in probs.into_iter().zip(labels) {
        let p = p.get(label as usize).copied().unwrap_or(0.0);
        total -= ln(p.max(PROB_FLOOR));
    }
    total / labels.len().max(1) as f64
}

/// Mean squared error of `predicted` against `actual`.
pub fn mse(predicted: &[f64], actual: &[f64]) -> f64 {
    let total: f64 = predicted
        .iter()
        .zip(actual)
        .map(|(p, a)| (p - a) * (p - a))
        .sum();
    total / actual.len().max(1) as f64
}

/// Index of the largest value, the first on ties (as smartcore's own argmax picks).
pub fn argmax(values: &[f64]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}

/// `values` scaled to sum to 1, or all zeros when they sum to 0 (a model that never split).
pub fn normalized(mut values: Vec<f64>) -> Vec<f64> {
    let sum: f64 = values.iter().sum();
    if sum > 0.0 {
        for v in &mut values {
            *v /= sum;
        }
    }
    values
}
