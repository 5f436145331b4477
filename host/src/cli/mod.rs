//! The operator's client commands against a Temporal server (issue 6): `pipeline` starts,
//! watches and steers `PipelineWorkflow` runs; `schedule` manages Temporal Schedules that start
//! them. The worker's own code is not involved: these are clients, like the `temporal` CLI.
//!
//! - [`spec_args`]: a spec file with `--param` overrides, validated before anything starts.
//! - [`pipeline`] and [`schedule`]: the subcommands.
//! - `view`: the status query joined with what `describe` knows about running steps;
//!   `follow`: `run --wait`'s loop; `progress`: what it shows, live (a terminal) or as plain
//!   lines (a pipe, a log);
//!   `format`: times, durations and tables; `schedule_spec`: a schedule's times in one line.

mod follow;
mod format;
pub mod pipeline;
pub mod plugin;
mod progress;
pub mod schedule;
mod schedule_spec;
pub mod spec_args;
mod view;

use std::path::PathBuf;

use temporalio_client::{Client, errors::WorkflowQueryError, tonic::Code};

use mlx_pipeline::{SpecError, load::SpecFileError};

use crate::{
    config::TemporalConfig,
    temporal::worker::{self, WorkerError},
};

/// Where the server is; the same flags and variables as `run` (and the official SDKs).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Connection")]
pub struct ConnectArgs {
    /// Temporal frontend `host:port` [default: from temporal.toml, else localhost:7233].
    #[arg(long, env = "TEMPORAL_ADDRESS", global = true)]
    pub address: Option<String>,
    /// Namespace [default: from temporal.toml, else `default`].
    #[arg(long, env = "TEMPORAL_NAMESPACE", global = true)]
    pub namespace: Option<String>,
    /// API key (Temporal Cloud); implies TLS. Prefer the environment variable to the flag.
    #[arg(long, env = "TEMPORAL_API_KEY", hide_env_values = true, global = true)]
    pub api_key: Option<String>,
    /// temporal.toml profile to start from.
    #[arg(long, env = "TEMPORAL_PROFILE", global = true)]
    pub profile: Option<String>,
}

impl ConnectArgs {
    pub async fn client(&self) -> Result<Client, CliError> {
        Ok(worker::connect(&TemporalConfig {
            address: self.address.clone(),
            namespace: self.namespace.clone(),
            api_key: self.api_key.clone(),
            profile: self.profile.clone(),
            ..Default::default()
        })
        .await?)
    }
}

/// Why a command did not do what it was asked. Exit status 2: the request itself is wrong
/// (spec, arguments, a refused update) and repeating it will not help; 1: anything else.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Load(#[from] SpecFileError),
    #[error(
        "{} is not a valid pipeline; nothing was started:\n{}",
        file.display(),
        errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
    )]
    Invalid {
        file: PathBuf,
        errors: Vec<SpecError>,
    },
    #[error("plugins directory: {0}")]
    Plugins(#[from] mlx_runtime::plugin::LoadError),
    #[error("{0}")]
    Usage(String),
    #[error("workflow `{workflow}` refused {what}: {reason}")]
    Refused {
        workflow: String,
        what: String,
        reason: String,
    },
    #[error(transparent)]
    Connect(#[from] WorkerError),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{what}: {message}")]
    Temporal { what: String, message: String },
    #[error("{0}")]
    Local(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Load(_)
            | CliError::Invalid { .. }
            | CliError::Plugins(_)
            | CliError::Usage(_)
            | CliError::Refused { .. }
            | CliError::Connect(WorkerError::Config(_)) => 2,
            _ => 1,
        }
    }

    /// A query the workflow answered with an error (unknown step, a spec it refused): the
    /// request was wrong, as with a refused update.
    pub(crate) fn query(what: impl Into<String>, e: WorkflowQueryError) -> Self {
        match e {
            WorkflowQueryError::Rpc(status) if status.code() == Code::InvalidArgument => {
                CliError::Usage(format!("{}: {}", what.into(), status.message()))
            }
            other => CliError::temporal(what, other),
        }
    }

    /// A failed call to the server, saying what was being done.
    pub(crate) fn temporal(what: impl Into<String>, e: impl std::fmt::Display) -> Self {
        CliError::Temporal {
            what: what.into(),
            message: e.to_string(),
        }
    }
}
