//! The regression families on a synthetic linear function with noise, and on diabetes.

use serde_json::{Value, json};

use super::super::{Fit, Fitted, Matrix, Target, Task};
use super::data::{check_importances, check_serde_round_trip, load, pick, r2, spec, split};

/// y = 3·x0 − 2·x1 + 0.5·x2 + noise, x uniform in [-1, 1]; x3 is noise the model must ignore.
fn linear_data(rows: usize) -> (Matrix, Vec<f64>) {
    // A fixed LCG: the data is the same on every run and on every platform.
    let mut state: u64 = 42;
    let mut uniform = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    };
    let mut x = Vec::new();
    let mut y = Vec::new();
    for _ in 0..rows {
        let r: Vec<f64> = (0..4).map(|_| uniform()).collect();
        y.push(3.0 * r[0] - 2.0 * r[1] + 0.5 * r[2] + 0.1 * uniform());
        x.push(r);
    }
    (Matrix::from_rows(&x).unwrap(), y)
}

/// Trains on four fifths of (x, y) and returns the held-out R² and the model.
fn regress(x: &Matrix, y: &[f64], spec_json: Value) -> (f64, Fitted) {
    let (train, test) = split(x.rows);
    let fitted = Fit::start(
        &spec(spec_json.clone()),
        Task::Regression,
        &x.select_rows(&train),
        &Target::Values(pick(y, &train)),
    )
    .unwrap()
    .run_to_end()
    .unwrap();
    let x_test = x.select_rows(&test);
    let predicted = fitted.predict(&x_test).unwrap();
    check_importances(&fitted, x.cols);
    check_serde_round_trip(&fitted, &x_test);
    let score = r2(&predicted, &pick(y, &test));
    println!("{spec_json}: held-out R² {score}");
    (score, fitted)
}

/// (spec, R² at least on the synthetic data, on diabetes), trees `tree_depth` deep.
fn families(tree_depth: u16) -> [(Value, f64, f64); 5] {
    [
        (json!({"family": "linear_regression"}), 0.99, 0.4),
        (json!({"family": "ridge"}), 0.99, 0.4),
        (
            json!({"family": "decision_tree", "hyperparameters": {"max_depth": tree_depth}}),
            0.8,
            0.2,
        ),
        (
            json!({"family": "random_forest", "hyperparameters": {"n_estimators": 30}}),
            0.9,
            0.35,
        ),
        (json!({"family": "gradient_boosting"}), 0.95, 0.35),
    ]
}

#[test]
fn every_regression_family_fits_a_noisy_linear_function() {
    let (x, y) = linear_data(400);
    for (spec_json, at_least, _) in families(6) {
        let (score, fitted) = regress(&x, &y, spec_json.clone());
        assert!(score >= at_least, "{spec_json}: R² {score}");
        // x0 carries the largest coefficient, x3 none.
        let imp = fitted.feature_importances().unwrap();
        assert!(imp[0] > imp[1] && imp[1] > imp[3], "{spec_json}: {imp:?}");
    }
}

#[test]
fn every_regression_family_predicts_diabetes_progression() {
    let data = load("diabetes.csv");
    // A deep single tree overfits 350 rows of noisy data; scikit-learn's is no better.
    for (spec_json, _, at_least) in families(3) {
        let (score, _) = regress(&data.x, &data.values, spec_json.clone());
        assert!(score >= at_least, "{spec_json}: R² {score}");
    }
}

#[test]
fn ridge_shrinks_toward_the_mean_as_alpha_grows() {
    let (x, y) = linear_data(200);
    let mean = y.iter().sum::<f64>() / y.len() as f64;
    let spread = |alpha: f64| {
        let (_, fitted) = regress(
            &x,
            &y,
            json!({"family": "ridge", "hyperparameters": {"alpha": alpha}}),
        );
        let p = fitted.predict(&x).unwrap();
        p.iter().map(|v| (v - mean).abs()).sum::<f64>()
    };
    let (small, large) = (spread(0.1), spread(1e4));
    assert!(large < small / 10.0, "{small} {large}");
}
