//! The errors of encoding features, each naming the column and a row to look at.

use mlx_plugin_sdk::PluginError;
use serde_json::json;

use super::MAX_CATEGORIES;

/// Rows in messages count data rows from 1, as a person scrolling a spreadsheet would.
fn row(index: usize) -> usize {
    index + 1
}

pub fn missing_values(column: &str, first: usize, count: usize, fitting: bool) -> PluginError {
    let fix = if fitting {
        "fill them in, drop those rows or the column, or set missing to \"impute\""
    } else {
        "fill them in or drop those rows; this model was trained to refuse missing values"
    };
    PluginError::invalid_input(
        "MissingValues",
        format!(
            "column {column:?} has {count} missing value(s), the first in data row {}; {fix}",
            row(first)
        ),
    )
    .with_details(json!({"column": column, "first_row": row(first), "count": count}))
}

pub fn nothing_to_learn(column: &str) -> PluginError {
    PluginError::invalid_input(
        "MissingValues",
        format!(
            "column {column:?} has no values at all in the training data, so nothing can be \
             imputed; leave it out of the feature columns"
        ),
    )
    .with_details(json!({"column": column}))
}

pub fn non_finite(column: &str, index: usize, value: f64) -> PluginError {
    PluginError::invalid_input(
        "NonFiniteValue",
        format!(
            "column {column:?} has {value} in data row {}; features must be finite numbers",
            row(index)
        ),
    )
    .with_details(json!({"column": column, "row": row(index)}))
}

pub fn overflow(column: &str) -> PluginError {
    PluginError::invalid_input(
        "NonFiniteValue",
        format!(
            "the values of column {column:?} are too large to average (near the largest f64); \
             rescale them before training"
        ),
    )
    .with_details(json!({"column": column}))
}

/// `stray`: a cell that is not a number, when others are (a numeric column spoilt by it).
pub fn too_many_categories(
    column: &str,
    distinct: usize,
    stray: Option<(usize, &str)>,
) -> PluginError {
    let hint = match stray {
        Some((index, value)) => format!(
            ". If it should be numeric, fix the cells that are not numbers, such as {value:?} in \
             data row {}",
            row(index)
        ),
        None => String::new(),
    };
    PluginError::invalid_input(
        "TooManyCategories",
        format!(
            "column {column:?} has {distinct} distinct values, more than the {MAX_CATEGORIES} a \
             categorical feature may have; it looks like an identifier or free text, so leave \
             it out of the feature columns{hint}"
        ),
    )
    .with_details(json!({"column": column, "distinct": distinct, "max": MAX_CATEGORIES}))
}

pub fn duplicate(column: &str) -> PluginError {
    PluginError::invalid_input(
        "DuplicateColumn",
        format!("column {column:?} is selected twice"),
    )
    .with_details(json!({"column": column}))
}

pub fn no_features() -> PluginError {
    PluginError::invalid_input(
        "NoFeatures",
        "no feature columns: name at least one column besides the target",
    )
}

pub fn no_rows() -> PluginError {
    PluginError::invalid_input("NoRows", "the training table has no rows")
}

pub fn too_large(rows: usize, columns: usize) -> PluginError {
    PluginError::invalid_input(
        "TableTooLarge",
        format!(
            "encoding gives {rows} rows × {columns} columns, more than the {} cells allowed; \
             select fewer rows or columns, or leave out categorical columns with many values",
            crate::limits::MAX_CELLS
        ),
    )
}
