//! One look at a run: the `status` query, with running steps' attempts filled in from
//! DescribeWorkflowExecution. The workflow cannot know a running step's attempt (Temporal
//! retries activities server-side); the server's pending-activity info can, keyed by activity
//! id, which the workflow sets to the step id.

use std::{collections::BTreeMap, time::Duration};

use temporalio_client::{
    Client, WorkflowDescribeOptions, WorkflowExecutionStatus, WorkflowHandle, WorkflowQueryOptions,
    errors::WorkflowQueryError,
};
use temporalio_common::protos::{
    proto_ts_to_system_time,
    temporal::api::{enums::v1::PendingActivityState, workflow::v1::PendingActivityInfo},
};

use super::{
    CliError,
    format::{clock, elapsed, millis, table},
};
use mlx_pipeline::{PipelineStatus, StepState, StepStatus};

use crate::temporal::PipelineWorkflow;

pub type Pipeline = WorkflowHandle<Client, PipelineWorkflow>;

/// A query needs a worker to answer; without one, give up on this look rather than hang.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// What the server says about a step's activity while it has not finished.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingStep {
    pub attempt: u32,
    pub last_failure: Option<String>,
    /// Set while the step waits out its retry backoff.
    pub next_attempt_ms: Option<u64>,
}

impl PendingStep {
    fn from_info(info: &PendingActivityInfo) -> Self {
        let waiting = info.state == PendingActivityState::Scheduled as i32 && info.attempt > 1;
        Self {
            attempt: info.attempt.max(1) as u32,
            last_failure: info
                .last_failure
                .as_ref()
                .map(|f| f.message.clone())
                .filter(|m| !m.is_empty()),
            next_attempt_ms: info
                .next_attempt_schedule_time
                .as_ref()
                .and_then(proto_ts_to_system_time)
                .map(millis)
                .filter(|_| waiting),
        }
    }

    /// Why a running step is on a later attempt, for its note.
    fn note(&self) -> Option<String> {
        let failure = self.last_failure.as_deref();
        match (self.next_attempt_ms, failure) {
            (Some(at), Some(f)) => Some(format!("retry at {}; last failure: {f}", clock(at))),
            (Some(at), None) => Some(format!("retry at {}", clock(at))),
            (None, Some(f)) => Some(format!("last failure: {f}")),
            (None, None) => None,
        }
    }
}

/// The run as one look shows it. The query may go unanswered (no worker polling, or a spec
/// the workflow refused): then `status` says why.
#[derive(Debug)]
pub struct Snapshot {
    pub status: Result<PipelineStatus, CliError>,
    pub execution: WorkflowExecutionStatus,
    pub run_id: String,
    pub task_queue: String,
    /// The last heartbeat details of each running step's activity (activity id = step id,
    /// `ID.N` for fan-out items), e.g. the trainer's `{"round", "of", "loss"}`.
    pub progress: BTreeMap<String, serde_json::Value>,
}

impl Snapshot {
    pub fn is_closed(&self) -> bool {
        !matches!(
            self.execution,
            WorkflowExecutionStatus::Running | WorkflowExecutionStatus::Unspecified
        )
    }
}

