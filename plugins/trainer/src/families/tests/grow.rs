//! The trees of `grow` are smartcore's trees: grown both ways on the real datasets, with the
//! hyperparameters that change which splits are tried, they serialize to the same JSON, every
//! node, split value, score and impurity to the last bit.

use serde_json::{Value, json};
use smartcore::ensemble::random_forest_classifier::{
    RandomForestClassifier, RandomForestClassifierParameters,
};
use smartcore::tree::decision_tree_classifier::DecisionTreeClassifier;
use smartcore::tree::decision_tree_regressor::{
    DecisionTreeRegressor, DecisionTreeRegressorParameters,
};

use super::super::dense::{Dense, Label, TrainData, Y};
use super::super::forest::{self, split_features};
use super::super::spec::{ForestParams, TreeParams};
use super::super::tree::{
    self, ClassTree, RegTree, RegTreeLimits, Tree, fit_regression_tree, smartcore_depth,
    split_criterion, tree_seed,
};
use super::super::{Target, Task};
use super::data::{load, pick, split};

/// The training rows of `file` as the trainer holds them.
fn train_data(file: &str) -> (TrainData, Vec<Label>) {
    let data = load(file);
    let rows = split(data.x.rows).0;
    let task = Task::Classification {
        classes: data.class_names.len(),
    };
    let target = Target::Classes(pick(&data.classes, &rows));
    let train = TrainData::new(task, &data.x.select_rows(&rows), &target).unwrap();
    let Y::Classes { labels, .. } = &train.y else {
        unreachable!("classification data")
    };
    let labels = labels.clone();
    (train, labels)
}

/// The one tree of smartcore's own one-tree forest, read through its serde form.
fn smartcore_forest_tree(x: &Dense, labels: &[Label], p: &ForestParams, index: u64) -> Value {
    let params = RandomForestClassifierParameters {
        criterion: split_criterion(p.criterion),
        max_depth: smartcore_depth(p.max_depth),
        min_samples_leaf: p.min_samples_leaf,
        min_samples_split: p.min_samples_split,
        n_trees: 1,
        m: Some(split_features(p, true, x_cols(x)).unwrap()),
        keep_samples: false,
        seed: tree_seed(p.seed, index),
    };
    let forest: RandomForestClassifier<f64, Label, Dense, Vec<Label>> =
        RandomForestClassifier::fit(x, &labels.to_vec(), params).unwrap();
    serde_json::to_value(&forest).unwrap()["trees"][0].clone()
}

fn x_cols(x: &Dense) -> usize {
    use smartcore::linalg::basic::arrays::Array;
    x.shape().1
}

fn nodes(tree: &Value) -> usize {
    tree["nodes"].as_array().map_or(0, Vec::len)
}

#[test]
fn forest_trees_are_the_trees_smartcore_grows() {
    let cases = [
        ("iris.csv", json!({})),
        (
            "iris.csv",
            json!({"criterion": "entropy", "max_features": 4, "seed": 3}),
        ),
        (
            "wine.csv",
            json!({"max_depth": 3, "min_samples_leaf": 5, "seed": 11}),
        ),
        (
            "breast_cancer.csv",
            json!({"min_samples_split": 10, "criterion": "entropy"}),
        ),
        ("digits.csv", json!({"seed": 42})),
        (
            "digits.csv",
            json!({"max_depth": 6, "max_features": 20, "min_samples_leaf": 3}),
        ),
    ];
    for (file, hyper) in cases {
        let (data, labels) = train_data(file);
        let p: ForestParams = serde_json::from_value(hyper.clone()).unwrap();
        let mut trees: Vec<ClassTree> = Vec::new();
        for index in 0..3 {
            forest::grow_classifier(&p, &data, &labels, &mut trees).unwrap();
            let ours = serde_json::to_value(&trees[index]).unwrap();
            let theirs = smartcore_forest_tree(&data.x, &labels, &p, index as u64);
            assert!(nodes(&ours) > 1, "{file} {hyper}: tree {index} never split");
            assert!(
                ours == theirs,
                "{file} {hyper}: tree {index} differs from smartcore's\nours:   {ours}\ntheirs: {theirs}"
            );
        }
    }
}

#[test]
fn decision_trees_are_the_trees_smartcore_grows() {
    let cases = [
        ("iris.csv", json!({})),
        ("wine.csv", json!({"criterion": "entropy"})),
        (
            "breast_cancer.csv",
            json!({"max_depth": 4, "min_samples_leaf": 4}),
        ),
        ("digits.csv", json!({"min_samples_split": 6})),
    ];
    for (file, hyper) in cases {
        let (data, labels) = train_data(file);
        let p: TreeParams = serde_json::from_value(hyper.clone()).unwrap();
        let classes = labels.iter().max().map_or(0, |&m| m as usize + 1);
        let Tree::Classifier { tree: ours, .. } =
            tree::fit_classifier(&p, &data, &labels, classes).unwrap()
        else {
            unreachable!("a classifier")
        };
        let params = tree::class_tree_params(&p);
        let theirs: ClassTree =
            DecisionTreeClassifier::fit(&data.x, &labels.to_vec(), params).unwrap();
        let (ours, theirs) = (
            serde_json::to_value(&ours).unwrap(),
            serde_json::to_value(&theirs).unwrap(),
        );
        assert!(nodes(&ours) > 1, "{file} {hyper}: the tree never split");
        assert!(
            ours == theirs,
            "{file} {hyper}: differs from smartcore's tree"
        );
    }
}

