//! `plugin_activity`: decode the request, find the plugin, run it in a fresh sandbox while
//! forwarding heartbeats and cancellation, and classify whatever happens for Temporal.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, OnceLock},
    time::{Duration, Instant, SystemTime},
};

use futures::future::BoxFuture;
use serde_json::{Value, json};
use temporalio_common::{ActivityError, data_converters::RawValue, error::ApplicationFailure};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{
    dispatch::{Activity, Handler},
    payload::{
        decode_heartbeat_details, decode_request, json_text_payload, mark_cached, result_payload,
    },
};
use crate::{lineage, openlineage, run_files::RunFiles, step_cache::StepCache};
use mlx_pipeline::CacheSource;
use mlx_runtime::{
    PluginHost,
    contract::{InvocationContext, JsonText, PluginRequest},
    failure::{Failure, InvocationError},
    plugin::{loader::LoadedPlugin, registry::PluginRegistry},
    sandbox::{capabilities::activity::ActivitySignals, workflow_dir_name},
};

/// Largest result payload sent to Temporal. Its default blob limit is 2 MiB (gRPC's message
/// limit 4 MiB): a completion over it is refused, and the activity would hang until its
/// start-to-close timeout. The margin leaves room for metadata.
pub const MAX_RESULT_BYTES: usize = (2 << 20) - (64 << 10);
/// Longest failure message sent to Temporal (and logged); the rest is cut, saying so.
pub const MAX_FAILURE_MESSAGE: usize = 16 << 10;
/// Largest failure details (JSON bytes) sent to Temporal; larger details are replaced by a
/// note of their size.
pub const MAX_FAILURE_DETAILS: usize = 256 << 10;

/// Shortest interval between heartbeats the host sends on a plugin's behalf.
const MIN_AUTO_HEARTBEAT: Duration = Duration::from_millis(200);

pub struct PluginActivities {
    runtime: Arc<PluginHost>,
    registry: Arc<PluginRegistry>,
    max_input_bytes: usize,
    openlineage: Option<Arc<openlineage::Emitter>>,
    step_cache_max_bytes: u64,
    /// Wakes the worker's eviction task, started by the first store.
    eviction: OnceLock<Arc<Notify>>,
    /// The shared artifact store, when runs' files live there rather than on this disk.
    run_files: Option<Arc<RunFiles>>,
}

/// Shortest time between two eviction passes of one worker: a pass lists the whole cache.
const EVICTION_INTERVAL: Duration = Duration::from_secs(10);

impl PluginActivities {
    pub fn new(
        runtime: Arc<PluginHost>,
        registry: Arc<PluginRegistry>,
        max_input_bytes: usize,
        openlineage: Option<Arc<openlineage::Emitter>>,
    ) -> Self {
        Self {
            runtime,
            registry,
            max_input_bytes,
            openlineage,
            step_cache_max_bytes: super::worker::DEFAULT_STEP_CACHE_MAX_BYTES,
            eviction: OnceLock::new(),
            run_files: None,
        }
    }

    /// Runs' files from the shared store: each invocation on a private copy, committed when
    /// it succeeds.
    pub fn run_files(mut self, files: Option<Arc<RunFiles>>) -> Self {
        self.run_files = files;
        self
    }

    /// Where `/artifacts` is for an invocation that has no private copy.
    fn local_run_dir(&self, invocation: &InvocationContext) -> Option<PathBuf> {
        self.runtime.run_dir(&invocation.workflow_id)
    }

    /// Keeps the step cache within `bytes`.
    pub fn step_cache_max_bytes(mut self, bytes: u64) -> Self {
        self.step_cache_max_bytes = bytes;
        self
    }

