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

use super::CliError;
use crate::oci;

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
    /// Push a component (and its manifest) to an OCI registry as a Wasm artifact; prints the
    /// reference pinned by digest (oci://HOST/REPO@sha256:…) for `worker.plugin_refs`.
    Push {
        /// The component, NAME.wasm; it must load as the worker would load it.
        file: PathBuf,
        /// Where to: oci://HOST/REPOSITORY:TAG.
        reference: String,
        /// The plugin manifest to push with it [default: NAME.toml beside FILE, if any].
        #[arg(long)]
        manifest: Option<PathBuf>,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Fetch a plugin from an OCI registry into a plugins directory, every digest verified;
    /// NAME.toml, then NAME.wasm, each renamed into place whole.
    Pull {
        /// oci://HOST/REPOSITORY:TAG, or pinned: oci://HOST/REPOSITORY@sha256:DIGEST.
        reference: String,
        #[arg(long, env = "MLX_PLUGINS_DIR")]
        plugins_dir: PathBuf,
        /// The file name [default: the artifact's title annotation, else the repository's
        /// last path segment].
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        registry: RegistryArgs,
    },
}

/// How `push` and `pull` reach a registry. Credentials: `MLX_OCI_USERNAME` and
/// `MLX_OCI_PASSWORD`, else the docker config file, else anonymous.
#[derive(clap::Args)]
pub struct RegistryArgs {
    /// Plain HTTP to a registry off loopback (loopback registries always are).
    #[arg(long)]
    insecure: bool,
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
        PluginCommand::Push {
            file,
            reference,
            manifest,
            registry,
        } => Ok(exit(
            push(settings, &file, &reference, manifest, registry).await,
        )),
        PluginCommand::Pull {
            reference,
            plugins_dir,
            name,
            registry,
        } => Ok(exit(
            pull(&reference, &plugins_dir, name.as_deref(), registry).await,
        )),
    }
}

/// A registry command's outcome as `CliError`'s exit statuses: 2 for what a retry will not
/// fix, 69 for a registry that stayed unreachable, 1 otherwise.
fn exit(result: Result<(), CliError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn registry_error(what: String, e: oci::OciError) -> CliError {
    if e.is_unreachable() {
        CliError::Unreachable {
            what,
            source: Box::new(e),
        }
    } else if e.is_permanent() {
        CliError::Usage(format!("{what}: {e}"))
    } else {
        CliError::Local(format!("{what}: {e}"))
    }
}

async fn push(
    settings: Settings,
    file: &Path,
    reference: &str,
    manifest: Option<PathBuf>,
    registry: RegistryArgs,
) -> Result<(), CliError> {
    let target: oci::PluginRef = reference
        .parse()
        .map_err(|e: oci::RefError| CliError::Usage(e.to_string()))?;
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))
    };
    let beside = mlx_runtime::plugin::manifest::manifest_path_for(file);
    let manifest_path = manifest.or_else(|| beside.exists().then(|| beside.clone()));
    let wasm = read(file)?;
    let manifest = manifest_path.as_deref().map(read).transpose()?;
    // Loaded as the worker would (compiled, linked, manifest read, described) so that what
    // the registry holds is known to load, and its name and version are the plugin's own.
    let staged = tempfile::tempdir().map_err(|e| CliError::Local(e.to_string()))?;
    let load_path = match (&manifest_path, &manifest) {
        (Some(path), Some(bytes)) if *path != beside => {
            let stem = file.file_stem().unwrap_or_default();
            let copy = staged.path().join(stem).with_extension("wasm");
            std::fs::write(&copy, &wasm)
                .and_then(|()| std::fs::write(copy.with_extension("toml"), bytes))
                .map_err(|e| CliError::Local(e.to_string()))?;
            copy
        }
        _ => file.to_path_buf(),
    };
    let host = settings
        .host()
        .map_err(|e| CliError::Local(format!("{e:#}")))?;
    let plugin = host.load(&load_path).await.map_err(|e| {
        CliError::Usage(format!(
            "{} does not load, so it was not pushed: {e}",
            file.display()
        ))
    })?;
    let artifact = oci::Artifact {
        name: plugin.info.name.clone(),
        version: Some(plugin.info.version.clone()).filter(|v| !v.is_empty()),
        wasm,
        manifest,
    };
    let access = oci::Access {
        insecure: registry.insecure,
    };
    let pinned = oci::push(&artifact, &target, &access)
        .await
        .map_err(|e| registry_error(format!("pushing {target}"), e))?;
    eprintln!(
        "pushed {} {}{} to {target}",
        artifact.name,
        artifact.version.as_deref().unwrap_or_default(),
        if artifact.manifest.is_some() {
            " with its manifest"
        } else {
            ""
        }
    );
    println!("{pinned}");
    Ok(())
}

async fn pull(
    reference: &str,
    plugins_dir: &Path,
    name: Option<&str>,
    registry: RegistryArgs,
) -> Result<(), CliError> {
    let source: oci::PluginRef = reference
        .parse()
        .map_err(|e: oci::RefError| CliError::Usage(e.to_string()))?;
    let access = oci::Access {
        insecure: registry.insecure,
    };
    let fetched = oci::fetch(&source, &access)
        .await
        .map_err(|e| registry_error(format!("pulling {source}"), e))?;
    let name = fetched
        .name(&source, name)
        .map_err(|e| CliError::Usage(e.to_string()))?;
    std::fs::create_dir_all(plugins_dir)
        .map_err(|e| CliError::Local(format!("{}: {e}", plugins_dir.display())))?;
    oci::install(plugins_dir, &name, &fetched)
        .map_err(|e| registry_error(format!("pulling {source}"), e))?;
    let toml = plugins_dir.join(format!("{name}.toml"));
    if fetched.manifest.is_none() && toml.exists() {
        eprintln!(
            "warning: the artifact has no plugin manifest; {} was left as it was",
            toml.display()
        );
    }
    eprintln!(
        "pulled {name} into {}",
        plugins_dir.join(format!("{name}.wasm")).display()
    );
    println!("{}", source.pinned(&fetched.digest));
    Ok(())
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
