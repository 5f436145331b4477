//! The long-running worker, as `mlx-worker run` starts it: health endpoint, metrics, compile
//! cache, plugins (watched for changes; `plugin_refs` pulled at start and on each re-read
//! configuration), a connection to Temporal (retried until it succeeds),
//! and the poll loop, until `shutdown` resolves. Then it drains: polling stops, in-flight
//! activities keep running (and heartbeating) for the grace period, and whatever still runs
//! after it is cancelled.
//!
//! systemd gets `READY=1` once the worker polls and `STOPPING=1` when it drains (a no-op when
//! not started by systemd).

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use temporalio_common::{
    telemetry::{
        HistogramBucketOverrides, PrometheusExporterOptions, metrics::CoreMeter,
        start_prometheus_metric_exporter,
    },
    worker::WorkerDeploymentVersion,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use mlx_runtime::{
    HostSettings, PluginHost,
    child::ChildProgram,
    engine::{BoxError, EngineError, EngineSettings},
    plugin::{
        LoadError,
        registry::PluginRegistry,
        reload::{PluginWatcher, WatchError},
    },
};

use crate::{
    config::Settings,
    temporal::worker::{self, ConnectionSettings, WorkerError, WorkerSettings},
};
use health::Health;
use metrics::PluginMetrics;
use mlx_runtime::{live::LiveCount, observer::Observer};

pub mod dev;
mod gauges;
pub mod health;
pub mod metrics;
mod refs;
pub mod telemetry;
mod trim;

/// How the daemon ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Shutdown was requested and every in-flight activity finished within the grace period.
    Drained,
    /// Shutdown was requested and this many activities were still running at the end of the
    /// grace period, so they were cancelled (Temporal retries them elsewhere).
    CancelledInFlight(usize),
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// Something the worker needs before it can serve (an endpoint, a directory, the engine).
    /// `:#` so that an `anyhow` cause shows its whole chain.
    #[error("{what}: {source:#}")]
    Setup {
        what: String,
        #[source]
        source: BoxError,
    },
    #[error(transparent)]
    Plugins(#[from] LoadError),
    #[error(transparent)]
    Watch(#[from] WatchError),
    #[error(transparent)]
    Worker(#[from] WorkerError),
}

impl DaemonError {
    pub(crate) fn setup(what: impl Into<String>, source: impl Into<BoxError>) -> Self {
        DaemonError::Setup {
            what: what.into(),
            source: source.into(),
        }
    }

    /// 2: fix the configuration or the plugins and start again; 1: anything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            DaemonError::Setup { .. } | DaemonError::Plugins(_) | DaemonError::Watch(_) => 2,
            DaemonError::Worker(WorkerError::Config { .. }) => 2,
            DaemonError::Worker(_) => 1,
        }
    }
}

/// The subcommand of this executable that compiles one component for the daemon
/// (`mlx_runtime::plugin::compiler`): the daemon runs itself with it, so a binary that runs
/// [`run`] must dispatch it to `mlx_runtime::plugin::compiler::serve`, as `mlx-worker` does.
pub const COMPILE_COMMAND: &str = "compile-component";

/// The subcommand of this executable that runs one invocation of a plugin with
/// `isolation = "process"` (`mlx_runtime::isolated`), dispatched by `mlx-worker` to
/// `mlx_runtime::isolated::serve` like [`COMPILE_COMMAND`].
pub const INVOKE_COMMAND: &str = "run-invocation";

/// Longest wait between connection attempts at start.
const MAX_CONNECT_BACKOFF: Duration = Duration::from_secs(30);

pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Stopped, DaemonError> {
    run_with(settings, shutdown, mpsc::channel(1).1).await
}

/// [`run`], told of each re-read configuration (`mlx-worker run` re-reads it on SIGHUP):
/// a changed `worker.plugin_refs` is pulled and served (refs.rs).
pub async fn run_with(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
    reloads: mpsc::Receiver<Settings>,
) -> Result<Stopped, DaemonError> {
    let stop = CancellationToken::new();
    tokio::spawn({
        let stop = stop.clone();
        async move {
            shutdown.await;
            stop.cancel();
        }
    });
    let health = Arc::new(Health::default());
    if let Some(addr) = settings.health_address {
        let (bound, server) = health::serve(addr, health.clone())
            .await
            .map_err(|e| DaemonError::setup(format!("health endpoint on {addr}"), e))?;
        tracing::info!(address = %bound, "health endpoint: /healthz, /readyz, /plugins");
        tokio::spawn(server);
    }
    let metrics = match settings.metrics_address {
        None => None,
        Some(addr) => {
            // Byte sizes need byte buckets; the default ones suit durations in seconds.
            let mut buckets = HistogramBucketOverrides::default();
            buckets.overrides.insert(
                "mlx_plugin_peak_memory_bytes".into(),
                (0..7)
                    .map(|i| f64::from(1u32 << 20) * 4f64.powi(i))
                    .collect(),
            );
            let options = PrometheusExporterOptions::builder()
                .socket_addr(addr)
                .counters_total_suffix(true)
                .use_seconds_for_durations(true)
                .histogram_bucket_overrides(buckets)
                .build();
            let started = start_prometheus_metric_exporter(options)
                .map_err(|e| DaemonError::setup(format!("metrics endpoint on {addr}"), e))?;
            tracing::info!(address = %started.bound_addr, "Prometheus metrics: /metrics");
            Some(started.meter as Arc<dyn CoreMeter>)
        }
    };

    let runtime = PluginHost::new(HostSettings {
        engine: EngineSettings {
            max_instances: (settings.max_concurrent_activities as u32)
                .saturating_mul(2)
                .max(8),
            fuel_metering: settings.fuel_metering,
            ..Default::default()
        },
        artifacts_dir: Some(absolute(&settings.artifacts_dir)?),
        scratch_root: None,
        cache_dir: Some(absolute(&settings.cache_dir)?),
        cache_max_bytes: Some(settings.cache_max_bytes),
        compiler: Some(
            ChildProgram::this_executable(&[COMPILE_COMMAND])
                .map_err(|e| DaemonError::setup("the compiler process (this executable)", e))?,
        ),
        invoker: Some(
            ChildProgram::this_executable(&[
                "--log-format",
                settings.log_format.as_arg(),
                INVOKE_COMMAND,
            ])
            .map_err(|e| DaemonError::setup("the invocation process (this executable)", e))?,
        ),
        observer: metrics
            .clone()
            .map(|meter| Arc::new(PluginMetrics::new(meter)) as Arc<dyn Observer>),
    })
    .map_err(|e| DaemonError::setup("the plugin host", EngineError(e)))?;
    // Not created: a mistyped path must fail loudly, not serve an empty directory.
    let plugins_dir = settings.plugins_dir.canonicalize().map_err(|e| {
        DaemonError::setup(
            format!(
                "plugins directory {} (create it or fix worker.plugins_dir / --plugins-dir)",
                settings.plugins_dir.display()
            ),
            e,
        )
    })?;
    // Plugins pinned in worker.plugin_refs are in the directory before anything reads it.
    let pinned = refs::PinnedPlugins::pull(
        settings.plugin_refs.clone(),
        plugins_dir.clone(),
        absolute(&settings.cache_dir)?,
    )
    .await
    .map_err(|e| DaemonError::setup("worker.plugin_refs", e))?;
    // Watching starts first: a file changed while the others load is not missed. A deployment
    // version never watches (below).
    let watcher = match settings.deployment_name {
        None => Some(PluginWatcher::start(&plugins_dir)?),
        Some(_) => None,
    };
    let registry = Arc::new(PluginRegistry::load_dir(&runtime, &plugins_dir).await?);
    if registry.is_empty() {
        tracing::warn!(dir = %plugins_dir.display(), "no plugins yet; requests fail with UnknownPlugin until some are added");
    }
    let _ = health.plugins.set(registry.clone());
    health.plugins_loaded.store(true, Ordering::SeqCst);

    let Some(client) = connect_until(&settings.temporal, &stop).await? else {
        return Ok(Stopped::Drained);
    };
    health.connected.store(true, Ordering::SeqCst);
    let deployment = match &settings.deployment_name {
        // A version is its plugin set: a changed directory would serve pinned runs bytes they
        // did not start with, so a versioned worker reads it once and a new set is a new
        // version, rolled out as new workers.
        Some(name) => {
            let version = deployment_version(name, &registry)?;
            tracing::info!(
                "plugins directory read once (deployment version {}.{}): changes take effect \
                 in workers of a new version",
                version.deployment_name,
                version.build_id
            );
            Some(version)
        }
        None => None,
    };
    if let Some(watcher) = watcher {
        tokio::spawn(watcher.run(
            runtime.clone(),
            registry.clone(),
            stop.clone().cancelled_owned(),
        ));
    }
    let activities_tracked = LiveCount::default();
    if let Some(meter) = metrics.clone() {
        tokio::spawn(gauges::record(
            meter,
            runtime.clone(),
            activities_tracked.clone(),
            stop.clone(),
        ));
    }
    tokio::spawn(trim::run(stop.clone()));
    tokio::spawn(refs::follow(
        pinned,
        settings.clone(),
        reloads,
        deployment.is_some(),
        stop.clone(),
    ));

    let grace = settings.shutdown_grace;
    let cancelled = Arc::new(AtomicUsize::new(0));
    let drain = {
        let (stop, health, runtime, cancelled) = (
            stop.clone(),
            health.clone(),
            runtime.clone(),
            cancelled.clone(),
        );
        async move {
            stop.cancelled().await;
            health.draining.store(true, Ordering::SeqCst);
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
            let in_flight = runtime.active_invocations();
            tracing::info!(
                in_flight,
                grace_secs = grace.as_secs(),
                "shutting down: polling stops, in-flight activities get the grace period"
            );
            // What is still running when the grace period ends is what the SDK cancels.
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                let left = runtime.active_invocations();
                if left > 0 {
                    tracing::warn!(left, "grace period over; cancelling in-flight activities");
                }
                cancelled.store(left, Ordering::SeqCst);
            });
        }
    };
    let mut worker_settings = WorkerSettings::new(
        settings.task_queue.clone(),
        settings.max_concurrent_activities,
    );
    worker_settings.graceful_shutdown = Some(grace);
    worker_settings.metrics = metrics;
    worker_settings.activities_tracked = activities_tracked;
    worker_settings.max_input_bytes = settings.max_input_bytes;
    worker_settings.openlineage = settings.openlineage.clone();
    worker_settings.step_cache_max_bytes = settings.step_cache_max_bytes;
    worker_settings.max_cached_workflows = settings.max_cached_workflows;
    worker_settings.deployment = deployment;
    worker_settings.run_files = match &settings.artifacts_store {
        None => None,
        Some(url) => {
            let files = crate::run_files::RunFiles::open(
                url,
                &absolute(&settings.artifacts_dir)?,
                settings.artifacts_fetch_max_bytes,
                settings.artifacts_cache_max_bytes,
            )
            .map_err(|e| DaemonError::setup(format!("worker.artifacts_store {url}"), e))?;
            tracing::info!(store = %url, "runs' artifacts on the shared store");
            Some(Arc::new(files))
        }
    };
    #[cfg(feature = "native-echo")]
    {
        worker_settings.native_echo = settings.native_echo;
    }
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    worker::run(client, &worker_settings, runtime, registry, drain).await?;
    Ok(match cancelled.load(Ordering::SeqCst) {
        0 => Stopped::Drained,
        n => Stopped::CancelledInFlight(n),
    })
}

