//! `mlx-worker`: the daemon and the plugin author's tools. Thin: everything lives in the library.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context;
use clap::{Parser, Subcommand};
use mlx_worker::{
    capabilities::activity::ActivitySignals,
    cli::{self, CliError, pipeline::PipelineArgs, schedule::ScheduleArgs},
    config::Settings,
    contract::InvocationContext,
    daemon::{self, DaemonError, Stopped},
    dev::{self, DevArgs},
    registry::PluginRegistry,
    run_args::RunArgs,
    runtime::{Runtime, RuntimeSettings},
    telemetry::{self, LogFormat},
};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    version,
    about = "Temporal worker that runs every activity in a sandboxed WebAssembly component"
)]
struct Cli {
    /// Log format [default: human, or telemetry.log_format of the config file].
    #[arg(long, value_enum, env = "MLX_LOG_FORMAT", global = true)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Connect to Temporal and serve `plugin_activity` with the plugins in a directory.
    Run(Box<RunArgs>),
    /// A local Temporal dev server and the worker together, for plugin authors.
    Dev(Box<DevArgs>),
    /// Plugin tools that need no Temporal server.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Start, follow and steer pipeline runs (PipelineWorkflow) from spec files.
    Pipeline(Box<PipelineArgs>),
    /// Temporal Schedules that start pipeline runs.
    Schedule(Box<ScheduleArgs>),
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
    /// List the plugins of a directory as the worker would load them: name, version, digest.
    List {
        #[arg(long, env = "MLX_PLUGINS_DIR")]
        plugins_dir: PathBuf,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Check that components load (compile, link, manifest, describe); exit 2 if any does not.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
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
    // The client commands print what the person asked for; the plugin loading that
    // `--plugins-dir` does would otherwise log a line per plugin into it.
    if matches!(cli.command, Command::Pipeline(_) | Command::Schedule(_))
        && std::env::var_os("RUST_LOG").is_none()
    {
        // SAFETY: single-threaded here; no other thread reads the environment yet.
        unsafe { std::env::set_var("RUST_LOG", "warn") };
    }
    // `run` reads its log format with the rest of its configuration.
    let settings = match &cli.command {
        Command::Run(args) => match args.settings(cli.log_format) {
            Ok(settings) => Some(settings),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
        _ => None,
    };
    let tokio = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The trace exporter runs on the runtime.
    let traces = {
        let _runtime = tokio.enter();
        let format = settings
            .as_ref()
            .map_or(cli.log_format.unwrap_or_default(), |s| s.log_format);
        let otlp = settings.as_ref().and_then(|s| s.otlp_endpoint.as_deref());
        match telemetry::init(format, otlp) {
            Ok(traces) => traces,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    };
    if let (Command::Run(args), Some(settings)) = (&cli.command, settings) {
        if args.print_config {
            print!("{}", settings.to_toml());
            return ExitCode::SUCCESS;
        }
        let code = tokio.block_on(run(settings));
        // Buffered spans go out before the process does.
        if let Some(traces) = traces {
            traces.shutdown();
        }
        return code;
    }
    match tokio.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Exit status: 0 drained cleanly, 3 in-flight activities had to be cancelled at shutdown,
/// 2 configuration or plugins unusable at start, 1 any other failure.
async fn run(settings: Settings) -> ExitCode {
    exit_code(daemon::run(settings, shutdown_signal()).await)
}

fn exit_code(stopped: Result<Stopped, DaemonError>) -> ExitCode {
    match stopped {
        Ok(Stopped::Drained) => {
            tracing::info!("stopped; every in-flight activity finished");
            ExitCode::SUCCESS
        }
        Ok(Stopped::CancelledInFlight(n)) => {
            tracing::warn!(
                "stopped; {n} in-flight activities were cancelled after the grace period"
            );
            ExitCode::from(3)
        }
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// 0 or what the command chose (e.g. a followed run's outcome); 2 a request that repeating
/// will not fix (invalid spec, refused update); 1 anything else.
fn cli_exit(result: Result<ExitCode, CliError>) -> ExitCode {
    result.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        ExitCode::from(e.exit_code())
    })
}

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run(_) => unreachable!("handled in main"),
        Command::Dev(args) => Ok(exit_code(dev::run(*args, shutdown_signal()).await)),
        Command::Pipeline(args) => Ok(cli_exit(cli::pipeline::run(*args).await)),
        Command::Schedule(args) => Ok(cli_exit(cli::schedule::run(*args).await)),
        Command::Plugin(PluginCommand::List { plugins_dir, json }) => {
            list(&plugins_dir, json).await
        }
        Command::Plugin(PluginCommand::Validate { files }) => validate(&files).await,
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

async fn list(dir: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let runtime = Runtime::new(RuntimeSettings::default()).map_err(anyhow_from)?;
    let mut refused = 0;
    for file in PluginRegistry::component_files(dir)? {
        let row = match runtime.load(&file).await {
            Ok(p) => serde_json::json!({
                "name": p.info.name, "version": p.info.version, "digest": p.digest,
                "file": file.display().to_string(), "operations": p.info.operation_names(),
            }),
            Err(e) => {
                refused += 1;
                serde_json::json!({"file": file.display().to_string(), "refused": e.to_string()})
            }
        };
        if json {
            println!("{row}");
        } else if let Some(reason) = row["refused"].as_str() {
            println!(
                "REFUSED  {}: {reason}",
                row["file"].as_str().unwrap_or_default()
            );
        } else {
            println!(
                "{:<16} {:<10} {}  {}  [{}]",
                row["name"].as_str().unwrap_or_default(),
                row["version"].as_str().unwrap_or_default(),
                row["digest"].as_str().unwrap_or_default(),
                row["file"].as_str().unwrap_or_default(),
                row["operations"]
                    .as_array()
                    .map(|ops| ops
                        .iter()
                        .filter_map(|o| o.as_str())
                        .collect::<Vec<_>>()
                        .join(", "))
                    .unwrap_or_default()
            );
        }
    }
    Ok(if refused == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

async fn validate(files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let runtime = Runtime::new(RuntimeSettings::default()).map_err(anyhow_from)?;
    let mut failed = 0;
    for file in files {
        match runtime.load(file).await {
            Ok(p) => println!(
                "ok       {}: {} {} {}",
                file.display(),
                p.info.name,
                p.info.version,
                p.digest
            ),
            Err(e) => {
                failed += 1;
                println!("REFUSED  {e}");
            }
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
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
