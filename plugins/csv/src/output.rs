//! Writing the train and test parts as CSV (the source's text as it was) or Parquet (typed).

use std::io;
use std::path::Path;

use mlx_plugin_sdk::PluginError;
use mlx_tabular::{Column, ColumnData, Format};

use crate::table::Table;

/// A write error. Paths outside every directory granted read-write (or inside a read-only
/// one) fail the same way on every attempt, so those are `InvalidInput`; anything else may be
/// transient.
pub fn write_error(path: &Path, e: &io::Error) -> PluginError {
    let message = format!(
        "writing {}: {e}. output_dir must be inside a directory granted read-write (usually \
         /artifacts)",
        path.display()
    );
    match e.kind() {
        io::ErrorKind::NotFound
        | io::ErrorKind::PermissionDenied
        | io::ErrorKind::ReadOnlyFilesystem => {
            PluginError::invalid_input("OutputNotWritable", message)
        }
        _ => PluginError::retryable("ArtifactWriteFailed", message),
    }
}

/// The kept rows at `indices` as CSV with a header (features, then the target).
pub fn write_csv(path: &Path, table: &Table, indices: &[usize]) -> Result<(), PluginError> {
    let failed = |e: csv::Error| match e.into_kind() {
        csv::ErrorKind::Io(io) => write_error(path, &io),
        other => PluginError::retryable(
            "ArtifactWriteFailed",
            format!("writing {}: {other:?}", path.display()),
        ),
    };
    let mut writer = csv::Writer::from_path(path).map_err(failed)?;
    writer
        .write_record(table.features.iter().chain([&table.target]))
        .map_err(failed)?;
    for &i in indices {
        writer.write_record(&table.rows[i]).map_err(failed)?;
    }
    writer.flush().map_err(|e| write_error(path, &e))
}

/// All kept rows as typed columns, features then the target. From a Parquet source the
/// columns keep their types; from CSV they are typed as `mlx_tabular` types CSV cells, so
/// train and test (typed together, before the split) always share one schema.
pub fn typed(
    table: &Table,
    source: Option<&mlx_tabular::Table>,
) -> Result<mlx_tabular::Table, PluginError> {
    let names = table.features.iter().chain([&table.target]);
    let columns = match source {
        Some(source) => names
            .map(|name| {
                let data = source.column(name)?.data.select_rows(&table.kept);
                Ok(Column {
                    name: name.clone(),
                    data,
                })
            })
            .collect::<Result<_, PluginError>>()?,
        None => names
            .enumerate()
            .map(|(j, name)| Column {
                name: name.clone(),
                data: ColumnData::from_text(table.rows.iter().map(|r| r[j].clone()).collect()),
            })
            .collect(),
    };
    Ok(mlx_tabular::Table { columns })
}

/// The typed rows at `indices` as Parquet.
pub fn write_parquet(
    path: &Path,
    typed: &mlx_tabular::Table,
    indices: &[usize],
) -> Result<(), PluginError> {
    mlx_tabular::write_table(&typed.select_rows(indices), path, Format::Parquet).map(|_| ())
}
