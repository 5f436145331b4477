//! OpenLineage run events for every plugin invocation: START when it begins, COMPLETE (with
//! the files it read and wrote as input and output datasets, each versioned by its SHA-256) or
//! FAIL (with the error) when it ends, to a JSON-lines file or an HTTP endpoint (Marquez and
//! other consumers take `POST /api/v1/lineage`).
//!
//! Events go through a bounded queue to one background task, so a slow or absent endpoint
//! never delays a step: when the queue is full the event is dropped and counted in the log.
//! Lineage is a record of what happened; failing to deliver it never fails the step.

use std::{
    fs::OpenOptions,
    io::Write,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::lineage::FileDigest;
use mlx_pipeline::CacheSource;
use mlx_runtime::plugin::manifest::DirGrant;

/// Events waiting for the sender; past this, new events are dropped (and counted).
const QUEUE: usize = 1024;
/// How long one HTTP delivery may take before it is given up (and logged).
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
const PRODUCER: &str = concat!(
    "https://github.com/mlx-plugin-worker/mlx-worker/tree/v",
    env!("CARGO_PKG_VERSION")
);
const RUN_EVENT: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
const PARENT: &str =
    "https://openlineage.io/spec/facets/1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet";
const ENGINE: &str = "https://openlineage.io/spec/facets/1-1-1/ProcessingEngineRunFacet.json#/$defs/ProcessingEngineRunFacet";
const ERROR: &str = "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet";
const JOB_TYPE: &str =
    "https://openlineage.io/spec/facets/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet";
const VERSION: &str = "https://openlineage.io/spec/facets/1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet";
/// Our own run facet: what ran, by digest. Documented in docs/pipelines.md ("Lineage").
const MLX_FACET: &str =
    "https://github.com/mlx-plugin-worker/mlx-worker/blob/main/docs/pipelines.md#lineage";

/// Where events go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    /// Appended as one JSON object per line.
    File(PathBuf),
    /// POSTed one at a time to `<url>/api/v1/lineage` (plain HTTP).
    Http(url::Url),
}

impl std::str::FromStr for Sink {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let url = url::Url::parse(text)
            .map_err(|e| format!("{text:?} is not a file:// or http:// URL: {e}"))?;
        match url.scheme() {
            "file" => url
                .to_file_path()
                .map(Sink::File)
                .map_err(|()| format!("{text:?}: a file URL needs an absolute path")),
            "http" => Ok(Sink::Http(url)),
            other => Err(format!(
                "{text:?}: scheme {other} is not supported; use file:///path/events.jsonl or \
                 http://host:port (for https, a local forwarder)"
            )),
        }
    }
}

/// What one invocation was, for its events: the record lineage keeps of it.
pub type Step<'a> = crate::lineage::Invocation<'a>;

/// Files as datasets: the run's `/artifacts/...` and the plugin's grants, by host path; with
/// a shared artifact store, the run's files by their place in the store instead (a worker's
/// copy is private and gone after the step; the store's name is the same on every worker).
pub struct Files<'a> {
    pub run_dir: &'a Path,
    pub grants: &'a [DirGrant],
    /// `(namespace, name prefix)` of the run's files on the store, e.g.
    /// `("s3://bucket", "prefix/runs/RUN")`.
    pub store: Option<(String, String)>,
}

pub struct Emitter {
    queue: mpsc::Sender<Value>,
    namespace: String,
    dropped: AtomicU64,
}

impl Emitter {
    /// Starts the sending task on the current tokio runtime.
    pub fn start(sink: Sink, namespace: String) -> Arc<Self> {
        let (queue, events) = mpsc::channel(QUEUE);
        tokio::spawn(deliver(sink, events));
        Arc::new(Self {
            queue,
            namespace,
            dropped: AtomicU64::new(0),
        })
    }

    pub fn start_event(&self, step: &Step<'_>) {
        self.send(event(&self.namespace, "START", step, None, &[], &[], None));
    }

    pub fn complete(
        &self,
        step: &Step<'_>,
        files: &Files<'_>,
        reads: &[FileDigest],
        writes: &[FileDigest],
        cached_from: Option<&CacheSource>,
    ) {
        let inputs = datasets(reads, files);
        let outputs = datasets(writes, files);
        let ev = event(
            &self.namespace,
            "COMPLETE",
            step,
            None,
            &inputs,
            &outputs,
            cached_from,
        );
        self.send(ev);
    }

    pub fn fail(&self, step: &Step<'_>, message: &str) {
        self.send(event(
            &self.namespace,
            "FAIL",
            step,
            Some(message),
            &[],
            &[],
            None,
        ));
    }

    fn send(&self, event: Value) {
        if self.queue.try_send(event).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(
                dropped = n,
                "OpenLineage queue full or closed: event dropped"
            );
        }
    }
}

