//! Opening the source: CSV or Parquet by its first bytes (the extension is not consulted).

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use mlx_plugin_sdk::{Context, PluginError};
use mlx_tabular::Format;
use serde_json::json;

use crate::filter::Filter;
use crate::table::{self, Table};

/// What the source gave: the kept rows as text, and for Parquet the typed table they came
/// from (so Parquet written from it keeps the source's column types).
pub struct Source {
    pub table: Table,
    pub typed: Option<mlx_tabular::Table>,
}

fn open(path: &str) -> Result<File, PluginError> {
    File::open(path).map_err(|e| match e.kind() {
        // Outside every preopened directory WASI reports the path as missing or not permitted.
        io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied => PluginError::invalid_input(
            "SourceNotFound",
            format!(
                "cannot open {path}: {e}. The file must exist in a directory granted to the csv \
                 plugin in its manifest (usually mounted at /data)"
            ),
        )
        .with_details(json!({"path": path})),
        _ => read_failed(path, &e),
    })
}

fn read_failed(path: &str, e: &io::Error) -> PluginError {
    PluginError::retryable("SourceReadFailed", format!("reading {path}: {e}"))
}

/// Reads `path` and keeps the selected columns of the rows passing every filter.
pub fn read(
    path: &str,
    target: &str,
    columns: Option<&[String]>,
    filters: &[Filter],
    ctx: &Context,
) -> Result<Source, PluginError> {
    let mut file = open(path)?;
    // Parquet's magic is 4 bytes; a shorter file is CSV (and then an empty or tiny one).
    let mut head = Vec::with_capacity(4);
    (&mut file)
        .take(4)
        .read_to_end(&mut head)
        .map_err(|e| read_failed(path, &e))?;
    match Format::detect(&head) {
        Format::Csv => {
            let input = BufReader::new(io::Cursor::new(head).chain(file));
            let table = table::read(input, path, target, columns, filters, ctx)?;
            Ok(Source { table, typed: None })
        }
        Format::Parquet => {
            let size = file.metadata().map_err(|e| read_failed(path, &e))?.len();
            mlx_tabular::check_parquet_size(Path::new(path), size)?;
            let mut data = head;
            file.read_to_end(&mut data)
                .map_err(|e| read_failed(path, &e))?;
            let typed = mlx_tabular::read_parquet(data, Path::new(path))?;
            let table = table::from_typed(&typed, target, columns, filters, ctx)?;
            Ok(Source {
                table,
                typed: Some(typed),
            })
        }
    }
}
