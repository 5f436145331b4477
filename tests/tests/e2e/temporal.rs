//! End to end on real parts: the shared Temporal dev server, the worker in process, and the
//! real guest components. Failures are asserted on workflow history, as an operator sees them.

use std::time::Duration;

use mlx_e2e::{
    DevServer, PluginsDir, TestWorker, events, eventually, find, history, run_step, shared_server,
    single_failed_attempt, unique, workspace_root,
};
use mlx_worker::temporal::{MLTrainingWorkflow, RunPluginWorkflow};
use serde_json::{Value, json};
use temporalio_client::{WorkflowCancelOptions, WorkflowGetResultOptions, WorkflowStartOptions};

fn testkit() -> PluginsDir {
    PluginsDir::with(&["testkit"])
}

/// The shared server and a worker serving testkit.
async fn testkit_worker() -> anyhow::Result<(&'static DevServer, TestWorker, PluginsDir)> {
    let server = shared_server().await?;
    let plugins = testkit();
    let worker = TestWorker::start(server, plugins.path()).await?;
    Ok((server, worker, plugins))
}

#[tokio::test(flavor = "multi_thread")]
async fn training_workflow_runs_end_to_end() -> anyhow::Result<()> {
    let server = shared_server().await?;
    let plugins = PluginsDir::with(&["csv", "trainer"]);
    plugins.grant_data("csv");
    let worker = TestWorker::start(server, plugins.path()).await?;
    let client = server.client().await?;
    let id = unique("train-e2e");
    let input: Value = serde_json::from_str(&std::fs::read_to_string(
        workspace_root().join("scripts/demo-input.json"),
    )?)?;
    let handle = client
        .start_workflow(
            MLTrainingWorkflow::run,
            mlx_worker::temporal::payload::json_input(&input),
            WorkflowStartOptions::new(worker.task_queue.clone(), id.clone()).build(),
        )
        .await?;
    let result = handle
        .get_result(WorkflowGetResultOptions::default())
        .await?;

    let accuracy = result["metrics"]["accuracy"]
        .as_f64()
        .expect("accuracy metric");
    assert!(accuracy > 0.9, "accuracy {accuracy} in {result:#}");
    let rows = result["dataset"]["train"]["rows"].as_u64().unwrap()
        + result["dataset"]["test"]["rows"].as_u64().unwrap();
    assert_eq!(rows, 569, "the whole dataset is split: {result:#}");

    // The model is a real file in this workflow's artifacts directory, not in the payload.
    let model_ref = result["model"]["path"].as_str().expect("model path");
    let on_host = worker
        .artifacts
        .path()
        .join(&id)
        .join(model_ref.trim_start_matches("/artifacts/"));
    let model: Value = serde_json::from_slice(&std::fs::read(&on_host)?)?;
    assert_eq!(model["format"], "mlx-trainer-model");
    // The spec as given, every other hyperparameter at its default.
    let spec = &model["model"]["spec"];
    assert_eq!(
        spec["family"], input["train"]["model"]["family"],
        "{spec:#}"
    );
    for (name, value) in input["train"]["model"]["hyperparameters"]
        .as_object()
        .unwrap()
    {
        assert_eq!(&spec["hyperparameters"][name], value, "{name}: {spec:#}");
    }

    // The demo trains gradient boosting: 100 rounds, each with its training loss, in one
    // attempt, and its loss curve drawn beside the model.
    assert_eq!(result["family"], "gradient_boosting", "{result:#}");
    assert_eq!(result["task"], "classification", "{result:#}");
    let rounds = &result["rounds"];
    assert_eq!(
        (&rounds["total"], &rounds["run"], &rounds["resumed_from"]),
        (&json!(100), &json!(100), &Value::Null),
        "{result:#}"
    );
    assert!(rounds["final_loss"].as_f64().unwrap() > 0.0, "{result:#}");
    let curve = result["loss_curve"].as_str().expect("a loss curve");
    let curve = std::fs::read_to_string(
        worker
            .artifacts
            .path()
            .join(&id)
            .join(curve.trim_start_matches("/artifacts/")),
    )?;
    assert!(curve.contains("<svg"), "{curve:.200}");

    // History says which plugin bytes produced each result.
    let events_ = history(&handle).await?;
    let completed = events(&events_, "ActivityTaskCompleted");
    assert_eq!(completed.len(), 2);
    for event in completed {
        let metadata = &event["result"]["payloads"][0]["metadata"];
        assert!(metadata["mlx-plugin-digest"].is_string(), "{event:#}");
    }
    worker.stop().await
}

