//! Tables as files: the format read from the first bytes, written under a temporary name and
//! renamed, so a reader never sees half a file under the final name.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use mlx_plugin_sdk::PluginError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::csv_io::{encode_csv, read_csv};
use crate::error::{self, encrypted_parquet};
use crate::limits;
use crate::parquet_read::read_parquet;
use crate::parquet_write::encode_parquet;
use crate::table::Table;

/// A file format of tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Comma-separated text with a header row.
    #[default]
    Csv,
    /// Apache Parquet, Snappy-compressed.
    Parquet,
}

/// Every Parquet file starts (and ends) with these bytes.
const PARQUET_MAGIC: &[u8; 4] = b"PAR1";
/// The magic of Parquet's encrypted-footer mode, which we cannot read.
const ENCRYPTED_PARQUET_MAGIC: &[u8; 4] = b"PARE";

impl Format {
    /// The format of a file starting with `head`: Parquet by its magic bytes, else CSV. The
    /// extension is not consulted, so a Parquet file named .csv is still read as Parquet.
    pub fn detect(head: &[u8]) -> Format {
        if head.starts_with(PARQUET_MAGIC) || head.starts_with(ENCRYPTED_PARQUET_MAGIC) {
            Format::Parquet
        } else {
            Format::Csv
        }
    }

    /// The usual file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Parquet => "parquet",
        }
    }
}

/// Reads a CSV or Parquet file, whichever its first bytes say it is.
pub fn read_table(path: &Path) -> Result<Table, PluginError> {
    let mut file = File::open(path).map_err(|e| error::read_failed(path, &e))?;
    let mut head = Vec::with_capacity(PARQUET_MAGIC.len());
    (&mut file)
        .take(PARQUET_MAGIC.len() as u64)
        .read_to_end(&mut head)
        .map_err(|e| error::read_failed(path, &e))?;
    match Format::detect(&head) {
        Format::Parquet => {
            if head.starts_with(ENCRYPTED_PARQUET_MAGIC) {
                return Err(encrypted_parquet(path));
            }
            let size = file
                .metadata()
                .map_err(|e| error::read_failed(path, &e))?
                .len();
            limits::check_parquet_size(path, size)?;
            let mut data = head;
            file.read_to_end(&mut data)
                .map_err(|e| error::read_failed(path, &e))?;
            read_parquet(data, path)
        }
        Format::Csv => read_csv(io::Cursor::new(head).chain(file), path),
    }
}

/// Writes `table` to `path` as `format` and returns the file's size in bytes. The file appears
/// under its name complete or not at all; an older file there is replaced.
pub fn write_table(table: &Table, path: &Path, format: Format) -> Result<u64, PluginError> {
    check_shape(table)?;
    let bytes = match format {
        Format::Csv => encode_csv(table).map_err(|e| encode_failed(path, e))?,
        Format::Parquet => encode_parquet(table).map_err(|e| encode_failed(path, e))?,
    };
    write_atomically(path, &bytes)?;
    Ok(bytes.len() as u64)
}

/// `.NAME.partial` beside `path`: on the same filesystem, so the rename is atomic.
fn partial_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "table".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.partial"))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), PluginError> {
    let partial = partial_path(path);
    let written = fs::write(&partial, bytes).and_then(|()| fs::rename(&partial, path));
    written.map_err(|e| {
        // Best effort: the error that matters is the one being returned.
        let _ = fs::remove_file(&partial);
        error::write_failed(path, &e)
    })
}

/// Columns of unequal length are a program's mistake, not a file's: refused before writing.
fn check_shape(table: &Table) -> Result<(), PluginError> {
    let rows = table.rows();
    match table.columns.iter().find(|c| c.data.len() != rows) {
        Some(c) => Err(PluginError::permanent(
            "InvalidTable",
            format!(
                "column {:?} has {} values but the first column has {rows}",
                c.name,
                c.data.len()
            ),
        )),
        None => Ok(()),
    }
}

fn encode_failed(path: &Path, e: impl std::fmt::Display) -> PluginError {
    PluginError::permanent(
        "InvalidTable",
        format!("cannot encode the table for {}: {e}", path.display()),
    )
    .with_details(json!({"path": path.display().to_string()}))
}
