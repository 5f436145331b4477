//! Connects to Temporal and runs the worker until the shutdown future resolves.

use std::{future::Future, path::PathBuf, sync::Arc, time::Duration};

use temporalio_client::{
    Client, ClientOptions, ClientTlsOptions, Connection, NamespacedClient, TlsOptions,
    envconfig::LoadClientConfigProfileOptions,
};
use temporalio_common::{
    telemetry::{TelemetryOptions, metrics::CoreMeter},
    worker::{
        VersioningBehavior, WorkerDeploymentOptions, WorkerDeploymentVersion, WorkerTaskTypes,
        build_id_from_current_exe,
    },
};
use temporalio_sdk::{
    Worker, WorkerOptions,
    runtime::RuntimeOptions,
    runtime::worker_tuner::{FixedSizeSlotSupplier, TunerHolder},
};
use temporalio_sdk_core::{
    CoreRuntime, RuntimeOptions as CoreRuntimeOptions, TunerHolder as CoreTunerHolder,
    WorkerConfig, WorkerVersioningStrategy, init_worker,
};
use url::Url;

use super::{
    MLTrainingWorkflow, PipelineWorkflow, PluginActivities, RunPluginWorkflow,
    dispatch::{ActivityWorker, Handler},
};
use mlx_runtime::{
    PluginHost, engine::BoxError, live::LiveCount, plugin::registry::PluginRegistry,
};

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
    /// Counts the activity attempts the worker holds a cancellation handle for (a gauge).
    pub activities_tracked: LiveCount,
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
            activities_tracked: LiveCount::default(),
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

