//! `mlx-worker schedule ...`: Temporal Schedules whose action starts `PipelineWorkflow` with a
//! spec. The server keeps the timetable, starts each run (workflow id = schedule id + the
//! scheduled time), skips a start while the previous run still runs (the server's default
//! overlap policy), and survives any client or worker going away.

use std::{process::ExitCode, time::Duration};

use futures::StreamExt;
use serde_json::Value;
use temporalio_client::{
    Client, RpcOptions, WorkflowDescribeOptions, WorkflowExecutionStatus,
    schedules::{
        CreateScheduleOptions, DeleteScheduleOptions, ListSchedulesOptions, ScheduleAction,
        ScheduleDescription, ScheduleDescriptionAction, ScheduleError, ScheduleSpec,
    },
    tonic::Code,
};
use temporalio_common::protos::{
    proto_ts_to_system_time, temporal::api::schedule::v1 as schedule_v1,
};

use super::{
    CliError, ConnectArgs,
    format::{clock, millis, parse_duration, table},
    retry::{self, patiently},
    schedule_spec::summarize,
    spec_args::SpecArgs,
};
use crate::{
    config::DEFAULT_TASK_QUEUE,
    temporal::{PipelineWorkflow, payload::json_input},
};

/// The workflow type a pipeline schedule starts; `list` shows only these.
const WORKFLOW_TYPE: &str = "PipelineWorkflow";

#[derive(Debug, clap::Args)]
#[command(after_help = super::EXIT_STATUS)]
pub struct ScheduleArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[command(subcommand)]
    pub command: ScheduleCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum ScheduleCommand {
    /// Create a schedule that starts a pipeline run on a cron expression or at an interval
    /// (the spec is checked first: exit 2 and nothing created if it is invalid).
    Create(CreateArgs),
    /// Schedules that start pipelines: id, times, next run, paused.
    List,
    /// A schedule's times, its pipeline, recent runs (with their workflow ids) and next runs.
    Describe { schedule_id: String },
    /// Delete a schedule; runs it already started go on.
    Delete { schedule_id: String },
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Schedule id; also the prefix of the workflow ids of the runs it starts.
    pub schedule_id: String,
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub when: When,
    /// Task queue the workers poll.
    #[arg(long, env = "MLX_TASK_QUEUE", default_value = DEFAULT_TASK_QUEUE)]
    pub task_queue: String,
    /// Create it paused (`temporal schedule toggle` unpauses it).
    #[arg(long)]
    pub paused: bool,
}

#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct When {
    /// Cron expression (UTC), e.g. "0 3 * * *" or "*/15 * * * *".
    #[arg(long)]
    pub cron: Option<String>,
    /// Interval: 30s, 5m, 1h, 1h30m, 1d.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub every: Option<Duration>,
}