/// Describe, then query: a step the query shows running was still pending when described,
/// unless it ended in between (then the query says so, and no attempt is filled wrongly).
pub async fn look(handle: &Pipeline) -> Result<Snapshot, CliError> {
    let id = handle.info().workflow_id.clone();
    let description = handle
        .describe(WorkflowDescribeOptions::default())
        .await
        .map_err(|e| match e {
            temporalio_client::errors::WorkflowInteractionError::NotFound(_) => {
                CliError::NotFound(format!("workflow `{id}`"))
            }
            other => CliError::temporal(format!("describing `{id}`"), other),
        })?;
    let pending: BTreeMap<String, PendingStep> = description
        .raw_description
        .pending_activities
        .iter()
        .map(|a| (a.activity_id.clone(), PendingStep::from_info(a)))
        .collect();
    let options = WorkflowQueryOptions::builder()
        .rpc_options(
            temporalio_client::RpcOptions::builder()
                .timeout(QUERY_TIMEOUT)
                .build(),
        )
        .build();
    let status = match handle.query(PipelineWorkflow::status, (), options).await {
        Ok(mut status) => {
            fill_pending(&mut status, &pending);
            Ok(status)
        }
        Err(WorkflowQueryError::NotFound(_)) => {
            return Err(CliError::NotFound(format!("workflow `{id}`")));
        }
        Err(e) => match CliError::query(format!("status of `{id}`"), e) {
            // Not the run's answer: the whole look is tried again.
            e @ CliError::Unreachable { .. } => return Err(e),
            e => Err(e),
        },
    };
    let progress = description
        .raw_description
        .pending_activities
        .iter()
        .filter_map(|a| {
            let payload = a.heartbeat_details.as_ref()?.payloads.first()?;
            let details = serde_json::from_slice(&payload.data).ok()?;
            Some((a.activity_id.clone(), details))
        })
        .collect();
    Ok(Snapshot {
        status,
        progress,
        execution: description.status(),
        run_id: description.run_id().to_string(),
        task_queue: description.task_queue().to_string(),
    })
}

/// Running steps get their attempt (and, on a retry, why) from the pending activities.
pub fn fill_pending(status: &mut PipelineStatus, pending: &BTreeMap<String, PendingStep>) {
    for step in &mut status.steps {
        if step.status != StepStatus::Running {
            continue;
        }
        if let Some(p) = pending.get(&step.id) {
            step.attempt = Some(p.attempt);
            if step.note.is_none() {
                step.note = p.note();
            }
        }
        // A fan-out step's items are activities `ID.N`.
        for (index, item) in step.items.iter_mut().flatten().enumerate() {
            if let Some(p) = pending.get(&format!("{}.{index}", step.id))
                && item.status == StepStatus::Running
            {
                item.attempt = Some(p.attempt);
                if item.note.is_none() {
                    item.note = p.note();
                }
            }
        }
    }
}

/// A step's note, after its items' counts when it fans out.
pub fn step_note(step: &StepState) -> Option<String> {
    match (step.items_summary(), &step.note) {
        (Some(items), Some(note)) => Some(format!("{items}; {note}")),
        (Some(items), None) => Some(items),
        (None, note) => note.clone(),
    }
}

/// Running or finished time of a step, as of `now_ms`.
pub fn step_elapsed(step: &StepState, now_ms: u64) -> Option<String> {
    let start = step.started_at_ms?;
    let end = step.ended_at_ms.unwrap_or(now_ms);
    Some(elapsed(end.saturating_sub(start)))
}

