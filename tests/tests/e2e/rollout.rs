//! Plugin rollouts as Temporal Worker Deployment versions (`worker.deployment_name`): two real
//! worker processes of one deployment on one task queue, serving two plugin sets that differ
//! in their bytes. A pipeline started on set A finishes on A after B becomes current, a new
//! one runs on B, and after a rollback new runs go to A again. Which bytes ran is read from
//! each activity's result metadata in the history (`mlx-plugin-digest`), not from the worker.

use std::time::Duration;

use base64::Engine as _;
use mlx_e2e::{
    DevServer, PluginsDir, WorkerProcess, components, eventually, history_of, shared_server,
    unique, worker_binary,
};
use mlx_pipeline::StepStatus;
use mlx_worker::temporal::PipelineWorkflow;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use temporalio_client::{
    Client, WorkflowExecuteUpdateOptions, WorkflowGetResultOptions, WorkflowStartOptions,
};

use crate::pipeline::{Pipeline, decision, echo, wait_for_step};

/// The testkit component with a custom section appended: the same plugin, other bytes, so a
/// second plugin set (and a second version) as a new build of a plugin would be.
fn rebuilt_testkit(dir: &PluginsDir) -> String {
    let bytes = components::variant("testkit", "set B");
    std::fs::write(dir.path().join("testkit.wasm"), &bytes).unwrap();
    format!("sha256:{:x}", Sha256::digest(&bytes))
}

fn component_digest(dir: &PluginsDir) -> String {
    let bytes = std::fs::read(dir.path().join("testkit.wasm")).unwrap();
    format!("sha256:{:x}", Sha256::digest(&bytes))
}

/// The build ids the server knows for `deployment`, from the `temporal` CLI.
fn build_ids(server: &DevServer, deployment: &str) -> Vec<String> {
    let out = server.cli(&[
        "worker",
        "deployment",
        "describe",
        "--name",
        deployment,
        "-o",
        "json",
    ]);
    if !out.status.success() {
        return Vec::new(); // Not registered yet: the worker's first poll creates it.
    }
    let described: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let mut ids = Vec::new();
    every_build_id(&described, &mut ids);
    ids.sort();
    ids.dedup();
    ids
}

fn every_build_id(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            // The CLI's spelling in `versionSummaries`.
            if let Some(Value::String(id)) = map.get("BuildID") {
                into.push(id.clone());
            }
            map.values().for_each(|v| every_build_id(v, into));
        }
        Value::Array(items) => items.iter().for_each(|v| every_build_id(v, into)),
        _ => {}
    }
}

/// Waits until `deployment` has `count` versions; returns the one not in `known`.
async fn new_version(
    server: &DevServer,
    deployment: &str,
    known: &[String],
) -> anyhow::Result<String> {
    eventually(
        Duration::from_secs(120),
        "the worker's deployment version is registered",
        || {
            let fresh = build_ids(server, deployment)
                .into_iter()
                .find(|id| !known.contains(id));
            async move { fresh }
        },
    )
    .await
}

fn set_current(server: &DevServer, deployment: &str, build_id: &str) {
    let out = server.cli(&[
        "worker",
        "deployment",
        "set-current-version",
        "--deployment-name",
        deployment,
        "--build-id",
        build_id,
        "--yes",
    ]);
    assert!(
        out.status.success(),
        "set-current-version {build_id}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn start(
    client: &Client,
    task_queue: &str,
    id: &str,
    spec: Value,
) -> anyhow::Result<Pipeline> {
    client
        .start_workflow(
            PipelineWorkflow::run,
            mlx_worker::temporal::payload::json_input(&spec),
            WorkflowStartOptions::new(task_queue.to_string(), id.to_string()).build(),
        )
        .await?;
    Ok(client.get_workflow_handle::<PipelineWorkflow>(id))
}

fn gated(name: &str) -> Value {
    json!({
        "name": name,
        "steps": [
            echo("train", &[], json!({"n": 1})),
            {"id": "approve", "type": "approval", "depends_on": ["train"]},
            echo("register", &["approve"], json!({"n": 2}))
        ]
    })
}

/// The digest of the component behind each completed activity of `workflow_id`.
async fn digests_that_ran(server: &DevServer, workflow_id: &str) -> anyhow::Result<Vec<String>> {
    let events = history_of(server, workflow_id).await?;
    let b64 = base64::engine::general_purpose::STANDARD;
    Ok(mlx_e2e::events(&events, "ActivityTaskCompleted")
        .into_iter()
        .filter_map(|e| {
            let meta = &e["result"]["payloads"][0]["metadata"]["mlx-plugin-digest"];
            let bytes = b64.decode(meta.as_str()?).ok()?;
            String::from_utf8(bytes).ok()
        })
        .collect())
}

async fn approve_and_finish(handle: &Pipeline) -> anyhow::Result<()> {
    handle
        .execute_update(
            PipelineWorkflow::approve,
            decision("approve"),
            WorkflowExecuteUpdateOptions::default(),
        )
        .await?;
    let result = handle
        .get_result(WorkflowGetResultOptions::default())
        .await?;
    assert_eq!(
        result["steps"]["register"]["status"], "succeeded",
        "{result:#}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollout_leaves_running_pipelines_on_the_plugins_they_started_with() -> anyhow::Result<()>
{
    let server = shared_server().await?;
    let client = server.client().await?;
    let deployment = unique("fleet");
    let env = [("MLX_DEPLOYMENT_NAME", deployment.as_str())];

    let set_a = PluginsDir::with(&["testkit"]);
    let digest_a = component_digest(&set_a);
    let worker_a = WorkerProcess::start(worker_binary(), server, set_a.path(), &env)?;
    let version_a = new_version(server, &deployment, &[]).await?;
    set_current(server, &deployment, &version_a);

    let old_run = unique("rollout-old");
    let old = start(&client, &worker_a.task_queue, &old_run, gated("old")).await?;
    wait_for_step(&old, "approve", StepStatus::WaitingApproval).await?;

    // Set B rolls out: its workers join the same queue as a new version, then become current.
    let set_b = PluginsDir::with(&[]);
    let digest_b = rebuilt_testkit(&set_b);
    assert_ne!(digest_a, digest_b);
    let _worker_b = worker_a.successor(worker_binary(), server, set_b.path(), &env, &[])?;
    let version_b = new_version(server, &deployment, std::slice::from_ref(&version_a)).await?;
    set_current(server, &deployment, &version_b);

    let new_run = unique("rollout-new");
    let new = start(&client, &worker_a.task_queue, &new_run, gated("new")).await?;
    wait_for_step(&new, "approve", StepStatus::WaitingApproval).await?;
    approve_and_finish(&old).await?;
    approve_and_finish(&new).await?;
    assert_eq!(
        digests_that_ran(server, &old_run).await?,
        [digest_a.clone(), digest_a.clone()],
        "the run started on A finishes on A"
    );
    assert_eq!(
        digests_that_ran(server, &new_run).await?,
        [digest_b.clone(), digest_b],
        "a run started after the rollout runs on B"
    );

    // Rollback: A is current again, and new runs go to it.
    set_current(server, &deployment, &version_a);
    let back_run = unique("rollout-back");
    let back = start(
        &client,
        &worker_a.task_queue,
        &back_run,
        json!({"name": "back", "steps": [echo("train", &[], json!({"n": 3}))]}),
    )
    .await?;
    back.get_result(WorkflowGetResultOptions::default()).await?;
    assert_eq!(digests_that_ran(server, &back_run).await?, [digest_a]);
    Ok(())
}
