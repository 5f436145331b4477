//! `random_forest`, grown one tree per training round.
//!
//! smartcore's forests draw every tree's bootstrap sample from one generator seeded once per
//! forest, so a forest cannot be grown in pieces and resumed. Each round here is instead a
//! smartcore forest of one tree, seeded from (seed, tree index): the trees are independent, and
//! an interrupted and resumed forest is the forest an uninterrupted run grows.

use mlx_plugin_sdk::PluginError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use smartcore::ensemble::random_forest_regressor::{
    RandomForestRegressor, RandomForestRegressorParameters,
};
use smartcore::tree::decision_tree_classifier::DecisionTreeClassifierParameters;

use super::dense::{Dense, Label, TrainData};
use super::error::{fit_failed, predict_failed};
use super::grow::{forest_bootstrap, grow_class_tree};
use super::loss::normalized;
use super::spec::{ForestParams, MaxFeatures, MaxFeaturesRule};
use super::tree::{ClassTree, class_tree_importances, smartcore_depth, split_criterion, tree_seed};

const FAMILY: &str = "random_forest";

type RegForest = RandomForestRegressor<f64, f64, Dense, Vec<f64>>;

/// The trees grown so far.
#[derive(Debug, Serialize, Deserialize)]
pub enum Trees {
    Classifier {
        trees: Vec<ClassTree>,
        classes: usize,
    },
    /// One-tree smartcore forests: a regression tree of smartcore's forests is not a public
    /// type, but the one-tree forest predicts and reports importances itself.
    Regressor(Vec<RegForest>),
}

impl Trees {
    /// Trees grown so far.
    pub fn grown(&self) -> usize {
        match self {
            Self::Classifier { trees, .. } => trees.len(),
            Self::Regressor(trees) => trees.len(),
        }
    }

    /// The serde form of tree `i`, one round of a checkpoint journal.
    pub fn record(&self, i: usize) -> serde_json::Result<Value> {
        match self {
            Self::Classifier { trees, .. } => serde_json::to_value(&trees[i]),
            Self::Regressor(trees) => serde_json::to_value(&trees[i]),
        }
    }

    /// Adds the tree a [`Trees::record`] holds.
    pub fn push_record(&mut self, record: Value) -> Result<(), String> {
        match self {
            Self::Classifier { trees, .. } => trees.push(from_record(record)?),
            Self::Regressor(trees) => trees.push(from_record(record)?),
        }
        Ok(())
    }
}

fn from_record<T: serde::de::DeserializeOwned>(record: Value) -> Result<T, String> {
    serde_json::from_value(record).map_err(|e| format!("not a tree of this forest: {e}"))
}

/// Features each split considers, for `features` columns.
pub fn split_features(
    p: &ForestParams,
    classification: bool,
    features: usize,
) -> Result<usize, PluginError> {
    let rule = p
        .max_features
        .unwrap_or(MaxFeatures::Named(if classification {
            MaxFeaturesRule::Sqrt
        } else {
            MaxFeaturesRule::All
        }));
    match rule {
        MaxFeatures::Named(MaxFeaturesRule::Sqrt) => {
            Ok(((features as f64).sqrt().floor() as usize).max(1))
        }
        MaxFeatures::Named(MaxFeaturesRule::All) => Ok(features),
        MaxFeatures::Count(n) if (1..=features).contains(&n) => Ok(n),
        MaxFeatures::Count(n) => Err(PluginError::invalid_input(
            "InvalidParameter",
            format!("max_features is {n}, but the data has {features} features"),
        )),
    }
}

/// Grows the next tree: the only tree of a smartcore `RandomForestClassifier` of one tree
/// seeded from (seed, tree index), grown by [`grow_class_tree`] (the unit tests compare the
/// two).
pub fn grow_classifier(
    p: &ForestParams,
    data: &TrainData,
    labels: &[Label],
    trees: &mut Vec<ClassTree>,
) -> Result<(), PluginError> {
    let seed = tree_seed(p.seed, trees.len() as u64);
    let mtry = split_features(p, true, data.cols)?;
    let samples = forest_bootstrap(labels, seed);
    let params = DecisionTreeClassifierParameters {
        criterion: split_criterion(p.criterion),
        max_depth: smartcore_depth(p.max_depth),
        min_samples_leaf: p.min_samples_leaf,
        min_samples_split: p.min_samples_split,
        // smartcore seeds tree i of a forest seeded s with s + i; this forest's one tree is 0.
        seed: Some(seed),
    };
    let tree = grow_class_tree(data.presorted(), labels, &samples, mtry, &params)
        .map_err(|e| fit_failed(FAMILY, e))?;
    trees.push(tree);
    Ok(())
}

pub fn grow_regressor(
    p: &ForestParams,
    x: &Dense,
    y: &[f64],
    trees: &mut Vec<RegForest>,
) -> Result<(), PluginError> {
    let params = RandomForestRegressorParameters {
        max_depth: smartcore_depth(p.max_depth),
        min_samples_leaf: p.min_samples_leaf,
        min_samples_split: p.min_samples_split,
        n_trees: 1,
        m: Some(split_features(p, false, x_cols(x))?),
        keep_samples: false,
        seed: tree_seed(p.seed, trees.len() as u64),
    };
    let forest =
        RandomForestRegressor::fit(x, &y.to_vec(), params).map_err(|e| fit_failed(FAMILY, e))?;
    trees.push(forest);
    Ok(())
}

fn x_cols(x: &Dense) -> usize {
    use smartcore::linalg::basic::arrays::Array;
    x.shape().1
}

pub fn predict_regressor(trees: &[RegForest], x: &Dense) -> Result<Vec<f64>, PluginError> {
    let mut sum: Vec<f64> = Vec::new();
    for tree in trees {
        let predicted = tree.predict(x).map_err(|e| predict_failed(FAMILY, e))?;
        if sum.is_empty() {
            sum = predicted;
        } else {
            sum.iter_mut().zip(predicted).for_each(|(s, p)| *s += p);
        }
    }
    let n = trees.len().max(1) as f64;
    Ok(sum.into_iter().map(|s| s / n).collect())
}

/// scikit-learn's forest importances: the mean over the trees of each tree's normalized
/// impurity decrease, normalized again.
pub fn importances(trees: &Trees) -> Result<Vec<f64>, PluginError> {
    let per_tree: Vec<Vec<f64>> = match trees {
        Trees::Classifier { trees, .. } => trees.iter().map(class_tree_importances).collect(),
        Trees::Regressor(trees) => trees
            .iter()
            .map(|t| {
                t.compute_feature_importances()
                    .map_err(|e| predict_failed(FAMILY, e))
            })
            .collect::<Result<_, _>>()?,
    };
    let mut mean = vec![0.0; per_tree.first().map_or(0, Vec::len)];
    for tree in &per_tree {
        mean.iter_mut().zip(tree).for_each(|(m, v)| *m += v);
    }
    Ok(normalized(mean))
}
