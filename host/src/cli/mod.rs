//! The operator's client commands against a Temporal server: `pipeline` starts,
//! watches and steers `PipelineWorkflow` runs; `schedule` manages Temporal Schedules that start
//! them. The worker's own code is not involved: these are clients, like the `temporal` CLI.
//!
//! - [`spec_args`]: a spec file with `--param` overrides, validated before anything starts.
//! - [`pipeline`] and [`schedule`]: the subcommands.
//! - `view`: the status query joined with what `describe` knows about running steps;
//!   `follow`: `run --wait`'s loop; `progress`: what it shows, live (a terminal) or as plain
//!   lines (a pipe, a log);
//!   `format`: times, durations and tables; `schedule_spec`: a schedule's times in one line.
//! - [`registry`]: `registry list|show`, the model registry read from its directory (no
//!   server).
//! - [`retry`]: every call to the server rides out a server that is briefly unreachable.

mod follow;
mod format;
pub mod pipeline;
pub mod plugin;
mod progress;
pub mod registry;
pub mod retry;
pub mod scaffold;
pub mod schedule;
mod schedule_spec;
pub mod spec_args;
pub mod steer;
pub mod ui;
mod view;

use std::path::PathBuf;

use clap::Args;
use temporalio_client::{Client, errors::WorkflowQueryError, tonic::Code};

use mlx_pipeline::{SpecError, load::SpecFileError};
use mlx_runtime::engine::BoxError;

use crate::{
    config::{ConfigError, TemporalConfig},
    temporal::worker::{self, WorkerError},
};

/// Where the server is: the `[temporal]` keys of `run`, the same flags and variables (TLS
/// included), declared once in [`TemporalConfig`]. Global, so they may also follow the
/// subcommand: `pipeline status ID --address host:7233`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConnectArgs(pub TemporalConfig);

impl ConnectArgs {
    /// A client of the server, waiting (up to [`retry::RETRY_WINDOW`]) for one that is down.
    pub async fn client(&self) -> Result<Client, CliError> {
        self.0.check()?;
        let mut client = retry::patiently(|| async {
            worker::connect(&self.0).await.map_err(|e| match e {
                WorkerError::Connect { address, source } if retry::is_unreachable(&*source) => {
                    CliError::Unreachable {
                        what: format!("connecting to {address}"),
                        source,
                    }
                }
                other => CliError::Connect(other),
            })
        })
        .await?;
        client.connection_mut().retry_options_mut().max_elapsed_time =
            Some(retry::SDK_RETRY_WINDOW);
        Ok(client)
    }
}

// By hand rather than derived only because `#[command(flatten)]` cannot make the flattened
// arguments global; everything else is `TemporalConfig`'s.
impl clap::FromArgMatches for ConnectArgs {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        TemporalConfig::from_arg_matches(matches).map(Self)
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        self.0.update_from_arg_matches(matches)
    }
}

impl clap::Args for ConnectArgs {
    fn augment_args(command: clap::Command) -> clap::Command {
        global(TemporalConfig::augment_args(command))
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        global(TemporalConfig::augment_args_for_update(command))
    }
}

/// Makes `TemporalConfig`'s arguments of `command` global, leaving its others alone.
fn global(command: clap::Command) -> clap::Command {
    let own = TemporalConfig::augment_args(clap::Command::new("connect"));
    own.get_arguments().fold(command, |command, arg| {
        command.mut_arg(arg.get_id(), |arg| {
            arg.global(true).help_heading("Connection")
        })
    })
}

/// The client commands' exit statuses, at the end of their `--help`. Kept beside
/// [`CliError::exit_code`]; a test checks the numbers against the constants.
pub const EXIT_STATUS: &str = "\
Exit status: 0 done (a followed run succeeded); 1 a followed run failed, or the server \
refused; 2 a wrong request (spec, arguments, a refused update); 69 the server stayed \
unreachable for 120 s (calls to an unreachable server are retried meanwhile, said on \
stderr); 130 a followed run was cancelled, or watching was.";

/// Why a command did not do what it was asked. Exit status 2: the request itself is wrong
/// (spec, arguments, a refused update) and repeating it will not help; 69
/// ([`retry::UNREACHABLE`]): the server stayed unreachable; 1: anything else.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0} not found")]
    NotFound(String),
    /// The server could not be reached: retried by [`retry::patiently`], this after giving up.
    #[error("{what}: server unreachable: {source}")]
    Unreachable {
        what: String,
        #[source]
        source: BoxError,
    },
    #[error("{what}: {source}")]
    Temporal {
        what: String,
        #[source]
        source: BoxError,
    },
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
            | CliError::Config(_)
            | CliError::Connect(WorkerError::Config { .. }) => 2,
            CliError::Unreachable { .. } => retry::UNREACHABLE,
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

    /// A failed call to the server, saying what was being done; [`CliError::Unreachable`]
    /// when the server was not there to answer.
    pub(crate) fn temporal(what: impl Into<String>, e: impl Into<BoxError>) -> Self {
        let (what, source) = (what.into(), e.into());
        if retry::is_unreachable(&*source) {
            CliError::Unreachable { what, source }
        } else {
            CliError::Temporal { what, source }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use clap::{CommandFactory, Parser, Subcommand};

    use super::{pipeline::PipelineArgs, schedule::ScheduleArgs, *};

    /// The client commands as `mlx-worker` mounts them.
    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Client,
    }

    #[derive(Subcommand)]
    enum Client {
        Pipeline(PipelineArgs),
        Schedule(ScheduleArgs),
    }

    fn connect(args: &[&str]) -> TemporalConfig {
        let command_line = std::iter::once("mlx-worker").chain(args.iter().copied());
        match Cli::try_parse_from(command_line).unwrap().command {
            Client::Pipeline(p) => p.connect.0,
            Client::Schedule(s) => s.connect.0,
        }
    }

    #[test]
    fn client_commands_take_the_tls_flags_after_the_subcommand() {
        let connect = connect(&[
            "pipeline",
            "status",
            "X",
            "--tls-client-cert",
            "a",
            "--tls-client-key",
            "b",
        ]);
        assert_eq!(connect.tls_client_cert.as_deref(), Some(Path::new("a")));
        assert_eq!(connect.tls_client_key.as_deref(), Some(Path::new("b")));
        connect.check().unwrap();
    }

    #[test]
    fn client_connection_flags_go_before_or_after_the_subcommand() {
        let connect = connect(&[
            "schedule",
            "--tls-server-ca",
            "ca.pem",
            "list",
            "--address",
            "temporal.example:7233",
            "--tls-server-name",
            "temporal.example",
        ]);
        assert_eq!(connect.address.as_deref(), Some("temporal.example:7233"));
        assert_eq!(connect.tls_server_ca.as_deref(), Some(Path::new("ca.pem")));
        assert_eq!(connect.tls_server_name.as_deref(), Some("temporal.example"));
    }

    #[tokio::test]
    async fn a_client_with_half_an_mtls_pair_fails_before_connecting() {
        let connect = ConnectArgs(TemporalConfig {
            tls_client_cert: Some("a".into()),
            ..Default::default()
        });
        let err = connect.client().await.unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("--tls-client-key"), "{err}");
    }

    #[test]
    fn the_client_command_lines_are_well_formed() {
        Cli::command().debug_assert();
    }
}
