//! `mlx-worker pipeline ...`: start a run from a spec file (and follow it), look at a run, and
//! steer it through the workflow's signals (pause, resume), updates (approve, reject,
//! cancel-step, set-param: the workflow's validator answers at once) and queries.

use std::{io::Write, process::ExitCode};

use serde_json::Value;
use temporalio_client::{
    NamespacedClient, WorkflowExecutionInfo, WorkflowQueryOptions, WorkflowStartOptions,
    errors::WorkflowStartError,
};

use super::{
    CliError, ConnectArgs,
    follow::follow,
    format::now_ms,
    retry::patiently,
    spec_args::SpecArgs,
    steer::{Steer, steer},
    view::{Pipeline, look, status_table},
};
use mlx_pipeline::{Decision, ParamChange, load::parse_value};

use crate::{
    config::DEFAULT_TASK_QUEUE,
    temporal::{PipelineWorkflow, payload::json_input},
};

#[derive(Debug, clap::Args)]
#[command(after_help = super::EXIT_STATUS)]
pub struct PipelineArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[command(subcommand)]
    pub command: PipelineCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum PipelineCommand {
    /// Start a run of a spec file (checked first: exit 2 and nothing started if it is invalid);
    /// prints its workflow id and run id.
    #[command(after_help = super::EXIT_STATUS)]
    Run(RunArgs),
    /// Check a spec file without a server (exit 2 listing every problem) and print the JSON
    /// `PipelineWorkflow` takes, e.g. for `temporal workflow start --input`.
    Check(SpecArgs),
    /// What each step of a run read and wrote (by digest), what ran (plugin, version, component
    /// digest), and which step each read file came from. Reads the provenance records the
    /// workers wrote under the artifacts root; no server needed.
    Lineage {
        /// Workflow id of the run.
        id: String,
        /// The workers' artifacts root (`worker.artifacts_dir`).
        #[arg(long, env = "MLX_ARTIFACTS_DIR", default_value = "artifacts")]
        artifacts_dir: std::path::PathBuf,
        /// The graph as JSON (steps with their records, edges between them).
        #[arg(long)]
        json: bool,
    },
    /// Each step's status, attempt, start, duration and note, and the run's state.
    Status {
        /// Workflow id of the run.
        id: String,
        /// The `status` query's JSON, with running steps' attempts filled in.
        #[arg(long)]
        json: bool,
    },
    /// Hold the run: running steps finish, no new step starts until `resume`.
    Pause {
        /// Workflow id of the run.
        id: String,
    },
    /// Let a paused run go on.
    Resume {
        /// Workflow id of the run.
        id: String,
    },
    /// Approve a step waiting for approval.
    Approve(DecisionArgs),
    /// Reject a step waiting for approval: it fails and its on_failure applies.
    Reject(DecisionArgs),
    /// Cancel a running step (its plugin is told to stop) or one waiting for approval.
    CancelStep(DecisionArgs),
    /// Change a param that no started step has read; prints the old value.
    SetParam {
        /// Workflow id of the run.
        id: String,
        /// A param the spec declares.
        name: String,
        /// JSON if it parses as JSON, otherwise the text itself.
        value: String,
    },
    /// Print a step's output (JSON).
    Output {
        /// Workflow id of the run.
        id: String,
        /// Step id.
        step: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// Workflow id [default: <spec name>-<UTC time>-<random>].
    #[arg(long)]
    pub id: Option<String>,
    /// Task queue the workers poll.
    #[arg(long, env = "MLX_TASK_QUEUE", default_value = DEFAULT_TASK_QUEUE)]
    pub task_queue: String,
    /// Follow the run until it ends: exit status 0 succeeded, 1 failed, 130 cancelled, 69 the
    /// server stayed unreachable (a server that goes away is retried for two minutes).
    #[arg(long)]
    pub wait: bool,
    /// Run every step, whatever `cache` the spec asks for (the results still go to nobody's
    /// cache: a step stores only when it looked up).
    #[arg(long)]
    pub no_cache: bool,
}

#[derive(Debug, clap::Args)]
pub struct DecisionArgs {
    /// Workflow id of the run.
    pub id: String,
    /// Step id.
    pub step: String,
    /// Why, recorded with the decision.
    #[arg(long)]
    pub comment: Option<String>,
    /// Who decides, as the run records it.
    #[arg(long, env = "USER")]
    pub by: Option<String>,
}

impl DecisionArgs {
    fn into_decision(self) -> (String, Decision) {
        let decision = Decision {
            step: self.step,
            by: self.by,
            comment: self.comment,
        };
        (self.id, decision)
    }
}

pub async fn run(args: PipelineArgs) -> Result<ExitCode, CliError> {
    let connect = &args.connect;
    let handle = |id: &str, client: &temporalio_client::Client| {
        client.get_workflow_handle::<PipelineWorkflow>(id.to_string())
    };
    match args.command {
        PipelineCommand::Run(run) => start(connect, run).await,
        PipelineCommand::Check(spec) => {
            let spec = spec.load().await?;
            let json = serde_json::to_string(&spec)
                .map_err(|e| CliError::Local(format!("cannot print the spec: {e}")))?;
            // Piped into `head` or a closed pipe: not an error worth a panic.
            let _ = writeln!(std::io::stdout(), "{json}");
            Ok(ExitCode::SUCCESS)
        }
        PipelineCommand::Lineage {
            id,
            artifacts_dir,
            json,
        } => {
            let graph = crate::lineage::graph(&artifacts_dir, &id).map_err(|e| {
                CliError::Local(format!(
                    "no lineage of {id} under {}: {e}",
                    artifacts_dir.display()
                ))
            })?;
            let text = if json {
                serde_json::to_string_pretty(&graph)
                    .map_err(|e| CliError::Local(format!("cannot print the graph: {e}")))?
            } else {
                crate::lineage::render(&graph)
            };
            let _ = writeln!(std::io::stdout(), "{text}");
            Ok(ExitCode::SUCCESS)
        }
        PipelineCommand::Status { id, json } => {
            let client = connect.client().await?;
            status(&handle(&id, &client), json).await
        }
        PipelineCommand::Pause { id } => told(connect, &id, Steer::Pause).await,
        PipelineCommand::Resume { id } => told(connect, &id, Steer::Resume).await,
        PipelineCommand::Approve(d) => {
            let (id, decision) = d.into_decision();
            told(connect, &id, Steer::Approve(decision)).await
        }
        PipelineCommand::Reject(d) => {
            let (id, decision) = d.into_decision();
            told(connect, &id, Steer::Reject(decision)).await
        }
        PipelineCommand::CancelStep(d) => {
            let (id, decision) = d.into_decision();
            told(connect, &id, Steer::CancelStep(decision)).await
        }
        PipelineCommand::SetParam { id, name, value } => {
            let change = ParamChange {
                name,
                value: parse_value(&value),
            };
            told(connect, &id, Steer::SetParam(change)).await
        }
        PipelineCommand::Output { id, step } => {
            let client = connect.client().await?;
            let handle = handle(&id, &client);
            let output = patiently(|| {
                let (handle, step, id) = (&handle, &step, &id);
                async move {
                    handle
                        .query(
                            PipelineWorkflow::step_output,
                            step.clone(),
                            WorkflowQueryOptions::default(),
                        )
                        .await
                        .map_err(|e| CliError::query(format!("output of `{step}` in `{id}`"), e))
                }
            })
            .await?;
            println!("{}", pretty(&output));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Sends `what` to run `id` and prints what happened.
async fn told(connect: &ConnectArgs, id: &str, what: Steer) -> Result<ExitCode, CliError> {
    let client = connect.client().await?;
    println!("{}", steer(&client, id, what).await?);
    Ok(ExitCode::SUCCESS)
}

async fn start(connect: &ConnectArgs, args: RunArgs) -> Result<ExitCode, CliError> {
    // Checked before connecting: a bad spec is exit 2 whether or not a server is up.
    let mut spec = args.spec.load().await?;
    spec.no_cache |= args.no_cache;
    let generated = args.id.is_none();
    let id = args.id.unwrap_or_else(|| default_id(&spec.name));
    let input = serde_json::to_value(&spec)
        .map(|spec| json_input(&spec))
        .map_err(|e| CliError::Local(format!("encoding the spec: {e}")))?;
    let client = connect.client().await?;
    let tries = std::cell::Cell::new(0u32);
    let run_id = patiently(|| {
        let (client, input, tries) = (client.clone(), input.clone(), &tries);
        let options = WorkflowStartOptions::new(args.task_queue.clone(), id.clone()).build();
        let id = &id;
        async move {
            tries.set(tries.get() + 1);
            match client
                .start_workflow(PipelineWorkflow::run, input, options)
                .await
            {
                Ok(handle) => Ok(handle.run_id().unwrap_or_default().to_string()),
                // An earlier try may have started it before its answer was lost; an id of
                // our own making (random) can only be ours.
                Err(WorkflowStartError::AlreadyStarted {
                    run_id: Some(run_id),
                    ..
                }) if generated && tries.get() > 1 => Ok(run_id),
                Err(WorkflowStartError::AlreadyStarted { .. }) if tries.get() > 1 => {
                    Err(CliError::Usage(format!(
                        "a run with workflow id `{id}` is already running (perhaps started by \
                         this command before the server went away: mlx-worker pipeline status \
                         {id})"
                    )))
                }
                Err(WorkflowStartError::AlreadyStarted { .. }) => Err(CliError::Usage(format!(
                    "a run with workflow id `{id}` is already running"
                ))),
                Err(other) => Err(CliError::temporal(format!("starting `{id}`"), other)),
            }
        }
    })
    .await?;
    println!("workflow id: {id}");
    println!("run id:      {run_id}");
    if !args.wait {
        println!("follow it:   mlx-worker pipeline status {id}");
        return Ok(ExitCode::SUCCESS);
    }
    // This run, not whichever run of the id is latest when we look.
    let this_run = WorkflowExecutionInfo::builder()
        .namespace(client.namespace())
        .workflow_id(id)
        .run_id(run_id)
        .build();
    follow(&Pipeline::new(client, this_run)).await
}

/// `<name>-<UTC time>-<6 hex>`: sorts by start time, readable, and two starts in one second
/// do not collide.
fn default_id(name: &str) -> String {
    let time = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{name}-{time}-{}", &random[..6])
}

async fn status(handle: &Pipeline, json: bool) -> Result<ExitCode, CliError> {
    let id = &handle.info().workflow_id;
    let snapshot = patiently(|| look(handle)).await?;
    let status = snapshot.status?;
    if json {
        println!(
            "{}",
            pretty(&serde_json::to_value(&status).unwrap_or_default())
        );
    } else {
        println!("workflow {id} (run {})", snapshot.run_id);
        print!("{}", status_table(&status, now_ms()));
    }
    Ok(ExitCode::SUCCESS)
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ids_start_with_the_pipeline_name_and_differ() {
        let a = default_id("train");
        let b = default_id("train");
        assert!(a.starts_with("train-20"), "{a}");
        assert_eq!(a.len(), "train-20261126T160724Z-3f2a9c".len(), "{a}");
        assert_ne!(a, b);
    }
}
