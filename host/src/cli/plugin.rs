//! `mlx-worker plugin ...`: the plugin author's and operator's tools. None needs a Temporal
//! server: each loads components with a local [`PluginHost`] as the worker would.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
};

use anyhow::Context;
use clap::Subcommand;
use mlx_runtime::{
    HostSettings, PluginHost, contract::InvocationContext, plugin::registry::PluginRegistry,
    sandbox::capabilities::activity::ActivitySignals,
};
use tokio_util::sync::CancellationToken;

/// `mlx-worker plugin …`: the command and what every plugin command shares.
#[derive(clap::Args)]
pub struct PluginArgs {
    /// Keep compiled components here (as the worker's `worker.cache_dir` does), so repeated
    /// commands on one file compile it once [default: $XDG_CACHE_HOME/mlx-worker, else
    /// ~/.cache/mlx-worker].
    #[arg(long, env = "MLX_CACHE_DIR", global = true)]
    cache_dir: Option<PathBuf>,
    /// Keep no compiled components: compile on every call.
    #[arg(long, global = true, conflicts_with = "cache_dir")]
    no_cache: bool,
    #[command(subcommand)]
    command: PluginCommand,
}

#[derive(Subcommand)]
pub enum PluginCommand {
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
    /// Write a new plugin project (SDK, contract, a first operation, a test, a build command).
    New {
        /// The plugin's name: workflows address it by this.
        name: String,
        #[arg(long, value_enum)]
        lang: super::scaffold::Lang,
        /// Where to write the project (default: ./NAME); must not exist or be empty.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// Runs one plugin command; the exit status says whether what it checked was acceptable.
pub async fn run(args: PluginArgs) -> anyhow::Result<ExitCode> {
    let settings = Settings::new(args.cache_dir, args.no_cache);
    match args.command {
        PluginCommand::List { plugins_dir, json } => list(settings, &plugins_dir, json).await,
        PluginCommand::Validate { files } => validate(settings, &files).await,
        PluginCommand::Describe { file } => {
            let host = settings.host()?;
            let plugin = host.load(&file).await?;
            println!("{}", serde_json::to_string_pretty(&plugin.info)?);
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Inspect { file } => {
            let host = settings.host()?;
            let inspection = mlx_runtime::plugin::inspect::inspect(&host, &file).await?;
            print!("{}", inspection.report);
            // The report is the output either way; the status says whether it would load.
            Ok(if inspection.loads {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
        PluginCommand::New { name, lang, dir } => super::scaffold::run(&name, lang, dir.as_deref()),
        PluginCommand::Invoke {
            file,
            operation,
            input,
            artifacts_dir,
            workflow_id,
        } => invoke(settings, file, operation, input, artifacts_dir, workflow_id).await,
    }
}

/// The host settings of a plugin command, and whether its cache directory is the per-user
/// default (which, unlike one asked for, may be unusable without failing the command).
pub(crate) struct Settings {
    host: HostSettings,
    cache_defaulted: bool,
}

impl Settings {
    /// The compile cache in `cache_dir` if one is asked for, none with `no_cache`, else the
    /// per-user default.
    pub(crate) fn new(cache_dir: Option<PathBuf>, no_cache: bool) -> Self {
        let (cache_dir, cache_defaulted) = match (no_cache, cache_dir) {
            (true, _) => (None, false),
            (false, Some(dir)) => (Some(dir), false),
            (false, None) => (user_cache_dir(), true),
        };
        Self {
            host: HostSettings {
                cache_dir,
                ..Default::default()
            },
            cache_defaulted,
        }
    }

    pub(crate) fn host(self) -> anyhow::Result<Arc<PluginHost>> {
        match PluginHost::new(self.host.clone()) {
            Ok(host) => Ok(host),
            Err(e) if self.cache_defaulted => {
                eprintln!("warning: compiling without a cache: {e:#}");
                PluginHost::new(HostSettings {
                    cache_dir: None,
                    ..self.host
                })
                .map_err(anyhow_from)
            }
            Err(e) => Err(anyhow_from(e)),
        }
    }
}

/// `$XDG_CACHE_HOME/mlx-worker`, else `$HOME/.cache/mlx-worker` (the XDG convention); none
/// without either.
fn user_cache_dir() -> Option<PathBuf> {
    let absolute = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    absolute("XDG_CACHE_HOME")
        .or_else(|| absolute("HOME").map(|home| home.join(".cache")))
        .map(|dir| dir.join("mlx-worker"))
}

async fn list(settings: Settings, dir: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let runtime = settings.host()?;
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

async fn validate(settings: Settings, files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let runtime = settings.host()?;
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
    settings: Settings,
    file: PathBuf,
    operation: String,
    input: String,
    artifacts_dir: PathBuf,
    workflow_id: String,
) -> anyhow::Result<ExitCode> {
    let input: serde_json::Value =
        serde_json::from_str(&input).context("INPUT must be JSON text")?;
    let runtime = Settings {
        host: HostSettings {
            artifacts_dir: Some(absolute(&artifacts_dir)?),
            ..settings.host
        },
        ..settings
    }
    .host()?;
    let plugin = runtime.load(&file).await?;
    let cancel = CancellationToken::new();
    let (signals, mut heartbeats) = ActivitySignals::new(cancel.clone());
    let printer = tokio::spawn(async move {
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
    let result = runtime
        .invoke(&plugin, &operation, &input, &ctx, signals, None)
        .await;
    // The invocation dropped the sender: the printer ends once it has shown the last
    // heartbeat, which the process must not exit before (a fast plugin's last one was lost).
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), printer).await;
    match result {
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

fn absolute(path: &std::path::Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
    Ok(path.canonicalize()?)
}

fn anyhow_from(e: wasmtime::Error) -> anyhow::Error {
    anyhow::anyhow!("{e:#}")
}
