//! `mlx-worker`: the daemon and the plugin author's tools. Thin: everything lives in the library.

use std::{path::PathBuf, process::ExitCode, sync::Arc};

use anyhow::Context;
use clap::{Parser, Subcommand};
use mlx_worker::{
    capabilities::activity::ActivitySignals,
    contract::InvocationContext,
    engine::EngineSettings,
    registry::PluginRegistry,
    reload,
    runtime::{Runtime, RuntimeSettings},
    telemetry::{self, LogFormat},
    temporal::worker::{self, ConnectionSettings, WorkerSettings},
};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    version,
    about = "Temporal worker that runs every activity in a sandboxed WebAssembly component"
)]
struct Cli {
    #[arg(
        long,
        value_enum,
        default_value_t,
        env = "MLX_LOG_FORMAT",
        global = true
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Connect to Temporal and serve `plugin_activity` with the plugins in a directory.
    Run(RunArgs),
    /// Plugin author tools that need no Temporal server.
    #[command(subcommand)]
    Plugin(PluginCommand),
}

#[derive(clap::Args)]
struct RunArgs {
    /// Directory of plugin components (`NAME.wasm`, optional `NAME.toml` manifest).
    #[arg(long, env = "MLX_PLUGINS_DIR")]
    plugins_dir: PathBuf,
    /// Task queue to poll.
    #[arg(long, env = "MLX_TASK_QUEUE", default_value = "mlx-plugins")]
    task_queue: String,
    /// Root of per-workflow artifacts directories, mounted at /artifacts in plugins.
    #[arg(long, env = "MLX_ARTIFACTS_DIR", default_value = "artifacts")]
    artifacts_dir: PathBuf,
    /// Precompiled components, so a restart compiles nothing (must be the worker's own).
    #[arg(long, env = "MLX_CACHE_DIR", default_value = "cache")]
    cache_dir: PathBuf,
    /// Temporal frontend `host:port`; default from TEMPORAL_ADDRESS or the temporal.toml profile.
    #[arg(long)]
    address: Option<String>,
    /// Namespace; default from TEMPORAL_NAMESPACE or the profile, else `default`.
    #[arg(long)]
    namespace: Option<String>,
    /// Activities run at once (one sandbox each).
    #[arg(long, env = "MLX_MAX_CONCURRENT_ACTIVITIES", default_value_t = 16)]
    max_concurrent_activities: usize,
    /// Meter guest instructions, so manifests can set limits.fuel (costs some guest speed).
    #[arg(long, env = "MLX_FUEL_METERING")]
    fuel_metering: bool,
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Run one operation of a component locally, printing its JSON output.
    Invoke {
        file: PathBuf,
        operation: String,
        /// Input JSON text.
        input: String,
        /// Root of artifacts directories (this invocation uses ROOT/local).
        #[arg(long, default_value = "artifacts")]
        artifacts_dir: PathBuf,
        /// Workflow id to present to the plugin (also the artifacts subdirectory).
        #[arg(long, default_value = "local")]
        workflow_id: String,
    },
    /// Print a component's self-description as JSON.
    Describe { file: PathBuf },
    /// Report a component's description, imports and exports, and what its manifest grants.
    Inspect { file: PathBuf },
}

