//! The datasets of data/ as matrices, and the checks the family tests share.

use std::path::Path;

use super::super::{Fit, Fitted, Matrix, ModelSpec, Target, Task};

/// A dataset: features, and the last column `target` as class indices (classes numbered in
/// order of their sorted names) or as values.
pub struct Dataset {
    pub x: Matrix,
    pub classes: Vec<usize>,
    pub class_names: Vec<String>,
    pub values: Vec<f64>,
}

pub fn load(name: &str) -> Dataset {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data")
        .join(name);
    let mut reader = csv::Reader::from_path(&path).unwrap();
    let mut rows = Vec::new();
    let mut targets = Vec::new();
    for record in reader.records() {
        let record = record.unwrap();
        let n = record.len();
        rows.push(
            record
                .iter()
                .take(n - 1)
                .map(|v| v.parse::<f64>().unwrap())
                .collect::<Vec<_>>(),
        );
        targets.push(record[n - 1].to_string());
    }
    let mut class_names = targets.clone();
    class_names.sort();
    class_names.dedup();
    let classes = targets
        .iter()
        .map(|t| class_names.binary_search(t).unwrap())
        .collect();
    let values = targets
        .iter()
        .map(|t| t.parse().unwrap_or(f64::NAN))
        .collect();
    Dataset {
        x: Matrix::from_rows(&rows).unwrap(),
        classes,
        class_names,
        values,
    }
}

/// Rows for training and for testing: every fifth row is held out, which keeps the class
/// mix of files sorted by class.
pub fn split(n: usize) -> (Vec<usize>, Vec<usize>) {
    (0..n).partition(|i| i % 5 != 0)
}

pub fn pick<T: Clone>(values: &[T], rows: &[usize]) -> Vec<T> {
    rows.iter().map(|&i| values[i].clone()).collect()
}

/// Features standardized with the training rows' mean and deviation (what the feature
/// pipeline does before the linear families).
pub fn standardized(train: &Matrix, other: &Matrix) -> Matrix {
    let n = train.rows as f64;
    let mut out = other.clone();
    for j in 0..train.cols {
        let mean = train.iter_rows().map(|r| r[j]).sum::<f64>() / n;
        let var = train
            .iter_rows()
            .map(|r| (r[j] - mean).powi(2))
            .sum::<f64>()
            / n;
        let sd = if var > 0.0 { var.sqrt() } else { 1.0 };
        for i in 0..out.rows {
            out.data[i * out.cols + j] = (out.data[i * out.cols + j] - mean) / sd;
        }
    }
    out
}

pub fn spec(value: serde_json::Value) -> ModelSpec {
    serde_json::from_value(value).unwrap()
}

/// Trains `spec` on the training rows and returns the held-out accuracy and the model.
pub fn classify(data: &Dataset, spec_json: serde_json::Value, scale: bool) -> (f64, Fitted) {
    let (train, test) = split(data.x.rows);
    let (mut x_train, mut x_test) = (data.x.select_rows(&train), data.x.select_rows(&test));
    if scale {
        x_test = standardized(&x_train, &x_test);
        x_train = standardized(&x_train, &x_train);
    }
    let task = Task::Classification {
        classes: data.class_names.len(),
    };
    let y = Target::Classes(pick(&data.classes, &train));
    let fitted = Fit::start(&spec(spec_json.clone()), task, &x_train, &y)
        .unwrap()
        .run_to_end()
        .unwrap();
    let predicted = fitted.predict(&x_test).unwrap();
    let truth = pick(&data.classes, &test);
    let right = predicted
        .iter()
        .zip(&truth)
        .filter(|(p, t)| **p == **t as f64)
        .count();
    println!(
        "{spec_json}: held-out accuracy {}",
        right as f64 / truth.len() as f64
    );
    check_probabilities(&fitted, &x_test, data.class_names.len());
    check_importances(&fitted, data.x.cols);
    (right as f64 / truth.len() as f64, fitted)
}

pub fn check_probabilities(fitted: &Fitted, x: &Matrix, classes: usize) {
    for p in fitted.predict_proba(x).unwrap() {
        assert_eq!(p.len(), classes);
        assert!(p.iter().all(|v| (0.0..=1.0).contains(v)), "{p:?}");
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{p:?}");
    }
}

pub fn check_importances(fitted: &Fitted, features: usize) {
    let imp = fitted.feature_importances().unwrap();
    assert_eq!(imp.len(), features);
    assert!(imp.iter().all(|v| v.is_finite() && *v >= 0.0), "{imp:?}");
    assert!((imp.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{imp:?}");
}

/// R² of `predicted` against `actual`.
pub fn r2(predicted: &[f64], actual: &[f64]) -> f64 {
    let mean = actual.iter().sum::<f64>() / actual.len() as f64;
    let ss_res: f64 = predicted
        .iter()
        .zip(actual)
        .map(|(p, a)| (a - p).powi(2))
        .sum();
    let ss_tot: f64 = actual.iter().map(|a| (a - mean).powi(2)).sum();
    1.0 - ss_res / ss_tot
}

/// The model's serde form gives a model with identical predictions.
pub fn check_serde_round_trip(fitted: &Fitted, x: &Matrix) {
    let text = serde_json::to_string(fitted).unwrap();
    let back: Fitted = serde_json::from_str(&text).unwrap();
    assert_eq!(back.spec(), fitted.spec());
    assert_eq!(back.predict(x).unwrap(), fitted.predict(x).unwrap());
    if let Task::Classification { .. } = fitted.task() {
        assert_eq!(
            back.predict_proba(x).unwrap(),
            fitted.predict_proba(x).unwrap()
        );
    }
    assert_eq!(back.feature_importances(), fitted.feature_importances());
}
