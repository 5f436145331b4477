//! What to train: the family and its hyperparameters, as the JSON contract spells them.
//!
//! Defaults are scikit-learn's wherever the meaning matches, so `{"family": "random_forest"}`
//! alone trains what `RandomForestClassifier()` would. The host validates inputs against the
//! JSON Schema derived from these types, so every numeric field carries its range.

use mlx_plugin_sdk::{JsonSchema, PluginError};
use serde::de::{DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Task;

/// Deepest tree any family accepts. smartcore counts depth in `u16` levels; this bound keeps
/// well clear of it and of stack-free but quadratic trees on adversarial data.
pub const MAX_TREE_DEPTH: u16 = 1000;
/// Most trees a forest or most rounds a boosting run may ask for.
pub const MAX_ESTIMATORS: u32 = 10_000;

/// A model family with its hyperparameters. The task (classification, regression,
/// clustering) is not part of it: `random_forest` is a classifier or a regressor depending on
/// the target it is trained on.
///
/// `Deserialize` is written out below (see there why); serde's attributes here still shape the
/// serialized form and the schema.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(
    tag = "family",
    content = "hyperparameters",
    rename_all = "snake_case",
    deny_unknown_fields
)]
#[schemars(transform = hyperparameters_optional)]
pub enum ModelSpec {
    /// Multinomial (or binary) logistic regression, smartcore `LogisticRegression` (L-BFGS).
    /// Classification only.
    LogisticRegression(LogisticParams),
    /// One CART tree, smartcore `DecisionTreeClassifier` / `DecisionTreeRegressor`.
    DecisionTree(TreeParams),
    /// Bagged CART trees with a random feature subset at each split, one bootstrap tree per
    /// training round (smartcore `RandomForestClassifier` / `RandomForestRegressor`, one tree
    /// each, seeded from `seed` and the tree's index).
    RandomForest(ForestParams),
    /// Friedman's gradient tree boosting: log loss (K trees a round) for classification,
    /// squared error for regression, on smartcore `DecisionTreeRegressor` trees.
    GradientBoosting(BoostingParams),
    /// Ordinary least squares with an intercept, smartcore `LinearRegression` (SVD).
    /// Regression only.
    LinearRegression(LinearParams),
    /// L2-penalized least squares with an unpenalized intercept, smartcore `RidgeRegression`
    /// (Cholesky). Regression only.
    Ridge(RidgeParams),
    /// k-means with k-means++ initialization, smartcore `KMeans`. Clustering only.
    Kmeans(KmeansParams),
}

impl<'de> Deserialize<'de> for ModelSpec {
    /// serde's adjacently tagged enums require the content even when every field of it has a
    /// default, and `{"family": "random_forest"}` alone must mean the defaults: so the tag is
    /// read first, and the hyperparameters (an empty object when absent) as that family's.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "snake_case")]
        enum Family {
            LogisticRegression,
            DecisionTree,
            RandomForest,
            GradientBoosting,
            LinearRegression,
            Ridge,
            Kmeans,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Tagged {
            family: Family,
            #[serde(default)]
            hyperparameters: Option<Value>,
        }
        fn params<T: DeserializeOwned, E: serde::de::Error>(h: Value) -> Result<T, E> {
            serde_json::from_value(h).map_err(|e| E::custom(format!("hyperparameters: {e}")))
        }
        let tagged = Tagged::deserialize(deserializer)?;
        let h = tagged
            .hyperparameters
            .unwrap_or_else(|| Value::Object(Default::default()));
        Ok(match tagged.family {
            Family::LogisticRegression => Self::LogisticRegression(params(h)?),
            Family::DecisionTree => Self::DecisionTree(params(h)?),
            Family::RandomForest => Self::RandomForest(params(h)?),
            Family::GradientBoosting => Self::GradientBoosting(params(h)?),
            Family::LinearRegression => Self::LinearRegression(params(h)?),
            Family::Ridge => Self::Ridge(params(h)?),
            Family::Kmeans => Self::Kmeans(params(h)?),
        })
    }
}

/// `hyperparameters` may be left out (every field has a default), but schemars lists an
/// adjacently tagged enum's content as required; the host validates against this schema, so
/// it must accept `{"family": "random_forest"}` just as [`ModelSpec`]'s `Deserialize` does.
fn hyperparameters_optional(schema: &mut schemars::Schema) {
    let Some(variants) = schema.get_mut("oneOf").and_then(|v| v.as_array_mut()) else {
        return;
    };
    for variant in variants {
        if let Some(required) = variant.get_mut("required").and_then(|r| r.as_array_mut()) {
            required.retain(|key| key != "hyperparameters");
        }
    }
}

