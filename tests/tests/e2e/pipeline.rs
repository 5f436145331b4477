//! `PipelineWorkflow` on real parts: the shared dev server, the worker in process, the testkit
//! component. Ordering, parallelism, retries and failures are asserted on workflow history;
//! human steering through the real signal/update/query round trips. Steps that must be running
//! while the test acts are testkit `wait_for_file` steps ([`held`]): they run until the test
//! releases them, however slow the machine. Every history is replayed against the current
//! workflow code at the end of its test (determinism), and with `MLX_RECORD_HISTORIES=1` saved
//! under `tests/histories/` for the replay test.

use std::time::Duration;

use mlx_e2e::{
    PluginsDir, TestWorker, WorkerProcess, events, eventually, find, pending_heartbeat,
    shared_server, unique, workspace_root,
};
use mlx_pipeline::{Decision, ParamChange, PipelineStatus, RunState, StepStatus};
use mlx_worker::temporal::PipelineWorkflow;
use serde_json::{Value, json};
use temporalio_client::{
    Client, WorkflowCancelOptions, WorkflowExecuteUpdateOptions, WorkflowFetchHistoryOptions,
    WorkflowGetResultOptions, WorkflowHandle, WorkflowQueryOptions, WorkflowSignalOptions,
    WorkflowStartOptions,
};
use temporalio_sdk::workflow_replayer::{WorkflowReplayer, WorkflowReplayerOptions};

pub(crate) type Pipeline = WorkflowHandle<Client, PipelineWorkflow>;

pub(crate) async fn setup() -> anyhow::Result<(TestWorker, Client, PluginsDir)> {
    let server = shared_server().await?;
    let plugins = PluginsDir::with(&["testkit"]);
    let worker = TestWorker::start(server, plugins.path()).await?;
    let client = server.client().await?;
    Ok((worker, client, plugins))
}

pub(crate) async fn start(
    client: &Client,
    worker: &TestWorker,
    id: &str,
    spec: Value,
) -> anyhow::Result<Pipeline> {
    client
        .start_workflow(
            PipelineWorkflow::run,
            mlx_worker::temporal::payload::json_input(&spec),
            WorkflowStartOptions::new(worker.task_queue.clone(), id.to_string()).build(),
        )
        .await?;
    Ok(client.get_workflow_handle::<PipelineWorkflow>(id))
}

pub(crate) async fn status(handle: &Pipeline) -> anyhow::Result<PipelineStatus> {
    Ok(handle
        .query(
            PipelineWorkflow::status,
            (),
            WorkflowQueryOptions::default(),
        )
        .await?)
}

pub(crate) fn step<'a>(status: &'a PipelineStatus, id: &str) -> &'a mlx_pipeline::StepState {
    status
        .steps
        .iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("no step {id} in {status:#?}"))
}

pub(crate) async fn wait_for_step(
    handle: &Pipeline,
    id: &str,
    want: StepStatus,
) -> anyhow::Result<()> {
    eventually(
        Duration::from_secs(60),
        &format!("step {id} {want:?}"),
        || async {
            let status = status(handle).await.ok()?;
            (step(&status, id).status == want).then_some(())
        },
    )
    .await
}

/// `(activity id, event type)` of every activity event, in history order.
pub(crate) fn activity_timeline(events_: &[Value]) -> Vec<(String, String)> {
    let mut scheduled = std::collections::BTreeMap::new();
    let mut timeline = Vec::new();
    for event in events_ {
        let attributes = &event["attributes"];
        if let Some(a) = attributes.get("ActivityTaskScheduledEventAttributes") {
            let activity = a["activity_id"].as_str().unwrap_or_default().to_string();
            scheduled.insert(event["event_id"].as_i64(), activity.clone());
            timeline.push((activity, "scheduled".to_string()));
        }
        for (key, kind) in [
            ("ActivityTaskCompletedEventAttributes", "completed"),
            ("ActivityTaskFailedEventAttributes", "failed"),
            ("ActivityTaskCanceledEventAttributes", "cancelled"),
        ] {
            if let Some(a) = attributes.get(key) {
                let of = scheduled[&a["scheduled_event_id"].as_i64()].clone();
                timeline.push((of, kind.to_string()));
            }
        }
    }
    timeline
}

fn position(timeline: &[(String, String)], id: &str, kind: &str) -> usize {
    timeline
        .iter()
        .position(|(a, k)| a == id && k == kind)
        .unwrap_or_else(|| panic!("no {kind} of {id} in {timeline:?}"))
}

pub(crate) async fn history_json(handle: &Pipeline) -> anyhow::Result<Vec<u8>> {
    Ok(handle
        .fetch_history(WorkflowFetchHistoryOptions::default())
        .to_json()
        .await?)
}

pub(crate) fn history_events(json: &[u8]) -> Vec<Value> {
    let history: Value = serde_json::from_slice(json).expect("history JSON");
    history["events"].as_array().cloned().unwrap_or_default()
}

