//! The classification families on iris, breast_cancer and digits, held out every fifth row.

use serde_json::json;

use super::data::{check_serde_round_trip, classify, load, split};

#[test]
fn logistic_regression_classifies_iris_breast_cancer_and_wine() {
    for (file, scale, at_least) in [
        ("iris.csv", false, 0.9),
        ("breast_cancer.csv", true, 0.95),
        ("wine.csv", true, 0.9),
    ] {
        // digits takes 30 s unoptimized here; the timing test runs it in release mode.
        let data = load(file);
        let (accuracy, fitted) = classify(&data, json!({"family": "logistic_regression"}), scale);
        assert!(accuracy >= at_least, "{file}: accuracy {accuracy}");
        let x = data.x.select_rows(&split(data.x.rows).1);
        check_serde_round_trip(&fitted, &x);
    }
}

#[test]
fn decision_tree_classifies_iris_with_either_criterion() {
    let data = load("iris.csv");
    for criterion in ["gini", "entropy"] {
        let spec = json!({"family": "decision_tree", "hyperparameters": {"criterion": criterion}});
        let (accuracy, fitted) = classify(&data, spec, false);
        assert!(accuracy >= 0.9, "{criterion}: accuracy {accuracy}");
        // Iris is told apart by the petals (columns 2 and 3).
        let imp = fitted.feature_importances().unwrap();
        assert!(imp[2] + imp[3] > 0.8, "{imp:?}");
        check_serde_round_trip(&fitted, &data.x);
    }
}

#[test]
fn max_depth_counts_splits_as_scikit_learn_does() {
    // A stump (max_depth 1) has two leaves: on iris it can tell setosa from the rest only.
    let data = load("iris.csv");
    let spec = json!({"family": "decision_tree", "hyperparameters": {"max_depth": 1}});
    let (accuracy, fitted) = classify(&data, spec, false);
    let mut predicted = fitted.predict(&data.x).unwrap();
    predicted.sort_by(f64::total_cmp);
    predicted.dedup();
    assert_eq!(predicted.len(), 2, "{predicted:?}");
    assert!((0.6..0.7).contains(&accuracy), "{accuracy}");
    let spec = json!({"family": "decision_tree", "hyperparameters": {"max_depth": 2}});
    let (accuracy, _) = classify(&data, spec, false);
    assert!(accuracy >= 0.9, "{accuracy}");
}

#[test]
fn random_forest_classifies_iris_breast_cancer_and_digits() {
    // Fewer trees than the default keep the unoptimized test build quick.
    for (file, at_least) in [
        ("iris.csv", 0.9),
        ("breast_cancer.csv", 0.93),
        ("digits.csv", 0.93),
    ] {
        let data = load(file);
        let spec = json!({"family": "random_forest", "hyperparameters": {"n_estimators": 30}});
        let (accuracy, fitted) = classify(&data, spec, false);
        assert!(accuracy >= at_least, "{file}: accuracy {accuracy}");
        if file == "iris.csv" {
            check_serde_round_trip(&fitted, &data.x);
        }
    }
}

#[test]
fn gradient_boosting_classifies_iris_breast_cancer_and_digits() {
    // Fewer rounds on digits keep the unoptimized test build quick (the defaults reach 0.96).
    for (file, hyperparameters, at_least) in [
        ("iris.csv", json!({}), 0.9),
        ("breast_cancer.csv", json!({}), 0.95),
        (
            "digits.csv",
            json!({"n_estimators": 20, "learning_rate": 0.3}),
            0.93,
        ),
    ] {
        let data = load(file);
        let spec = json!({"family": "gradient_boosting", "hyperparameters": hyperparameters});
        let (accuracy, fitted) = classify(&data, spec, false);
        assert!(accuracy >= at_least, "{file}: accuracy {accuracy}");
        if file == "iris.csv" {
            check_serde_round_trip(&fitted, &data.x);
        }
    }
}
