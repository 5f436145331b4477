//! What the worker and the child process of one invocation say to each other. On the child's
//! stdin: the plugin to load ([`Load`], a line, then the component's bytes), the call
//! ([`Call`], a line), then perhaps [`CANCEL`]. On its stdout: its reports, JSON lines. Both ends are the same executable, so the format has no versions.

use std::{path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{contract::InvocationContext, engine::EngineSettings, failure::InvocationError};

/// The line that asks the child to cancel (the guest sees it through `mlx:plugin/activity`).
pub(crate) const CANCEL: &str = "cancel";

/// The plugin to load: the first line a child reads, followed by the component's bytes. A
/// spare child is sent this as soon as it starts and loads while no call waits for it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Load {
    pub engine: EngineSettings,
    pub cache_dir: Option<PathBuf>,
    pub cache_max_bytes: Option<u64>,
    /// The component file (its name in logs, the directory its manifest's paths are
    /// relative to) and the digest of the bytes the worker loaded from it. The bytes follow
    /// this line on stdin, `component_bytes` of them; the file may hold others by now.
    pub plugin: PathBuf,
    pub digest: String,
    pub component_bytes: usize,
    /// The manifest's text as the worker read it (None: it had none).
    pub manifest: Option<String>,
}

/// The one call: the line after the component's bytes.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Call {
    pub operation: String,
    pub input: Value,
    pub context: InvocationContext,
    pub artifacts: Option<PathBuf>,
    /// The scratch directory the worker made for the call and removes once the child is
    /// gone, however it ended (None: the plugin has none).
    pub scratch: Option<PathBuf>,
}

/// A line of the child's stdout.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum Report {
    /// Heartbeat details the guest recorded, already checked and rate-limited by the child.
    Heartbeat(String),
    /// How the invocation ended; the last line.
    Done(Result<Done, InvocationError>),
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Done {
    pub output: Value,
    pub duration: Duration,
    pub peak_memory_bytes: usize,
}
