//! Activity tasks, polled from a core worker of our own and each run in a task, instead of
//! through the SDK's `Worker`.
//!
//! Why: temporalio-sdk 1.1.1 keeps a cancellation token for every activity it has ever started
//! (`ActivityHalf::task_tokens_to_cancels` is never pruned), about 300 bytes each: a daemon
//! running 100 activities a second would grow by 2.5 GiB a day (issue 18, BENCHMARKS.md
//! section 7). Here an attempt's entry lives exactly as long as the attempt. The SDK still runs
//! the workflows, on a workflow-only core worker; this one polls the same task queue for
//! activities only, so the two never compete for a task.

use std::{
    collections::HashMap,
    panic::AssertUnwindSafe,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use futures::{FutureExt, future::BoxFuture};
use mlx_runtime::live::{Live, LiveCount};
use temporalio_common::{
    ActivityError,
    data_converters::{
        ActivitySerializationContext, DataConverter, RawValue, SerializationContextData,
    },
    protos::{
        coresdk::{
            ActivityHeartbeat, ActivityTaskCompletion,
            activity_result::ActivityExecutionResult,
            activity_task::{ActivityCancelReason, ActivityTask, Start, activity_task},
        },
        temporal::api::{common::v1::Payload, failure::v1::Failure},
        utilities::TryIntoOrNone,
    },
};
use temporalio_sdk::{ApplicationFailure, OutgoingActivityError, OutgoingError};
use temporalio_sdk_core::{PollError, Worker as CoreWorker, WorkerValidationError};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::ACTIVITY_NAME;

/// What an activity attempt is, from its start task.
#[derive(Clone, Debug)]
pub struct Info {
    /// None for a standalone activity (`temporal activity start`).
    pub workflow_id: Option<String>,
    pub workflow_run_id: Option<String>,
    pub activity_id: String,
    /// From 1.
    pub attempt: u32,
    pub heartbeat_timeout: Option<Duration>,
    /// When this attempt times out: the earlier of start-to-close and schedule-to-close.
    pub deadline: Option<SystemTime>,
}

/// One running attempt, as its handler sees it.
pub struct Activity {
    info: Info,
    heartbeat_details: Vec<Payload>,
    cancelled: CancellationToken,
    worker: Arc<CoreWorker>,
    task_token: Vec<u8>,
}

impl Activity {
    pub fn info(&self) -> &Info {
        &self.info
    }

    /// What the previous attempt last recorded; empty on a first attempt.
    pub fn heartbeat_details(&self) -> &[Payload] {
        &self.heartbeat_details
    }

    /// Core throttles heartbeats to the server and sends the latest details; a cancellation
    /// comes back on a heartbeat's response, as [`Activity::cancelled`].
    pub fn record_heartbeat(&self, details: RawValue) {
        self.worker.record_activity_heartbeat(ActivityHeartbeat {
            task_token: self.task_token.clone(),
            details: details.payloads,
        });
    }

    /// Resolves when Temporal cancels this attempt: the workflow asked, it timed out, or the
    /// worker's shutdown grace period ran out.
    pub async fn cancelled(&self) {
        self.cancelled.cancelled().await
    }
}

/// Runs `plugin_activity` attempts, the one activity type this worker serves.
pub trait Handler: Send + Sync + 'static {
    fn run(
        self: Arc<Self>,
        activity: Activity,
        input: RawValue,
    ) -> BoxFuture<'static, Result<RawValue, ActivityError>>;
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DispatchError {
    #[error("the namespace check-in failed: {0}")]
    Validation(#[from] WorkerValidationError),
    #[error("polling for activity tasks failed: {0}")]
    Poll(#[from] PollError),
}

/// Cancellation of each running attempt, by task token. The count is the worker's
/// `mlx_worker_activities_tracked` gauge: it must fall back to zero when nothing runs.
type Running = Arc<Mutex<HashMap<Vec<u8>, (CancellationToken, Live)>>>;

pub struct ActivityWorker {
    core: Arc<CoreWorker>,
    running: Running,
    tracked: LiveCount,
    /// Only for failures: results are the handler's payloads as they are (no codec is set).
    converter: DataConverter,
}

impl ActivityWorker {
    /// `tracked` counts the attempts this worker holds a cancellation handle for.
    pub fn new(core: CoreWorker, tracked: LiveCount) -> Self {
        Self {
            core: Arc::new(core),
            running: Running::default(),
            tracked,
            converter: DataConverter::default(),
        }
    }

    /// Stops polling. Running attempts get the grace period the core worker was configured
    /// with, then a WorkerShutdown cancellation, which core reports as a retryable failure.
    pub fn shutdown_handle(&self) -> impl Fn() + Send + Sync + 'static {
        let core = Arc::downgrade(&self.core);
        move || {
            if let Some(core) = core.upgrade() {
                core.initiate_shutdown();
            }
        }
    }

    /// Polls until shutdown has drained every attempt, then releases the core worker.
    pub async fn run(self, handler: Arc<dyn Handler>) -> Result<(), DispatchError> {
        // As the SDK does first: poller behaviour depends on the namespace's capabilities.
        self.core.validate().await?;
        let mut attempts = JoinSet::new();
        let polled = loop {
            // Finished attempts are reaped as we go; at most one task starts per poll.
            while attempts.try_join_next().is_some() {}
            match self.core.poll_activity_task().await {
                Ok(task) => self.dispatch(task, &handler, &mut attempts).await,
                // Only once every attempt has completed.
                Err(PollError::ShutDown) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        if polled.is_err() {
            // Core has already retried what can be retried: the worker stops, as the SDK's
            // does, and attempts still running are dropped (their sandboxes with them).
            self.core.initiate_shutdown();
            attempts.abort_all();
        }
        while attempts.join_next().await.is_some() {}
        self.core.shutdown().await;
        // Unregisters from the client's worker heartbeats; some handle still held (a
        // shutdown handle mid-call) only skips that, at exit.
        if let Ok(core) = Arc::try_unwrap(self.core) {
            core.finalize_shutdown().await;
        }
        Ok(polled?)
    }

    async fn dispatch(
        &self,
        task: ActivityTask,
        handler: &Arc<dyn Handler>,
        attempts: &mut JoinSet<()>,
    ) {
        let token = task.task_token;
        match task.variant {
            Some(activity_task::Variant::Start(mut start))
                if start.activity_type == ACTIVITY_NAME =>
            {
                let cancelled = CancellationToken::new();
                let entry = Entry::new(&self.running, &token, &cancelled, &self.tracked);
                let input = RawValue::new(std::mem::take(&mut start.input));
                let activity = Activity {
                    info: info(&start),
                    heartbeat_details: std::mem::take(&mut start.heartbeat_details),
                    cancelled,
                    worker: self.core.clone(),
                    task_token: token.clone(),
                };
                let (core, converter, handler) =
                    (self.core.clone(), self.converter.clone(), handler.clone());
                attempts.spawn(async move {
                    let outcome = AssertUnwindSafe(handler.run(activity, input))
                        .catch_unwind()
                        .await;
                    let result = match outcome {
                        Ok(result) => execution_result(&converter, result),
                        Err(panic) => ActivityExecutionResult::fail(panicked(&converter, panic)),
                    };
                    complete(&core, token, result).await;
                    drop(entry);
                });
            }
            Some(activity_task::Variant::Start(start)) => {
                // Retryable, as every SDK does: a newer worker on this queue may know the type.
                let failure = application_failure(
                    &self.converter,
                    ApplicationFailure::builder(format!(
                        "activity type {:?} is not registered on this worker, which runs only {:?}",
                        start.activity_type, ACTIVITY_NAME
                    ))
                    .type_name("NotFoundError".to_owned())
                    .build(),
                );
                complete(&self.core, token, ActivityExecutionResult::fail(failure)).await;
            }
            Some(activity_task::Variant::Cancel(cancel)) => {
                let reason = ActivityCancelReason::try_from(cancel.reason)
                    .map_or("unknown", |r| r.as_str_name());
                let running = self.running.lock().expect("never held across a panic");
                match running.get(&token) {
                    Some((cancelled, _)) => {
                        tracing::debug!(reason, "activity cancellation");
                        cancelled.cancel();
                    }
                    None => tracing::debug!(reason, "cancellation of an attempt already done"),
                }
            }
            None => tracing::warn!("activity task without a variant, ignored"),
        }
    }
}

/// An attempt's place in [`Running`], removed however the attempt ends (completed, panicked,
/// or aborted with the worker).
struct Entry {
    running: Running,
    token: Vec<u8>,
}

impl Entry {
    fn new(
        running: &Running,
        token: &[u8],
        cancelled: &CancellationToken,
        tracked: &LiveCount,
    ) -> Self {
        running
            .lock()
            .expect("never held across a panic")
            .insert(token.to_vec(), (cancelled.clone(), tracked.enter()));
        Self {
            running: running.clone(),
            token: token.to_vec(),
        }
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        if let Ok(mut running) = self.running.lock() {
            running.remove(&self.token);
        }
    }
}

async fn complete(core: &CoreWorker, task_token: Vec<u8>, result: ActivityExecutionResult) {
    let completion = ActivityTaskCompletion {
        task_token,
        result: Some(result),
    };
    // Only a malformed completion or an unknown token fails here; the server side is retried
    // by core. The attempt then times out on the server, as any lost worker's would.
    if let Err(e) = core.complete_activity_task(completion).await {
        tracing::error!("completing an activity task failed: {e}");
    }
}

fn info(start: &Start) -> Info {
    let at = |from: Option<SystemTime>, after: Option<Duration>| {
        after
            .filter(|after| !after.is_zero())
            .and_then(|after| from?.checked_add(after))
    };
    let (workflow_id, workflow_run_id) = start
        .workflow_execution
        .as_ref()
        .map(|we| (we.workflow_id.clone(), we.run_id.clone()))
        .unzip();
    Info {
        workflow_id,
        workflow_run_id,
        activity_id: start.activity_id.clone(),
        attempt: start.attempt,
        heartbeat_timeout: start.heartbeat_timeout.try_into_or_none(),
        deadline: [
            at(
                start.started_time.try_into_or_none(),
                start.start_to_close_timeout.try_into_or_none(),
            ),
            at(
                start.scheduled_time.try_into_or_none(),
                start.schedule_to_close_timeout.try_into_or_none(),
            ),
        ]
        .into_iter()
        .flatten()
        .min(),
    }
}

fn context() -> SerializationContextData {
    SerializationContextData::Activity(ActivitySerializationContext::new())
}

fn application_failure(converter: &DataConverter, failure: ApplicationFailure) -> Failure {
    converter.to_failure(
        &context(),
        OutgoingError::Activity(OutgoingActivityError::Application(Box::new(failure))),
    )
}

fn execution_result(
    converter: &DataConverter,
    result: Result<RawValue, ActivityError>,
) -> ActivityExecutionResult {
    match result {
        Ok(raw) => ActivityExecutionResult::ok(raw.payloads.into_iter().next().unwrap_or_default()),
        Err(ActivityError::Application(app)) => {
            ActivityExecutionResult::fail(application_failure(converter, *app))
        }
        Err(ActivityError::Cancelled { details }) => {
            ActivityExecutionResult::cancel(converter.to_failure(
                &context(),
                OutgoingError::Activity(OutgoingActivityError::Cancelled { details }),
            ))
        }
        Err(ActivityError::WillCompleteAsync) => ActivityExecutionResult::will_complete_async(),
        Err(other) => ActivityExecutionResult::fail(application_failure(
            converter,
            ApplicationFailure::builder(format!("unsupported activity error: {other:?}")).build(),
        )),
    }
}

/// A panic in the worker's own code fails the attempt (retryable: a bug may depend on the
/// input's timing) instead of leaving it to time out.
fn panicked(converter: &DataConverter, panic: Box<dyn std::any::Any + Send>) -> Failure {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into());
    tracing::error!("activity panicked: {message}");
    application_failure(
        converter,
        ApplicationFailure::builder(format!(
            "the worker panicked running this activity: {message}"
        ))
        .type_name("WorkerPanic".to_owned())
        .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use temporalio_common::protos::temporal::api::failure::v1::failure::FailureInfo;

    fn start(scheduled: u64, started: u64, start_to_close: u64, schedule_to_close: u64) -> Start {
        let at = |secs| Some((SystemTime::UNIX_EPOCH + Duration::from_secs(secs)).into());
        let after = |secs| Duration::from_secs(secs).try_into().ok();
        Start {
            activity_id: "7".into(),
            attempt: 2,
            scheduled_time: at(scheduled),
            started_time: at(started),
            start_to_close_timeout: after(start_to_close),
            schedule_to_close_timeout: after(schedule_to_close),
            heartbeat_timeout: after(9),
            ..Default::default()
        }
    }

    fn epoch(secs: u64) -> Option<SystemTime> {
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
    }

    #[test]
    fn the_deadline_is_the_earlier_timeout_and_a_zero_one_is_none() {
        // Started at 100 with 60 s to close; scheduled at 90 with 30 s in all: 120 comes first.
        assert_eq!(info(&start(90, 100, 60, 30)).deadline, epoch(120));
        assert_eq!(info(&start(90, 100, 60, 600)).deadline, epoch(160));
        assert_eq!(info(&start(90, 100, 60, 0)).deadline, epoch(160));
        assert_eq!(info(&start(90, 100, 0, 0)).deadline, None);
        let i = info(&start(90, 100, 60, 0));
        assert_eq!((i.attempt, i.activity_id.as_str()), (2, "7"));
        assert_eq!(i.heartbeat_timeout, Some(Duration::from_secs(9)));
        assert_eq!(i.workflow_id, None, "standalone: no workflow");
    }

    fn application_info(result: &ActivityExecutionResult) -> (String, String, bool) {
        use temporalio_common::protos::coresdk::activity_result::activity_execution_result::Status;
        let Some(Status::Failed(failed)) = &result.status else {
            panic!("not a failure: {result:?}");
        };
        let failure = failed.failure.as_ref().expect("a failure");
        let Some(FailureInfo::ApplicationFailureInfo(app)) = &failure.failure_info else {
            panic!("not an application failure: {failure:?}");
        };
        (
            failure.message.clone(),
            app.r#type.clone(),
            app.non_retryable,
        )
    }

    #[test]
    fn results_keep_the_payload_and_the_failure_class() {
        let converter = DataConverter::default();
        let payload = Payload {
            data: b"{}".to_vec(),
            ..Default::default()
        };
        let ok = execution_result(&converter, Ok(RawValue::new(vec![payload.clone()])));
        assert_eq!(ok, ActivityExecutionResult::ok(payload));

        let refused = ApplicationFailure::builder("bad input".to_owned())
            .type_name("InvalidRequest".to_owned())
            .non_retryable(true)
            .build();
        let failed = execution_result(&converter, Err(ActivityError::application(refused)));
        assert_eq!(
            application_info(&failed),
            ("bad input".into(), "InvalidRequest".into(), true)
        );

        let cancelled = execution_result(&converter, Err(ActivityError::cancelled()));
        assert!(cancelled.is_cancelled(), "{cancelled:?}");
    }

    #[test]
    fn a_panic_is_a_retryable_failure_that_says_what_panicked() {
        let converter = DataConverter::default();
        let panic = std::panic::catch_unwind(|| panic!("index {} out of range", 3)).unwrap_err();
        let failed = ActivityExecutionResult::fail(panicked(&converter, panic));
        let (message, kind, non_retryable) = application_info(&failed);
        assert!(message.contains("index 3 out of range"), "{message}");
        assert_eq!((kind.as_str(), non_retryable), ("WorkerPanic", false));
    }
}
