//! Connects to Temporal and runs the worker until the shutdown future resolves.

use std::{
    future::Future,
    path::PathBuf,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use futures::stream::{FuturesUnordered, StreamExt};

use temporalio_client::{
    Client, ClientOptions, ClientTlsOptions, Connection, TlsOptions,
    envconfig::LoadClientConfigProfileOptions,
};
use temporalio_common::{
    telemetry::{TelemetryOptions, metrics::CoreMeter},
    worker::{VersioningBehavior, WorkerDeploymentOptions, WorkerDeploymentVersion},
};
use temporalio_sdk::{
    Worker, WorkerOptions, WorkerRunError,
    runtime::RuntimeOptions,
    runtime::worker_tuner::{FixedSizeSlotSupplier, TunerHolder},
};
use url::Url;

use super::{MLTrainingWorkflow, PipelineWorkflow, PluginActivities, RunPluginWorkflow};
use mlx_runtime::{PluginHost, engine::BoxError, plugin::registry::PluginRegistry};

/// Where and how to connect: the `[temporal]` table of the configuration. Unset fields follow
/// Temporal's own conventions: the `temporal.toml` profile the official SDKs read (with the
/// `TEMPORAL_*` variables it honours); default `localhost:7233`, `default`.
pub use crate::config::TemporalConfig as ConnectionSettings;

fn wants_tls(settings: &ConnectionSettings) -> bool {
    settings.tls_client_cert.is_some()
        || settings.tls_server_ca.is_some()
        || settings.tls_server_name.is_some()
}

/// Temporal's own default payload limit.
pub const DEFAULT_MAX_INPUT_BYTES: usize = 2 << 20;
/// Also `worker.step_cache_max_mb`'s default (config), for embedders that build settings here.
pub const DEFAULT_STEP_CACHE_MAX_BYTES: u64 = 20 << 30;

/// Activities one activity worker starts before a fresh one replaces it: the SDK's memory per
/// activity (about 300 bytes, [`run`]) is bounded by this many, about 3 MiB. A replacement
/// costs a new poller on the existing connection and a moment without one.
pub const DEFAULT_ACTIVITIES_PER_WORKER: u64 = 10_000;

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub task_queue: String,
    /// Activities run at once; each holds one sandbox. Default 16.
    pub max_concurrent_activities: usize,
    /// After shutdown starts, how long in-flight activities may keep running (heartbeating)
    /// before they are cancelled; None: wait for them however long they take.
    pub graceful_shutdown: Option<Duration>,
    /// Where the SDK core records its worker metrics (the Prometheus exporter), if anywhere.
    pub metrics: Option<Arc<dyn CoreMeter>>,
    /// Largest request `plugin_activity` accepts, in JSON bytes.
    pub max_input_bytes: usize,
    /// Most bytes the step cache may keep (eviction, least recently used first).
    pub step_cache_max_bytes: u64,
    /// Workflows the SDK keeps in memory between tasks (its sticky cache).
    pub max_cached_workflows: usize,
    /// Where OpenLineage events go, and their jobs' namespace; None: not sent.
    pub openlineage: Option<(crate::openlineage::Sink, String)>,
    /// The Worker Deployment version this worker is, when versioning is on; None: unversioned.
    pub deployment: Option<WorkerDeploymentVersion>,
    /// Runs' files on the shared artifact store; None: on this worker's disk.
    pub run_files: Option<Arc<crate::run_files::RunFiles>>,
    /// Activities one activity worker starts before it is replaced (see [`run`]).
    pub activities_per_worker: u64,
    /// How many activity workers have been replaced so far (a gauge reads it).
    pub replaced: Arc<AtomicU64>,
    /// Benchmarks only: serve `plugin_activity` with the native echo instead of plugins.
    #[cfg(feature = "native-echo")]
    pub native_echo: bool,
}

