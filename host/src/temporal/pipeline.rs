//! `PipelineWorkflow`: runs a pipeline spec ([`crate::pipeline`]) — independent steps in
//! parallel, each a `plugin_activity` with the step's retry policy and timeouts — and lets a
//! person steer it: pause/resume (signals, so they queue even while no worker runs), approve,
//! reject, cancel-step and set-param (updates, so the caller hears at once why a request is
//! refused), and the `status` query. The rules live in [`PipelineState`]; this file only moves
//! Temporal events in and activity commands out.

use std::{
    collections::BTreeMap,
    time::{Duration, UNIX_EPOCH},
};

use futures::{
    FutureExt,
    future::{LocalBoxFuture, select_all},
};
use serde_json::Value;
use temporalio_common::{
    RetryPolicy,
    data_converters::RawValue,
    error::{ActivityExecutionError, ApplicationFailure, IncomingError, RetryState},
};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{
    ActivityCancellationType, ActivityOptions, SyncWorkflowContext, WorkflowCancellationToken,
    WorkflowContext, WorkflowContextView, WorkflowResult, WorkflowTermination, workflows::select,
};

use super::{
    PluginActivity,
    payload::{decode_result, request_payload, workflow_input},
};
use mlx_pipeline::{
    Decision, ParamChange, PipelineSpec, PipelineState, PipelineStatus, StartStep, StepResult,
    StepSpec,
};
use mlx_runtime::{contract::PluginRequest, engine::BoxError};

type Handler = Result<(), BoxError>;

/// A cancel-step request waiting for the run loop, which owns the activities.
#[derive(Debug, Clone)]
struct CancelRequest {
    step: String,
    reason: String,
}

#[workflow]
pub struct PipelineWorkflow {
    /// The run, or why the input is not a valid pipeline (reported by `run`).
    pipeline: Result<PipelineState, (&'static str, String)>,
    cancel_requests: Vec<CancelRequest>,
    /// Bumped by every signal and update, so the run loop wakes to look again.
    changes: u64,
}

#[workflow_methods]
impl PipelineWorkflow {
    /// Parses and validates the spec before anything else, so the first query or signal
    /// already sees the run.
    #[init]
    pub fn new(_ctx: &WorkflowContextView, spec: RawValue) -> Self {
        let pipeline = workflow_input(&spec)
            .map_err(|e| ("InvalidWorkflowInput", e))
            .and_then(|spec| {
                serde_json::from_value::<PipelineSpec>(spec)
                    .map_err(|e| ("InvalidPipeline", format!("not a pipeline spec: {e}")))
            })
            .and_then(|spec| match spec.validate(None) {
                Ok(()) => Ok(PipelineState::new(spec)),
                Err(errors) => Err((
                    "InvalidPipeline",
                    format!(
                        "invalid pipeline: {}",
                        errors
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                )),
            });
        Self {
            pipeline,
            cancel_requests: Vec::new(),
            changes: 0,
        }
    }

    #[run(name = "PipelineWorkflow")]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<Value> {
        if let Some((kind, why)) = ctx.state(|s| s.pipeline.as_ref().err().cloned()) {
            return Err(failed(kind, why, None));
        }
        let specs: BTreeMap<String, StepSpec> = ctx.state(|s| {
            let spec = s.pipeline().spec();
            spec.steps
                .iter()
                .chain(&spec.compensations)
                .map(|step| (step.id.clone(), step.clone()))
                .collect()
        });
        // Polled in order with the workflow's own waker (`select_all`): the SDK fails a task
        // woken by anything else, and combinators like FuturesUnordered wake themselves.
        let mut running: Vec<LocalBoxFuture<'static, (Run, StepResult)>> = Vec::new();
        let mut tokens: BTreeMap<String, WorkflowCancellationToken> = BTreeMap::new();
        // Why a person cancelled a step: the activity's cancellation does not carry it back.
        let mut reasons: BTreeMap<String, String> = BTreeMap::new();
        let mut cancelling = false;
        loop {
            let now = now_ms(ctx);
            for request in ctx.state_mut(|s| std::mem::take(&mut s.cancel_requests)) {
                if let Some(token) = tokens.get(&request.step) {
                    token.cancel_with_reason(request.reason.clone());
                    reasons.insert(request.step, request.reason);
                }
            }
            for start in ctx.state_mut(|s| s.pipeline_mut().advance(now)) {
                // One token per step: cancelling a fan-out step cancels all its items.
                let token = tokens
                    .entry(start.id.clone())
                    .or_insert_with(|| ctx.cancellation_token().child_token())
                    .clone();
                let step = &specs[&start.id];
                running.push(run_step(ctx, start, step, token));
            }
            if running.is_empty() && ctx.state(|s| s.pipeline().is_done()) {
                break;
            }
            let event = next_event(ctx, &mut running, cancelling).await;
            let now = now_ms(ctx);
            match event {
                Event::Finished((((id, item), mut result), index)) => {
                    drop(running.remove(index));
                    if let StepResult::Cancelled { reason } = &mut result {
                        *reason = reasons.get(&id).cloned().unwrap_or_else(|| {
                            if cancelling {
                                "the pipeline was cancelled".into()
                            } else {
                                std::mem::take(reason)
                            }
                        });
                    }
                    let ended = ctx.state_mut(|s| {
                        let run = s.pipeline_mut();
                        match item {
                            Some(index) => run.finish_item(&id, index, result, now),
                            None => run.finish(&id, result, now),
                        }
                        run.step(&id).is_some_and(|s| s.status.is_finished())
                    });
                    if ended {
                        tokens.remove(&id);
                        reasons.remove(&id);
                    }
                }
                Event::Changed => {}
                Event::Cancelled => {
                    // Running steps' tokens are children of the workflow's: their activities
                    // are being cancelled and report back through `finished`.
                    cancelling = true;
                    ctx.state_mut(|s| s.pipeline_mut().cancel(now));
                }
            }
        }
        let (cancelled, failure, status, result) = ctx.state(|s| {
            let run = s.pipeline();
            (
                run.cancelled,
                run.failure().map(str::to_string),
                run.status(),
                run.result(),
            )
        });
        if cancelled {
            return Err(WorkflowTermination::cancelled());
        }
        match failure {
            Some(why) => Err(failed("PipelineFailed", why, Some(status))),
            None => Ok(result),
        }
    }