    /// After a store: asks for an eviction pass, run off the activity's path by one task per
    /// worker that coalesces requests and rests [`EVICTION_INTERVAL`] between passes (stores
    /// come in bursts, and a pass lists every entry).
    fn request_eviction(&self, cache: &StepCache) {
        let max = self.step_cache_max_bytes;
        let wake = self.eviction.get_or_init(|| {
            let wake = Arc::new(Notify::new());
            let (woken, cache) = (wake.clone(), cache.clone());
            tokio::spawn(async move {
                loop {
                    woken.notified().await;
                    let pass = cache.clone();
                    match tokio::task::spawn_blocking(move || pass.evict(max)).await {
                        Ok(Ok(freed)) if freed.entries + freed.blobs > 0 => tracing::info!(
                            entries = freed.entries,
                            blobs = freed.blobs,
                            bytes = freed.bytes,
                            before = freed.before,
                            "step cache over its size: least recently used entries evicted"
                        ),
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => tracing::warn!("step cache eviction failed: {e}"),
                        Err(e) => tracing::warn!("step cache eviction stopped: {e}"),
                    }
                    tokio::time::sleep(EVICTION_INTERVAL).await;
                }
            });
            wake
        });
        wake.notify_one();
    }
}

impl PluginActivities {
    /// Writes the step's provenance record (lineage) and sends its OpenLineage COMPLETE
    /// event. Lineage is a record of what happened: failing to keep it is logged, never the
    /// step's failure.
    #[allow(clippy::too_many_arguments)]
    fn record_lineage(
        &self,
        plugin: &LoadedPlugin,
        request: &PluginRequest,
        invocation: &InvocationContext,
        run_id: Option<String>,
        output: &serde_json::Value,
        cached_from: Option<CacheSource>,
        run_dir: Option<&Path>,
    ) {
        let call = invocation_record(plugin, request, invocation, run_id);
        // Without an artifacts directory there are no files to record, only the event.
        let (run_dir, record) = match (&self.runtime.settings().artifacts_dir, run_dir) {
            (Some(artifacts), Some(run_dir)) => {
                let name = workflow_dir_name(&invocation.workflow_id);
                let record = lineage::record(
                    artifacts,
                    &name,
                    run_dir,
                    &call,
                    output,
                    cached_from.clone(),
                )
                .unwrap_or_else(|e| {
                    tracing::warn!("recording lineage failed: {e}");
                    None
                });
                (run_dir.to_path_buf(), record)
            }
            _ => (PathBuf::from("/artifacts"), None),
        };
        if let Some(emitter) = &self.openlineage {
            let files = openlineage::Files {
                run_dir: &run_dir,
                grants: &plugin.manifest.dirs,
                store: self
                    .run_files
                    .as_ref()
                    .map(|f| f.dataset_root(&invocation.workflow_id)),
            };
            let (reads, writes) = record.map(|r| (r.reads, r.writes)).unwrap_or_default();
            emitter.complete(&call, &files, &reads, &writes, cached_from.as_ref());
        }
    }

    /// An OpenLineage START (no error) or FAIL event, when the worker sends them.
    fn lineage_event(
        &self,
        plugin: &LoadedPlugin,
        request: &PluginRequest,
        invocation: &InvocationContext,
        ctx: &Activity,
        error: Option<&str>,
    ) {
        let Some(emitter) = &self.openlineage else {
            return;
        };
        let run_id = ctx.info().workflow_run_id.clone();
        let step = invocation_record(plugin, request, invocation, run_id);
        match error {
            None => emitter.start_event(&step),
            Some(message) => emitter.fail(&step, message),
        }
    }

    /// The step cache and this invocation's key, when the worker has an artifacts directory
    /// (the cache lives beside the runs' directories) and the key can be made.
    fn cache_slot(
        &self,
        plugin: &LoadedPlugin,
        request: &PluginRequest,
        run_dir: Option<&Path>,
    ) -> Option<(StepCache, String, PathBuf)> {
        let (Some(artifacts), Some(run_dir)) = (&self.runtime.settings().artifacts_dir, run_dir)
        else {
            tracing::warn!("cache asked for, but the worker has no artifacts directory");
            return None;
        };
        let cache = StepCache::new(artifacts);
        match cache.key(plugin, &request.operation, &request.input, run_dir) {
            Ok(key) => Some((cache, key, run_dir.to_path_buf())),
            Err(e) => {
                tracing::warn!("step not cached: {e}");
                None
            }
        }
    }
}

