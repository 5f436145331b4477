//! Caps on what one file may make us allocate. A plugin runs in a memory-limited sandbox, and a
//! small Parquet file can describe billions of cells (run-length encoding), so the limits are
//! checked before the cells are decoded where the format tells their number up front.

use std::path::Path;

use mlx_plugin_sdk::PluginError;
use serde_json::json;

/// Most columns a table may have. Wide enough for one-hot exports and image-like data (digits
/// has 65), small enough that a header cannot make us allocate per-column state without end.
pub const MAX_COLUMNS: usize = 10_000;

/// Most cells (rows × columns) a table may have. Ten million numeric cells take 160 MB as
/// `Option<f64>`, and about twice that while CSV text is being typed: within a plugin's
/// default 512 MiB of linear memory, with room for the encoded matrix and a model.
pub const MAX_CELLS: usize = 10_000_000;

fn too_large(path: &Path, what: String) -> PluginError {
    PluginError::invalid_input(
        "TableTooLarge",
        format!(
            "{} {what}; split the file or select fewer columns before reading it here",
            path.display()
        ),
    )
    .with_details(json!({
        "path": path.display().to_string(),
        "max_columns": MAX_COLUMNS,
        "max_cells": MAX_CELLS,
    }))
}

pub fn check_columns(path: &Path, columns: usize) -> Result<(), PluginError> {
    if columns > MAX_COLUMNS {
        return Err(too_large(
            path,
            format!("has {columns} columns, more than the {MAX_COLUMNS} allowed"),
        ));
    }
    Ok(())
}

pub fn check_cells(path: &Path, rows: usize, columns: usize) -> Result<(), PluginError> {
    if rows.saturating_mul(columns) > MAX_CELLS {
        return Err(too_large(
            path,
            format!(
                "has {rows} rows of {columns} columns, more than the {MAX_CELLS} cells allowed"
            ),
        ));
    }
    Ok(())
}