/// Replays a finished history against this build's workflow code (and records it when asked).
pub(crate) async fn replay(name: &str, json: &[u8]) -> anyhow::Result<()> {
    if std::env::var_os("MLX_RECORD_HISTORIES").is_some() {
        let dir = workspace_root().join("tests/histories");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("{name}.json")), json)?;
    }
    let replayer = WorkflowReplayer::new(
        WorkflowReplayerOptions::new()
            .register_workflow::<PipelineWorkflow>()?
            .build(),
    )?;
    replayer
        .replay_workflow(temporalio_client::WorkflowHistory::from_json(json)?)
        .await
        .map_err(|e| anyhow::anyhow!("replaying {name}: {e:?}"))
}

pub(crate) fn echo(id: &str, deps: &[&str], input: Value) -> Value {
    json!({"id": id, "plugin": "testkit", "operation": "echo", "depends_on": deps, "input": input})
}

/// Runs, heartbeating, until the test [`release`]s it, then returns what the test wrote as
/// `content`: a step that is surely running while the test acts, on any machine.
fn held(id: &str, deps: &[&str]) -> Value {
    json!({"id": id, "plugin": "testkit", "operation": "wait_for_file",
           "depends_on": deps, "input": {"path": format!("/artifacts/release-{id}")},
           "timeouts": {"start_to_close_secs": 300, "heartbeat_secs": 10}})
}

