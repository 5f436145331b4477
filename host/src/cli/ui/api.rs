//! The page's JSON: runs from Temporal visibility, one run as `pipeline status` sees it, and
//! the actions. Nothing here is cached: a page polling once a second costs what a person
//! running `pipeline status` once a second costs.

use futures::StreamExt;
use hyper::StatusCode;
use serde_json::{Value, json};
use temporalio_client::{
    Client, WorkflowExecutionStatus, WorkflowListOptions, WorkflowQueryOptions,
};

use super::{
    Ui,
    http::{Answer, json},
};
use crate::{
    cli::{
        CliError,
        format::millis,
        steer::{Steer, steer},
        view::look,
    },
    temporal::PipelineWorkflow,
};
use mlx_pipeline::{Decision, ParamChange, load::parse_value};

/// Runs listed at once: the most recent first.
const MAX_RUNS: usize = 100;

/// The state filter's names, as the page shows them, and visibility's.
const STATES: [(&str, &str); 6] = [
    ("running", "Running"),
    ("succeeded", "Completed"),
    ("failed", "Failed"),
    ("cancelled", "Canceled"),
    ("terminated", "Terminated"),
    ("timed_out", "TimedOut"),
];

fn state_name(status: WorkflowExecutionStatus) -> &'static str {
    match status {
        WorkflowExecutionStatus::Running => "running",
        WorkflowExecutionStatus::Completed => "succeeded",
        WorkflowExecutionStatus::Failed => "failed",
        WorkflowExecutionStatus::Canceled => "cancelled",
        WorkflowExecutionStatus::Terminated => "terminated",
        WorkflowExecutionStatus::TimedOut => "timed_out",
        WorkflowExecutionStatus::ContinuedAsNew => "continued_as_new",
        _ => "unknown",
    }
}

/// The pipeline's name as `pipeline run` makes ids (`NAME-YYYYMMDDTHHMMSSZ-XXXXXX`) and
/// schedules make them (`SCHEDULE-YYYY-MM-DDTHH:MM:SSZ`); else the whole id.
pub(super) fn pipeline_of(id: &str) -> &str {
    let bytes = id.as_bytes();
    // NAME-20261130T231500Z-3f2a9c
    if bytes.len() > 24 {
        let tail = &id[id.len() - 24..];
        let t = tail.as_bytes();
        if t[0] == b'-'
            && t[9] == b'T'
            && t[16] == b'Z'
            && t[17] == b'-'
            && tail[1..9].bytes().all(|b| b.is_ascii_digit())
        {
            return &id[..id.len() - 24];
        }
    }
    // SCHEDULE-2026-11-30T23:15:00Z
    if bytes.len() > 21 {
        let tail = &id[id.len() - 21..];
        if tail.starts_with('-') && tail.ends_with('Z') && tail.as_bytes()[11] == b'T' {
            return &id[..id.len() - 21];
        }
    }
    id
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Answer {
    json(status, &json!({"error": message.to_string()}))
}

/// `GET /api/runs?pipeline=NAME&state=STATE`: `PipelineWorkflow` runs, newest first.
pub(super) async fn runs(ui: &Ui, params: &[(String, String)]) -> Answer {
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let mut query = "WorkflowType = 'PipelineWorkflow'".to_string();
    if let Some(state) = param("state") {
        match STATES.iter().find(|(name, _)| *name == state) {
            Some((_, status)) => query.push_str(&format!(" AND ExecutionStatus = '{status}'")),
            None => {
                let known: Vec<&str> = STATES.iter().map(|(n, _)| *n).collect();
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("no state `{state}`; one of {}", known.join(", ")),
                );
            }
        }
    }
    let wanted = param("pipeline").map(|p| p.to_lowercase());
    match list(&ui.client, &query, wanted.as_deref()).await {
        Ok(mut runs) => {
            for run in runs.iter_mut().filter(|r| r["state"] == "failed") {
                let (id, run_id) = (run["workflow_id"].clone(), run["run_id"].clone());
                let (Some(id), Some(run_id)) = (id.as_str(), run_id.as_str()) else {
                    continue;
                };
                run["failing_step"] = json!(super::step::failing_step_of(ui, id, run_id).await);
            }
            json(StatusCode::OK, &json!({ "runs": runs }))
        }
        Err(e) => error(StatusCode::BAD_GATEWAY, format!("listing runs: {e}")),
    }
}

async fn list(
    client: &Client,
    query: &str,
    pipeline: Option<&str>,
) -> Result<Vec<Value>, temporalio_client::errors::ClientError> {
    let options = WorkflowListOptions::builder().limit(MAX_RUNS).build();
    let mut stream = client.list_workflows(query, options);
    let mut runs = Vec::new();
    while let Some(run) = stream.next().await {
        let run = run?;
        let name = pipeline_of(run.id());
        if pipeline.is_some_and(|p| !name.to_lowercase().contains(p)) {
            continue;
        }
        runs.push(json!({
            "workflow_id": run.id(),
            "run_id": run.run_id(),
            "pipeline": name,
            "state": state_name(run.status()),
            "start_ms": run.start_time().map(millis),
            "close_ms": run.close_time().map(millis),
        }));
    }
    Ok(runs)
}

