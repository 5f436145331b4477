//! `mlx-worker`: the daemon and the plugin author's tools. Thin: everything lives in the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mlx_worker::{
    cli::{
        self, CliError, pipeline::PipelineArgs, plugin::PluginArgs, registry::RegistryArgs,
        schedule::ScheduleArgs, ui::UiArgs,
    },
    config::{ConfigError, Settings, run_args::RunArgs, watch::ConfigWatch},
    daemon::{
        self, DaemonError, Stopped,
        dev::{self, DevArgs},
        telemetry::{self, LogFormat},
    },
};

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
    Plugin(PluginArgs),
    /// Start, follow and steer pipeline runs (PipelineWorkflow) from spec files.
    Pipeline(Box<PipelineArgs>),
    /// Temporal Schedules that start pipeline runs.
    Schedule(Box<ScheduleArgs>),
    /// The model registry `register_model` writes: its models and versions, with metrics,
    /// approval and lineage. Reads the registry directory; no server needed.
    Registry(RegistryArgs),
    /// A web page for pipeline runs: the DAG live, step details, approvals with a click.
    Ui(Box<UiArgs>),
    /// The daemon's compiler process: a component on stdin, its compiled artifact on stdout,
    /// for the engine its argument describes. Run by the worker itself, not by people.
    #[command(name = daemon::COMPILE_COMMAND, hide = true)]
    CompileComponent { engine: String },
    /// The process of one invocation of a plugin with `isolation = "process"`: the request on
    /// stdin, heartbeats and the outcome on stdout. Run by the worker itself, not by people.
    #[command(name = daemon::INVOKE_COMMAND, hide = true)]
    RunInvocation,
}

fn main() -> ExitCode {
    // RUST_BACKTRACE=1 would make every wasmtime error (each guest trap) capture a native
    // backtrace; library backtraces stay off unless explicitly asked for.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: single-threaded here; no other thread reads the environment yet.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
    let cli = Cli::parse();
    if let Command::CompileComponent { engine } = &cli.command {
        return match mlx_runtime::plugin::compiler::serve(engine) {
            Ok(()) => ExitCode::SUCCESS,
            Err((message, code)) => {
                eprintln!("{message}");
                ExitCode::from(code)
            }
        };
    }
    if let Command::RunInvocation = &cli.command {
        return run_invocation(cli.log_format.unwrap_or_default());
    }
    // The client commands print what the person asked for; the plugin loading that
    // `--plugins-dir` does would otherwise log a line per plugin into it.
    if matches!(
        cli.command,
        Command::Pipeline(_) | Command::Schedule(_) | Command::Ui(_)
    ) && std::env::var_os("RUST_LOG").is_none()
    {
        // SAFETY: single-threaded here; no other thread reads the environment yet.
        unsafe { std::env::set_var("RUST_LOG", "warn") };
    }
    // `run` and `dev` read their log format with the rest of their configuration.
    let settings = match &cli.command {
        Command::Run(args) => Some(args.settings(cli.log_format)),
        Command::Dev(args) => Some(args.settings(cli.log_format)),
        _ => None,
    };
    let settings = match settings.transpose() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
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
    let code = match (cli.command, settings) {
        (Command::Run(args), Some(settings)) => {
            if args.print_config {
                print!("{}", settings.to_toml());
                return ExitCode::SUCCESS;
            }
            let log_format = cli.log_format;
            let config = args.config.clone();
            let reread = move || args.settings(log_format);
            tokio.block_on(run(settings, reread, config))
        }
        (Command::Dev(args), Some(settings)) => {
            let stopped = tokio.block_on(dev::run(*args, settings, shutdown_signal()));
            exit_code(stopped)
        }
        (command, _) => {
            return match tokio.block_on(dispatch(command)) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            };
        }
    };
    // Buffered spans go out before the process does.
    if let Some(traces) = traces {
        traces.shutdown();
    }
    code
}

/// The child process of one invocation (`mlx_runtime::isolated`). Its log lines go to the
/// stderr it shares with the worker, in the worker's format; loading the plugin again is not
/// news there, so the runtime's own lines are kept to warnings.
fn run_invocation(format: LogFormat) -> ExitCode {
    let filter = std::env::var("RUST_LOG")
        .unwrap_or_else(|_| "warn,mlx_worker=info,mlx_runtime=info".into());
    let filter = format!("{filter},mlx_runtime::host=warn,mlx_runtime::plugin=warn");
    // SAFETY: single-threaded here; no other thread reads the environment yet.
    unsafe { std::env::set_var("RUST_LOG", filter) };
    if let Err(e) = telemetry::init(format, None) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    match mlx_runtime::host::serve() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: the invocation's process: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Exit status: 0 drained cleanly, 3 in-flight activities had to be cancelled at shutdown,
/// 2 configuration or plugins unusable at start, 1 any other failure.
async fn run(
    settings: Settings,
    reread: impl Fn() -> Result<Settings, ConfigError> + Send + 'static,
    config: Option<std::path::PathBuf>,
) -> ExitCode {
    let (reloads, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(reload_when_asked(reread, reloads, config));
    exit_code(daemon::run_with(settings, shutdown_signal(), rx).await)
}

/// SIGHUP, or a change of the `--config` file, re-reads the configuration (file, flags,
/// environment, as at start) and hands it to the daemon; one that no longer resolves is
/// reported and the worker goes on as it was.
async fn reload_when_asked(
    reread: impl Fn() -> Result<Settings, ConfigError>,
    reloads: tokio::sync::mpsc::Sender<Settings>,
    config: Option<std::path::PathBuf>,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("SIGHUP will not reload the configuration: {e}");
            None
        }
    };
    let mut watch = config.as_deref().and_then(|path| {
        ConfigWatch::start(path)
            .inspect_err(|e| {
                tracing::warn!(file = %path.display(), "changes to the configuration file will not be noticed (SIGHUP still reloads it): {e}")
            })
            .ok()
    });
    loop {
        let why = tokio::select! {
            Some(()) = async { hangup.as_mut()?.recv().await } => "SIGHUP",
            Some(()) = async { watch.as_mut()?.changed().await } => "the configuration file changed",
            else => return,
        };
        match reread() {
            Ok(settings) => {
                tracing::info!("{why}: configuration re-read");
                if reloads.send(settings).await.is_err() {
                    return;
                }
            }
            Err(e) => tracing::error!(
                "{why}: the configuration does not resolve, nothing changed; fix it and \
                 reload again: {e}"
            ),
        }
    }
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
        Command::Run(_)
        | Command::Dev(_)
        | Command::CompileComponent { .. }
        | Command::RunInvocation => {
            unreachable!("handled in main")
        }
        Command::Pipeline(args) => Ok(cli_exit(cli::pipeline::run(*args).await)),
        Command::Schedule(args) => Ok(cli_exit(cli::schedule::run(*args).await)),
        Command::Registry(args) => Ok(cli_exit(cli::registry::run(args))),
        Command::Ui(args) => Ok(cli_exit(cli::ui::run(*args).await)),
        Command::Plugin(command) => cli::plugin::run(command).await,
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
