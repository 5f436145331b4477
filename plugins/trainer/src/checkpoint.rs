//! Checkpoints of a training run: the learned state goes to a file in the output directory
//! (a forest's trees can be megabytes, far more than a heartbeat should carry), the heartbeat
//! carries the round, the loss and the file's digest. A retried attempt resumes from the file
//! only if its digest matches, so a torn or stale file is never trusted.

use std::fs;
use std::path::{Path, PathBuf};

use mlx_plugin_sdk::{Context, PluginError, log};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::families::Checkpoint;
use crate::files;

/// Heartbeat details: progress for people, and where the next attempt resumes from.
#[derive(Debug, Serialize, Deserialize)]
pub struct Progress {
    pub round: u32,
    pub of: u32,
    pub loss: Option<f64>,
    /// The last checkpoint written, if any.
    pub checkpoint: Option<FileRef>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileRef {
    pub path: String,
    pub sha256: String,
    pub rounds: u32,
}

/// What the checkpoint file holds: the families' state and the loss curve so far.
#[derive(Serialize, Deserialize)]
pub struct Saved {
    pub state: Checkpoint,
    pub losses: Vec<(u32, f64)>,
}

pub fn path(output_dir: &str) -> PathBuf {
    Path::new(output_dir).join("checkpoint.json")
}

/// Writes `saved` under a temporary name and renames it, so the file under its name is always
/// a whole checkpoint.
pub fn write(output_dir: &str, saved: &Saved, rounds: u32) -> Result<FileRef, PluginError> {
    let path = path(output_dir);
    let bytes = serde_json::to_vec(saved)
        .map_err(|e| PluginError::permanent("CheckpointFailed", e.to_string()))?;
    let tmp = path.with_extension("json.tmp");
    fs::create_dir_all(output_dir).map_err(|e| files::write_error(Path::new(output_dir), e))?;
    fs::write(&tmp, &bytes).map_err(|e| files::write_error(&tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| files::write_error(&path, e))?;
    Ok(FileRef {
        path: path.display().to_string(),
        sha256: hex(&Sha256::digest(&bytes)),
        rounds,
    })
}

/// The previous attempt's checkpoint, if it left one this attempt can read and trust. Any
/// reason not to resume is logged and means starting afresh, never a failure.
pub fn previous(ctx: &Context) -> Option<Saved> {
    let progress: Progress = ctx.last_heartbeat()?;
    let file = progress.checkpoint?;
    let bytes = match fs::read(&file.path) {
        Ok(b) => b,
        Err(e) => {
            log::warn(
                "checkpoint unreadable; training from the start",
                &[("path", &file.path), ("error", &e.to_string())],
            );
            return None;
        }
    };
    if hex(&Sha256::digest(&bytes)) != file.sha256 {
        log::warn(
            "checkpoint changed since it was recorded; training from the start",
            &[("path", &file.path)],
        );
        return None;
    }
    match serde_json::from_slice(&bytes) {
        Ok(saved) => Some(saved),
        Err(e) => {
            log::warn(
                "checkpoint not readable by this build; training from the start",
                &[("path", &file.path), ("error", &e.to_string())],
            );
            None
        }
    }
}

pub fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
