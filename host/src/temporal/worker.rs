//! Connects to Temporal and runs the worker until the shutdown future resolves.

use std::{future::Future, sync::Arc};

use temporalio_client::{
    Client, ClientOptions, Connection, envconfig::LoadClientConfigProfileOptions,
};
use temporalio_sdk::{
    Worker, WorkerOptions,
    runtime::worker_tuner::{FixedSizeSlotSupplier, TunerHolder},
};
use url::Url;

use super::{MLTrainingWorkflow, PluginActivities, RunPluginWorkflow};
use crate::{registry::PluginRegistry, runtime::Runtime};

/// Where and how to connect. Unset fields follow Temporal's own conventions: the
/// `TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`, `TEMPORAL_API_KEY`, `TEMPORAL_TLS*` variables and
/// the `temporal.toml` profile file the official SDKs read; default `localhost:7233`, `default`.
#[derive(Debug, Clone, Default)]
pub struct ConnectionSettings {
    pub address: Option<String>,
    pub namespace: Option<String>,
}

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub task_queue: String,
    /// Activities run at once; each holds one sandbox. Default 16.
    pub max_concurrent_activities: usize,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    #[error("temporal connection settings: {0}")]
    Config(String),
    #[error("cannot connect to Temporal at {address}: {message}")]
    Connect { address: String, message: String },
    #[error("temporal worker: {0}")]
    Worker(String),
}

/// Builds a connected client.
pub async fn connect(settings: &ConnectionSettings) -> Result<Client, WorkerError> {
    let (mut conn, mut client_opts) =
        ClientOptions::load_from_config(LoadClientConfigProfileOptions::default())
            .map_err(|e| WorkerError::Config(e.to_string()))?;
    if let Some(address) = &settings.address {
        conn.target = parse_address(address)?;
    }
    if let Some(namespace) = &settings.namespace {
        client_opts = ClientOptions::new(namespace.clone()).build();
    }
    let address = conn.target.to_string();
    let connection = Connection::connect(conn)
        .await
        .map_err(|e| WorkerError::Connect {
            address: address.clone(),
            message: e.to_string(),
        })?;
    Client::new(connection, client_opts).map_err(|e| WorkerError::Connect {
        address,
        message: e.to_string(),
    })
}

/// Accepts `host:port` like the other SDKs and the CLI do; the Rust client wants a URL.
fn parse_address(address: &str) -> Result<Url, WorkerError> {
    let with_scheme = if address.contains("://") {
        address.to_string()
    } else {
        format!("http://{address}")
    };
    Url::parse(&with_scheme).map_err(|e| {
        WorkerError::Config(format!(
            "address {address:?} is not host:port or a URL: {e}"
        ))
    })
}

/// Polls `settings.task_queue` for the workflows and `plugin_activity` until `shutdown`
/// resolves, then stops polling and lets in-flight tasks finish.
pub async fn run(
    client: Client,
    settings: &WorkerSettings,
    runtime: Arc<Runtime>,
    registry: Arc<PluginRegistry>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WorkerError> {
    let sdk_runtime = temporalio_sdk::Runtime::from_current_tokio(Default::default())
        .map_err(|e| WorkerError::Worker(e.to_string()))?;
    let slots = settings.max_concurrent_activities.max(1);
    let tuner = TunerHolder::builder()
        .workflow_task_slot_supplier(FixedSizeSlotSupplier::new(100))
        .activity_task_slot_supplier(FixedSizeSlotSupplier::new(slots))
        .local_activity_task_slot_supplier(FixedSizeSlotSupplier::new(slots))
        .nexus_task_slot_supplier(FixedSizeSlotSupplier::new(1))
        .build();
    let options = WorkerOptions::new(settings.task_queue.clone())
        .tuner(tuner)
        .register_workflow::<MLTrainingWorkflow>()
        .map_err(|e| WorkerError::Worker(e.to_string()))?
        .register_workflow::<RunPluginWorkflow>()
        .map_err(|e| WorkerError::Worker(e.to_string()))?
        .register_activities(PluginActivities::new(runtime, registry))
        .build();
    let mut worker = Worker::new(&sdk_runtime, client, options)
        .map_err(|e| WorkerError::Worker(e.to_string()))?;
    let stop = worker.shutdown_handle();
    tracing::info!(task_queue = %settings.task_queue, "worker polling");
    let run = worker.run();
    tokio::pin!(run);
    tokio::select! {
        r = &mut run => return r.map_err(|e| WorkerError::Worker(e.to_string())),
        () = shutdown => {
            tracing::info!("shutdown requested; finishing in-flight tasks");
            stop();
        }
    }
    run.await.map_err(|e| WorkerError::Worker(e.to_string()))
}