/// The training rows of `file` for regression, on its target values.
fn regression_data(file: &str) -> (TrainData, Vec<f64>) {
    let data = load(file);
    let rows = split(data.x.rows).0;
    let y = pick(&data.values, &rows);
    let target = Target::Values(y.clone());
    let train = TrainData::new(Task::Regression, &data.x.select_rows(&rows), &target).unwrap();
    (train, y)
}

#[test]
fn regression_trees_are_the_trees_smartcore_grows() {
    // diabetes as a regression tree; digits' pixels with a boosting round's kind of target
    // and weights (per class: a scaled residual, weighted by p(1 - p)), where ties abound.
    let (diabetes, values) = regression_data("diabetes.csv");
    let (digits, labels) = train_data("digits.csv");
    let p = |i: usize| 0.05 + 0.9 * ((i * 37 % 101) as f64 / 100.0);
    let target: Vec<f64> = labels
        .iter()
        .enumerate()
        .map(|(i, &l)| (f64::from(u8::from(l == 3)) - p(i)) / (p(i) * (1.0 - p(i))))
        .collect();
    let weights: Vec<f64> = (0..labels.len()).map(|i| p(i) * (1.0 - p(i))).collect();
    // Weights all 1 but one 0: that row leaves the tree's rows, not only its sums.
    let one_zero: Vec<f64> = (0..values.len())
        .map(|i| f64::from(u8::from(i != 5)))
        .collect();
    let limits = |max_depth, min_samples_leaf, min_samples_split, seed| RegTreeLimits {
        max_depth,
        min_samples_leaf,
        min_samples_split,
        seed,
    };
    let cases = [
        (&diabetes, &values, None, limits(None, 1, 2, 0)),
        (&diabetes, &values, None, limits(Some(4), 5, 12, 7)),
        (
            &diabetes,
            &values,
            Some(&one_zero),
            limits(Some(3), 1, 2, 1),
        ),
        (&digits, &target, Some(&weights), limits(Some(3), 1, 2, 42)),
        (&digits, &target, None, limits(Some(8), 3, 2, 9)),
    ];
    for (n, (data, y, weights, limits)) in cases.into_iter().enumerate() {
        let weights = weights.map(Vec::as_slice);
        let ours: RegTree = fit_regression_tree("test", data, y, weights, &limits).unwrap();
        let params = DecisionTreeRegressorParameters {
            max_depth: smartcore_depth(limits.max_depth),
            min_samples_leaf: limits.min_samples_leaf,
            min_samples_split: limits.min_samples_split,
            seed: Some(limits.seed),
        };
        let theirs: RegTree = match weights {
            Some(w) => DecisionTreeRegressor::fit_with_weights(&data.x, &y.to_vec(), w, params),
            None => DecisionTreeRegressor::fit(&data.x, &y.to_vec(), params),
        }
        .unwrap();
        let (ours, theirs) = (
            serde_json::to_value(&ours).unwrap(),
            serde_json::to_value(&theirs).unwrap(),
        );
        assert!(
            nodes(&ours["tree_regressor"]) > 1,
            "case {n}: the tree never split"
        );
        assert!(ours == theirs, "case {n}: differs from smartcore's tree");
    }
}

#[test]
fn bad_weights_are_refused_as_smartcore_refuses_them() {
    let (data, y) = regression_data("diabetes.csv");
    let limits = RegTreeLimits {
        max_depth: None,
        min_samples_leaf: 1,
        min_samples_split: 2,
        seed: 0,
    };
    for (weights, message) in [
        (vec![1.0; 3], "Number of sample weights"),
        (vec![-1.0; y.len()], "finite and non-negative"),
        (vec![0.0; y.len()], "must be positive"),
    ] {
        let err = fit_regression_tree("test", &data, &y, Some(&weights), &limits).unwrap_err();
        assert!(err.to_string().contains(message), "{err}");
    }
}

#[test]
fn a_single_class_is_refused_as_smartcore_refuses_it() {
    let (data, _) = train_data("iris.csv");
    let one_class = vec![0; data.rows];
    let p: TreeParams = serde_json::from_value(json!({})).unwrap();
    let err = tree::fit_classifier(&p, &data, &one_class, 3).unwrap_err();
    assert!(
        err.to_string().contains("Incorrect number of classes: 1"),
        "{err}"
    );
}