/// The Worker Deployment version of a worker serving `registry`: its build id is the worker's
/// version and the plugin set's digest, so every machine with the same binary and files is the
/// same version, and any change of bytes is a new one.
fn deployment_version(
    name: &str,
    registry: &PluginRegistry,
) -> Result<WorkerDeploymentVersion, DaemonError> {
    let digest = registry
        .set_digest()
        .map_err(|e| DaemonError::setup("the plugin set's digest", e))?;
    let hex = digest.trim_start_matches("sha256:");
    Ok(WorkerDeploymentVersion::builder()
        .deployment_name(name)
        .build_id(format!("{}-{}", env!("CARGO_PKG_VERSION"), &hex[..12]))
        .build())
}

/// Connects, retrying with backoff while the server is unreachable (a worker started before
/// its server, e.g. at boot, waits for it). Configuration errors are not retried. None: shut
/// down before a connection was made.
async fn connect_until(
    settings: &ConnectionSettings,
    stop: &CancellationToken,
) -> Result<Option<temporalio_client::Client>, DaemonError> {
    let mut backoff = Duration::from_secs(1);
    loop {
        match worker::connect(settings).await {
            Ok(client) => return Ok(Some(client)),
            Err(e @ WorkerError::Config { .. }) => return Err(e.into()),
            Err(e) => tracing::warn!("{e}; retrying in {backoff:?}"),
        }
        tokio::select! {
            () = stop.cancelled() => return Ok(None),
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_CONNECT_BACKOFF);
    }
}

fn absolute(path: &std::path::Path) -> Result<std::path::PathBuf, DaemonError> {
    std::fs::create_dir_all(path)
        .and_then(|()| path.canonicalize())
        .map_err(|e| DaemonError::setup(path.display().to_string(), e))
}