/// `logistic_regression`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct LogisticParams {
    /// L2 penalty strength on the weights (the intercepts are not penalized); the objective is
    /// the summed log loss plus alpha/2·‖W‖². alpha = 1/C in scikit-learn terms, so the
    /// default 1.0 matches scikit-learn's C = 1.0.
    #[schemars(range(min = 0.0, max = 1e6))]
    pub alpha: f64,
}

impl Default for LogisticParams {
    fn default() -> Self {
        Self { alpha: 1.0 }
    }
}

/// The impurity a tree minimizes when it picks a split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Criterion {
    /// Gini impurity (classification; scikit-learn's default).
    Gini,
    /// Shannon entropy (classification).
    Entropy,
    /// Mean squared error (regression; the only criterion smartcore's regression trees have).
    SquaredError,
}

/// `decision_tree`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TreeParams {
    /// Longest root-to-leaf path in splits (a stump has depth 1), as scikit-learn counts it.
    /// Absent: grow until leaves are pure or too small (scikit-learn's default).
    #[schemars(range(min = 1, max = MAX_TREE_DEPTH))]
    pub max_depth: Option<u16>,
    /// Fewest training rows a leaf may hold (scikit-learn's default 1).
    #[schemars(range(min = 1))]
    pub min_samples_leaf: usize,
    /// Fewest training rows a node needs to be split (scikit-learn's default 2).
    #[schemars(range(min = 2))]
    pub min_samples_split: usize,
    /// Absent: gini for classification, squared_error for regression (scikit-learn's
    /// defaults). gini and entropy are for classification, squared_error for regression.
    pub criterion: Option<Criterion>,
}

impl Default for TreeParams {
    fn default() -> Self {
        Self {
            max_depth: None,
            min_samples_leaf: 1,
            min_samples_split: 2,
            criterion: None,
        }
    }
}

/// How many features a forest's tree considers at each split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum MaxFeatures {
    /// `"sqrt"`: ⌊√features⌋, at least 1; `"all"`: every feature (plain bagging).
    Named(MaxFeaturesRule),
    /// That many features (at most the number of features).
    Count(#[schemars(range(min = 1))] usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MaxFeaturesRule {
    Sqrt,
    All,
}

/// `random_forest`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ForestParams {
    /// Trees in the forest, one per training round (scikit-learn's default 100).
    #[schemars(range(min = 1, max = MAX_ESTIMATORS))]
    pub n_estimators: u32,
    /// Each tree's depth limit, counted as for `decision_tree` (absent: unlimited, scikit-learn's
    /// default).
    #[schemars(range(min = 1, max = MAX_TREE_DEPTH))]
    pub max_depth: Option<u16>,
    /// Fewest training rows a leaf may hold (scikit-learn's default 1).
    #[schemars(range(min = 1))]
    pub min_samples_leaf: usize,
    /// Fewest training rows a node needs to be split (scikit-learn's default 2).
    #[schemars(range(min = 2))]
    pub min_samples_split: usize,
    /// Features considered at each split. Absent: "sqrt" for classification, "all" for
    /// regression (scikit-learn's defaults).
    pub max_features: Option<MaxFeatures>,
    /// As for `decision_tree`.
    pub criterion: Option<Criterion>,
    /// Tree i draws its bootstrap sample and feature subsets from a generator seeded with
    /// (seed, i), so the same seed gives the same forest, however training was interrupted.
    /// scikit-learn's default is fresh entropy; ours is 0, so runs are reproducible.
    #[schemars(range(min = 0))]
    pub seed: u64,
}

impl Default for ForestParams {
    fn default() -> Self {
        Self {
            n_estimators: 100,
            max_depth: None,
            min_samples_leaf: 1,
            min_samples_split: 2,
            max_features: None,
            criterion: None,
            seed: 0,
        }
    }
}