    #[signal]
    pub fn pause(&mut self, _ctx: &mut SyncWorkflowContext<Self>, _input: ()) {
        if let Ok(run) = &mut self.pipeline {
            run.paused = true;
        }
        self.changes += 1;
    }

    #[signal]
    pub fn resume(&mut self, _ctx: &mut SyncWorkflowContext<Self>, _input: ()) {
        if let Ok(run) = &mut self.pipeline {
            run.paused = false;
        }
        self.changes += 1;
    }

    #[query]
    pub fn status(&self, _ctx: &WorkflowContextView) -> Result<PipelineStatus, BoxError> {
        Ok(self.checked()?.status())
    }

    /// A step's output (the status leaves outputs out: they can be large).
    #[query]
    pub fn step_output(&self, _ctx: &WorkflowContextView, step: String) -> Result<Value, BoxError> {
        Ok(self.checked()?.output(&step)?)
    }

    #[update_validator(approve)]
    fn validate_approve(&self, _ctx: &WorkflowContextView, decision: &Decision) -> Handler {
        Ok(self.checked()?.check_decision(decision)?)
    }

    /// Approves a step waiting for approval; returns the step's status afterwards.
    #[update]
    pub fn approve(&mut self, ctx: &mut SyncWorkflowContext<Self>, decision: Decision) -> String {
        self.decide(ctx, decision, true)
    }

    #[update_validator(reject)]
    fn validate_reject(&self, _ctx: &WorkflowContextView, decision: &Decision) -> Handler {
        Ok(self.checked()?.check_decision(decision)?)
    }

    /// Rejects a step waiting for approval: the step fails and its `on_failure` applies.
    #[update]
    pub fn reject(&mut self, ctx: &mut SyncWorkflowContext<Self>, decision: Decision) -> String {
        self.decide(ctx, decision, false)
    }

    #[update_validator(cancel_step)]
    fn validate_cancel_step(&self, _ctx: &WorkflowContextView, request: &Decision) -> Handler {
        Ok(self.checked()?.check_cancel(&request.step)?)
    }

