//! The rows an operation learns from or scores: tables read with mlx-tabular, and their target
//! column as class indices or values.

use std::path::Path;

use mlx_plugin_sdk::PluginError;
use mlx_plugin_sdk::labels::sorted_labels;
use mlx_tabular::{Table, labels, read_table, values};
use serde_json::json;

/// A CSV or Parquet file (told apart by its first bytes).
pub fn load(path: &str) -> Result<Table, PluginError> {
    read_table(Path::new(path))
}

/// The distinct labels of `target` over every table, in the order every plugin lists classes.
pub fn classes(tables: &[&Table], target: &str) -> Result<Vec<String>, PluginError> {
    let mut all = Vec::new();
    for table in tables {
        all.extend(labels(table.column(target)?).into_iter().flatten());
    }
    Ok(sorted_labels(all.iter().map(String::as_str)))
}

/// Each row's class index in `classes`. A missing label or one outside `classes` is an error
/// rather than a guess: its row can be neither learned, predicted right, nor counted.
pub fn class_indices(
    table: &Table,
    target: &str,
    classes: &[String],
    path: &str,
) -> Result<Vec<usize>, PluginError> {
    let cells = labels(table.column(target)?);
    let mut unknown: Vec<&str> = Vec::new();
    let mut indices = Vec::with_capacity(cells.len());
    for (row, cell) in cells.iter().enumerate() {
        let Some(label) = cell else {
            return Err(missing_target(path, target, row, &cells));
        };
        match classes.iter().position(|c| c == label) {
            Some(i) => indices.push(i),
            None => unknown.push(label),
        }
    }
    if unknown.is_empty() {
        return Ok(indices);
    }
    unknown.sort_unstable();
    unknown.dedup();
    Err(PluginError::invalid_input(
        "UnknownClass",
        format!(
            "{path} has labels the model does not know: {unknown:?}; its classes are {classes:?}"
        ),
    )
    .with_details(json!({"unknown": unknown, "classes": classes})))
}

/// The numeric target of every row (regression).
pub fn target_values(table: &Table, target: &str, path: &str) -> Result<Vec<f64>, PluginError> {
    let cells = values(table.column(target)?)?;
    cells
        .iter()
        .enumerate()
        .map(|(row, v)| v.ok_or_else(|| missing_target(path, target, row, &cells)))
        .collect()
}

fn missing_target<T>(path: &str, target: &str, row: usize, cells: &[Option<T>]) -> PluginError {
    let count = cells.iter().filter(|c| c.is_none()).count();
    PluginError::invalid_input(
        "MissingValues",
        format!(
            "{path}: the target column {target:?} is empty in {count} row(s), first in data row \
             {}; a target cannot be imputed: drop those rows first",
            row + 1
        ),
    )
    .with_details(json!({"column": target, "first_row": row + 1, "count": count}))
}
