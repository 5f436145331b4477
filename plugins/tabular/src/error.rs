//! The errors of this crate: one type name per kind of bad file or bad request, so workflows
//! can match on them, and [`ERRORS`] for operations to declare.

use std::io;
use std::path::Path;

use mlx_plugin_sdk::{ErrorDecl, PluginError};
use serde_json::json;

/// Every error type this crate returns, for operations to copy into their own `ERRORS` (the
/// ones they can reach: the SDK refuses a type declared twice, and several plugins already
/// declare e.g. `ColumnNotFound` themselves).
pub const ERRORS: &[ErrorDecl] = &[
    ErrorDecl::invalid_input(
        "ArtifactNotFound",
        "the file does not exist or is outside every granted directory",
    ),
    ErrorDecl::invalid_input(
        "MalformedCsv",
        "ragged rows, bad UTF-8, no header row or an empty header name",
    ),
    ErrorDecl::invalid_input("DuplicateColumn", "two columns have the same name"),
    ErrorDecl::invalid_input(
        "MalformedParquet",
        "bad magic or footer, truncated file or corrupt page",
    ),
    ErrorDecl::invalid_input(
        "UnsupportedColumnType",
        "a Parquet column is neither numeric, text nor boolean",
    ),
    ErrorDecl::invalid_input(
        "TableTooLarge",
        "more columns or cells than the documented caps",
    ),
    ErrorDecl::invalid_input("NoRows", "the table has no data rows"),
    ErrorDecl::invalid_input("NoFeatures", "no feature columns are left to encode"),
    ErrorDecl::invalid_input(
        "MissingValues",
        "a value is missing and the options refuse them",
    ),
    ErrorDecl::invalid_input("NonFiniteValue", "a numeric feature is infinite"),
    ErrorDecl::invalid_input(
        "TooManyCategories",
        "a categorical column has too many values",
    ),
    ErrorDecl::invalid_input("ColumnNotFound", "a named column is not in the table"),
    ErrorDecl::invalid_input(
        "ColumnTypeMismatch",
        "a column is categorical where numbers are needed",
    ),
    ErrorDecl::invalid_input(
        "OutputNotWritable",
        "the output path is outside every directory granted read-write",
    ),
    ErrorDecl::retryable("ArtifactReadFailed", "an I/O error while reading"),
    ErrorDecl::permanent(
        "InvalidTable",
        "a table built in code has columns of unequal length",
    ),
    ErrorDecl::retryable("ArtifactWriteFailed", "an I/O error while writing"),
];

/// An error opening or reading `path`. WASI reports a path outside every preopened directory
/// as missing or not permitted, which no retry fixes (nor does a directory where a file should
/// be); anything else may be transient.
pub(crate) fn read_failed(path: &Path, e: &io::Error) -> PluginError {
    let shown = path.display();
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied | io::ErrorKind::IsADirectory => {
            PluginError::invalid_input(
                "ArtifactNotFound",
                format!(
                    "cannot open {shown}: {e}. The file must exist inside a directory granted to \
                     this plugin in its manifest"
                ),
            )
        }
        _ => PluginError::retryable("ArtifactReadFailed", format!("reading {shown}: {e}")),
    }
    .with_details(json!({"path": shown.to_string()}))
}

/// An error writing `path`: paths outside every read-write grant fail the same way on every
/// attempt; anything else may be transient.
pub(crate) fn write_failed(path: &Path, e: &io::Error) -> PluginError {
    let shown = path.display();
    let message = format!(
        "writing {shown}: {e}. The output must be inside a directory granted read-write to this \
         plugin"
    );
    match e.kind() {
        io::ErrorKind::NotFound
        | io::ErrorKind::PermissionDenied
        | io::ErrorKind::ReadOnlyFilesystem
        | io::ErrorKind::IsADirectory => PluginError::invalid_input("OutputNotWritable", message),
        _ => PluginError::retryable("ArtifactWriteFailed", message),
    }
    .with_details(json!({"path": shown.to_string()}))
}

pub(crate) fn malformed_csv(path: &Path, what: impl std::fmt::Display) -> PluginError {
    PluginError::invalid_input(
        "MalformedCsv",
        format!("{} is not a usable CSV file: {what}", path.display()),
    )
    .with_details(json!({"path": path.display().to_string()}))
}

pub(crate) fn malformed_parquet(path: &Path, what: impl std::fmt::Display) -> PluginError {
    PluginError::invalid_input(
        "MalformedParquet",
        format!(
            "{} is not a readable Parquet file: {what}. Write it again, or check that the copy \
             is complete",
            path.display()
        ),
    )
    .with_details(json!({"path": path.display().to_string()}))
}

pub(crate) fn encrypted_parquet(path: &Path) -> PluginError {
    PluginError::invalid_input(
        "MalformedParquet",
        format!(
            "{} is an encrypted Parquet file (magic PARE), which cannot be read here; write it \
             without encryption",
            path.display()
        ),
    )
    .with_details(json!({"path": path.display().to_string()}))
}

pub(crate) fn duplicate_column(path: &Path, name: &str) -> PluginError {
    PluginError::invalid_input(
        "DuplicateColumn",
        format!(
            "{} has two columns named {name:?}; rename one so every column can be told apart",
            path.display()
        ),
    )
    .with_details(json!({"path": path.display().to_string(), "column": name}))
}

pub(crate) fn no_rows(path: &Path) -> PluginError {
    PluginError::invalid_input(
        "NoRows",
        format!("{} has columns but no data rows", path.display()),
    )
    .with_details(json!({"path": path.display().to_string()}))
}

pub(crate) fn column_not_found(name: &str, available: &[&str]) -> PluginError {
    PluginError::invalid_input(
        "ColumnNotFound",
        format!("no column {name:?}; the table has columns {available:?}"),
    )
    .with_details(json!({"column": name, "available": available}))
}

pub(crate) fn not_numeric(name: &str, example: Option<(usize, &str)>) -> PluginError {
    let seen = example.map_or(String::new(), |(row, value)| {
        format!(" (data row {}: {value:?})", row + 1)
    });
    PluginError::invalid_input(
        "ColumnTypeMismatch",
        format!(
            "column {name:?} must be numeric here but holds text{seen}; fix or drop those cells, \
             or use a column of numbers"
        ),
    )
    .with_details(json!({"column": name}))
}
