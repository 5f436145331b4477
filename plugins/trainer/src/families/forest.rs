//! `random_forest`, grown one tree per training round.
//!
//! smartcore's forests draw every tree's bootstrap sample from one generator seeded once per
//! forest, so a forest cannot be grown in pieces and resumed. Each round here is instead a
//! smartcore forest of one tree, seeded from (seed, tree index): the trees are independent, and
//! an interrupted and resumed forest is the forest an uninterrupted run grows.

use mlx_plugin_sdk::PluginError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use smartcore::ensemble::random_forest_classifier::{
    RandomForestClassifier, RandomForestClassifierParameters,
};
use smartcore::ensemble::random_forest_regressor::{
    RandomForestRegressor, RandomForestRegressorParameters,
};

use super::dense::{Dense, Label};
use super::error::{fit_failed, internal, predict_failed};
use super::loss::normalized;
use super::spec::{ForestParams, MaxFeatures, MaxFeaturesRule};
use super::tree::{ClassTree, class_tree_importances, smartcore_depth, split_criterion, tree_seed};

const FAMILY: &str = "random_forest";

type ClassForest = RandomForestClassifier<f64, Label, Dense, Vec<Label>>;
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

/// Grows the next tree.
pub fn grow_classifier(
    p: &ForestParams,
    x: &Dense,
    labels: &[Label],
    trees: &mut Vec<ClassTree>,
) -> Result<(), PluginError> {
    let params = RandomForestClassifierParameters {
        criterion: split_criterion(p.criterion),
        max_depth: smartcore_depth(p.max_depth),
        min_samples_leaf: p.min_samples_leaf,
        min_samples_split: p.min_samples_split,
        n_trees: 1,
        m: Some(split_features(p, true, x_cols(x))?),
        keep_samples: false,
        seed: tree_seed(p.seed, trees.len() as u64),
    };
    let forest: ClassForest = RandomForestClassifier::fit(x, &labels.to_vec(), params)
        .map_err(|e| fit_failed(FAMILY, e))?;
    trees.push(only_tree(&forest)?);
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

/// The tree of a one-tree smartcore classification forest.
///
/// `RandomForestClassifier` keeps its trees private and computes no importances, but its
/// serde form is public and holds them as `DecisionTreeClassifier`s, which do. Read through
/// that form once per tree, at training time; a smartcore release that renames the field fails
/// the tests, not silently.
fn only_tree(forest: &ClassForest) -> Result<ClassTree, PluginError> {
    #[derive(Deserialize)]
    struct ForestForm {
        trees: Option<Vec<ClassTree>>,
    }
    let broken = |what: String| internal(format!("reading smartcore's forest tree: {what}"));
    let form: ForestForm = serde_json::to_value(forest)
        .and_then(serde_json::from_value)
        .map_err(|e| broken(e.to_string()))?;
    form.trees
        .and_then(|trees| trees.into_iter().next())
        .ok_or_else(|| broken("the forest has no tree".into()))
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