/// Polls `settings.task_queue` for the workflows and `plugin_activity` until `shutdown`
/// resolves, then stops polling and lets in-flight tasks finish.
///
/// Two core workers share the queue: the SDK's runs the workflows, ours the activities
/// ([`super::dispatch`] says why). Both stop together.
pub async fn run(
    client: Client,
    settings: &WorkerSettings,
    runtime: Arc<PluginHost>,
    registry: Arc<PluginRegistry>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WorkerError> {
    let runtime_options = RuntimeOptions::builder()
        .telemetry_options(telemetry(settings))
        .build()
        .map_err(WorkerError::worker("runtime options"))?;
    let sdk_runtime = temporalio_sdk::Runtime::from_current_tokio(runtime_options)
        .map_err(WorkerError::worker("the SDK runtime"))?;
    let identity = worker_identity(&client);
    let deployment = deployment_options(settings);
    let tuner = TunerHolder::builder()
        .workflow_task_slot_supplier(FixedSizeSlotSupplier::new(100))
        .activity_task_slot_supplier(FixedSizeSlotSupplier::new(1))
        .local_activity_task_slot_supplier(FixedSizeSlotSupplier::new(1))
        .nexus_task_slot_supplier(FixedSizeSlotSupplier::new(1))
        .build();
    let options = WorkerOptions::new(settings.task_queue.clone())
        .tuner(tuner)
        .client_identity_override(identity.clone())
        .max_cached_workflows(settings.max_cached_workflows)
        .maybe_graceful_shutdown_period(settings.graceful_shutdown)
        .deployment_options(deployment.clone())
        .register_workflow::<MLTrainingWorkflow>()
        .map_err(WorkerError::worker("registering a workflow"))?
        .register_workflow::<RunPluginWorkflow>()
        .map_err(WorkerError::worker("registering a workflow"))?
        .register_workflow::<PipelineWorkflow>()
        .map_err(WorkerError::worker("registering a workflow"))?
        .build();
    let mut workflows = Worker::new(&sdk_runtime, client.clone(), options)
        .map_err(WorkerError::worker("creating the workflow worker"))?;

    let activities = activity_worker(&client, settings, identity, deployment)?;
    let handler = activity_handler(settings, runtime, registry);
    let stop = {
        let (workflows, activities) = (workflows.shutdown_handle(), activities.shutdown_handle());
        move || {
            workflows();
            activities();
        }
    };
    match &settings.deployment {
        Some(v) => tracing::info!(
            task_queue = %settings.task_queue,
            deployment = %v.deployment_name,
            build_id = %v.build_id,
            "worker polling as deployment version {}.{}", v.deployment_name, v.build_id
        ),
        None => tracing::info!(task_queue = %settings.task_queue, "worker polling"),
    }
    let run = async {
        // One half failing stops the other, so the process never serves only half the queue.
        let workflows = async {
            let r = workflows.run().await;
            stop();
            r.map_err(WorkerError::worker("running the workflows"))
        };
        let activities = async {
            let r = activities.run(handler).await;
            stop();
            r.map_err(WorkerError::worker("running the activities"))
        };
        let (w, a) = tokio::join!(workflows, activities);
        w.and(a)
    };
    tokio::pin!(run);
    tokio::select! {
        r = &mut run => return r,
        () = shutdown => {
            tracing::info!("shutdown requested; finishing in-flight tasks");
            stop();
        }
    }
    run.await
}

/// Both halves' telemetry: the SDK core's worker metrics go to the same meter.
fn telemetry(settings: &WorkerSettings) -> TelemetryOptions {
    TelemetryOptions::builder()
        .maybe_metrics(settings.metrics.clone())
        .build()
}

/// The SDK's rule for a worker's identity, made once so both halves report the same one.
fn worker_identity(client: &Client) -> String {
    let identity = client.identity();
    if !identity.is_empty() {
        return identity;
    }
    let mut name = [0u8; 256];
    // SAFETY: gethostname writes at most `len` bytes into the buffer it is given.
    let host = match unsafe { libc::gethostname(name.as_mut_ptr().cast(), name.len()) } {
        0 => {
            String::from_utf8_lossy(name.split(|&b| b == 0).next().unwrap_or_default()).into_owned()
        }
        _ => "localhost".to_owned(),
    };
    format!("{}@{host}", std::process::id())
}

fn deployment_options(settings: &WorkerSettings) -> WorkerDeploymentOptions {
    match settings.deployment.clone() {
        // Pinned: a run finishes on the plugin set it started with, whatever is rolled out
        // meanwhile (the whole point of a version per plugin set). Activities a pinned
        // workflow schedules on its own task queue go to the same version.
        Some(version) => WorkerDeploymentOptions::new(version)
            .use_worker_versioning(true)
            .default_versioning_behavior(VersioningBehavior::Pinned)
            .build(),
        // Unversioned, as the SDK's default is.
        None => WorkerDeploymentOptions::from_build_id(build_id_from_current_exe().to_owned()),
    }
}

/// An activity-only core worker with the settings' slots and grace period.
fn activity_worker(
    client: &Client,
    settings: &WorkerSettings,
    identity: String,
    deployment: WorkerDeploymentOptions,
) -> Result<ActivityWorker, WorkerError> {
    let slots = settings.max_concurrent_activities.max(1);
    let runtime_options = CoreRuntimeOptions::builder()
        .telemetry_options(telemetry(settings))
        .build()
        .map_err(WorkerError::worker("activity runtime options"))?;
    let core_runtime = CoreRuntime::new_assume_tokio(runtime_options)
        .map_err(WorkerError::worker("the activity runtime"))?;
    let config = WorkerConfig::builder()
        .namespace(client.namespace())
        .task_queue(settings.task_queue.clone())
        .client_identity_override(identity)
        .tuner(Arc::new(CoreTunerHolder::fixed_size(1, slots, 1, 1)))
        .task_types(WorkerTaskTypes::activity_only())
        .maybe_graceful_shutdown_period(settings.graceful_shutdown)
        .versioning_strategy(WorkerVersioningStrategy::WorkerDeploymentBased(deployment))
        .build()
        .map_err(WorkerError::worker("the activity worker's options"))?;
    // The worker copies what it needs from the runtime (meter, heartbeat interval); dropping
    // the runtime after this only clears a per-thread trace subscriber, which is never set.
    let core = init_worker(&core_runtime, config, client.connection().clone())
        .map_err(WorkerError::worker("creating the activity worker"))?;
    Ok(ActivityWorker::new(
        core,
        settings.activities_tracked.clone(),
    ))
}

fn activity_handler(
    settings: &WorkerSettings,
    runtime: Arc<PluginHost>,
    registry: Arc<PluginRegistry>,
) -> Arc<dyn Handler> {
    #[cfg(feature = "native-echo")]
    if settings.native_echo {
        tracing::warn!(
            "--native-echo: plugin_activity is the benchmark's native echo, not plugins"
        );
        return Arc::new(super::native_echo::NativeEchoActivity);
    }
    let openlineage = settings
        .openlineage
        .clone()
        .map(|(sink, namespace)| crate::openlineage::Emitter::start(sink, namespace));
    Arc::new(
        PluginActivities::new(runtime, registry, settings.max_input_bytes, openlineage)
            .step_cache_max_bytes(settings.step_cache_max_bytes)
            .run_files(settings.run_files.clone()),
    )
}