impl WorkerSettings {
    pub fn new(task_queue: impl Into<String>, max_concurrent_activities: usize) -> Self {
        Self {
            task_queue: task_queue.into(),
            max_concurrent_activities,
            graceful_shutdown: None,
            metrics: None,
            max_input_bytes: DEFAULT_MAX_INPUT_BYTES,
            step_cache_max_bytes: DEFAULT_STEP_CACHE_MAX_BYTES,
            max_cached_workflows: 1000,
            openlineage: None,
            deployment: None,
            run_files: None,
            activities_per_worker: DEFAULT_ACTIVITIES_PER_WORKER,
            replaced: Arc::default(),
            #[cfg(feature = "native-echo")]
            native_echo: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    #[error("temporal connection settings: {what}: {source}")]
    Config {
        what: String,
        #[source]
        source: BoxError,
    },
    #[error("cannot connect to Temporal at {address}: {source}")]
    Connect {
        address: String,
        #[source]
        source: BoxError,
    },
    /// The SDK refused to build or run the worker; `what` says which step.
    #[error("temporal worker: {what}: {source}")]
    Worker {
        what: &'static str,
        #[source]
        source: BoxError,
    },
}

impl WorkerError {
    fn config(what: impl Into<String>, source: impl Into<BoxError>) -> Self {
        WorkerError::Config {
            what: what.into(),
            source: source.into(),
        }
    }

    /// For `map_err`: the SDK step that failed.
    fn worker<E: Into<BoxError>>(what: &'static str) -> impl FnOnce(E) -> Self {
        move |e| WorkerError::Worker {
            what,
            source: e.into(),
        }
    }
}

/// Builds a connected client.
pub async fn connect(settings: &ConnectionSettings) -> Result<Client, WorkerError> {
    let profile = LoadClientConfigProfileOptions::builder()
        .maybe_config_file_profile(settings.profile.clone())
        .build();
    let (mut conn, mut client_opts) = ClientOptions::load_from_config(profile)
        // The SDK's error holds a non-Send cause, so only its message can travel.
        .map_err(|e| WorkerError::config("the temporal.toml profile", e.to_string()))?;
    if let Some(key) = &settings.api_key {
        conn.api_key = Some(key.clone());
    }
    if wants_tls(settings) {
        conn.tls_options = Some(tls_options(settings, conn.tls_options.take())?);
    }
    if let Some(address) = &settings.address {
        let tls = conn.tls_options.is_some() || conn.api_key.is_some();
        conn.target = parse_address(address, tls)?;
    }
    if let Some(namespace) = &settings.namespace {
        client_opts = ClientOptions::new(namespace.clone()).build();
    }
    let address = conn.target.to_string();
    let connection = Connection::connect(conn)
        .await
        .map_err(|e| WorkerError::Connect {
            address: address.clone(),
            source: e.into(),
        })?;
    Client::new(connection, client_opts).map_err(|e| WorkerError::Connect {
        address,
        source: e.into(),
    })
}

/// The profile's TLS settings (if any) with ours on top. Files are read now, so a wrong path
/// fails at start with its name.
fn tls_options(
    settings: &ConnectionSettings,
    base: Option<TlsOptions>,
) -> Result<TlsOptions, WorkerError> {
    let read = |path: &PathBuf| {
        std::fs::read(path)
            .map_err(|e| WorkerError::config(format!("cannot read {}", path.display()), e))
    };
    let mut tls = base.unwrap_or_else(|| TlsOptions::builder().build());
    if let Some(ca) = &settings.tls_server_ca {
        tls.server_root_ca_cert = Some(read(ca)?);
    }
    if let Some(name) = &settings.tls_server_name {
        tls.domain = Some(name.clone());
    }
    if let (Some(cert), Some(key)) = (&settings.tls_client_cert, &settings.tls_client_key) {
        tls.client_tls_options = Some(
            ClientTlsOptions::builder()
                .client_cert(read(cert)?)
                .client_private_key(read(key)?)
                .build(),
        );
    }
    Ok(tls)
}

/// Accepts `host:port` like the other SDKs and the CLI do; the Rust client wants a URL.
fn parse_address(address: &str, tls: bool) -> Result<Url, WorkerError> {
    let with_scheme = if address.contains("://") {
        address.to_string()
    } else if tls {
        format!("https://{address}")
    } else {
        format!("http://{address}")
    };
    Url::parse(&with_scheme).map_err(|e| {
        WorkerError::config(format!("address {address:?} is not host:port or a URL"), e)
    })
}

/// What the activity workers serve: the plugins, or (benchmarks) the native echo.
#[derive(Clone)]
enum Served {
    Plugins(PluginActivities),
    #[cfg(feature = "native-echo")]
    NativeEcho,
}

/// A running SDK worker: its `run` future and the handle that starts its shutdown.
struct Running {
    run: Pin<Box<dyn Future<Output = Result<(), WorkerRunError>>>>,
    stop: Box<dyn Fn()>,
}

impl Running {
    fn start(mut worker: Worker) -> Self {
        let stop = Box::new(worker.shutdown_handle());
        Self {
            run: Box::pin(async move { worker.run().await }),
            stop,
        }
    }
}

/// Whether the server lets a stopping worker's polls complete instead of cutting them (the
/// namespace capability `workerPollCompleteOnShutdown`, server dynamic config
/// `frontend.enableCancelWorkerPollsOnShutdown`). Without it a task the server hands to a
/// poll that is being cut is lost until its timeout, so activity workers are not replaced.
async fn polls_complete_on_shutdown(client: &Client) -> bool {
    use temporalio_client::{NamespacedClient, tonic};
    use temporalio_common::protos::temporal::api::workflowservice::v1::DescribeNamespaceRequest;
    let request = DescribeNamespaceRequest {
        namespace: client.namespace(),
        ..Default::default()
    };
    let mut service = client.connection().workflow_service();
    match service
        .describe_namespace(tonic::Request::new(request))
        .await
    {
        Ok(response) => response
            .into_inner()
            .namespace_info
            .and_then(|info| info.capabilities)
            .is_some_and(|c| c.worker_poll_complete_on_shutdown),
        Err(status) => {
            tracing::warn!("describing the namespace for its capabilities: {status}");
            false
        }
    }
}

/// Polls `settings.task_queue` for the workflows and `plugin_activity` until `shutdown`
/// resolves, then stops polling and lets in-flight tasks finish.
///
/// Workflows run in one SDK worker; activities in another, replaced every
/// `settings.activities_per_worker` activities. Why: temporalio-sdk 1.1.1 keeps a task token
/// and a cancellation token for every activity a worker has started and never removes them
/// (`ActivityHalf::task_tokens_to_cancels`), about 300 bytes per activity for the worker's
/// life (found by the soak, BENCHMARKS.md section 7). A replaced activity worker stops
/// polling at once, its successor polls from the next moment, and it is dropped, map and all, when
/// its last activity ends: nothing running is cancelled. Until then both may run activities,
/// so for that while up to twice `max_concurrent_activities` can run (the instance pool holds
/// twice that many sandboxes for this reason). Only on a server that lets stopping workers'
/// polls complete ([`polls_complete_on_shutdown`]): elsewhere a replacement could lose the
/// task of a poll it cuts, which the soak saw as workflows stuck until their timeouts.
pub async fn run(
    client: Client,
    settings: &WorkerSettings,
    runtime: Arc<PluginHost>,
    registry: Arc<PluginRegistry>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WorkerError> {
    let sdk_runtime = |heartbeat: Option<Duration>| {
        let telemetry = TelemetryOptions::builder()
            .maybe_metrics(settings.metrics.clone())
            .build();
        let options = RuntimeOptions::builder()
            .telemetry_options(telemetry)
            .heartbeat_interval(heartbeat)
            .build()
            .map_err(WorkerError::worker("runtime options"))?;
        temporalio_sdk::Runtime::from_current_tokio(options)
            .map_err(WorkerError::worker("the SDK runtime"))
    };
    // The workflow worker heartbeats to the server (its Workers page) every minute, the SDK's
    // default. Activity workers do not: a heartbeating worker stays registered with the client
    // after it stops, with a thread of its own, so each replaced one would leave both behind.
    let workflow_runtime = sdk_runtime(Some(Duration::from_secs(60)))?;
    let activity_runtime = sdk_runtime(None)?;
    let slots = settings.max_concurrent_activities.max(1);
    let openlineage = settings
        .openlineage
        .clone()
        .map(|(sink, namespace)| crate::openlineage::Emitter::start(sink, namespace));
    let deployment = || {
        settings.deployment.clone().map(|version| {
            // Pinned: a run finishes on the plugin set it started with, whatever is rolled out
            // meanwhile (the whole point of a version per plugin set). Activities a pinned
            // workflow schedules on its own task queue go to the same version.
            WorkerDeploymentOptions::new(version)
                .use_worker_versioning(true)
                .default_versioning_behavior(VersioningBehavior::Pinned)
                .build()
        })
    };
    let workflow_tuner = TunerHolder::builder()
        .workflow_task_slot_supplier(FixedSizeSlotSupplier::new(100))
        .activity_task_slot_supplier(FixedSizeSlotSupplier::new(1))
        .local_activity_task_slot_supplier(FixedSizeSlotSupplier::new(1))
        .nexus_task_slot_supplier(FixedSizeSlotSupplier::new(1))
        .build();
    let workflow_options = WorkerOptions::new(settings.task_queue.clone())
        .tuner(workflow_tuner)
        .max_cached_workflows(settings.max_cached_workflows)
        .maybe_deployment_options(deployment())
        .register_workflow::<MLTrainingWorkflow>()
        .map_err(WorkerError::worker("registering a workflow"))?
        .register_workflow::<RunPluginWorkflow>()
        .map_err(WorkerError::worker("registering a workflow"))?
        .register_workflow::<PipelineWorkflow>()
        .map_err(WorkerError::worker("registering a workflow"))?
        .build();
    let workflows = Worker::new(&workflow_runtime, client.clone(), workflow_options)
        .map_err(WorkerError::worker("creating the workflow worker"))?;

    let plugins = PluginActivities::new(runtime, registry, settings.max_input_bytes, openlineage)
        .step_cache_max_bytes(settings.step_cache_max_bytes)
        .run_files(settings.run_files.clone());
    let (started, grace_over) = (plugins.started(), plugins.shutdown_token());
    #[cfg(feature = "native-echo")]
    let served = if settings.native_echo {
        tracing::warn!(
            "--native-echo: plugin_activity is the benchmark's native echo, not plugins"
        );
        Served::NativeEcho
    } else {
        Served::Plugins(plugins)
    };
    #[cfg(not(feature = "native-echo"))]
    let served = Served::Plugins(plugins);
    // Activity workers cancel nothing when stopped (no SDK grace period): a replaced one lets
    // its activities finish, and the worker's own grace period is kept below instead.
    let activity_worker = || -> Result<Worker, WorkerError> {
        let tuner = TunerHolder::builder()
            .workflow_task_slot_supplier(FixedSizeSlotSupplier::new(2))
            .activity_task_slot_supplier(FixedSizeSlotSupplier::new(slots))
            .local_activity_task_slot_supplier(FixedSizeSlotSupplier::new(1))
            .nexus_task_slot_supplier(FixedSizeSlotSupplier::new(1))
            .build();
        let options = WorkerOptions::new(settings.task_queue.clone())
            .tuner(tuner)
            .maybe_deployment_options(deployment());
        let options = match served.clone() {
            Served::Plugins(plugins) => options.register_activities(plugins),
            #[cfg(feature = "native-echo")]
            Served::NativeEcho => {
                options.register_activities(super::native_echo::NativeEchoActivity)
            }
        };
        Worker::new(&activity_runtime, client.clone(), options.build())
            .map_err(WorkerError::worker("creating an activity worker"))
    };

    let mut workflows = Running::start(workflows);
    let mut activities = Running::start(activity_worker()?);
    match &settings.deployment {
        Some(v) => tracing::info!(
            task_queue = %settings.task_queue,
            deployment = %v.deployment_name,
            build_id = %v.build_id,
            "worker polling as deployment version {}.{}", v.deployment_name, v.build_id
        ),
        None => tracing::info!(task_queue = %settings.task_queue, "worker polling"),
    }
    let per_worker = if polls_complete_on_shutdown(&client).await {
        settings.activities_per_worker.max(1)
    } else {
        tracing::warn!(
            "the Temporal server cuts a stopping worker's polls (it does not offer \
             workerPollCompleteOnShutdown; set frontend.enableCancelWorkerPollsOnShutdown=true in \
             its dynamic config): the activity worker is not replaced, so the SDK's memory per \
             activity (about 300 bytes) grows until the worker restarts"
        );
        u64::MAX
    };
    let mut generation = 0u64;
    // Activities started before the current activity worker began.
    let mut since = 0u64;
    let mut retiring = FuturesUnordered::new();
    let mut check = tokio::time::interval(Duration::from_secs(1));
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            r = &mut workflows.run => {
                (activities.stop)();
                return r.map_err(WorkerError::worker("running the workflow worker"));
            }
            r = &mut activities.run => {
                (workflows.stop)();
                return r.map_err(WorkerError::worker("running the activity worker"));
            }
            Some((retired, r)) = retiring.next() => match r {
                Ok(()) => tracing::info!(generation = retired, "replaced activity worker finished its last activity"),
                Err(e) => tracing::warn!(generation = retired, "replaced activity worker: {e}"),
            },
            _ = check.tick() => {
                let now = started.load(Ordering::Relaxed);
                if now - since < per_worker {
                    continue;
                }
                since = now;
                // Stopping unregisters the old worker from the client, which refuses two
                // workers of one task queue and build; its successor polls a moment later.
                (activities.stop)();
                let old = std::mem::replace(&mut activities, Running::start(activity_worker()?));
                let retired = generation;
                retiring.push(async move { (retired, old.run.await) });
                generation += 1;
                settings.replaced.store(generation, Ordering::Relaxed);
                tracing::info!(
                    generation,
                    after = per_worker,
                    "activity worker replaced (the SDK keeps memory per activity a worker has run); \
                     the previous one finishes its activities"
                );
            }
        }
    }

    tracing::info!("shutdown requested; finishing in-flight tasks");
    (workflows.stop)();
    (activities.stop)();
    if let Some(grace) = settings.graceful_shutdown {
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            grace_over.cancel();
        });
    }
    let all_retired = async {
        while let Some((retired, r)) = retiring.next().await {
            if let Err(e) = r {
                tracing::warn!(generation = retired, "replaced activity worker: {e}");
            }
        }
    };
    let (w, a, ()) = tokio::join!(workflows.run, activities.run, all_retired);
    w.map_err(WorkerError::worker("running the workflow worker"))?;
    a.map_err(WorkerError::worker("running the activity worker"))
}
