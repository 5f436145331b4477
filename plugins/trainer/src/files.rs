//! How I/O failures on artifacts become plugin errors, shared by every operation so the same
//! failure gets the same type (and the same retry decision) whichever operation hit it.

use std::io::{self, ErrorKind};
use std::path::Path;

use mlx_plugin_sdk::PluginError;
use serde_json::json;

/// A file that cannot be opened or read. Missing or denied files stay so on retry (the grant
/// is fixed by the manifest), so only other errors are retryable.
pub fn read_error(path: &str, e: io::Error, hint: &str) -> PluginError {
    match e.kind() {
        ErrorKind::NotFound | ErrorKind::PermissionDenied => PluginError::invalid_input(
            "ArtifactNotFound",
            format!("cannot open {path}: {e}. {hint}"),
        )
        .with_details(json!({"path": path})),
        _ => PluginError::retryable("ArtifactReadFailed", format!("cannot read {path}: {e}")),
    }
}

/// A file or directory that cannot be written. Outside the granted directories (or in a
/// read-only one) every attempt fails alike, so only other errors are retryable.
pub fn write_error(path: &Path, e: io::Error) -> PluginError {
    let message = format!(
        "writing {}: {e}. It must be inside a directory granted read-write (usually /artifacts)",
        path.display()
    );
    match e.kind() {
        ErrorKind::NotFound | ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => {
            PluginError::invalid_input("OutputNotWritable", message)
                .with_details(json!({"path": path}))
        }
        _ => PluginError::retryable("ArtifactWriteFailed", message),
    }
}