impl PluginActivities {
    /// A failure of the worker's own part of an invocation (the run's files), logged as a
    /// plugin failure would be.
    fn failed_outside_the_plugin(
        &self,
        err: &InvocationError,
        invocation: &InvocationContext,
    ) -> ActivityError {
        let failure = err.failure();
        tracing::warn!(
            failure = %failure.type_name,
            retryable = failure.retryable,
            "invocation failed: {}",
            cut(&failure.message)
        );
        activity_error(err, failure, invocation.attempt)
    }
}

/// What an invocation was, as lineage records it and OpenLineage events describe it.
fn invocation_record<'a>(
    plugin: &'a LoadedPlugin,
    request: &'a PluginRequest,
    invocation: &'a InvocationContext,
    run_id: Option<String>,
) -> lineage::Invocation<'a> {
    lineage::Invocation {
        plugin: &plugin.info.name,
        version: &plugin.info.version,
        digest: &plugin.digest,
        grants: &plugin.manifest.dirs,
        operation: &request.operation,
        input: &request.input,
        workflow_id: &invocation.workflow_id,
        run_id,
        step: &invocation.activity_id,
        attempt: invocation.attempt,
    }
}

impl Handler for PluginActivities {
    fn run(
        self: Arc<Self>,
        activity: Activity,
        input: RawValue,
    ) -> BoxFuture<'static, Result<RawValue, ActivityError>> {
        Box::pin(self.plugin_activity(activity, input))
    }
}