fn main() -> ExitCode {
    // RUST_BACKTRACE=1 would make every wasmtime error (each guest trap) capture a native
    // backtrace; library backtraces stay off unless explicitly asked for.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: single-threaded here; no other thread reads the environment yet.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    let tokio = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match tokio.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run(args) => run(args).await,
        Command::Plugin(PluginCommand::Describe { file }) => {
            let runtime = Runtime::new(RuntimeSettings::default()).map_err(anyhow_from)?;
            let plugin = runtime.load(&file).await?;
            println!("{}", serde_json::to_string_pretty(&plugin.info)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin(PluginCommand::Inspect { file }) => {
            let runtime = Runtime::new(RuntimeSettings::default()).map_err(anyhow_from)?;
            print!("{}", mlx_worker::inspect::inspect(&runtime, &file).await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin(PluginCommand::Invoke {
            file,
            operation,
            input,
            artifacts_dir,
            workflow_id,
        }) => invoke(file, operation, input, artifacts_dir, workflow_id).await,
    }
}

async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let runtime = Runtime::new(RuntimeSettings {
        engine: EngineSettings {
            max_instances: (args.max_concurrent_activities as u32)
                .saturating_mul(2)
                .max(8),
            fuel_metering: args.fuel_metering,
            ..Default::default()
        },
        artifacts_dir: Some(absolute(&args.artifacts_dir)?),
        scratch_root: None,
        cache_dir: Some(absolute(&args.cache_dir)?),
    })
    .map_err(anyhow_from)?;
    // Watching starts first: a file changed while the others load is not missed.
    let watcher = reload::PluginWatcher::start(&absolute(&args.plugins_dir)?)?;
    let registry = PluginRegistry::load_dir(&runtime, &args.plugins_dir).await?;
    if registry.is_empty() {
        tracing::warn!(dir = %args.plugins_dir.display(), "no plugins found; every request will fail with UnknownPlugin");
    }
    let client = worker::connect(&ConnectionSettings {
        address: args.address,
        namespace: args.namespace,
    })
    .await?;
    let settings = WorkerSettings {
        task_queue: args.task_queue,
        max_concurrent_activities: args.max_concurrent_activities,
    };
    let registry = Arc::new(registry);
    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            shutdown_signal().await;
            shutdown.cancel();
        }
    });
    let watcher = tokio::spawn(watcher.run(
        runtime.clone(),
        registry.clone(),
        shutdown.clone().cancelled_owned(),
    ));
    worker::run(
        client,
        &settings,
        runtime,
        registry,
        shutdown.clone().cancelled_owned(),
    )
    .await?;
    shutdown.cancel();
    watcher.await?;
    Ok(ExitCode::SUCCESS)
}

async fn invoke(
    file: PathBuf,
    operation: String,
    input: String,
    artifacts_dir: PathBuf,
    workflow_id: String,
) -> anyhow::Result<ExitCode> {
    let input: serde_json::Value =
        serde_json::from_str(&input).context("INPUT must be JSON text")?;
    let runtime = Runtime::new(RuntimeSettings {
        artifacts_dir: Some(absolute(&artifacts_dir)?),
        ..Default::default()
    })
    .map_err(anyhow_from)?;
    let plugin = runtime.load(&file).await?;
    let cancel = CancellationToken::new();
    let (signals, mut heartbeats) = ActivitySignals::new(cancel.clone());
    tokio::spawn(async move {
        while heartbeats.changed().await.is_ok() {
            if let Some(details) = heartbeats.borrow_and_update().clone() {
                eprintln!("heartbeat: {details}");
            }
        }
    });
    let on_ctrl_c = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("cancelling (the plugin sees is-cancelled = true)");
            on_ctrl_c.cancel();
        }
    });
    let ctx = InvocationContext {
        workflow_id,
        activity_id: "1".into(),
        attempt: 1,
        last_heartbeat_details: None,
    };
    match runtime
        .invoke(&plugin, &operation, &input, &ctx, signals, None)
        .await
    {
        Ok(done) => {
            println!("{}", serde_json::to_string_pretty(&done.output)?);
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            let f = err.failure();
            let report = serde_json::json!({
                "type": f.type_name,
                "retryable": f.retryable,
                "message": f.message,
                "details": f.details,
            });
            eprintln!("{}", serde_json::to_string_pretty(&report)?);
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return ctrl_c.await.unwrap_or(()),
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn absolute(path: &std::path::Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
    Ok(path.canonicalize()?)
}

fn anyhow_from(e: wasmtime::Error) -> anyhow::Error {
    anyhow::anyhow!("{e:#}")
}