/// `GET /api/run?id=ID`: the run as one `pipeline status` look sees it.
pub(super) async fn run(ui: &Ui, id: &str) -> Answer {
    let handle = ui
        .client
        .get_workflow_handle::<PipelineWorkflow>(id.to_string());
    match look(&handle).await {
        Ok(snapshot) => {
            let (status, why) = match snapshot.status {
                Ok(status) => (serde_json::to_value(&status).ok(), None),
                Err(e) => (None, Some(e.to_string())),
            };
            json(
                StatusCode::OK,
                &json!({
                    "workflow_id": id,
                    "run_id": snapshot.run_id,
                    "execution": state_name(snapshot.execution),
                    "task_queue": snapshot.task_queue,
                    "status": status,
                    "progress": snapshot.progress,
                    "files": ui.artifacts_dir.is_some(),
                    "error": why,
                }),
            )
        }
        Err(e @ CliError::NotFound(_)) => error(StatusCode::NOT_FOUND, e),
        Err(e) => error(StatusCode::BAD_GATEWAY, e),
    }
}

/// `GET /api/output?id=ID&step=STEP`: a finished step's output (the `step_output` query, as
/// `pipeline output`); fetched once per step by the page, not polled.
pub(super) async fn output(ui: &Ui, id: &str, step: &str) -> Answer {
    let handle = ui
        .client
        .get_workflow_handle::<PipelineWorkflow>(id.to_string());
    let options = WorkflowQueryOptions::builder()
        .rpc_options(
            temporalio_client::RpcOptions::builder()
                .timeout(std::time::Duration::from_secs(5))
                .build(),
        )
        .build();
    match handle
        .query(PipelineWorkflow::step_output, step.to_string(), options)
        .await
    {
        Ok(output) => json(StatusCode::OK, &json!({ "output": output })),
        Err(e) => error(
            StatusCode::BAD_GATEWAY,
            CliError::query(format!("output of `{step}` in `{id}`"), e),
        ),
    }
}

/// What the page asks for: `{"id", "action", "step"?, "comment"?, "name"?, "value"?}`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Action {
    id: String,
    action: String,
    step: Option<String>,
    comment: Option<String>,
    name: Option<String>,
    value: Option<String>,
}

impl Action {
    fn steer(self) -> Result<Steer, String> {
        let decision = |step: Option<String>, comment: Option<String>| {
            step.filter(|s| !s.is_empty())
                .map(|step| Decision {
                    step,
                    by: Some("web page".into()),
                    comment: comment.filter(|c| !c.trim().is_empty()),
                })
                .ok_or_else(|| format!("{} needs a step", self.action))
        };
        match self.action.as_str() {
            "pause" => Ok(Steer::Pause),
            "resume" => Ok(Steer::Resume),
            "approve" => Ok(Steer::Approve(decision(self.step, self.comment)?)),
            "reject" => Ok(Steer::Reject(decision(self.step, self.comment)?)),
            "cancel_step" => Ok(Steer::CancelStep(decision(self.step, self.comment)?)),
            "set_param" => match (self.name.filter(|n| !n.is_empty()), self.value) {
                (Some(name), Some(value)) => Ok(Steer::SetParam(ParamChange {
                    name,
                    value: parse_value(&value),
                })),
                _ => Err("set_param needs a name and a value".into()),
            },
            other => Err(format!(
                "no action `{other}`: pause, resume, approve, reject, cancel_step, set_param"
            )),
        }
    }
}

/// `POST /api/action`: a signal or an update; a refusal answers 409 with the workflow's reason.
pub(super) async fn action(ui: &Ui, body: &[u8]) -> Answer {
    let action: Action = match serde_json::from_slice(body) {
        Ok(action) => action,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("not an action: {e}")),
    };
    let id = action.id.clone();
    let what = match action.steer() {
        Ok(what) => what,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    match steer(&ui.client, &id, what).await {
        Ok(message) => json(StatusCode::OK, &json!({ "message": message })),
        Err(CliError::Refused { reason, .. }) => error(StatusCode::CONFLICT, reason),
        Err(e @ CliError::NotFound(_)) => error(StatusCode::NOT_FOUND, e),
        Err(e) => error(StatusCode::BAD_GATEWAY, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pipeline_name_is_read_off_generated_ids() {
        assert_eq!(pipeline_of("train-20261130T231500Z-3f2a9c"), "train");
        assert_eq!(pipeline_of("my-sweep-20261130T231500Z-3f2a9c"), "my-sweep");
        assert_eq!(pipeline_of("nightly-2026-11-30T23:15:00Z"), "nightly");
        assert_eq!(pipeline_of("hand-made-id"), "hand-made-id");
        assert_eq!(pipeline_of(""), "");
    }

    #[test]
    fn actions_need_what_they_act_on() {
        let action = |v: Value| serde_json::from_value::<Action>(v).unwrap().steer();
        assert!(matches!(
            action(json!({"id": "r", "action": "approve", "step": "gate", "comment": "ok"})),
            Ok(Steer::Approve(Decision { step, comment: Some(c), .. })) if step == "gate" && c == "ok"
        ));
        assert!(action(json!({"id": "r", "action": "approve"})).is_err());
        assert!(action(json!({"id": "r", "action": "set_param", "name": "x"})).is_err());
        assert!(matches!(
            action(json!({"id": "r", "action": "set_param", "name": "x", "value": "3"})),
            Ok(Steer::SetParam(ParamChange { value, .. })) if value == json!(3)
        ));
        assert!(action(json!({"id": "r", "action": "drop_table"})).is_err());
        assert!(
            serde_json::from_value::<Action>(json!({"id": "r", "action": "pause", "x": 1}))
                .is_err()
        );
    }
}