    /// Cancels one running step (its plugin is told to stop) or one waiting for approval. The
    /// step ends `cancelled`, which its `on_failure` treats as a failure.
    #[update]
    pub fn cancel_step(
        &mut self,
        ctx: &mut SyncWorkflowContext<Self>,
        request: Decision,
    ) -> String {
        let who = request.by.as_deref().unwrap_or("someone");
        let reason = match &request.comment {
            Some(comment) => format!("cancelled by {who}: {comment}"),
            None => format!("cancelled by {who}"),
        };
        let now = now_ms_sync(ctx);
        self.changes += 1;
        let Ok(run) = &mut self.pipeline else {
            return String::new();
        };
        if run.waiting_approval().contains(&request.step) {
            run.finish(&request.step, StepResult::Cancelled { reason }, now);
            return "cancelled".into();
        }
        self.cancel_requests.push(CancelRequest {
            step: request.step,
            reason,
        });
        "cancelling".into()
    }

    #[update_validator(set_param)]
    fn validate_set_param(&self, _ctx: &WorkflowContextView, change: &ParamChange) -> Handler {
        Ok(self.checked()?.check_param(change)?)
    }

    /// Changes a param no started step has read; returns the old value.
    #[update]
    pub fn set_param(
        &mut self,
        _ctx: &mut SyncWorkflowContext<Self>,
        change: ParamChange,
    ) -> Value {
        self.changes += 1;
        match &mut self.pipeline {
            Ok(run) => run.set_param(change),
            Err(_) => Value::Null,
        }
    }
}

impl PipelineWorkflow {
    /// The run, for code that only executes after `run` checked it is valid.
    fn pipeline(&self) -> &PipelineState {
        self.pipeline
            .as_ref()
            .expect("run() returns first when invalid")
    }

    fn pipeline_mut(&mut self) -> &mut PipelineState {
        self.pipeline
            .as_mut()
            .expect("run() returns first when invalid")
    }

    fn checked(&self) -> Result<&PipelineState, String> {
        self.pipeline.as_ref().map_err(|(_, why)| why.clone())
    }

    fn decide(&mut self, ctx: &SyncWorkflowContext<Self>, decision: Decision, yes: bool) -> String {
        let now = now_ms_sync(ctx);
        self.changes += 1;
        let Ok(run) = &mut self.pipeline else {
            return String::new();
        };
        run.decide(&decision, yes, now);
        run.step(&decision.step)
            .map(|s| s.status.as_str().to_string())
            .unwrap_or_default()
    }
}

/// Waits for a step to finish, a signal or update to change the state, or the workflow's
/// cancellation (once). Branches are polled in this order, so replay sees the same choice.
async fn next_event(
    ctx: &WorkflowContext<PipelineWorkflow>,
    running: &mut [LocalBoxFuture<'static, (Run, StepResult)>],
    cancelling: bool,
) -> Event {
    let seen = ctx.state(|s| s.changes);
    let finished = async {
        if running.is_empty() {
            std::future::pending().await
        } else {
            let (done, index, _) = select_all(running.iter_mut()).await;
            (done, index)
        }
    };
    let cancelled = async {
        if cancelling {
            std::future::pending().await
        } else {
            ctx.cancelled().await
        }
    };
    // Waiting must not end with the workflow's cancellation, which is its own branch: a wait
    // that inherited it would resolve on every pass.
    let mut changed = ctx.wait_condition_with_options(
        move |s: &PipelineWorkflow| s.changes != seen,
        temporalio_sdk::WaitConditionOptions::builder()
            .cancellation_token(WorkflowCancellationToken::new())
            .build(),
    );
    select! {
        done = finished.fuse() => Event::Finished(done),
        _ = changed => Event::Changed,
        _ = cancelled.fuse() => Event::Cancelled,
    }
}

/// One activity of a step: the step id, and the item for a fan-out step's.
type Run = (String, Option<usize>);

enum Event {
    /// A step's (or item's) result, and its index in `running`.
    Finished(((Run, StepResult), usize)),
    Changed,
    Cancelled,
}

/// Starts one plugin step (or one item of a fan-out step) as `plugin_activity`; the future
/// ends with how it ended.
fn run_step(
    ctx: &WorkflowContext<PipelineWorkflow>,
    start: StartStep,
    step: &StepSpec,
    token: WorkflowCancellationToken,
) -> LocalBoxFuture<'static, (Run, StepResult)> {
    let retry = &step.retry;
    let options = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(
        step.timeouts.start_to_close_secs,
    ))
    // The step id (`ID.N` for item N) is the activity id: `describe` shows a running step's
    // attempt under it, and the worker names the step's lineage and cache records by it.
    .activity_id(start.activity_id())
    .summary(format!(
        "{}: {}.{}",
        start.activity_id(),
        start.plugin,
        start.operation
    ))
    .maybe_heartbeat_timeout(step.timeouts.heartbeat_secs.map(Duration::from_secs))
    // Wait for the plugin to acknowledge, so a cancelled step has stopped when it is reported.
    .cancellation_type(ActivityCancellationType::WaitCancellationCompleted)
    .cancellation_token(token)
    .retry_policy(
        RetryPolicy::builder()
            .initial_interval(Duration::from_secs_f64(retry.initial_interval_secs))
            .backoff_coefficient(retry.backoff_coefficient)
            .maximum_interval(Duration::from_secs_f64(retry.max_interval_secs))
            .maximum_attempts(retry.max_attempts)
            .non_retryable_error_types(retry.non_retryable.clone())
            .build(),
    )
    .build();
    let max_attempts = retry.max_attempts;
    let id = (start.id, start.item);
    let request = PluginRequest {
        plugin: start.plugin,
        operation: start.operation,
        input: start.input,
        cache: start.cache,
    };
    let ctx = ctx.clone();
    Box::pin(async move {
        let activity = ctx.execute_activity(
            PluginActivity::plugin_activity,
            request_payload(&request),
            options,
        );
        let result = match activity.await {
            Ok(raw) => match decode_result(&raw) {
                Ok(result) => StepResult::Succeeded {
                    output: result.output,
                    attempt: result.attempt,
                    cached_from: result.cached_from,
                },
                Err(error) => StepResult::Failed {
                    error,
                    attempt: None,
                },
            },
            Err(err) => step_error(err, max_attempts),
        };
        (id, result)
    })
}