/// Runs `step` (retries allowed: only non-retryability can keep it to one attempt) and checks
/// it failed once, non-retryably, with `failure_type` and a message mentioning `hint`.
async fn fails_once_and_non_retryable(
    mut step: Value,
    failure_type: &str,
    hint: &str,
) -> anyhow::Result<()> {
    let (server, worker, _plugins) = testkit_worker().await?;
    step["max_attempts"] = json!(5);
    step["initial_interval_ms"] = json!(100);
    let (result, events_) = run_step(server, &worker, &unique("bad-request"), step).await?;
    assert!(result.is_err(), "{failure_type}: should fail");
    let failure = single_failed_attempt(&events_);
    assert_eq!(
        find(&failure, "type"),
        Some(&json!(failure_type)),
        "{failure:#}"
    );
    assert_eq!(
        find(&failure, "nonRetryable"),
        Some(&json!(true)),
        "{failure:#}"
    );
    let message = failure["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(hint),
        "message {message:?} should mention {hint:?}"
    );
    worker.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_plugin_fails_once_naming_the_loaded_ones() -> anyhow::Result<()> {
    fails_once_and_non_retryable(
        json!({"plugin": "nope", "operation": "echo"}),
        "UnknownPlugin",
        "testkit",
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_operation_fails_once_naming_the_real_ones() -> anyhow::Result<()> {
    fails_once_and_non_retryable(
        json!({"plugin": "testkit", "operation": "nope"}),
        "UnknownOperation",
        "echo",
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_input_fails_once_with_the_plugins_type_and_message() -> anyhow::Result<()> {
    fails_once_and_non_retryable(
        json!({"plugin": "testkit", "operation": "fail", "input": {"kind": "invalid_input", "type_name": "BadThing", "message": "fix the thing"}}),
        "BadThing",
        "fix the thing",
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn retryable_guest_error_is_retried_and_gets_last_heartbeat() -> anyhow::Result<()> {
    let (server, worker, _plugins) = testkit_worker().await?;
    let step = json!({
        "plugin": "testkit", "operation": "checkpoint",
        "input": {"steps": 3, "fail_attempts": 1},
        "max_attempts": 3, "initial_interval_ms": 100, "heartbeat_timeout_secs": 10,
    });
    let (result, _) = run_step(server, &worker, &unique("checkpoint"), step).await?;
    let output = result.map_err(anyhow::Error::msg)?;
    assert_eq!(output["attempt"], 2, "{output:#}");
    assert_eq!(output["resumed_from"], json!({"step": 3}), "{output:#}");
    worker.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_step_runs_on_the_task_queue_it_names() -> anyhow::Result<()> {
    let server = shared_server().await?;
    // The workflow's own worker has no plugins: only the other pool can run the step.
    let empty = PluginsDir::with(&[]);
    let home = TestWorker::start(server, empty.path()).await?;
    let plugins = testkit();
    let pool = TestWorker::start(server, plugins.path()).await?;
    let step = json!({
        "plugin": "testkit", "operation": "echo", "input": {"routed": true},
        "task_queue": pool.task_queue,
    });
    let (result, events_) = run_step(server, &home, &unique("routed"), step).await?;
    let output = result.map_err(anyhow::Error::msg)?;
    assert_eq!(output["input"]["routed"], true, "{output:#}");
    let scheduled = events(&events_, "ActivityTaskScheduled");
    assert_eq!(
        scheduled[0]["task_queue"]["name"],
        json!(pool.task_queue),
        "{scheduled:#?}"
    );
    home.stop().await?;
    pool.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn never_returning_plugin_is_interrupted_at_start_to_close() -> anyhow::Result<()> {
    let (server, worker, _plugins) = testkit_worker().await?;
    let step = json!({"plugin": "testkit", "operation": "spin", "start_to_close_secs": 3});
    let (result, events_) = run_step(server, &worker, &unique("spin"), step).await?;
    assert!(result.is_err());
    let ended = events(&events_, "ActivityTaskTimedOut").len()
        + events(&events_, "ActivityTaskFailed").len();
    assert_eq!(ended, 1, "{events_:#?}");
    // The guest is gone, not left burning a core.
    eventually(
        Duration::from_secs(5),
        "spinning instance interrupted",
        || async { (worker.runtime.active_invocations() == 0).then_some(()) },
    )
    .await?;
    // And the worker still serves.
    let (echo, _) = run_step(
        server,
        &worker,
        &unique("after-spin"),
        json!({"plugin": "testkit", "operation": "echo", "input": {"ok": true}}),
    )
    .await?;
    assert_eq!(echo.map_err(anyhow::Error::msg)?["input"]["ok"], true);
    worker.stop().await
}

/// Starts `step`, waits until its activity is running, cancels the workflow and returns the
/// ActivityTaskCanceled details.
async fn cancel_running(
    server: &DevServer,
    worker: &TestWorker,
    id: &str,
    step: Value,
) -> anyhow::Result<Value> {
    let client = server.client().await?;
    let handle = client
        .start_workflow(
            RunPluginWorkflow::run,
            mlx_worker::temporal::payload::json_input(&step),
            WorkflowStartOptions::new(worker.task_queue.clone(), id.to_string()).build(),
        )
        .await?;
    eventually(Duration::from_secs(30), "activity running", || async {
        (worker.runtime.active_invocations() == 1).then_some(())
    })
    .await?;
    handle.cancel(WorkflowCancelOptions::default()).await?;
    let result = handle.get_result(WorkflowGetResultOptions::default()).await;
    assert!(result.is_err(), "cancelled workflow has no result");
    let events_ = history(&handle).await?;
    let cancelled = events(&events_, "ActivityTaskCanceled");
    assert_eq!(cancelled.len(), 1, "{events_:#?}");
    Ok(cancelled[0]["details"]["payloads"][0].clone())
}

fn decode_payload(payload: &Value) -> Value {
    use base64::Engine;
    let data = payload["data"].as_str().expect("payload data");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .expect("history payloads are base64");
    serde_json::from_slice(&bytes).expect("JSON payload")
}

#[tokio::test(flavor = "multi_thread")]
async fn heartbeating_plugin_sees_cancellation() -> anyhow::Result<()> {
    let (server, worker, _plugins) = testkit_worker().await?;
    let step = json!({
        "plugin": "testkit", "operation": "wait_for_cancel",
        "start_to_close_secs": 120, "heartbeat_timeout_secs": 2,
    });
    let details =
        decode_payload(&cancel_running(server, &worker, &unique("hb-cancel"), step).await?);
    assert_eq!(details["acknowledged_by_plugin"], true, "{details}");
    worker.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn cpu_bound_plugin_that_never_heartbeats_is_still_cancelled() -> anyhow::Result<()> {
    let (server, worker, _plugins) = testkit_worker().await?;
    let step = json!({
        "plugin": "testkit", "operation": "spin",
        "start_to_close_secs": 120, "heartbeat_timeout_secs": 2,
    });
    let details =
        decode_payload(&cancel_running(server, &worker, &unique("spin-cancel"), step).await?);
    assert_eq!(details["acknowledged_by_plugin"], false, "{details}");
    assert_eq!(worker.runtime.active_invocations(), 0);
    worker.stop().await
}

/// `temporal activity execute` of `plugin_activity` on the worker's queue with `input`.
fn execute_activity(server: &DevServer, worker: &TestWorker, input: &str) -> std::process::Output {
    server.cli(&[
        "activity",
        "execute",
        "--type",
        "plugin_activity",
        "--activity-id",
        &unique("cli"),
        "--task-queue",
        &worker.task_queue,
        "--start-to-close-timeout",
        "30s",
        "--input",
        input,
        "-o",
        "json",
    ])
}

/// The activity on its own, as a standalone activity: no workflow code of ours involved.
#[tokio::test(flavor = "multi_thread")]
async fn temporal_cli_calls_plugin_activity_with_plain_json() -> anyhow::Result<()> {
    let (server, worker, _plugins) = testkit_worker().await?;
    let request = r#"{"plugin": "testkit", "operation": "echo", "input": {"from": "cli"}}"#;
    let out = execute_activity(server, &worker, request);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("\"from\"") && printed.contains("cli"),
        "{printed}"
    );
    worker.stop().await
}

/// A malformed request from the same caller fails, saying what to send.
#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_cli_request_fails_saying_what_to_send() -> anyhow::Result<()> {
    let (server, worker, _plugins) = testkit_worker().await?;
    let out = execute_activity(server, &worker, r#"{"plugin": "testkit"}"#);
    assert!(!out.status.success());
    let text = mlx_e2e::printed(&out);
    assert!(text.contains("send one JSON object"), "{text}");
    // An array with the right values in order is still not a request.
    let out = execute_activity(server, &worker, r#"["testkit", "echo", {}]"#);
    assert!(!out.status.success());
    let text = mlx_e2e::printed(&out);
    assert!(text.contains("a JSON array, not an object"), "{text}");
    worker.stop().await
}

/// Through a workflow started from the CLI with JSON input.
#[tokio::test(flavor = "multi_thread")]
async fn temporal_cli_runs_a_plugin_workflow_with_plain_json() -> anyhow::Result<()> {
    let (server, worker, _plugins) = testkit_worker().await?;
    let step = r#"{"plugin": "testkit", "operation": "echo", "input": {"from": "cli-workflow"}}"#;
    let out = server.cli(&[
        "workflow",
        "execute",
        "--type",
        "RunPluginWorkflow",
        "--workflow-id",
        &unique("cli-wf"),
        "--task-queue",
        &worker.task_queue,
        "--input",
        step,
        "-o",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("cli-workflow"));
    worker.stop().await
}

/// `tests/python/call_plugin.py` (a Python SDK workflow and worker) calling `plugin_activity`
/// on the worker's queue with `request`.
async fn python_call(
    server: &DevServer,
    worker: &TestWorker,
    request: Value,
) -> anyhow::Result<std::process::Output> {
    let (python, script, address, queue) = (
        mlx_e2e::python(),
        workspace_root().join("tests/python/call_plugin.py"),
        server.address.clone(),
        worker.task_queue.clone(),
    );
    Ok(tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(script)
            .args([address, queue, request.to_string()])
            .output()
    })
    .await??)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_python_workflow_calls_plugin_activity() -> anyhow::Result<()> {
    let (server, worker, _plugins) = testkit_worker().await?;
    let out = python_call(
        server,
        &worker,
        json!({"plugin": "testkit", "operation": "echo", "input": {"from": "python"}}),
    )
    .await?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(result["input"]["from"], "python");
    worker.stop().await
}

/// Its retry policy allows 3 attempts; a non-retryable failure stops at one, and Python sees
/// our failure type.
#[tokio::test(flavor = "multi_thread")]
async fn a_python_workflow_sees_our_failure_type_and_does_not_retry() -> anyhow::Result<()> {
    let (server, worker, _plugins) = testkit_worker().await?;
    let out = python_call(
        server,
        &worker,
        json!({"plugin": "nope", "operation": "echo"}),
    )
    .await?;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "FAILED UnknownPlugin True",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    worker.stop().await
}

/// A payload that claims JSON but is cut short, as a client with a bug would send it.
fn truncated_json() -> temporalio_common::data_converters::RawValue {
    let mut payload = temporalio_common::protos::temporal::api::common::v1::Payload {
        data: br#"{"plugin": "testkit", "#.to_vec(),
        ..Default::default()
    };
    payload
        .metadata
        .insert("encoding".into(), b"json/plain".to_vec());
    temporalio_common::data_converters::RawValue::new(vec![payload])
}

/// Input that is not JSON fails each workflow once, non-retryably, saying so; the SDK would
/// fail the first workflow task instead, and retry it until the execution timeout.
#[tokio::test(flavor = "multi_thread")]
async fn workflow_input_that_is_not_json_fails_each_workflow_once() -> anyhow::Result<()> {
    let (server, worker, _plugins) = testkit_worker().await?;
    let client = server.client().await?;
    let options =
        |id: &str| WorkflowStartOptions::new(worker.task_queue.clone(), id.to_string()).build();
    let ids = [
        unique("garbage-step"),
        unique("garbage-train"),
        unique("garbage-pipeline"),
    ];
    client
        .start_workflow(RunPluginWorkflow::run, truncated_json(), options(&ids[0]))
        .await?;
    client
        .start_workflow(MLTrainingWorkflow::run, truncated_json(), options(&ids[1]))
        .await?;
    client
        .start_workflow(
            mlx_worker::temporal::PipelineWorkflow::run,
            truncated_json(),
            options(&ids[2]),
        )
        .await?;
    for id in &ids {
        let events_ = eventually(Duration::from_secs(60), "the workflow fails", || async {
            let events_ = mlx_e2e::history_of(server, id).await.ok()?;
            (!events(&events_, "WorkflowExecutionFailed").is_empty()).then_some(events_)
        })
        .await?;
        let failure = &events(&events_, "WorkflowExecutionFailed")[0]["failure"];
        assert_eq!(
            find(failure, "type"),
            Some(&json!("InvalidWorkflowInput")),
            "{id}: {failure}"
        );
        assert_eq!(
            find(failure, "nonRetryable"),
            Some(&json!(true)),
            "{id}: {failure}"
        );
        let message = find(failure, "message")
            .and_then(Value::as_str)
            .unwrap_or_default();
        assert!(message.contains("input is not JSON"), "{id}: {message}");
        assert!(events(&events_, "WorkflowTaskFailed").is_empty(), "{id}");
    }
    worker.stop().await
}

/// A 10 MiB error would be refused by Temporal (gRPC's 4 MiB limit) and the activity would
/// hang until start-to-close: the message is cut to the cap, the type and retryability kept.
#[tokio::test(flavor = "multi_thread")]
async fn a_huge_error_message_is_cut_and_reaches_temporal_at_once() -> anyhow::Result<()> {
    fails_once_and_non_retryable(
        json!({"plugin": "testkit", "operation": "fail", "input": {
            "kind": "permanent", "type_name": "Huge", "message": "0123456789abcdef",
            "repeat": 10 << 16,
        }, "start_to_close_secs": 600}),
        "Huge",
        "bytes cut)",
    )
    .await
}

/// An output within the plugin's own limit but over what Temporal takes in one completion
/// fails as PluginOutputTooLarge instead of hanging.
#[tokio::test(flavor = "multi_thread")]
async fn an_output_too_large_for_temporal_fails_classified() -> anyhow::Result<()> {
    let server = shared_server().await?;
    let plugins = testkit();
    plugins.write_manifest("testkit", "[limits]\nmax_output_kb = 8192\n");
    let worker = TestWorker::start(server, plugins.path()).await?;
    let step = json!({"plugin": "testkit", "operation": "big_output", "input": {"kb": 3072},
                      "start_to_close_secs": 600});
    let (result, events_) = run_step(server, &worker, &unique("big"), step).await?;
    assert!(result.is_err());
    let failure = single_failed_attempt(&events_);
    assert_eq!(
        find(&failure, "type"),
        Some(&json!("PluginOutputTooLarge")),
        "{failure:#}"
    );
    assert_eq!(
        find(&failure, "nonRetryable"),
        Some(&json!(true)),
        "{failure:#}"
    );
    worker.stop().await
}