pub async fn run(args: ScheduleArgs) -> Result<ExitCode, CliError> {
    match args.command {
        ScheduleCommand::Create(create_args) => create(&args.connect, create_args).await,
        ScheduleCommand::List => {
            let client = args.connect.client().await?;
            patiently(|| list(&client)).await
        }
        ScheduleCommand::Describe { schedule_id } => {
            let client = args.connect.client().await?;
            patiently(|| describe(&client, &schedule_id)).await
        }
        ScheduleCommand::Delete { schedule_id } => {
            let client = args.connect.client().await?;
            let tries = std::cell::Cell::new(0u32);
            patiently(|| {
                let (client, id, tries) = (&client, &schedule_id, &tries);
                async move {
                    tries.set(tries.get() + 1);
                    match client
                        .get_schedule_handle(id)
                        .delete(DeleteScheduleOptions::default())
                        .await
                        .map_err(|e| schedule_error(id, "deleting", e))
                    {
                        // An earlier try deleted it before its answer was lost.
                        Err(CliError::NotFound(_)) if tries.get() > 1 => Ok(()),
                        done => done,
                    }
                }
            })
            .await?;
            println!("deleted schedule `{schedule_id}`");
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn create(connect: &ConnectArgs, args: CreateArgs) -> Result<ExitCode, CliError> {
    let spec = args.spec.load().await?;
    let input = serde_json::to_value(&spec)
        .map(|spec| json_input(&spec))
        .map_err(|e| CliError::Local(format!("encoding the spec: {e}")))?;
    let times = match (&args.when.cron, args.when.every) {
        (Some(cron), _) => ScheduleSpec::builder()
            .cron_strings(vec![cron.clone()])
            .build(),
        (None, Some(every)) => ScheduleSpec::from_interval(every),
        (None, None) => return Err(CliError::Usage("give --cron or --every".into())),
    };
    let id = &args.schedule_id;
    let client = connect.client().await?;
    let options = CreateScheduleOptions::builder()
        .action(ScheduleAction::start_workflow(
            PipelineWorkflow::run,
            input,
            args.task_queue.clone(),
            id.clone(),
        ))
        .spec(times)
        .paused(args.paused)
        .build();
    let tries = std::cell::Cell::new(0u32);
    patiently(|| {
        let (client, options, tries) = (&client, options.clone(), &tries);
        async move {
            tries.set(tries.get() + 1);
            match client.create_schedule(id.clone(), options).await {
                Ok(_) => Ok(()),
                Err(e) => match schedule_error(id, "creating", e) {
                    CliError::Usage(_) if tries.get() > 1 => Err(CliError::Usage(format!(
                        "schedule `{id}` already exists (perhaps created by this command before \
                         the server went away: mlx-worker schedule describe {id})"
                    ))),
                    e => Err(e),
                },
            }
        }
    })
    .await?;
    let handle = client.get_schedule_handle(id);
    let description = patiently(|| async {
        handle
            .describe(RpcOptions::default())
            .await
            .map_err(|e| schedule_error(id, "describing", e))
    })
    .await?;
    println!(
        "created schedule `{id}`: {}; starts pipeline `{}` on task queue {}",
        summarize(&spec_of(&description)),
        spec.name,
        args.task_queue
    );
    println!("next run:  {}", next_runs(&description, 1));
    Ok(ExitCode::SUCCESS)
}

async fn list(client: &Client) -> Result<ExitCode, CliError> {
    let mut schedules = client.list_schedules(ListSchedulesOptions::default());
    let mut rows = Vec::new();
    while let Some(entry) = schedules.next().await {
        let entry = entry.map_err(|e| CliError::temporal("listing schedules", e))?;
        if entry.workflow_type() != Some(WORKFLOW_TYPE) {
            continue;
        }
        let times = entry.raw().info.as_ref().and_then(|i| i.spec.clone());
        let next = entry
            .future_action_times()
            .first()
            .map(|t| clock(millis(*t)));
        rows.push(vec![
            entry.schedule_id().to_string(),
            times.as_ref().map(summarize).unwrap_or_default(),
            next.unwrap_or_else(|| "-".into()),
            yes_no(entry.paused()).into(),
        ]);
    }
    rows.sort();
    if rows.is_empty() {
        println!("no pipeline schedules");
    } else {
        print!(
            "{}",
            table(&["SCHEDULE", "TIMES", "NEXT RUN", "PAUSED"], &rows)
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn describe(client: &Client, id: &str) -> Result<ExitCode, CliError> {
    let description = client
        .get_schedule_handle(id)
        .describe(RpcOptions::default())
        .await
        .map_err(|e| schedule_error(id, "describing", e))?;
    let action = match description.action() {
        ScheduleDescriptionAction::StartWorkflow(action) => action,
        _ => {
            return Err(CliError::Usage(format!(
                "schedule `{id}` does not start a workflow"
            )));
        }
    };
    let spec: Option<Value> = action.args().await.ok().flatten();
    let pipeline = spec
        .as_ref()
        .and_then(|s| s["name"].as_str())
        .unwrap_or("?");
    println!("schedule `{id}`");
    println!("times:     {}", summarize(&spec_of(&description)));
    let paused = match description.note() {
        Some(note) => format!("{} ({note})", yes_no(description.paused())),
        None => yes_no(description.paused()).into(),
    };
    println!("paused:    {paused}");
    println!(
        "starts:    {} `{pipeline}` on task queue {}, workflow ids {}-<time>",
        action.workflow_type(),
        action.task_queue(),
        action.workflow_id()
    );
    if let Some(params) = spec.as_ref().and_then(|s| s["params"].as_object())
        && !params.is_empty()
    {
        let params: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("params:    {}", params.join(" "));
    }
    println!(
        "runs:      {} started, {} skipped while one was running",
        description.action_count(),
        description.overlap_skipped()
    );
    if let Some(runs) = recent_runs(client, &description).await {
        println!("recent runs:");
        print!("{}", indent(&runs));
    }
    println!("next runs: {}", next_runs(&description, 3));
    Ok(ExitCode::SUCCESS)
}

/// The runs the schedule started lately, oldest first, each with its status now.
async fn recent_runs(client: &Client, description: &ScheduleDescription) -> Option<String> {
    let info = description.raw().info.as_ref()?;
    let mut rows = Vec::new();
    // Read from the proto: the client's accessor panics on an action that started no workflow.
    for action in &info.recent_actions {
        let Some(run) = &action.start_workflow_result else {
            continue;
        };
        let status = client
            .get_workflow_handle::<PipelineWorkflow>(run.workflow_id.clone())
            .describe(WorkflowDescribeOptions::default())
            .await
            .map_or("unknown", |d| execution_name(d.status()));
        let started = action
            .actual_time
            .as_ref()
            .and_then(proto_ts_to_system_time);
        rows.push(vec![
            started.map(|t| clock(millis(t))).unwrap_or_default(),
            run.workflow_id.clone(),
            status.to_string(),
        ]);
    }
    (!rows.is_empty()).then(|| table(&["STARTED", "WORKFLOW ID", "STATUS"], &rows))
}

fn spec_of(description: &ScheduleDescription) -> schedule_v1::ScheduleSpec {
    description
        .raw()
        .schedule
        .as_ref()
        .and_then(|s| s.spec.clone())
        .unwrap_or_default()
}

fn next_runs(description: &ScheduleDescription, n: usize) -> String {
    let times: Vec<String> = description
        .future_action_times()
        .into_iter()
        .take(n)
        .map(|t| clock(millis(t)))
        .collect();
    if times.is_empty() {
        if description.paused() {
            "none while paused".into()
        } else {
            "none".into()
        }
    } else {
        times.join(", ")
    }
}

fn schedule_error(id: &str, doing: &str, e: ScheduleError) -> CliError {
    let ScheduleError::Rpc(status) = &e else {
        return CliError::temporal(format!("{doing} schedule `{id}`"), e);
    };
    if retry::is_unreachable(&e) {
        return CliError::temporal(format!("{doing} schedule `{id}`"), e);
    }
    match status.code() {
        Code::NotFound => CliError::NotFound(format!("schedule `{id}`")),
        Code::AlreadyExists => CliError::Usage(format!("schedule `{id}` already exists")),
        // The server checks cron expressions and intervals.
        Code::InvalidArgument => CliError::Usage(format!("schedule `{id}`: {}", status.message())),
        _ => CliError::temporal(format!("{doing} schedule `{id}`"), status.message()),
    }
}

fn execution_name(status: WorkflowExecutionStatus) -> &'static str {
    match status {
        WorkflowExecutionStatus::Running => "running",
        WorkflowExecutionStatus::Completed => "completed",
        WorkflowExecutionStatus::Failed => "failed",
        WorkflowExecutionStatus::Canceled => "cancelled",
        WorkflowExecutionStatus::Terminated => "terminated",
        WorkflowExecutionStatus::ContinuedAsNew => "continued as new",
        WorkflowExecutionStatus::TimedOut => "timed out",
        WorkflowExecutionStatus::Paused => "paused",
        _ => "unknown",
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}