/// `gradient_boosting`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct BoostingParams {
    /// Boosting rounds, one per training round (scikit-learn's default 100). A classification
    /// round fits one tree per class.
    #[schemars(range(min = 1, max = MAX_ESTIMATORS))]
    pub n_estimators: u32,
    /// Shrinkage applied to every tree's contribution (scikit-learn's default 0.1).
    #[schemars(extend("exclusiveMinimum" = 0), range(max = 1.0))]
    pub learning_rate: f64,
    /// Depth of each tree, counted as for `decision_tree` (scikit-learn's default 3).
    #[schemars(range(min = 1, max = 32))]
    pub max_depth: u16,
    /// Fewest training rows a leaf may hold (scikit-learn's default 1).
    #[schemars(range(min = 1))]
    pub min_samples_leaf: usize,
    /// Fewest training rows a node needs to be split (scikit-learn's default 2).
    #[schemars(range(min = 2))]
    pub min_samples_split: usize,
    /// Breaks ties between equally good splits (smartcore visits features in a seeded random
    /// order); the same seed gives the same model.
    #[schemars(range(min = 0))]
    pub seed: u64,
}

impl Default for BoostingParams {
    fn default() -> Self {
        Self {
            n_estimators: 100,
            learning_rate: 0.1,
            max_depth: 3,
            min_samples_leaf: 1,
            min_samples_split: 2,
            seed: 0,
        }
    }
}

/// `linear_regression`: no hyperparameters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct LinearParams {}

/// `ridge`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RidgeParams {
    /// L2 penalty strength on the coefficients, on the features' own scale (scikit-learn's
    /// default 1.0). 0 is ordinary least squares and fails on collinear features.
    #[schemars(range(min = 0.0, max = 1e9))]
    pub alpha: f64,
}

impl Default for RidgeParams {
    fn default() -> Self {
        Self { alpha: 1.0 }
    }
}

/// `kmeans`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct KmeansParams {
    /// Clusters (scikit-learn's default 8); at most the number of rows.
    #[schemars(range(min = 2, max = 10_000))]
    pub k: usize,
    /// Lloyd iterations at most; stops early once the distortion stops falling
    /// (scikit-learn's default 300).
    #[schemars(range(min = 1, max = 100_000))]
    pub max_iter: usize,
    /// Seeds the k-means++ initialization (scikit-learn's default is fresh entropy; ours is 0,
    /// so runs are reproducible). One initialization, where scikit-learn tries several.
    #[schemars(range(min = 0))]
    pub seed: u64,
}

impl Default for KmeansParams {
    fn default() -> Self {
        Self {
            k: 8,
            max_iter: 300,
            seed: 0,
        }
    }
}

/// The task a family was asked to do, in the words of the error messages.
pub fn task_name(task: Task) -> &'static str {
    match task {
        Task::Classification { .. } => "classification",
        Task::Regression => "regression",
        Task::Clustering => "clustering",
    }
}

fn invalid(message: String) -> PluginError {
    PluginError::invalid_input("InvalidParameter", message)
}

