//! Streams chunks into a temporary file next to the destination, hashing as they pass, and
//! moves it into place only once it is complete and verified: a later step never sees a
//! partial or corrupt file at `dest`, whatever attempt failed how.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use mlx_plugin_sdk::{Context, PluginError};
use serde_json::json;
use sha2::{Digest, Sha256};

/// Bytes between two progress heartbeats: often enough to watch, rare enough not to matter.
pub const HEARTBEAT_EVERY: u64 = 4 << 20;

pub struct Limits<'a> {
    pub max_bytes: u64,
    /// Lower-case hex.
    pub sha256: Option<&'a str>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Written {
    pub bytes: u64,
    pub sha256: String,
}

/// Writes what `next` yields (until `None`) to `dest`. On any error, `dest` is left as it was
/// and the temporary file is gone.
pub fn stream_to_file(
    dest: &Path,
    mut next: impl FnMut() -> Result<Option<Vec<u8>>, PluginError>,
    limits: &Limits<'_>,
    ctx: &Context,
) -> Result<Written, PluginError> {
    let (dir, name) = match (dest.parent(), dest.file_name()) {
        (Some(dir), Some(name)) => (dir, name.to_string_lossy()),
        _ => return Err(destination_error(dest, "has no file name")),
    };
    fs::create_dir_all(dir).map_err(|e| write_error(dir, &e))?;
    if dest.is_dir() {
        return Err(destination_error(dest, "is an existing directory"));
    }
    let mut partial = Partial {
        path: dir.join(format!(".{name}.partial")),
        renamed: false,
    };
    // Truncates what a crashed earlier attempt may have left.
    let mut file = File::create(&partial.path).map_err(|e| write_error(&partial.path, &e))?;

    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    let mut next_beat = HEARTBEAT_EVERY;
    while let Some(chunk) = next()? {
        bytes += chunk.len() as u64;
        if bytes > limits.max_bytes {
            return Err(too_large(limits.max_bytes));
        }
        hasher.update(&chunk);
        file.write_all(&chunk)
            .map_err(|e| write_error(&partial.path, &e))?;
        if bytes >= next_beat {
            next_beat = bytes + HEARTBEAT_EVERY;
            if ctx.heartbeat(&json!({"bytes": bytes})) {
                return Err(PluginError::cancelled(format!(
                    "download cancelled after {bytes} bytes"
                )));
            }
        }
    }
    // Durable before it becomes visible under its real name.
    file.sync_all()
        .map_err(|e| write_error(&partial.path, &e))?;
    drop(file);

    let sha256 = hex(&hasher.finalize());
    if let Some(expected) = limits.sha256
        && expected != sha256
    {
        return Err(PluginError::permanent(
            "ChecksumMismatch",
            format!("the downloaded body has sha256 {sha256}, expected {expected}"),
        )
        .with_details(json!({"expected": expected, "actual": sha256, "bytes": bytes})));
    }
    fs::rename(&partial.path, dest).map_err(|e| write_error(dest, &e))?;
    partial.renamed = true;
    Ok(Written { bytes, sha256 })
}

pub fn too_large(max_bytes: u64) -> PluginError {
    PluginError::permanent(
        "DownloadTooLarge",
        format!("the body is larger than max_bytes ({max_bytes} bytes); raise max_bytes"),
    )
    .with_details(json!({"max_bytes": max_bytes}))
}

/// Removes the temporary file when dropped, unless it was renamed into place.
struct Partial {
    path: PathBuf,
    renamed: bool,
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.renamed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn destination_error(path: &Path, why: &str) -> PluginError {
    PluginError::invalid_input("InvalidDestination", format!("{} {why}", path.display()))
        .with_details(json!({"path": path.display().to_string()}))
}

/// A file in the way of a directory (or the reverse) fails every attempt alike; anything else
/// (a full disk, an I/O error) may pass.
fn write_error(path: &Path, e: &io::Error) -> PluginError {
    match e.kind() {
        io::ErrorKind::NotADirectory
        | io::ErrorKind::IsADirectory
        | io::ErrorKind::AlreadyExists => {
            destination_error(path, &format!("cannot be written: {e}"))
        }
        _ => PluginError::retryable(
            "ArtifactWriteFailed",
            format!("writing {}: {e}", path.display()),
        ),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
#[path = "sink_tests.rs"]
mod tests;