/// Ends the [`held`] step `step` of pipeline `workflow`: it returns `content`.
fn release(worker: &TestWorker, workflow: &str, step: &str, content: &str) {
    mlx_e2e::release(
        worker.artifacts.path(),
        workflow,
        &format!("release-{step}"),
        content,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn steps_run_in_dependency_order_in_parallel_and_conditions_skip() -> anyhow::Result<()> {
    let (worker, client, _plugins) = setup().await?;
    let spec = json!({
        "name": "diamond",
        "params": {"n": 3, "limit": 10},
        "steps": [
            echo("a", &[], json!({"n": "${params.n}"})),
            held("b", &["a"]),
            held("c", &["a"]),
            echo("d", &["b", "c"], json!({"from_a": "${steps.a.output.input.n}",
                                          "from_b": "${steps.b.output.content}"})),
            {"id": "big", "plugin": "testkit", "operation": "echo", "depends_on": ["a"],
             "when": "steps.a.output.input.n > params.limit"},
            echo("after_big", &["big"], json!({}))
        ]
    });
    let id = unique("pipeline-diamond");
    let handle = start(&client, &worker, &id, spec).await?;
    // b and c overlap: both run before either is released.
    wait_for_step(&handle, "b", StepStatus::Running).await?;
    wait_for_step(&handle, "c", StepStatus::Running).await?;
    release(&worker, &id, "b", "b done");
    release(&worker, &id, "c", "c done");
    let result = handle
        .get_result(WorkflowGetResultOptions::default())
        .await?;

    let steps = &result["steps"];
    assert_eq!(
        steps["d"]["output"]["input"],
        json!({"from_a": 3, "from_b": "b done"})
    );
    assert_eq!(steps["big"]["status"], "skipped", "{result:#}");
    assert_eq!(steps["after_big"]["status"], "skipped", "{result:#}");

    let json = history_json(&handle).await?;
    let timeline = activity_timeline(&history_events(&json));
    let at = |id, kind| position(&timeline, id, kind);
    assert!(at("a", "completed") < at("b", "scheduled"), "{timeline:?}");
    // b and c overlap: both are scheduled before either completes.
    for later in ["b", "c"] {
        for first in ["b", "c"] {
            assert!(
                at(later, "scheduled") < at(first, "completed"),
                "{timeline:?}"
            );
        }
    }
    assert!(at("b", "completed") < at("d", "scheduled"), "{timeline:?}");
    assert!(at("c", "completed") < at("d", "scheduled"), "{timeline:?}");
    assert!(!timeline.iter().any(|(id, _)| id == "big"), "{timeline:?}");

    let status = status(&handle).await?;
    assert_eq!(status.state, RunState::Succeeded);
    let d = step(&status, "d");
    assert_eq!(d.attempt, Some(1));
    assert!(d.started_at_ms.unwrap() <= d.ended_at_ms.unwrap());
    assert_eq!(d.output_ref.as_deref(), Some("step_output:d"));
    let output = handle
        .query(
            PipelineWorkflow::step_output,
            "b".to_string(),
            WorkflowQueryOptions::default(),
        )
        .await?;
    assert_eq!(output["content"], "b done", "{output:#}");
    assert_eq!(output["path"], "/artifacts/release-b", "{output:#}");
    assert!(
        step(&status, "big")
            .note
            .as_ref()
            .unwrap()
            .contains("is false")
    );

    replay("diamond", &json).await?;
    worker.stop().await
}

/// Fails twice, then succeeds: attempts 1 s and 2 s apart, retried by the server.
#[tokio::test(flavor = "multi_thread")]
async fn a_failing_step_is_retried_with_backoff() -> anyhow::Result<()> {
    let (worker, client, _plugins) = setup().await?;
    let spec = json!({
        "name": "retry",
        "steps": [{"id": "flaky", "plugin": "testkit", "operation": "checkpoint",
                   "input": {"steps": 1, "fail_attempts": 2},
                   "retry": {"initial_interval_secs": 1, "backoff_coefficient": 2,
                             "max_attempts": 5}}]
    });
    let retry = start(&client, &worker, &unique("pipeline-retry"), spec).await?;
    let result = retry
        .get_result(WorkflowGetResultOptions::default())
        .await?;
    assert_eq!(result["steps"]["flaky"]["output"]["attempt"], 3);
    let json = history_json(&retry).await?;
    let events_ = history_events(&json);
    let scheduled = events(&events_, "ActivityTaskScheduled");
    assert_eq!(
        scheduled.len(),
        1,
        "server-side retries: one scheduled event"
    );
    let policy = &scheduled[0]["retry_policy"];
    assert_eq!(policy["backoffCoefficient"], 2.0, "{policy:#}");
    assert_eq!(policy["initialInterval"], "1.000000000s", "{policy:#}");
    let started = events(&events_, "ActivityTaskStarted");
    assert_eq!(started[0]["attempt"], 3, "{started:#?}");
    let last_failure = find(&started[0]["last_failure"], "message").unwrap();
    assert!(last_failure.as_str().unwrap().contains("attempt 2 fails"));
    // The backoff shows in event times: 1 s + 2 s between scheduling and the third start.
    let time = |kind: &str| -> f64 {
        let event = events_
            .iter()
            .find(|e| e["attributes"].get(kind).is_some())
            .unwrap();
        chrono_seconds(event["event_time"].as_str().unwrap())
    };
    let waited =
        time("ActivityTaskStartedEventAttributes") - time("ActivityTaskScheduledEventAttributes");
    assert!(
        waited >= 3.0,
        "retries 1 s then 2 s apart, waited {waited} s"
    );
    let flaky = status(&retry).await?;
    assert_eq!(step(&flaky, "flaky").attempt, Some(3));
    replay("retry", &json).await?;
    worker.stop().await
}

/// A failing step that permanently fails with `message` and `on_failure`.
fn fail(id: &str, on_failure: Value) -> Value {
    json!({"id": id, "plugin": "testkit", "operation": "fail",
           "input": {"kind": "permanent", "type_name": "Broken", "message": "it broke"},
           "on_failure": on_failure})
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_marked_continue_lets_the_run_go_on() -> anyhow::Result<()> {
    let (worker, client, _plugins) = setup().await?;
    let spec = json!({
        "name": "continue",
        "steps": [
            fail("optional", json!("continue")),
            echo("plain", &["optional"], json!({})),
            {"id": "report", "plugin": "testkit", "operation": "echo",
             "depends_on": ["optional"], "when": "steps.optional.status == 'failed'",
             "input": {"saw": "${steps.optional.status}"}}
        ]
    });
    let continuing = start(&client, &worker, &unique("pipeline-continue"), spec).await?;
    let result = continuing
        .get_result(WorkflowGetResultOptions::default())
        .await?;
    assert_eq!(result["steps"]["optional"]["status"], "failed");
    assert!(
        result["steps"]["optional"]["note"]
            .as_str()
            .unwrap()
            .contains("Broken: it broke"),
        "{result:#}"
    );
    assert_eq!(result["steps"]["plain"]["status"], "skipped");
    assert_eq!(
        result["steps"]["report"]["output"]["input"]["saw"],
        "failed"
    );
    // A non-retryable failure still says how many attempts it took.
    assert_eq!(
        step(&status(&continuing).await?, "optional").attempt,
        Some(1)
    );
    replay("continue", &history_json(&continuing).await?).await?;
    worker.stop().await
}

/// `made` is still running when `publish` fails (the test holds it until then): the
/// compensation waits for it, and sees its final output.
#[tokio::test(flavor = "multi_thread")]
async fn a_failure_compensates_after_the_running_steps_finish() -> anyhow::Result<()> {
    let (worker, client, _plugins) = setup().await?;
    let spec = json!({
        "name": "compensate",
        "steps": [
            held("made", &[]),
            fail("publish", json!({"compensate": "undo"})),
            echo("never", &["publish"], json!({}))
        ],
        "compensations": [echo("undo", &[], json!({"after": "${steps.made.output.content}"}))]
    });
    let id = unique("pipeline-compensate");
    let compensating = start(&client, &worker, &id, spec).await?;
    wait_for_step(&compensating, "publish", StepStatus::Failed).await?;
    let failing = status(&compensating).await?;
    assert_eq!(failing.state, RunState::Failing);
    assert_eq!(step(&failing, "made").status, StepStatus::Running);
    assert_eq!(step(&failing, "undo").status, StepStatus::Pending);
    release(&worker, &id, "made", "made's final output");

    let err = compensating
        .get_result(WorkflowGetResultOptions::default())
        .await
        .expect_err("the pipeline fails after compensating");
    let text = format!("{err:?}");
    assert!(text.contains("step `publish` failed"), "{text}");
    let status = status(&compensating).await?;
    assert_eq!(status.state, RunState::Failed);
    assert_eq!(step(&status, "undo").status, StepStatus::Succeeded);
    assert_eq!(step(&status, "never").status, StepStatus::Pending);
    let undo = compensating
        .query(
            PipelineWorkflow::step_output,
            "undo".to_string(),
            WorkflowQueryOptions::default(),
        )
        .await?;
    assert_eq!(
        undo["input"]["after"], "made's final output",
        "undo saw made's final output"
    );
    let json = history_json(&compensating).await?;
    let timeline = activity_timeline(&history_events(&json));
    let at = |id, kind| position(&timeline, id, kind);
    assert!(
        at("publish", "failed") < at("made", "completed"),
        "{timeline:?}"
    );
    assert!(
        at("made", "completed") < at("undo", "scheduled"),
        "{timeline:?}"
    );
    // Failed once, non-retryably: a failed pipeline is not retried as a whole.
    let events_ = history_events(&json);
    let failed = events(&events_, "WorkflowExecutionFailed");
    assert_eq!(failed.len(), 1);
    assert_eq!(
        find(&failed[0]["failure"], "nonRetryable"),
        Some(&json!(true))
    );
    replay("compensate", &json).await?;
    worker.stop().await
}

/// RFC 3339 UTC timestamp (as history JSON has them) to seconds, fraction kept.
fn chrono_seconds(text: &str) -> f64 {
    // 2026-11-26T16:07:24.123456789Z: only differences matter, so time of day is enough
    // (the tests run for minutes, and never across midnight UTC in one retry).
    let time = text.split('T').nth(1).unwrap().trim_end_matches('Z');
    let mut parts = time.split(':');
    let h: f64 = parts.next().unwrap().parse().unwrap();
    let m: f64 = parts.next().unwrap().parse().unwrap();
    let s: f64 = parts.next().unwrap().parse().unwrap();
    h * 3600.0 + m * 60.0 + s
}

pub(crate) fn decision(step: &str) -> Decision {
    Decision {
        step: step.into(),
        by: Some("ana".into()),
        comment: Some("checked the metrics".into()),
    }
}

async fn update_error<T: std::fmt::Debug>(
    result: Result<T, temporalio_client::errors::WorkflowUpdateError>,
) -> String {
    format!("{:?}", result.expect_err("the update is refused"))
}

/// Trains (an echo), then waits for a person's approval when the accuracy clears the
/// threshold, then registers with the label param.
fn gated() -> Value {
    json!({
        "name": "gated",
        "params": {"threshold": 0.9, "label": "v1"},
        "steps": [
            echo("train", &[], json!({"accuracy": 0.95})),
            {"id": "approve", "type": "approval", "depends_on": ["train"],
             "when": "steps.train.output.input.accuracy >= params.threshold"},
            echo("register", &["approve"], json!({"label": "${params.label}"}))
        ]
    })
}

fn change(name: &str, value: Value) -> ParamChange {
    ParamChange {
        name: name.into(),
        value,
    }
}

/// Refused: unknown param, wrong type, a param already read; and approving a wrong step.
#[tokio::test(flavor = "multi_thread")]
async fn updates_that_do_not_apply_are_refused() -> anyhow::Result<()> {
    let (worker, client, _plugins) = setup().await?;
    let gated = start(&client, &worker, &unique("pipeline-refused"), gated()).await?;
    wait_for_step(&gated, "approve", StepStatus::WaitingApproval).await?;
    let updates = WorkflowExecuteUpdateOptions::default;
    let set = |name: &str, value: Value| {
        gated.execute_update(PipelineWorkflow::set_param, change(name, value), updates())
    };
    let err = update_error(set("nope", json!(1)).await).await;
    assert!(err.contains("no param `nope`"), "{err}");
    let err = update_error(set("label", json!(2)).await).await;
    assert!(err.contains("is a string"), "{err}");
    let err = update_error(set("threshold", json!(0.5)).await).await;
    assert!(err.contains("already started: approve"), "{err}");
    let err = update_error(
        gated
            .execute_update(PipelineWorkflow::approve, decision("register"), updates())
            .await,
    )
    .await;
    assert!(err.contains("not waiting for approval"), "{err}");
    // Still waiting, with the params as they were.
    let status = status(&gated).await?;
    assert_eq!(step(&status, "approve").status, StepStatus::WaitingApproval);
    assert_eq!(status.params["label"], "v1");
    worker.stop().await
}

/// Accepted: a param no started step read; then the approval, and the run completes with it.
#[tokio::test(flavor = "multi_thread")]
async fn a_person_changes_a_param_and_approves() -> anyhow::Result<()> {
    let (worker, client, _plugins) = setup().await?;
    let gated = start(&client, &worker, &unique("pipeline-gated"), gated()).await?;
    wait_for_step(&gated, "approve", StepStatus::WaitingApproval).await?;
    let updates = WorkflowExecuteUpdateOptions::default;
    let old = gated
        .execute_update(
            PipelineWorkflow::set_param,
            change("label", json!("v2")),
            updates(),
        )
        .await?;
    assert_eq!(old, json!("v1"));
    let after = gated
        .execute_update(PipelineWorkflow::approve, decision("approve"), updates())
        .await?;
    assert_eq!(after, "succeeded");
    let result = gated
        .get_result(WorkflowGetResultOptions::default())
        .await?;
    assert_eq!(
        result["steps"]["register"]["output"]["input"]["label"],
        "v2"
    );
    assert_eq!(result["steps"]["approve"]["output"]["by"], "ana");
    replay("approved", &history_json(&gated).await?).await?;
    worker.stop().await
}

/// Rejection fails the approval step, and with it the pipeline.
#[tokio::test(flavor = "multi_thread")]
async fn a_rejection_fails_the_pipeline() -> anyhow::Result<()> {
    let (worker, client, _plugins) = setup().await?;
    let rejected = start(&client, &worker, &unique("pipeline-rejected"), gated()).await?;
    wait_for_step(&rejected, "approve", StepStatus::WaitingApproval).await?;
    rejected
        .execute_update(
            PipelineWorkflow::reject,
            decision("approve"),
            WorkflowExecuteUpdateOptions::default(),
        )
        .await?;
    let err = rejected
        .get_result(WorkflowGetResultOptions::default())
        .await
        .expect_err("rejected");
    assert!(
        format!("{err:?}").contains("rejected by ana: checked the metrics"),
        "{err:?}"
    );
    assert_eq!(
        step(&status(&rejected).await?, "register").status,
        StepStatus::Pending
    );
    replay("rejected", &history_json(&rejected).await?).await?;
    worker.stop().await
}

/// Pause: the running step finishes, the next does not start until resume.
#[tokio::test(flavor = "multi_thread")]
async fn a_paused_run_finishes_its_running_step_and_starts_no_other_until_resumed()
-> anyhow::Result<()> {
    let (worker, client, _plugins) = setup().await?;
    let id = unique("pipeline-paused");
    let paused = start(
        &client,
        &worker,
        &id,
        json!({"name": "paused", "steps": [held("first", &[]), echo("second", &["first"], json!({}))]}),
    )
    .await?;
    wait_for_step(&paused, "first", StepStatus::Running).await?;
    paused
        .signal(
            PipelineWorkflow::pause,
            (),
            WorkflowSignalOptions::default(),
        )
        .await?;
    eventually(Duration::from_secs(60), "the run paused", || async {
        (status(&paused).await.ok()?.state == RunState::Paused).then_some(())
    })
    .await?;
    release(&worker, &id, "first", "first done");
    wait_for_step(&paused, "first", StepStatus::Succeeded).await?;
    let held = status(&paused).await?;
    assert_eq!(held.state, RunState::Paused);
    assert_eq!(step(&held, "second").status, StepStatus::Pending);
    paused
        .signal(
            PipelineWorkflow::resume,
            (),
            WorkflowSignalOptions::default(),
        )
        .await?;
    let result = paused
        .get_result(WorkflowGetResultOptions::default())
        .await?;
    assert_eq!(result["steps"]["second"]["status"], "succeeded");
    let json = history_json(&paused).await?;
    let events_ = history_events(&json);
    let signalled = events(&events_, "WorkflowExecutionSignaled");
    assert_eq!(signalled.len(), 2);
    replay("paused", &json).await?;
    worker.stop().await
}

/// Cancel one running step: its plugin stops, on_failure = continue lets the rest run.
#[tokio::test(flavor = "multi_thread")]
async fn a_person_cancels_one_running_step() -> anyhow::Result<()> {
    let (worker, client, _plugins) = setup().await?;
    // Never released: only the cancellation ends it.
    let mut long = held("long", &[]);
    long["on_failure"] = json!("continue");
    let cancelled = start(
        &client,
        &worker,
        &unique("pipeline-cancel-step"),
        json!({"name": "cancel", "steps": [long, echo("next", &["long"], json!({}))]}),
    )
    .await?;
    let updates = WorkflowExecuteUpdateOptions::default;
    let err = update_error(
        cancelled
            .execute_update(PipelineWorkflow::cancel_step, decision("next"), updates())
            .await,
    )
    .await;
    assert!(err.contains("only a running or waiting step"), "{err}");
    wait_for_step(&cancelled, "long", StepStatus::Running).await?;
    cancelled
        .execute_update(PipelineWorkflow::cancel_step, decision("long"), updates())
        .await?;
    let result = cancelled
        .get_result(WorkflowGetResultOptions::default())
        .await?;
    assert_eq!(result["steps"]["long"]["status"], "cancelled", "{result:#}");
    assert_eq!(
        result["steps"]["long"]["note"], "cancelled by ana: checked the metrics",
        "the person's reason is kept"
    );
    assert_eq!(result["steps"]["next"]["status"], "skipped", "{result:#}");
    let json = history_json(&cancelled).await?;
    assert_eq!(
        events(&history_events(&json), "ActivityTaskCanceled").len(),
        1
    );
    replay("cancel-step", &json).await?;
    worker.stop().await
}

/// Cancelling the whole pipeline stops its running step and ends its waiting approval.
#[tokio::test(flavor = "multi_thread")]
async fn cancelling_the_pipeline_stops_its_running_step_and_waiting_approval() -> anyhow::Result<()>
{
    let (worker, client, _plugins) = setup().await?;
    // Never released: only the cancellation ends it.
    let whole = start(
        &client,
        &worker,
        &unique("pipeline-cancelled"),
        json!({"name": "whole", "steps": [held("running", &[]), {"id": "gate", "type": "approval"}]}),
    )
    .await?;
    wait_for_step(&whole, "running", StepStatus::Running).await?;
    wait_for_step(&whole, "gate", StepStatus::WaitingApproval).await?;
    whole.cancel(WorkflowCancelOptions::default()).await?;
    let err = whole
        .get_result(WorkflowGetResultOptions::default())
        .await
        .expect_err("cancelled");
    assert!(
        format!("{err:?}").to_lowercase().contains("cancel"),
        "{err:?}"
    );
    let json = history_json(&whole).await?;
    let events_ = history_events(&json);
    assert_eq!(events(&events_, "ActivityTaskCanceled").len(), 1);
    assert_eq!(events(&events_, "WorkflowExecutionCanceled").len(), 1);
    let end = status(&whole).await?;
    assert_eq!(end.state, RunState::Cancelled);
    assert_eq!(step(&end, "gate").status, StepStatus::Cancelled);
    assert_eq!(step(&end, "running").status, StepStatus::Cancelled);
    assert_eq!(
        step(&end, "running").note.as_deref(),
        Some("the pipeline was cancelled")
    );
    replay("cancelled", &json).await?;
    worker.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_temporal_cli_starts_a_pipeline_with_json() -> anyhow::Result<()> {
    let (worker, _client, _plugins) = setup().await?;
    let server = shared_server().await?;
    let spec = json!({
        "name": "from-cli",
        "params": {"who": "cli"},
        "steps": [echo("hello", &[], json!({"greet": "hello ${params.who}"}))]
    });
    let out = server.cli(&[
        "workflow",
        "execute",
        "--type",
        "PipelineWorkflow",
        "--task-queue",
        &worker.task_queue,
        "--workflow-id",
        &unique("pipeline-cli"),
        "--input",
        &spec.to_string(),
        "--output",
        "json",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("hello cli"), "{stdout}");
    worker.stop().await
}

/// An invalid spec fails the run in its first workflow task, once, naming every problem, and
/// schedules nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_bad_spec_fails_once_naming_every_problem() -> anyhow::Result<()> {
    let (worker, client, _plugins) = setup().await?;
    let mut bad = json!({
        "name": "bad",
        "steps": [echo("hello", &[], json!({}))]
    });
    bad["steps"][0]["depends_on"] = json!(["missing"]);
    bad["steps"][0]["retry"] = json!({"backoff_coefficient": 0.5});
    let handle = start(&client, &worker, &unique("pipeline-bad"), bad).await?;
    let err = format!(
        "{:?}",
        handle
            .get_result(WorkflowGetResultOptions::default())
            .await
            .expect_err("invalid")
    );
    assert!(
        err.contains("step `hello`, depends_on[0]: unknown step `missing`"),
        "{err}"
    );
    assert!(
        err.contains("step `hello`, retry.backoff_coefficient: must be at least 1"),
        "{err}"
    );
    let events_ = history_events(&history_json(&handle).await?);
    assert!(events(&events_, "ActivityTaskScheduled").is_empty());
    assert_eq!(events(&events_, "WorkflowTaskCompleted").len(), 1);
    let failed = events(&events_, "WorkflowExecutionFailed");
    assert_eq!(
        find(&failed[0]["failure"], "type"),
        Some(&json!("InvalidPipeline"))
    );
    worker.stop().await
}

/// A worker serving the real csv and trainer plugins, csv granted the bundled data.
pub(crate) async fn training_worker() -> anyhow::Result<(TestWorker, Client, PluginsDir)> {
    let server = shared_server().await?;
    let plugins = PluginsDir::with(&["csv", "trainer"]);
    plugins.grant_data("csv");
    grant_registry(&plugins);
    let worker = TestWorker::start(server, plugins.path()).await?;
    let client = server.client().await?;
    Ok((worker, client, plugins))
}

/// The trainer's shared registry at /registry, as its manifest in the repo grants one: a
/// directory inside the plugins directory, so it lives as long as the test's plugins.
pub(crate) fn grant_registry(plugins: &PluginsDir) {
    let registry = plugins.path().join("registry");
    std::fs::create_dir_all(&registry).unwrap();
    plugins.write_manifest(
        "trainer",
        &format!(
            "[[filesystem]]\nhost = {:?}\nguest = \"/registry\"\naccess = \"read-write\"\n",
            registry.display().to_string()
        ),
    );
}

/// The example in the repo (pipelines/training.yaml) with `min_accuracy` set.
pub(crate) fn training(min_accuracy: f64) -> anyhow::Result<Value> {
    let mut spec = mlx_pipeline::load::load(&workspace_root().join("pipelines/training.yaml"))?;
    spec.params
        .insert("min_accuracy".into(), json!(min_accuracy));
    Ok(serde_json::to_value(spec)?)
}

/// The example in the repo (pipelines/training.yaml) on the real csv and trainer plugins and
/// the bundled breast-cancer data: a good enough model is registered once a person approved it.
#[tokio::test(flavor = "multi_thread")]
async fn the_example_training_pipeline_registers_a_good_approved_model() -> anyhow::Result<()> {
    let (worker, client, plugins) = training_worker().await?;
    let id = unique("training-good");
    let good = start(&client, &worker, &id, training(0.9)?).await?;
    wait_for_step(&good, "approve", StepStatus::WaitingApproval).await?;
    good.execute_update(
        PipelineWorkflow::approve,
        decision("approve"),
        WorkflowExecuteUpdateOptions::default(),
    )
    .await?;
    let result = good.get_result(WorkflowGetResultOptions::default()).await?;
    let steps = &result["steps"];
    let accuracy = steps["evaluate"]["output"]["metrics"]["accuracy"]
        .as_f64()
        .unwrap();
    assert!(accuracy >= 0.9, "{result:#}");
    assert_eq!(
        steps["evaluate"]["output"]["metrics"]["accuracy"],
        steps["train"]["output"]["metrics"]["accuracy"],
        "evaluating on the test split reproduces training's own test metrics"
    );
    let entry = &steps["register"]["output"]["entry"];
    assert_eq!(entry["name"], "breast-cancer");
    assert_eq!(entry["version"], 1);
    assert_eq!(entry["note"], "approved by ana");
    assert_eq!(entry["metrics"]["accuracy"], accuracy);
    assert_eq!(entry["approval"]["by"], "ana", "{entry:#}");
    assert_eq!(
        steps["register"]["output"]["path"],
        "/registry/breast-cancer/v1/entry.json"
    );
    // The registered model is a real file in the shared registry, byte for byte the trained one.
    let on_host = |guest: &Value| {
        let guest = guest.as_str().unwrap();
        match guest.strip_prefix("/registry/") {
            Some(rest) => plugins.path().join("registry").join(rest),
            None => worker
                .artifacts
                .path()
                .join(&id)
                .join(guest.trim_start_matches("/artifacts/")),
        }
    };
    let registered = std::fs::read(on_host(&steps["register"]["output"]["model_path"]))?;
    let trained = std::fs::read(on_host(&steps["train"]["output"]["model"]["path"]))?;
    assert_eq!(registered, trained);

    // The example trains a random forest, one tree a round, on Parquet splits.
    for split in ["train", "test"] {
        let path = steps["extract"]["output"][split]["path"].as_str().unwrap();
        assert!(path.ends_with(".parquet"), "{path}");
    }
    let train = &steps["train"]["output"];
    assert_eq!(train["family"], "random_forest", "{train:#}");
    assert_eq!(
        train["rounds"],
        json!({"total": 100, "run": 100, "resumed_from": null, "final_loss": null}),
        "{train:#}"
    );
    // Evaluation drew its plots into the run's artifacts; a classifier has no residuals.
    let evaluate = &steps["evaluate"]["output"];
    assert_eq!(evaluate["family"], "random_forest");
    let plots = &evaluate["plots"];
    for plot in ["confusion_matrix", "roc_curve", "feature_importances"] {
        let svg = std::fs::read_to_string(on_host(&plots[plot]))
            .map_err(|e| anyhow::anyhow!("plot {plot} ({}): {e}", plots[plot]))?;
        assert!(svg.contains("<svg"), "{plot}: {svg:.200}");
    }
    assert_eq!(plots["residuals"], Value::Null, "{plots:#}");
    assert_eq!(
        evaluate["metrics"]["confusion_matrix"],
        train["metrics"]["confusion_matrix"]
    );
    // The registry entry says what was trained: the family and every hyperparameter (the
    // spec's, and the defaults of the others).
    assert_eq!(entry["model"]["family"], "random_forest", "{entry:#}");
    let hyperparameters = &entry["model"]["hyperparameters"];
    for (name, value) in [("n_estimators", 100), ("max_depth", 8), ("seed", 42)] {
        assert_eq!(hyperparameters[name], value, "{name}: {entry:#}");
    }
    assert_eq!(hyperparameters["min_samples_leaf"], 1, "{entry:#}");
    assert_eq!(
        entry["task"],
        json!({"classification": {"classes": 2}}),
        "{entry:#}"
    );
    worker.stop().await
}

/// A model below the bar is neither put to a person nor registered.
#[tokio::test(flavor = "multi_thread")]
async fn the_example_training_pipeline_skips_approval_and_registry_for_a_weak_model()
-> anyhow::Result<()> {
    let (worker, client, _plugins) = training_worker().await?;
    let picky = start(
        &client,
        &worker,
        &unique("training-picky"),
        training(0.999)?,
    )
    .await?;
    let result = picky
        .get_result(WorkflowGetResultOptions::default())
        .await?;
    assert_eq!(
        result["steps"]["approve"]["status"], "skipped",
        "{result:#}"
    );
    assert_eq!(
        result["steps"]["register"]["status"], "skipped",
        "{result:#}"
    );
    assert_eq!(result["steps"]["evaluate"]["status"], "succeeded");
    worker.stop().await
}

/// The example spec, for a forest of `trees` small trees journaled every 10 trees and a train
/// step retried 1 s after 6 s without a heartbeat, stopping after `evaluate`. Core sends a
/// heartbeat at most every 0.8 × that timeout, so each must reach the server within 0.2 × of
/// it: 1.2 s here (with 3 s, a CI run on a machine also running a soak lost both retries).
fn forest_training(trees: u64) -> anyhow::Result<Value> {
    let mut spec = training(2.0)?; // No accuracy reaches 2: approval and registry are skipped.
    spec["params"]["model"] = json!({
        "family": "random_forest",
        "hyperparameters": {"n_estimators": trees, "max_depth": 3, "seed": 42},
    });
    let steps = spec["steps"].as_array_mut().unwrap();
    let train = steps.iter_mut().find(|s| s["id"] == "train").unwrap();
    train["input"]["checkpoint_every"] = json!(10);
    train["timeouts"]["heartbeat_secs"] = json!(6);
    train["retry"]["initial_interval_secs"] = json!(1);
    Ok(spec)
}

/// The worker process training a random forest is killed (SIGKILL: no drain, no last word to
/// Temporal) once the server holds a heartbeat naming the checkpoint journal. Its successor on
/// the same task queue and host gets the retry after the heartbeat timeout and grows only the
/// trees the journal lacks; the run completes.
///
/// Temporal sends heartbeats at most every 0.8 × the heartbeat timeout, so the journal is
/// ahead of the heartbeat the server holds: the retry resumes from the journal itself (its
/// whole lines), not from the round that heartbeat names.
#[tokio::test(flavor = "multi_thread")]
async fn a_forest_whose_worker_is_killed_resumes_from_its_checkpoint() -> anyhow::Result<()> {
    // Long enough that the server holds a heartbeat (sent every 0.8 × 6 s) before the end:
    // in its child, without epoch checks, the trainer grows 3,000 of these trees in ~3.5 s.
    // The most the schema allows.
    const TREES: u64 = 10_000;
    let server = shared_server().await?;
    let plugins = PluginsDir::with(&["csv", "trainer"]);
    plugins.grant_data("csv");
    // As shipped (plugins/trainer/trainer.toml): the training runs in the worker's child.
    plugins.write_manifest("trainer", "isolation = \"process\"\n");
    let binary = mlx_e2e::worker_binary();
    let mut first = WorkerProcess::start(binary, server, plugins.path(), &[])?;
    let client = server.client().await?;
    let id = unique("training-killed");
    client
        .start_workflow(
            PipelineWorkflow::run,
            mlx_worker::temporal::payload::json_input(&forest_training(TREES)?),
            WorkflowStartOptions::new(first.task_queue.clone(), id.clone()).build(),
        )
        .await?;
    let handle = client.get_workflow_handle::<PipelineWorkflow>(&id);

    let seen = eventually(
        Duration::from_secs(180),
        "a train heartbeat naming a checkpoint",
        || async {
            let beat = pending_heartbeat(server, &id, "train").await.ok()??;
            (!beat["checkpoint"].is_null()).then_some(beat)
        },
    )
    .await?;
    let trainers = mlx_e2e::proc_stats::children_with_arg(first.pid(), "run-invocation");
    assert_eq!(
        trainers.len(),
        1,
        "the training runs in one child of the worker"
    );
    first.kill()?;
    // The kill takes the child along: no orphan keeps training (and writing the journal)
    // beside the attempt the successor starts.
    eventually(
        Duration::from_secs(60),
        "the training child gone",
        || async { (!mlx_e2e::proc_stats::alive(trainers[0])).then_some(()) },
    )
    .await?;
    assert!(
        seen["round"].as_u64().unwrap() < TREES,
        "training ended before the kill: {seen}"
    );
    let seen_rounds = seen["checkpoint"]["rounds"].as_u64().unwrap();
    assert!(
        seen_rounds >= 10 && seen_rounds.is_multiple_of(10),
        "{seen}"
    );
    let checkpoint = first
        .artifacts
        .path()
        .join(mlx_runtime::sandbox::workflow_dir_name(&id))
        .join(
            seen["checkpoint"]["path"]
                .as_str()
                .unwrap()
                .trim_start_matches("/artifacts/"),
        );
    let on_disk = std::fs::read_to_string(&checkpoint)
        .map_err(|e| anyhow::anyhow!("{}: {e}", checkpoint.display()))?;
    // Whole lines after the header, rounds 1, 2, … in order: the trees attempt 2 need not
    // grow again. A line the kill tore has no newline (the last piece of the split).
    let mut pieces: Vec<&str> = on_disk.split('\n').collect();
    pieces.pop();
    let journaled = pieces
        .iter()
        .skip(1)
        .enumerate()
        .take_while(|(i, line)| {
            serde_json::from_str::<Value>(line).is_ok_and(|r| r["round"] == json!(i + 1))
        })
        .count() as u64;
    assert!(journaled >= seen_rounds, "{journaled} < {seen}");

    let second = first.successor(binary, server, plugins.path(), &[], &[])?;
    let result = tokio::time::timeout(
        Duration::from_secs(600),
        handle.get_result(WorkflowGetResultOptions::default()),
    )
    .await??;
    let steps = &result["steps"];
    let train = &steps["train"]["output"];
    let rounds = &train["rounds"];
    assert_eq!(
        (&rounds["resumed_from"], &rounds["run"], &rounds["total"]),
        (&json!(journaled), &json!(TREES - journaled), &json!(TREES)),
        "attempt 2 grows the trees attempt 1 did not journal: {train:#}"
    );
    // Attempt 1 timed out (no heartbeat from the dead worker), attempt 2 completed.
    assert_eq!(step(&status(&handle).await?, "train").attempt, Some(2));
    assert!(!checkpoint.exists(), "the model supersedes the checkpoint");
    assert_eq!(steps["evaluate"]["status"], "succeeded", "{result:#}");
    assert!(
        steps["evaluate"]["output"]["metrics"]["accuracy"]
            .as_f64()
            .unwrap()
            > 0.9,
        "{result:#}"
    );
    drop(second);
    Ok(())
}