impl ModelSpec {
    /// The snake_case family name of the JSON contract.
    pub fn family(&self) -> &'static str {
        match self {
            Self::LogisticRegression(_) => "logistic_regression",
            Self::DecisionTree(_) => "decision_tree",
            Self::RandomForest(_) => "random_forest",
            Self::GradientBoosting(_) => "gradient_boosting",
            Self::LinearRegression(_) => "linear_regression",
            Self::Ridge(_) => "ridge",
            Self::Kmeans(_) => "kmeans",
        }
    }

    /// The tasks this family does, as the error messages list them.
    fn supported(&self) -> &'static str {
        match self {
            Self::LogisticRegression(_) => "classification",
            Self::DecisionTree(_) | Self::RandomForest(_) | Self::GradientBoosting(_) => {
                "classification and regression"
            }
            Self::LinearRegression(_) | Self::Ridge(_) => "regression",
            Self::Kmeans(_) => "clustering",
        }
    }

    fn does(&self, task: Task) -> bool {
        match task {
            Task::Classification { .. } => matches!(
                self,
                Self::LogisticRegression(_)
                    | Self::DecisionTree(_)
                    | Self::RandomForest(_)
                    | Self::GradientBoosting(_)
            ),
            Task::Regression => matches!(
                self,
                Self::DecisionTree(_)
                    | Self::RandomForest(_)
                    | Self::GradientBoosting(_)
                    | Self::LinearRegression(_)
                    | Self::Ridge(_)
            ),
            Task::Clustering => matches!(self, Self::Kmeans(_)),
        }
    }

    /// Checks what the schema cannot: the family does the task, and the hyperparameters make
    /// sense together and for the task. The schema's ranges are checked again, since a spec
    /// may come from elsewhere than validated JSON.
    pub fn validate(&self, task: Task) -> Result<(), PluginError> {
        if !self.does(task) {
            return Err(PluginError::invalid_input(
                "UnsupportedTask",
                format!(
                    "{} does {} only, not {}",
                    self.family(),
                    self.supported(),
                    task_name(task)
                ),
            ));
        }
        if let Task::Classification { classes } = task
            && classes < 2
        {
            return Err(PluginError::invalid_input(
                "TooFewClasses",
                format!("classification needs at least 2 classes, got {classes}"),
            ));
        }
        match self {
            Self::LogisticRegression(p) => check_alpha("alpha", p.alpha, 1e6),
            Self::DecisionTree(p) => {
                check_depth(p.max_depth)?;
                check_samples(p.min_samples_leaf, p.min_samples_split)?;
                check_criterion(p.criterion, task)
            }
            Self::RandomForest(p) => {
                check_estimators(p.n_estimators)?;
                check_depth(p.max_depth)?;
                check_samples(p.min_samples_leaf, p.min_samples_split)?;
                if p.max_features == Some(MaxFeatures::Count(0)) {
                    return Err(invalid("max_features must be at least 1".into()));
                }
                check_criterion(p.criterion, task)
            }
            Self::GradientBoosting(p) => {
                check_estimators(p.n_estimators)?;
                if !(p.learning_rate > 0.0 && p.learning_rate <= 1.0) {
                    return Err(invalid(format!(
                        "learning_rate must be in (0, 1], got {}",
                        p.learning_rate
                    )));
                }
                if !(1..=32).contains(&p.max_depth) {
                    return Err(invalid(format!(
                        "max_depth must be in 1..=32, got {}",
                        p.max_depth
                    )));
                }
                check_samples(p.min_samples_leaf, p.min_samples_split)
            }
            Self::LinearRegression(LinearParams {}) => Ok(()),
            Self::Ridge(p) => check_alpha("alpha", p.alpha, 1e9),
            Self::Kmeans(p) => {
                if !(2..=10_000).contains(&p.k) {
                    return Err(invalid(format!("k must be in 2..=10000, got {}", p.k)));
                }
                if !(1..=100_000).contains(&p.max_iter) {
                    return Err(invalid(format!(
                        "max_iter must be in 1..=100000, got {}",
                        p.max_iter
                    )));
                }
                Ok(())
            }
        }
    }

    /// Training rounds this spec takes: trees for a forest, boosting rounds, else 1 (the
    /// family is fitted by one smartcore call).
    pub fn rounds(&self) -> u32 {
        match self {
            Self::RandomForest(p) => p.n_estimators,
            Self::GradientBoosting(p) => p.n_estimators,
            _ => 1,
        }
    }
}

fn check_alpha(name: &str, alpha: f64, max: f64) -> Result<(), PluginError> {
    if (0.0..=max).contains(&alpha) {
        return Ok(());
    }
    Err(invalid(format!(
        "{name} must be in [0, {max}], got {alpha}"
    )))
}

fn check_depth(max_depth: Option<u16>) -> Result<(), PluginError> {
    match max_depth {
        Some(d) if !(1..=MAX_TREE_DEPTH).contains(&d) => Err(invalid(format!(
            "max_depth must be in 1..={MAX_TREE_DEPTH} (or absent for unlimited), got {d}"
        ))),
        _ => Ok(()),
    }
}

fn check_samples(min_samples_leaf: usize, min_samples_split: usize) -> Result<(), PluginError> {
    if min_samples_leaf < 1 {
        return Err(invalid("min_samples_leaf must be at least 1".into()));
    }
    if min_samples_split < 2 {
        return Err(invalid(format!(
            "min_samples_split must be at least 2, got {min_samples_split}"
        )));
    }
    Ok(())
}

fn check_estimators(n: u32) -> Result<(), PluginError> {
    if (1..=MAX_ESTIMATORS).contains(&n) {
        return Ok(());
    }
    Err(invalid(format!(
        "n_estimators must be in 1..={MAX_ESTIMATORS}, got {n}"
    )))
}

fn check_criterion(criterion: Option<Criterion>, task: Task) -> Result<(), PluginError> {
    match (criterion, task) {
        (None, _)
        | (Some(Criterion::Gini | Criterion::Entropy), Task::Classification { .. })
        | (Some(Criterion::SquaredError), Task::Regression) => Ok(()),
        (Some(Criterion::SquaredError), _) => Err(invalid(
            "criterion squared_error is for regression; classification takes gini or entropy"
                .into(),
        )),
        (Some(_), _) => Err(invalid(
            "criterion gini and entropy are for classification; regression takes squared_error"
                .into(),
        )),
    }
}