async fn deliver(sink: Sink, mut events: mpsc::Receiver<Value>) {
    while let Some(event) = events.recv().await {
        let result = match &sink {
            Sink::File(path) => append(path, &event),
            Sink::Http(url) => post(url, &event).await,
        };
        if let Err(e) = result {
            tracing::warn!("OpenLineage event not delivered: {e}");
        }
    }
}

fn append(path: &Path, event: &Value) -> Result<(), String> {
    let mut line = event.to_string();
    line.push('\n');
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(line.as_bytes()))
        .map_err(|e| format!("{}: {e}", path.display()))
}

async fn post(url: &url::Url, event: &Value) -> Result<(), String> {
    let path = format!("{}/api/v1/lineage", url.path().trim_end_matches('/'));
    let (status, _) = crate::http_client::request(
        hyper::Method::POST,
        url,
        &path,
        Some(event.to_string()),
        HTTP_TIMEOUT,
        64 * 1024,
    )
    .await?;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("{url}: HTTP {status}"))
    }
}

/// One run event. Pure, so its shape is unit-tested.
fn event(
    namespace: &str,
    kind: &str,
    step: &Step<'_>,
    error: Option<&str>,
    inputs: &[Value],
    outputs: &[Value],
    cached_from: Option<&CacheSource>,
) -> Value {
    let parent_run = match step.run_id.as_deref() {
        Some(id) if uuid::Uuid::parse_str(id).is_ok() => id.to_string(),
        _ => uuid_of(&[step.workflow_id]),
    };
    let mut run_facets = json!({
        "parent": {
            "_producer": PRODUCER, "_schemaURL": PARENT,
            "run": {"runId": parent_run},
            "job": {"namespace": namespace, "name": step.workflow_id},
        },
        "processing_engine": {
            "_producer": PRODUCER, "_schemaURL": ENGINE,
            "version": env!("CARGO_PKG_VERSION"), "name": "mlx-worker",
        },
        "mlx": {
            "_producer": PRODUCER, "_schemaURL": MLX_FACET,
            "plugin": step.plugin, "version": step.version, "digest": step.digest,
            "operation": step.operation, "step": step.step, "attempt": step.attempt,
            "input_sha256": crate::step_cache::hex(&Sha256::digest(step.input.to_string())),
            "cached_from": cached_from,
        },
    });
    if let Some(message) = error {
        run_facets["errorMessage"] = json!({
            "_producer": PRODUCER, "_schemaURL": ERROR,
            "message": message, "programmingLanguage": "WebAssembly",
        });
    }
    let attempt = step.attempt.to_string();
    json!({
        "eventType": kind,
        "eventTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "producer": PRODUCER,
        "schemaURL": RUN_EVENT,
        "run": {
            // One OpenLineage run per attempt: START and its COMPLETE or FAIL share it.
            "runId": uuid_of(&[step.workflow_id, &parent_run, step.step, &attempt]),
            "facets": run_facets,
        },
        "job": {
            "namespace": namespace,
            // A job is what recurs: the plugin operation, whichever pipeline runs it.
            "name": format!("{}.{}", step.plugin, step.operation),
            "facets": {"jobType": {
                "_producer": PRODUCER, "_schemaURL": JOB_TYPE,
                "processingType": "BATCH", "integration": "MLX", "jobType": "TASK",
            }},
        },
        "inputs": inputs,
        "outputs": outputs,
    })
}

/// The files as datasets: namespace `file`, name the absolute host path (so the file one
/// step writes and another reads is one dataset), version its SHA-256. The run's files on a
/// store: the store's namespace (`s3://bucket`, OpenLineage's convention) and the file's
/// logical place under the run (`prefix/runs/RUN/train.csv`).
fn datasets(files: &[FileDigest], where_: &Files<'_>) -> Vec<Value> {
    files
        .iter()
        .map(|f| {
            let (namespace, name) = match (&where_.store, f.path.strip_prefix("/artifacts/")) {
                (Some((namespace, prefix)), Some(rest)) => {
                    (namespace.clone(), format!("{prefix}/{rest}"))
                }
                _ => (
                    "file".to_string(),
                    host_path(&f.path, where_).display().to_string(),
                ),
            };
            json!({
                "namespace": namespace,
                "name": name,
                "facets": {"version": {
                    "_producer": PRODUCER, "_schemaURL": VERSION, "datasetVersion": f.sha256,
                }},
            })
        })
        .collect()
}

fn host_path(guest: &str, files: &Files<'_>) -> PathBuf {
    if let Some(rest) = guest.strip_prefix("/artifacts/") {
        return files.run_dir.join(rest);
    }
    for grant in files.grants {
        if let Ok(rest) = Path::new(guest).strip_prefix(&grant.guest) {
            return grant.host.join(rest);
        }
    }
    PathBuf::from(guest)
}

/// A stable UUID (version 8, RFC 9562's custom layout) from SHA-256 of the parts, so START
/// and COMPLETE of one attempt name the same run without any state between them.
fn uuid_of(parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Uuid::new_v8(bytes).to_string()
}

#[cfg(test)]
#[path = "openlineage_tests.rs"]
mod tests;
