//! Turning a table into the numeric matrix models train on. [`FeatureSpec::fit`] learns
//! everything from the training table only (impute values, categories, scaling) and is stored
//! inside model files, so [`FeatureSpec::transform`] encodes later tables exactly the same way.

mod errors;
mod fit;
mod transform;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Most distinct values a categorical feature may have: each becomes a matrix column, and a
/// column with more is nearly always an identifier, free text, or a numeric column spoilt by a
/// stray word (the error shows one).
pub const MAX_CATEGORIES: usize = 1000;

/// What to do with a missing value (see `MISSING_TOKENS` for CSV; nulls and NaN in Parquet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Missing {
    /// Fail with `MissingValues`, naming the column and the first row.
    #[default]
    Refuse,
    /// Fill in the training data's mean (numeric columns) or most frequent value
    /// (categorical columns).
    Impute,
}

/// How features are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct FeatureOptions {
    /// Missing values: "refuse" (the default) or "impute".
    #[serde(default)]
    pub missing: Missing,
    /// Standardize numeric features to mean 0 and standard deviation 1, with the training
    /// data's mean and deviation. One-hot columns are left as 0 and 1.
    #[serde(default)]
    pub scale: bool,
}

/// The encoding learnt by [`FeatureSpec::fit`]; stored in model files as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSpec {
    pub options: FeatureOptions,
    /// The feature columns, in matrix order.
    pub columns: Vec<FeatureColumn>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureColumn {
    pub name: String,
    pub encoding: Encoding,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Encoding {
    /// One matrix column: the value, or `impute` when it is missing (and imputing).
    Numeric {
        /// The training mean.
        impute: f64,
        /// Present when scaling: `(x - mean) / std`.
        scale: Option<Scale>,
    },
    /// One matrix column per category, 1 in the row's category's. A value not among
    /// `categories` (unseen in training) gives all zeros, like scikit-learn's
    /// `OneHotEncoder(handle_unknown="ignore")`.
    OneHot {
        /// Sorted (byte order) and distinct.
        categories: Vec<String>,
        /// The training data's most frequent value (the smallest of a tie).
        impute: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scale {
    pub mean: f64,
    /// Population standard deviation of the training values; 1 when they are all equal.
    pub std: f64,
}

impl FeatureSpec {
    /// Names of the matrix columns: a numeric column's name, `name=category` per one-hot
    /// column (e.g. `color=red`).
    pub fn output_names(&self) -> Vec<String> {
        self.columns
            .iter()
            .flat_map(|c| match &c.encoding {
                Encoding::Numeric { .. } => vec![c.name.clone()],
                Encoding::OneHot { categories, .. } => categories
                    .iter()
                    .map(|v| format!("{}={v}", c.name))
                    .collect(),
            })
            .collect()
    }

    /// Names of the table columns the spec reads, in order.
    pub fn input_names(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }
}

#[cfg(test)]
mod tests;