/// `pipeline status`: the run's state, params and failure, then one row per step.
pub fn status_table(status: &PipelineStatus, now_ms: u64) -> String {
    let mut out = format!("pipeline `{}`: {}\n", status.pipeline, status.state);
    if !status.params.is_empty() {
        let params: Vec<String> = status
            .params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        out.push_str(&format!("params: {}\n", params.join(" ")));
    }
    if let Some(failure) = &status.failure {
        out.push_str(&format!("failure: {failure}\n"));
    }
    out.push('\n');
    let rows: Vec<Vec<String>> = status
        .steps
        .iter()
        .map(|s| {
            vec![
                s.id.clone(),
                s.kind.clone(),
                s.status.as_str().to_string(),
                s.attempt.map(|a| a.to_string()).unwrap_or_default(),
                s.started_at_ms.map(clock).unwrap_or_default(),
                step_elapsed(s, now_ms).unwrap_or_default(),
                step_note(s).unwrap_or_default(),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "STEP", "KIND", "STATUS", "ATTEMPT", "STARTED", "DURATION", "NOTE",
        ],
        &rows,
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn step(id: &str, status: StepStatus) -> StepState {
        StepState {
            id: id.into(),
            kind: "testkit.echo".into(),
            depends_on: Vec::new(),
            status,
            attempt: None,
            started_at_ms: Some(1_000),
            ended_at_ms: None,
            output_ref: None,
            note: None,
            cached_from: None,
            items: None,
            output: None,
        }
    }

    #[test]
    fn a_fan_out_shows_its_items_in_one_note_and_their_attempts() {
        let item = |status| mlx_pipeline::ItemState {
            item: json!(0.1),
            status,
            attempt: None,
            started_at_ms: Some(1_000),
            ended_at_ms: None,
            note: None,
            cached_from: None,
            output: None,
        };
        let mut s = status();
        s.steps[1].items = Some(vec![
            item(StepStatus::Succeeded),
            item(StepStatus::Running),
            item(StepStatus::Pending),
        ]);
        let pending = BTreeMap::from([(
            "train.1".to_string(),
            PendingStep {
                attempt: 3,
                last_failure: Some("Trap: out of fuel".into()),
                next_attempt_ms: None,
            },
        )]);
        fill_pending(&mut s, &pending);
        let items = s.steps[1].items.as_ref().unwrap();
        assert_eq!(items[1].attempt, Some(3));
        assert_eq!(
            items[1].note.as_deref(),
            Some("last failure: Trap: out of fuel")
        );
        assert_eq!(
            step_note(&s.steps[1]).as_deref(),
            Some("items: 1 succeeded, 1 running, 1 pending (of 3)")
        );
        s.steps[1].note = Some("why".into());
        let text = status_table(&s, 4_000);
        assert!(
            text.contains("items: 1 succeeded, 1 running, 1 pending (of 3); why"),
            "{text}"
        );
    }

    fn status() -> PipelineStatus {
        let mut done = step("done", StepStatus::Succeeded);
        done.attempt = Some(1);
        done.ended_at_ms = Some(2_500);
        PipelineStatus {
            pipeline: "demo".into(),
            state: mlx_pipeline::RunState::Running,
            params: [("label".to_string(), json!("v1"))].into(),
            failure: None,
            steps: vec![
                done,
                step("train", StepStatus::Running),
                step("other", StepStatus::Running),
            ],
        }
    }

    #[test]
    fn running_steps_take_attempt_and_retry_from_pending_activities() {
        let mut s = status();
        let pending = BTreeMap::from([
            (
                "train".to_string(),
                PendingStep {
                    attempt: 2,
                    last_failure: Some("attempt 1 fails".into()),
                    next_attempt_ms: None,
                },
            ),
            (
                "done".to_string(),
                PendingStep {
                    attempt: 7,
                    last_failure: None,
                    next_attempt_ms: None,
                },
            ),
        ]);
        fill_pending(&mut s, &pending);
        assert_eq!(s.steps[0].attempt, Some(1), "finished steps keep theirs");
        assert_eq!(s.steps[1].attempt, Some(2));
        assert_eq!(
            s.steps[1].note.as_deref(),
            Some("last failure: attempt 1 fails")
        );
        assert_eq!(s.steps[2].attempt, None, "not described: left unknown");
    }

    #[test]
    fn the_table_has_a_row_per_step() {
        let mut s = status();
        s.steps[1].attempt = Some(2);
        let text = status_table(&s, 4_000);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "pipeline `demo`: running");
        assert_eq!(lines[1], "params: label=\"v1\"");
        assert!(
            lines[3].starts_with("STEP   KIND          STATUS     ATTEMPT"),
            "{text}"
        );
        assert!(
            lines[4].contains("succeeded  1") && lines[4].contains("1.5s"),
            "{text}"
        );
        assert!(
            lines[5].contains("running    2") && lines[5].contains("3.0s"),
            "{text}"
        );
    }
}