impl PluginActivities {
    /// Takes the raw payload so that a malformed request fails non-retryably with a message
    /// that says what to send, instead of a retryable decoding error.
    async fn plugin_activity(
        self: Arc<Self>,
        ctx: Activity,
        input: RawValue,
    ) -> Result<RawValue, ActivityError> {
        let info = ctx.info();
        let invocation = InvocationContext {
            // Standalone activities (started by `temporal activity start`) have no workflow.
            workflow_id: info
                .workflow_id
                .clone()
                .filter(|id| !id.is_empty())
                .unwrap_or_else(|| format!("standalone-{}", info.activity_id)),
            activity_id: info.activity_id.clone(),
            attempt: info.attempt,
            last_heartbeat_details: decode_heartbeat_details(ctx.heartbeat_details()),
        };
        let request = decode_request(&input, self.max_input_bytes).map_err(|e| {
            tracing::warn!(
                workflow_id = %invocation.workflow_id,
                activity_id = %invocation.activity_id,
                failure = "InvalidRequest",
                "{e}"
            );
            to_activity_error(&e, invocation.attempt)
        })?;
        let span = tracing::info_span!(
            "invocation",
            plugin = %request.plugin,
            operation = %request.operation,
            workflow_id = %invocation.workflow_id,
            activity_id = %invocation.activity_id,
            attempt = invocation.attempt,
            version = tracing::field::Empty,
            digest = tracing::field::Empty,
            outcome = tracing::field::Empty,
            failure_type = tracing::field::Empty,
        );
        async move {
            let Some(plugin) = self.registry.get(&request.plugin) else {
                let err = InvocationError::UnknownPlugin {
                    name: request.plugin.clone(),
                    available: mlx_runtime::contract::listing(&self.registry.names()),
                };
                tracing::warn!(failure = "UnknownPlugin", "{}", cut(&err.to_string()));
                return Err(to_activity_error(&err, invocation.attempt));
            };
            let span = tracing::Span::current();
            span.record("version", plugin.info.version.as_str());
            span.record("digest", plugin.digest.as_str());
            let run_id = ctx.info().workflow_run_id.clone();
            // With a shared store, a private copy of the run's files; dropped (removed) when
            // this invocation ends, however it ends.
            let copy = match &self.run_files {
                Some(files) => Some(
                    heartbeating(
                        &ctx,
                        &invocation.last_heartbeat_details,
                        files.checkout(&invocation, run_id.as_deref()),
                    )
                    .await
                    .map_err(|e| self.failed_outside_the_plugin(&e, &invocation))?,
                ),
                None => None,
            };
            let run_dir = match &copy {
                Some(copy) => Some(copy.dir.clone()),
                None => self.local_run_dir(&invocation),
            };
            let cache = request
                .cache
                .then(|| self.cache_slot(&plugin, &request, run_dir.as_deref()))
                .flatten();
            if let Some((cache, key, cache_dir)) = &cache {
                match cache.get(key, cache_dir) {
                    Ok(Some(hit)) => {
                        // The restored files reach other workers as the step's own would.
                        if let (Some(files), Some(copy)) = (&self.run_files, &copy) {
                            let last = &invocation.last_heartbeat_details;
                            heartbeating(&ctx, last, files.commit(copy))
                                .await
                                .map_err(|e| self.failed_outside_the_plugin(&e, &invocation))?;
                        }
                        self.lineage_event(&plugin, &request, &invocation, &ctx, None);
                        span.record("outcome", "cached");
                        tracing::info!(
                            from_workflow = %hit.from.workflow_id,
                            from_step = %hit.from.step,
                            "served from the step cache"
                        );
                        let mut raw = result_payload(
                            &hit.output,
                            &plugin.info.name,
                            &plugin.info.version,
                            &plugin.digest,
                            invocation.attempt,
                        );
                        self.record_lineage(
                            &plugin,
                            &request,
                            &invocation,
                            ctx.info().workflow_run_id.clone(),
                            &hit.output,
                            Some(hit.from.clone()),
                            run_dir.as_deref(),
                        );
                        mark_cached(&mut raw, &hit.from);
                        return Ok(raw);
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!("step cache lookup failed; running the step: {e}"),
                }
            }

            self.lineage_event(&plugin, &request, &invocation, &ctx, None);
            let cancel = CancellationToken::new();
            let (signals, mut details) = ActivitySignals::new(cancel.clone());
            let deadline = ctx.info().deadline.map(instant_from_system_time);
            let run = self.runtime.invoke_in(
                run_dir.clone(),
                &plugin,
                &request.operation,
                &request.input,
                &invocation,
                signals,
                deadline,
            );
            // Until the plugin records its own, keep the previous attempt's checkpoint alive: an
            // attempt that dies early must not erase it.
            let mut recorded = invocation.last_heartbeat_details.clone();
            let bridge = heartbeat_bridge(&ctx, &mut details, cancel, &mut recorded);
            let result = tokio::select! {
                r = run => r,
                never = bridge => match never {},
            };
            // A guest may heartbeat and return within one poll: its last checkpoint must still
            // reach Temporal (core attaches it to a failure, for the next attempt).
            let last = details.borrow().clone();
            if last.is_some() && last != recorded {
                record(&ctx, &last);
            }
            // Encoded once; too large for Temporal to accept fails as the plugin's output, not
            // a hang.
            let result = result.and_then(|done| {
                let raw = result_payload(
                    &done.output,
                    &plugin.info.name,
                    &plugin.info.version,
                    &plugin.digest,
                    invocation.attempt,
                );
                let size = raw.payloads.iter().map(|p| p.data.len()).sum();
                if size > MAX_RESULT_BYTES {
                    return Err(InvocationError::OutputTooLarge {
                        size,
                        limit: MAX_RESULT_BYTES,
                    });
                }
                Ok((done, raw))
            });
            // Only a success is committed: a failed attempt's files stay on this worker, so
            // its retry, here or elsewhere, starts from the same inputs.
            let result = match (result, &self.run_files, &copy) {
                (Ok(done), Some(files), Some(copy)) => match heartbeating(
                    &ctx,
                    &last.clone().or_else(|| recorded.clone()),
                    files.commit(copy),
                )
                .await
                {
                    Ok(commit) => {
                        tracing::info!(
                            written = commit.written.len(),
                            removed = commit.removed.len(),
                            uploaded_bytes = commit.uploaded_bytes,
                            "step's files committed to the artifact store"
                        );
                        Ok(done)
                    }
                    Err(e) => Err(e),
                },
                (result, ..) => result,
            };
            match result {
                Ok((done, raw)) => {
                    span.record("outcome", "ok");
                    tracing::info!(
                        duration_ms = done.duration.as_millis() as u64,
                        peak_memory_bytes = done.peak_memory_bytes,
                        "invocation succeeded"
                    );
                    if let Some((cache, key, run_dir)) = &cache {
                        let from = CacheSource {
                            workflow_id: invocation.workflow_id.clone(),
                            run_id: ctx.info().workflow_run_id.clone(),
                            step: invocation.activity_id.clone(),
                        };
                        // The step succeeded: a cache that cannot keep it costs a rerun later,
                        // not this result.
                        match cache.put(key, &done.output, from, run_dir) {
                            Ok(()) => self.request_eviction(cache),
                            Err(e) => tracing::warn!("storing in the step cache failed: {e}"),
                        }
                    }
                    self.record_lineage(
                        &plugin,
                        &request,
                        &invocation,
                        ctx.info().workflow_run_id.clone(),
                        &done.output,
                        None,
                        run_dir.as_deref(),
                    );
                    Ok(raw)
                }
                Err(err) => {
                    let failure = err.failure();
                    span.record("outcome", "failed")
                        .record("failure_type", failure.type_name.as_str());
                    tracing::warn!(
                        failure = %failure.type_name,
                        retryable = failure.retryable,
                        "invocation failed: {}",
                        cut(&failure.message)
                    );
                    let message = format!("{}: {}", failure.type_name, cut(&failure.message));
                    self.lineage_event(&plugin, &request, &invocation, &ctx, Some(&message));
                    Err(activity_error(&err, failure, invocation.attempt))
                }
            }
        }
        .instrument(span)
        .await
    }
}

/// Forwards the guest's heartbeats to Temporal and Temporal's cancellation to the guest.
/// While a heartbeat timeout is set it also heartbeats on the plugin's behalf, re-sending the
/// latest details: cancellation only arrives on heartbeat responses, so without this a
/// CPU-bound plugin that never heartbeats could not be cancelled. Never returns.
async fn heartbeat_bridge(
    ctx: &Activity,
    details: &mut watch::Receiver<Option<JsonText>>,
    cancel: CancellationToken,
    latest: &mut Option<JsonText>,
) -> std::convert::Infallible {
    let interval = heartbeat_interval(ctx);
    let mut details_open = true;
    loop {
        let tick = async {
            match interval {
                Some(i) => tokio::time::sleep(i).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = ctx.cancelled(), if !cancel.is_cancelled() => {
                tracing::info!("cancellation requested; telling the plugin");
                cancel.cancel();
            }
            changed = details.changed(), if details_open => {
                if changed.is_err() {
                    details_open = false;
                    continue;
                }
                *latest = details.borrow_and_update().clone();
                record(ctx, latest);
            }
            _ = tick => record(ctx, latest),
        }
    }
}

/// How often the host heartbeats on an invocation's behalf: a third of the heartbeat timeout,
/// if one is set.
fn heartbeat_interval(ctx: &Activity) -> Option<Duration> {
    ctx.info()
        .heartbeat_timeout
        .filter(|t| !t.is_zero())
        .map(|t| (t / 3).max(MIN_AUTO_HEARTBEAT))
}

/// Runs the worker's own part of an invocation (fetching or committing the run's files)
/// while heartbeating `details`: a long transfer must not look like a dead worker, and the
/// checkpoint must stay the plugin's last.
///
/// Temporal's cancellation stops it, and so the attempt, which then commits nothing. That
/// includes an attempt Temporal timed out and retried (its next heartbeat is refused, which
/// core reports as a cancellation): still committing, it would replace its successor's files
/// with its own, and a step's files would no longer be those of the result it recorded.
/// Dropping a transfer is safe: a commit takes effect only with its manifest, written last,
/// and the local cache takes files by renaming whole ones into place.
async fn heartbeating<T>(
    ctx: &Activity,
    details: &Option<JsonText>,
    work: impl Future<Output = Result<T, InvocationError>>,
) -> Result<T, InvocationError> {
    let interval = heartbeat_interval(ctx);
    tokio::pin!(work);
    loop {
        let tick = async {
            match interval {
                Some(i) => tokio::time::sleep(i).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            // Done and cancelled at once: what is done stands.
            biased;
            out = &mut work => return out,
            () = ctx.cancelled() => {
                tracing::info!("cancelled while moving the run's files; nothing committed");
                return Err(InvocationError::Cancelled {
                    acknowledged_by_plugin: false,
                });
            }
            () = tick => record(ctx, details),
        }
    }
}

fn record(ctx: &Activity, details: &Option<JsonText>) {
    ctx.record_heartbeat(json_text_payload(details.as_ref()));
}

fn instant_from_system_time(at: SystemTime) -> Instant {
    let now = Instant::now();
    match at.duration_since(SystemTime::now()) {
        Ok(left) => now + left,
        Err(_) => now,
    }
}

pub(super) fn to_activity_error(err: &InvocationError, attempt: u32) -> ActivityError {
    activity_error(err, err.failure(), attempt)
}

/// `text` within [`MAX_FAILURE_MESSAGE`] bytes (on a character boundary), saying how much was cut.
fn cut(text: &str) -> std::borrow::Cow<'_, str> {
    if text.len() <= MAX_FAILURE_MESSAGE {
        return text.into();
    }
    let end = text.floor_char_boundary(MAX_FAILURE_MESSAGE);
    format!("{}… ({} bytes cut)", &text[..end], text.len() - end).into()
}

/// The failure's details within [`MAX_FAILURE_DETAILS`], with the attempt that failed: a
/// pipeline's status shows "failed after N attempts" even when no retry followed.
fn details_with_attempt(details: Option<Value>, attempt: u32) -> Value {
    let details = details.map(|d| {
        let size = d.to_string().len();
        if size > MAX_FAILURE_DETAILS {
            json!({"truncated": true, "bytes": size, "limit": MAX_FAILURE_DETAILS})
        } else {
            d
        }
    });
    match details {
        Some(Value::Object(mut map)) => {
            map.insert("attempt".into(), attempt.into());
            Value::Object(map)
        }
        Some(other) => json!({"attempt": attempt, "details": other}),
        None => json!({"attempt": attempt}),
    }
}

/// `failure` is `err.failure()`, passed in where the caller already has it.
fn activity_error(err: &InvocationError, failure: Failure, attempt: u32) -> ActivityError {
    if let InvocationError::Cancelled {
        acknowledged_by_plugin,
    } = err
    {
        return ActivityError::cancelled_with_details(json!({
            "acknowledged_by_plugin": acknowledged_by_plugin,
        }));
    }
    let app = ApplicationFailure::builder(cut(&failure.message).into_owned())
        .type_name(failure.type_name)
        .non_retryable(!failure.retryable)
        .details(details_with_attempt(failure.details, attempt))
        .build();
    ActivityError::application(app)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_details_carry_the_attempt_and_stay_bounded() {
        assert_eq!(details_with_attempt(None, 3), json!({"attempt": 3}));
        assert_eq!(
            details_with_attempt(Some(json!({"kind": "permanent"})), 2),
            json!({"kind": "permanent", "attempt": 2})
        );
        assert_eq!(
            details_with_attempt(Some(json!([1])), 1),
            json!({"attempt": 1, "details": [1]})
        );
        let huge = json!({"blob": "b".repeat(MAX_FAILURE_DETAILS)});
        let bounded = details_with_attempt(Some(huge), 1);
        assert_eq!(bounded["truncated"], true);
        assert!(bounded.to_string().len() < 200);
    }

    #[test]
    fn a_message_is_cut_on_a_character_boundary_saying_how_much() {
        assert_eq!(cut("short"), "short");
        let long = "é".repeat(MAX_FAILURE_MESSAGE);
        let cut = cut(&long);
        assert!(cut.len() < MAX_FAILURE_MESSAGE + 32);
        assert!(
            cut.ends_with(&format!("({} bytes cut)", MAX_FAILURE_MESSAGE)),
            "{}",
            &cut[cut.len() - 40..]
        );
    }
}
