//! `pipeline run --wait`: look at the run every half second until it closes, showing each
//! look ([`Progress`]), then report how it ended as the exit status. Only the run's own end
//! decides it: a server that cannot be reached is waited for ([`patiently`]).

use std::{process::ExitCode, time::Duration};

use temporalio_client::{WorkflowGetResultOptions, errors::WorkflowGetResultError};

use super::{
    CliError,
    format::now_ms,
    progress::Progress,
    retry::patiently,
    view::{Pipeline, look},
};

/// How often the run is looked at.
const POLL: Duration = Duration::from_millis(500);
/// Exit status when the run was cancelled, or watching was (as for a process stopped by
/// SIGINT).
const CANCELLED: u8 = 130;

/// Shows the run until it closes, then its outcome. Ctrl-C stops watching, not the run.
pub async fn follow(handle: &Pipeline) -> Result<ExitCode, CliError> {
    let id = handle.info().workflow_id.clone();
    let mut progress = Progress::for_stdout();
    let mut ticks = tokio::time::interval(POLL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        tokio::select! {
            _ = &mut interrupted => {
                progress.finish();
                println!("stopped watching; the run goes on: mlx-worker pipeline status {id}");
                return Ok(ExitCode::from(CANCELLED));
            }
            _ = ticks.tick() => {}
        }
        // Described before queried: once closed, the query shows the final state.
        // A server that goes away for a while is waited for (said on stderr); the run goes on
        // without us.
        let snapshot = patiently(|| look(handle)).await?;
        match &snapshot.status {
            Ok(status) => progress.show(status, now_ms()),
            // Most often nothing polls the run's task queue (or a different one was meant);
            // a run that cannot go on closes, and its outcome says why.
            Err(_) if !snapshot.is_closed() => progress.unanswered(&format!(
                "no answer to the status query yet: is a worker polling task queue `{}`?",
                snapshot.task_queue
            )),
            Err(_) => {}
        }
        if snapshot.is_closed() {
            progress.finish();
            return patiently(|| outcome(handle)).await;
        }
    }
}

async fn outcome(handle: &Pipeline) -> Result<ExitCode, CliError> {
    let id = &handle.info().workflow_id;
    match handle.get_result(WorkflowGetResultOptions::default()).await {
        Ok(_) => {
            println!("pipeline succeeded (workflow {id})");
            Ok(ExitCode::SUCCESS)
        }
        Err(WorkflowGetResultError::Failed(e)) => {
            println!("pipeline failed: {}", e.failure().message);
            Ok(ExitCode::FAILURE)
        }
        Err(WorkflowGetResultError::Cancelled { .. }) => {
            println!("pipeline cancelled (workflow {id})");
            Ok(ExitCode::from(CANCELLED))
        }
        Err(e) if e.is_workflow_outcome() => {
            println!("pipeline did not finish: {e}");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(CliError::temporal(format!("result of `{id}`"), e)),
    }
}
