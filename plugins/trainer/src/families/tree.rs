//! `decision_tree`, and the tree plumbing the forest and boosting share.

use mlx_plugin_sdk::PluginError;
use serde::{Deserialize, Serialize};
use smartcore::tree::decision_tree_classifier::{
    DecisionTreeClassifier, DecisionTreeClassifierParameters, SplitCriterion,
};
use smartcore::tree::decision_tree_regressor::{
    DecisionTreeRegressor, DecisionTreeRegressorParameters,
};

use super::dense::{Dense, Label, TrainData};
use super::error::{fit_failed, predict_failed};
use super::grow::{grow_class_tree, grow_reg_tree};
use super::loss::normalized;
use super::spec::{Criterion, TreeParams};

pub type ClassTree = DecisionTreeClassifier<f64, Label, Dense, Vec<Label>>;
pub type RegTree = DecisionTreeRegressor<f64, f64, Dense, Vec<f64>>;

/// The seed of tree `index` of an ensemble seeded `seed`: SplitMix64 finalizers, so that
/// neighbouring seeds or indices give unrelated streams (smartcore's own seed + index would
/// make seed 1 repeat most of seed 0's trees).
pub fn tree_seed(seed: u64, index: u64) -> u64 {
    fn mix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    mix(mix(seed) ^ index)
}

/// smartcore counts a tree's depth in levels of nodes (a lone root has depth 1), scikit-learn
/// and the contract in splits (a lone root has depth 0).
pub fn smartcore_depth(max_depth: Option<u16>) -> Option<u16> {
    max_depth.map(|d| d.saturating_add(1))
}

/// The classification criterion; `squared_error` never reaches here (validate refuses it for
/// classification).
pub fn split_criterion(criterion: Option<Criterion>) -> SplitCriterion {
    match criterion {
        Some(Criterion::Entropy) => SplitCriterion::Entropy,
        _ => SplitCriterion::Gini,
    }
}

/// A regression tree's limits, in the contract's terms.
pub struct RegTreeLimits {
    pub max_depth: Option<u16>,
    pub min_samples_leaf: usize,
    pub min_samples_split: usize,
    /// Orders the features a node tries, which decides between equally good splits.
    pub seed: u64,
}

/// A least-squares regression tree on `y`, each row weighted by `weights` if given (a leaf
/// then holds the weighted mean of its rows).
pub fn fit_regression_tree(
    family: &str,
    data: &TrainData,
    y: &[f64],
    weights: Option<&[f64]>,
    limits: &RegTreeLimits,
) -> Result<RegTree, PluginError> {
    let params = DecisionTreeRegressorParameters {
        max_depth: smartcore_depth(limits.max_depth),
        min_samples_leaf: limits.min_samples_leaf,
        min_samples_split: limits.min_samples_split,
        seed: Some(limits.seed),
    };
    // smartcore's DecisionTreeRegressor::fit (fit_with_weights), as grow_reg_tree grows it.
    grow_reg_tree(data.presorted(), y, weights, &params).map_err(|e| fit_failed(family, e))
}

/// Fraction of `trees` voting for each class, per row. A single smartcore classification tree
/// answers with its leaf's majority class only (its `predict_proba` is that class's one-hot
/// row), so one tree's "probabilities" are 0 or 1 and a forest's are vote fractions.
pub fn vote_fractions(
    family: &str,
    trees: &[ClassTree],
    x: &Dense,
    rows: usize,
    classes: usize,
) -> Result<Vec<Vec<f64>>, PluginError> {
    // Counted, then divided once: summing 1/n per vote drifts past 1.0 (twenty 0.05s make
    // 1.0000000000000002), which is no probability.
    let mut votes = vec![vec![0.0; classes]; rows];
    let n = trees.len().max(1) as f64;
    for tree in trees {
        let labels = tree.predict(x).map_err(|e| predict_failed(family, e))?;
        for (row, label) in votes.iter_mut().zip(labels) {
            // Labels are class indices below `classes`, checked when training.
            if let Some(v) = row.get_mut(label as usize) {
                *v += 1.0;
            }
        }
    }
    for row in &mut votes {
        for v in row.iter_mut() {
            *v /= n;
        }
    }
    Ok(votes)
}

/// smartcore's impurity decrease of each feature in `tree`, normalized to sum to 1 (all zeros
/// for a tree that never split).
pub fn class_tree_importances(tree: &ClassTree) -> Vec<f64> {
    normalized(tree.compute_feature_importances(false))
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Tree {
    Classifier { tree: ClassTree, classes: usize },
    Regressor(RegTree),
}

/// smartcore's parameters of a `decision_tree` classifier.
pub fn class_tree_params(p: &TreeParams) -> DecisionTreeClassifierParameters {
    DecisionTreeClassifierParameters {
        criterion: split_criterion(p.criterion),
        max_depth: smartcore_depth(p.max_depth),
        min_samples_leaf: p.min_samples_leaf,
        min_samples_split: p.min_samples_split,
        seed: Some(0),
    }
}

/// smartcore's `DecisionTreeClassifier::fit`, grown by [`grow_class_tree`]: every row once,
/// every feature tried at every node.
pub fn fit_classifier(
    p: &TreeParams,
    data: &TrainData,
    labels: &[Label],
    classes: usize,
) -> Result<Tree, PluginError> {
    let params = class_tree_params(p);
    let tree = grow_class_tree(
        data.presorted(),
        labels,
        &vec![1; data.rows],
        data.cols,
        &params,
    )
    .map_err(|e| fit_failed("decision_tree", e))?;
    Ok(Tree::Classifier { tree, classes })
}

pub fn fit_regressor(p: &TreeParams, data: &TrainData, y: &[f64]) -> Result<Tree, PluginError> {
    let limits = RegTreeLimits {
        max_depth: p.max_depth,
        min_samples_leaf: p.min_samples_leaf,
        min_samples_split: p.min_samples_split,
        seed: 0,
    };
    let tree = fit_regression_tree("decision_tree", data, y, None, &limits)?;
    Ok(Tree::Regressor(tree))
}

impl Tree {
    /// Importances normalized to sum to 1: smartcore's impurity decrease (Gini/entropy, or
    /// variance for regression) summed over the splits on each feature, weighted by the rows
    /// reaching the split.
    pub fn importances(&self) -> Result<Vec<f64>, PluginError> {
        match self {
            Self::Classifier { tree, .. } => Ok(class_tree_importances(tree)),
            Self::Regressor(tree) => tree
                .compute_feature_importances(false)
                .map(normalized)
                .map_err(|e| predict_failed("decision_tree", e)),
        }
    }
}
