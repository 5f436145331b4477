//! What a person can tell a running pipeline, for `pipeline pause|resume|approve|reject|
//! cancel-step|set-param` and the web page's buttons alike: pause and resume are signals (they
//! queue even while no worker runs); the rest are updates, so the workflow's validator answers
//! at once and a refusal carries its reason. Every try of one request carries one id, so a
//! retry after a lost answer is applied once.

use temporalio_client::{
    Client, WorkflowExecuteUpdateOptions, WorkflowSignalOptions,
    errors::{WorkflowInteractionError, WorkflowUpdateError},
};

use super::{CliError, retry::patiently};
use mlx_pipeline::{Decision, ParamChange};

use crate::temporal::PipelineWorkflow;

#[derive(Debug, Clone)]
pub enum Steer {
    Pause,
    Resume,
    Approve(Decision),
    Reject(Decision),
    CancelStep(Decision),
    SetParam(ParamChange),
}

impl Steer {
    /// As the command line names it.
    pub fn name(&self) -> &'static str {
        match self {
            Steer::Pause => "pause",
            Steer::Resume => "resume",
            Steer::Approve(_) => "approve",
            Steer::Reject(_) => "reject",
            Steer::CancelStep(_) => "cancel-step",
            Steer::SetParam(_) => "set-param",
        }
    }
}

/// Sends `steer` to run `id`, retrying while the server is unreachable. Returns what happened,
/// as one line for a person: `pause sent to `ID``, `step `gate`: approved`, `param `x`: 1 -> 2`.
pub async fn steer(client: &Client, id: &str, steer: Steer) -> Result<String, CliError> {
    let handle = client.get_workflow_handle::<PipelineWorkflow>(id.to_string());
    let what = steer.name();
    match steer {
        Steer::Pause | Steer::Resume => {
            let pause = matches!(steer, Steer::Pause);
            let request_id = uuid::Uuid::new_v4().to_string();
            patiently(|| {
                let handle = &handle;
                let options = WorkflowSignalOptions::builder()
                    .request_id(request_id.clone())
                    .build();
                async move {
                    let sent = if pause {
                        handle.signal(PipelineWorkflow::pause, (), options).await
                    } else {
                        handle.signal(PipelineWorkflow::resume, (), options).await
                    };
                    sent.map_err(|e| match e {
                        // Also a run that has already closed: the server's message says which.
                        WorkflowInteractionError::NotFound(status) => {
                            CliError::temporal(format!("{what} `{id}`"), status.message())
                        }
                        other => CliError::temporal(format!("{what} `{id}`"), other),
                    })
                }
            })
            .await?;
            Ok(format!("{what} sent to `{id}`"))
        }
        Steer::SetParam(change) => {
            let (name, new) = (change.name.clone(), change.value.clone());
            let options = once_only();
            let old = patiently(|| {
                let (handle, change, options) = (&handle, change.clone(), options.clone());
                async move {
                    handle
                        .execute_update(PipelineWorkflow::set_param, change, options)
                        .await
                        .map_err(|e| update_error(id, what, e))
                }
            })
            .await?;
            Ok(format!("param `{name}`: {old} -> {new}"))
        }
        Steer::Approve(decision) | Steer::Reject(decision) | Steer::CancelStep(decision) => {
            let step = decision.step.clone();
            let options = once_only();
            let now = patiently(|| {
                let (handle, decision, options) = (&handle, decision.clone(), options.clone());
                async move {
                    let answer = match what {
                        "approve" => {
                            handle
                                .execute_update(PipelineWorkflow::approve, decision, options)
                                .await
                        }
                        "reject" => {
                            handle
                                .execute_update(PipelineWorkflow::reject, decision, options)
                                .await
                        }
                        _ => {
                            handle
                                .execute_update(PipelineWorkflow::cancel_step, decision, options)
                                .await
                        }
                    };
                    answer.map_err(|e| update_error(id, what, e))
                }
            })
            .await?;
            Ok(format!("step `{step}`: {now}"))
        }
    }
}

/// Options for an update that a retry must not apply twice: every try carries the same update
/// id, and the server answers a repeated one with the first one's outcome.
fn once_only() -> WorkflowExecuteUpdateOptions {
    WorkflowExecuteUpdateOptions::builder()
        .update_id(uuid::Uuid::new_v4().to_string())
        .build()
}

/// A validator's refusal is the workflow's answer to a wrong request (exit 2, its reason
/// printed); anything else is a failure to ask.
fn update_error(id: &str, what: &str, e: WorkflowUpdateError) -> CliError {
    match e {
        WorkflowUpdateError::Failed(failure) => CliError::Refused {
            workflow: id.to_string(),
            what: what.to_string(),
            reason: failure.message.clone(),
        },
        // Also a run that has already closed: the server's message says which.
        WorkflowUpdateError::NotFound(status) => {
            CliError::temporal(format!("{what} on `{id}`"), status.message())
        }
        other => CliError::temporal(format!("{what} on `{id}`"), other),
    }
}