fn step_error(err: ActivityExecutionError, max_attempts: u32) -> StepResult {
    if err.as_cancelled().is_some() {
        let reason = "the activity was cancelled".to_string();
        return StepResult::Cancelled { reason };
    }
    // The worker puts the attempt in its failure details; a failure from elsewhere (a
    // timeout, another worker) leaves only what the retry state implies.
    let reported = match err.reason() {
        Some(IncomingError::Application(app)) => app
            .raw_details()
            .and_then(|payloads| payloads.first())
            .and_then(|p| serde_json::from_slice::<Value>(&p.data).ok())
            .and_then(|d| d["attempt"].as_u64())
            .and_then(|n| u32::try_from(n).ok()),
        _ => None,
    };
    let attempt = reported.or(match &err {
        ActivityExecutionError::Failed(f)
            if f.retry_state() == RetryState::MaximumAttemptsReached =>
        {
            Some(max_attempts)
        }
        _ => None,
    });
    let error = match err.reason() {
        Some(IncomingError::Application(app)) => {
            format!("{}: {app}", app.type_name().unwrap_or("Error"))
        }
        Some(other) => other.to_string(),
        None => err.to_string(),
    };
    StepResult::Failed { error, attempt }
}

/// Fails the workflow once: a pipeline that failed or cannot run will not do better on retry.
fn failed(kind: &str, message: String, status: Option<PipelineStatus>) -> WorkflowTermination {
    let builder = ApplicationFailure::builder(message)
        .type_name(kind.to_string())
        .non_retryable(true);
    let failure = match status.and_then(|s| serde_json::to_value(s).ok()) {
        Some(details) => builder.details(details).build(),
        None => builder.build(),
    };
    WorkflowTermination::failed_application(failure)
}

fn now_ms(ctx: &WorkflowContext<PipelineWorkflow>) -> u64 {
    millis(ctx.workflow_time())
}

fn now_ms_sync(ctx: &SyncWorkflowContext<PipelineWorkflow>) -> u64 {
    millis(ctx.workflow_time())
}

fn millis(at: Option<std::time::SystemTime>) -> u64 {
    at.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64)
}
