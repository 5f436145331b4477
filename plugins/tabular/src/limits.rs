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
/// `Option<f64>`, plus the text of the column being typed while a CSV file is read (about
/// 10 bytes a cell): within a plugin's default 512 MiB of linear memory, with room left.
pub const MAX_CELLS: usize = 10_000_000;

/// Largest Parquet file read: it is read whole into memory before decoding, and a file this
/// size holding no more than [`MAX_CELLS`] cells would already be unusually loose.
pub const MAX_PARQUET_BYTES: u64 = 256 << 20;

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
        "max_parquet_bytes": MAX_PARQUET_BYTES,
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

/// Refuses a Parquet file larger than [`MAX_PARQUET_BYTES`], before it is read.
pub fn check_parquet_size(path: &Path, bytes: u64) -> Result<(), PluginError> {
    if bytes > MAX_PARQUET_BYTES {
        return Err(too_large(
            path,
            format!(
                "is a Parquet file of {bytes} bytes, more than the {MAX_PARQUET_BYTES} allowed"
            ),
        ));
    }
    Ok(())
}
