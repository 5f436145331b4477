//! Classification metrics, with scikit-learn's conventions: macro averages weigh every class
//! equally, a class never predicted has precision 0 (`zero_division=0`), and log loss clips
//! probabilities to [1e-15, 1].

use mlx_plugin_sdk::JsonSchema;
use serde::Serialize;

use crate::model::PROB_FLOOR;

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ClassMetrics {
    pub class: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Examples of this class in the evaluated set.
    pub support: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Evaluation {
    pub accuracy: f64,
    pub precision_macro: f64,
    pub recall_macro: f64,
    pub f1_macro: f64,
    pub log_loss: f64,
    /// `confusion_matrix[true][predicted]`, classes in the model's order.
    pub confusion_matrix: Vec<Vec<u64>>,
    pub per_class: Vec<ClassMetrics>,
}

/// The index of the largest probability (the first on ties).
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

/// Evaluates predicted class probabilities `probs` against true class indices `y`.
pub fn evaluate(probs: &[Vec<f64>], y: &[usize], classes: &[String]) -> Evaluation {
    let k = classes.len();
    let mut confusion = vec![vec![0u64; k]; k];
    let mut log_loss = 0.0;
    for (p, &truth) in probs.iter().zip(y) {
        confusion[truth][argmax(p)] += 1;
        log_loss -= p[truth].clamp(PROB_FLOOR, 1.0).ln();
    }
    let n = y.len() as u64;
    let correct: u64 = (0..k).map(|c| confusion[c][c]).sum();
    let per_class: Vec<ClassMetrics> = (0..k)
        .map(|c| {
            let tp = confusion[c][c];
            let support: u64 = confusion[c].iter().sum();
            let predicted: u64 = confusion.iter().map(|row| row[c]).sum();
            let (precision, recall) = (ratio(tp, predicted), ratio(tp, support));
            let f1 = if precision + recall > 0.0 {
                2.0 * precision * recall / (precision + recall)
            } else {
                0.0
            };
            ClassMetrics {
                class: classes[c].clone(),
                precision,
                recall,
                f1,
                support,
            }
        })
        .collect();
    let macro_avg =
        |f: fn(&ClassMetrics) -> f64| per_class.iter().map(f).sum::<f64>() / k.max(1) as f64;
    Evaluation {
        accuracy: ratio(correct, n),
        precision_macro: macro_avg(|m| m.precision),
        recall_macro: macro_avg(|m| m.recall),
        f1_macro: macro_avg(|m| m.f1),
        log_loss: log_loss / n.max(1) as f64,
        confusion_matrix: confusion,
        per_class,
    }
}

/// The metrics object both `train_model` (for its test split) and `evaluate_model` report,
/// so the two can be compared key by key.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Report {
    #[serde(flatten)]
    pub evaluation: Evaluation,
    pub classes: Vec<String>,
}

impl Evaluation {
    pub fn report(self, classes: &[String]) -> Report {
        Report {
            evaluation: self,
            classes: classes.to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_hand_computed_values() {
        let classes = vec!["a".to_string(), "b".into(), "c".into()];
        // truths a a b c, predictions a b b b
        let probs = vec![
            vec![0.8, 0.1, 0.1],
            vec![0.3, 0.6, 0.1],
            vec![0.2, 0.7, 0.1],
            vec![0.1, 0.5, 0.4],
        ];
        let e = evaluate(&probs, &[0, 0, 1, 2], &classes);
        assert_eq!(e.confusion_matrix, [[1, 1, 0], [0, 1, 0], [0, 1, 0]]);
        assert_eq!(e.accuracy, 0.5);
        // precision a 1, b 1/3, c 0; recall a 1/2, b 1, c 0.
        assert!((e.precision_macro - (1.0 + 1.0 / 3.0) / 3.0).abs() < 1e-12);
        assert!((e.recall_macro - 0.5).abs() < 1e-12);
        let f1 = (2.0 * 0.5 / 1.5 + 2.0 * (1.0 / 3.0) / (4.0 / 3.0)) / 3.0;
        assert!((e.f1_macro - f1).abs() < 1e-12);
        let ll = -(0.8f64.ln() + 0.3f64.ln() + 0.7f64.ln() + 0.4f64.ln()) / 4.0;
        assert!((e.log_loss - ll).abs() < 1e-12);
        assert_eq!(e.per_class[2].support, 1);
    }

    #[test]
    fn argmax_prefers_the_first_on_ties() {
        assert_eq!(argmax(&[0.5, 0.5]), 0);
        assert_eq!(argmax(&[0.2, 0.3, 0.5]), 2);
    }
}
