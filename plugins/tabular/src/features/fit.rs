//! Learning a [`FeatureSpec`] from a training table.

use std::collections::BTreeMap;

use mlx_plugin_sdk::PluginError;

use super::errors;
use super::{Encoding, FeatureColumn, FeatureOptions, FeatureSpec, MAX_CATEGORIES, Missing, Scale};
use crate::table::{Column, ColumnData, Table};

impl FeatureSpec {
    /// Learns the encoding from `table` (the training data only, so nothing about test or
    /// scoring data leaks into it).
    ///
    /// Features are `columns` in that order (the target left out if named), or every column
    /// but `target`. Numeric columns stay numeric (mean to impute, mean and deviation to
    /// scale); categorical ones are one-hot encoded over their sorted distinct values, at most
    /// [`MAX_CATEGORIES`]. With [`Missing::Refuse`] a missing value here is an error already.
    pub fn fit(
        table: &Table,
        target: Option<&str>,
        columns: Option<&[String]>,
        options: &FeatureOptions,
    ) -> Result<FeatureSpec, PluginError> {
        if table.rows() == 0 {
            return Err(errors::no_rows());
        }
        if let Some(target) = target {
            table.column(target)?;
        }
        let names: Vec<&str> = match columns {
            Some(columns) => columns.iter().map(String::as_str).collect(),
            None => table.names(),
        };
        let mut features: Vec<FeatureColumn> = Vec::with_capacity(names.len());
        for name in names.into_iter().filter(|&n| Some(n) != target) {
            if features.iter().any(|f| f.name == name) {
                return Err(errors::duplicate(name));
            }
            features.push(fit_column(table.column(name)?, options)?);
        }
        if features.is_empty() {
            return Err(errors::no_features());
        }
        Ok(FeatureSpec {
            options: *options,
            columns: features,
        })
    }
}

fn fit_column(column: &Column, options: &FeatureOptions) -> Result<FeatureColumn, PluginError> {
    if options.missing == Missing::Refuse {
        refuse_missing(column, true)?;
    }
    let encoding = match &column.data {
        ColumnData::Numeric(values) => fit_numeric(&column.name, values, options.scale)?,
        ColumnData::Categorical(values) => fit_categorical(&column.name, values)?,
    };
    Ok(FeatureColumn {
        name: column.name.clone(),
        encoding,
    })
}

/// `MissingValues` for the column's first missing cell, if any.
pub(super) fn refuse_missing(column: &Column, fitting: bool) -> Result<(), PluginError> {
    let missing: Vec<bool> = match &column.data {
        ColumnData::Numeric(v) => v.iter().map(Option::is_none).collect(),
        ColumnData::Categorical(v) => v.iter().map(Option::is_none).collect(),
    };
    match missing.iter().position(|&m| m) {
        Some(first) => {
            let count = missing.iter().filter(|&&m| m).count();
            Err(errors::missing_values(&column.name, first, count, fitting))
        }
        None => Ok(()),
    }
}

fn fit_numeric(name: &str, values: &[Option<f64>], scale: bool) -> Result<Encoding, PluginError> {
    // Welford's running mean and variance: no sum of squares to overflow or cancel.
    let (mut n, mut mean, mut m2) = (0.0_f64, 0.0_f64, 0.0_f64);
    for (i, value) in values.iter().enumerate() {
        let Some(x) = *value else { continue };
        if !x.is_finite() {
            return Err(errors::non_finite(name, i, x));
        }
        n += 1.0;
        let delta = x - mean;
        mean += delta / n;
        m2 += delta * (x - mean);
    }
    if n == 0.0 {
        return Err(errors::nothing_to_learn(name));
    }
    let std = (m2 / n).sqrt();
    if !mean.is_finite() || !std.is_finite() {
        return Err(errors::overflow(name));
    }
    // As scikit-learn's StandardScaler: a constant column is centred, not divided by zero.
    let std = if std > 0.0 { std } else { 1.0 };
    Ok(Encoding::Numeric {
        impute: mean,
        scale: scale.then_some(Scale { mean, std }),
    })
}

fn fit_categorical(name: &str, values: &[Option<String>]) -> Result<Encoding, PluginError> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for value in values.iter().flatten() {
        *counts.entry(value).or_default() += 1;
        if counts.len() > MAX_CATEGORIES {
            return Err(errors::too_many_categories(
                name,
                distinct(values),
                stray_text(values),
            ));
        }
    }
    // The first of the largest counts in sorted order: ties go to the smallest value.
    let impute = counts
        .iter()
        .rev()
        .max_by_key(|&(_, &count)| count)
        .map(|(&value, _)| value.to_owned())
        .ok_or_else(|| errors::nothing_to_learn(name))?;
    Ok(Encoding::OneHot {
        categories: counts.into_keys().map(str::to_owned).collect(),
        impute,
    })
}

fn distinct(values: &[Option<String>]) -> usize {
    let mut all: Vec<&str> = values.iter().flatten().map(String::as_str).collect();
    all.sort_unstable();
    all.dedup();
    all.len()
}

/// The first cell that is not a number, when at least half the cells are numbers: the column
/// was probably meant to be numeric.
fn stray_text(values: &[Option<String>]) -> Option<(usize, &str)> {
    let is_number = |v: &str| v.trim().parse::<f64>().is_ok_and(f64::is_finite);
    let present: Vec<(usize, &str)> = values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| Some((i, v.as_deref()?)))
        .collect();
    let numbers = present.iter().filter(|(_, v)| is_number(v)).count();
    if numbers * 2 < present.len() {
        return None;
    }
    present.into_iter().find(|(_, v)| !is_number(v))
}
